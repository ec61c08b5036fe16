//! A state-changing request: a signed-in session and a form carrying its CSRF token.

use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};

use crate::DashboardState;
use crate::error::PageError;
use crate::session::Session;

/// Largest form accepted (bytes): enough for a secret value or a long rejection reason.
const MAX_FORM_BYTES: usize = 256 * 1024;

/// The name of the form field (or `X-CSRF-Token` header) that carries the CSRF token.
pub(crate) const CSRF_FIELD: &str = "csrf";

/// A form posted by a signed-in person, its CSRF token checked.
pub(crate) struct SignedForm {
    pub session: Session,
    fields: Vec<(String, String)>,
}

impl SignedForm {
    /// The first value of `name`, trimmed, or `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Every value of `name` (checkboxes).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of `name` untrimmed (secret values are taken as typed).
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The pairs of a `application/x-www-form-urlencoded` body.
pub(crate) fn parse_pairs(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

impl<S> FromRequest<S> for SignedForm
where
    DashboardState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = PageError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let header_token = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| PageError::BadInput("the form is larger than 256 KiB".into()))?;
        let fields = parse_pairs(&bytes);
        let presented = header_token.or_else(|| {
            fields
                .iter()
                .find(|(k, _)| k == CSRF_FIELD)
                .map(|(_, v)| v.clone())
        });
        if !presented.is_some_and(|t| session.csrf_matches(&t)) {
            return Err(PageError::Csrf);
        }
        Ok(SignedForm { session, fields })
    }
}
