//! What the dashboard answers when something goes wrong: a page that says what happened.

use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use slovo_runtime::{ErrorKind, RuntimeError};

use crate::render;

/// An error answered as a page.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// No valid session: a page load goes to the sign-in form, anything else is refused.
    #[error("sign in first")]
    SignedOut {
        /// Send the browser to the sign-in page (page loads) rather than refusing (401).
        redirect: bool,
    },
    /// A state-changing request without this session's CSRF token.
    #[error("the form's security token is missing or wrong; reload the page and try again")]
    Csrf,
    /// A form value the dashboard cannot turn into a request.
    #[error("{0}")]
    BadInput(String),
    /// The runtime refused or failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A session could not be opened or looked up.
    #[error(transparent)]
    Session(#[from] crate::session::SessionError),
}

/// Result of a page handler.
pub type PageResult<T> = Result<T, PageError>;

impl PageError {
    /// No session, for a request with `method`.
    pub fn signed_out(method: &Method) -> Self {
        PageError::SignedOut {
            redirect: method == Method::GET || method == Method::HEAD,
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            PageError::SignedOut { .. } => StatusCode::UNAUTHORIZED,
            PageError::Csrf => StatusCode::FORBIDDEN,
            PageError::BadInput(_) => StatusCode::BAD_REQUEST,
            PageError::Session(_) => StatusCode::INTERNAL_SERVER_ERROR,
            PageError::Runtime(e) => match e.kind() {
                ErrorKind::NotFound => StatusCode::NOT_FOUND,
                ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
                ErrorKind::InvalidState | ErrorKind::AuditBroken => StatusCode::CONFLICT,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            },
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        if let PageError::SignedOut { redirect: true } = self {
            return Redirect::to("/signin").into_response();
        }
        let status = self.status();
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            // The cause may name paths or database details: log it, show less.
            tracing::error!(error = %self, "dashboard internal error");
            "Something went wrong; the server log has the details.".to_string()
        } else {
            self.to_string()
        };
        let page = render::error_page(status, &message);
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            page.into_string(),
        )
            .into_response()
    }
}
