//! Sign in with an admin token; sign out.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;
use slovo_core::access::Role;

use crate::DashboardState;
use crate::error::{PageError, PageResult};
use crate::form::{SignedForm, parse_pairs};
use crate::render::{Page, bare};
use crate::session::{Principal, clear_cookie, cookie_value, set_cookie};

fn signin_page(message: Option<&str>) -> Page {
    Page(bare(
        "Sign in",
        html! {
            @if let Some(m) = message { p.error role="alert" { (m) } }
            form.card method="post" action="/signin" {
                label for="token" { "Admin token" }
                input #token type="password" name="token" autocomplete="off" required
                    spellcheck="false" aria-describedby="token-help";
                p #token-help .hint {
                    "An admin token, as printed by " code { "slovo token create admin" }
                    ". It is exchanged for a session and not kept in the browser."
                }
                button type="submit" { "Sign in" }
            }
        },
    ))
}

/// `GET /signin`.
pub(crate) async fn form(State(state): State<DashboardState>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie_value(&headers)
        && matches!(state.sessions.find(&id).await, Ok(Some(_)))
    {
        return super::see_other("/");
    }
    signin_page(None).into_response()
}

/// A sign-in posted from another site's page is refused: browsers say where a request came
/// from in `Sec-Fetch-Site` and `Origin`.
fn cross_site(headers: &HeaderMap) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return true;
    }
    match (header("origin"), header("host")) {
        (Some(origin), Some(host)) => {
            let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
            origin != "null" && origin_host != host
        }
        _ => false,
    }
}

/// `POST /signin`: an admin token opens a session.
pub(crate) async fn submit(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult<Response> {
    if cross_site(&headers) {
        return Err(PageError::Csrf);
    }
    let token = parse_pairs(&body)
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let row = match state.runtime.authenticate(&token).await? {
        Some(row) if row.role.includes(Role::Admin) => row,
        _ => {
            tracing::warn!("dashboard sign-in refused");
            let page = signin_page(Some("That is not a valid admin token."));
            return Ok((StatusCode::UNAUTHORIZED, page).into_response());
        }
    };
    tracing::info!(token = %row.id, "dashboard sign-in with a token");
    start_session(&state, &headers, Principal::Token(row.id)).await
}

/// Sets the cookie of a new session for `principal` and sends the browser to the landing page.
async fn start_session(
    state: &DashboardState,
    headers: &HeaderMap,
    principal: Principal,
) -> PageResult<Response> {
    let opened = state.sessions.open(principal).await?;
    tracing::info!(session = %opened.session.handle, "dashboard session opened");
    let secure = state.config.cookie_security.secure(headers);
    let cookie = set_cookie(&opened.cookie_value, state.sessions.ttl(), secure);
    Ok((
        StatusCode::SEE_OTHER,
        [(SET_COOKIE, cookie), (LOCATION, "/".to_string())],
    )
        .into_response())
}

/// `GET /signin/link/{code}`: a page with one button. Opening the link alone uses nothing, so
/// a link preview or a prefetch cannot burn it.
pub(crate) async fn link_page(Path(code): Path<String>) -> Page {
    Page(bare(
        "Sign in",
        html! {
            form.card method="post" action="/signin/link" {
                input type="hidden" name="code" value=(code);
                p { "This one-time link signs this browser in to the dashboard." }
                button type="submit" .primary { "Sign in" }
            }
        },
    ))
}

/// `POST /signin/link`: a one-time link opens a session (once, before it expires).
pub(crate) async fn link_submit(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult<Response> {
    if cross_site(&headers) {
        return Err(PageError::Csrf);
    }
    let code = parse_pairs(&body)
        .into_iter()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v)
        .unwrap_or_default();
    match state.runtime.redeem_signin_link(&code).await? {
        Some(id) => start_session(&state, &headers, Principal::Link(id)).await,
        None => {
            tracing::warn!("dashboard sign-in link refused");
            let page = signin_page(Some(
                "That sign-in link was used already, has expired or is not one. Run `slovo dashboard` for a new one.",
            ));
            Ok((StatusCode::UNAUTHORIZED, page).into_response())
        }
    }
}

/// `POST /signout`.
pub(crate) async fn signout(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    form: SignedForm,
) -> Response {
    if let Some(id) = cookie_value(&headers)
        && let Err(e) = state.sessions.close(&id).await
    {
        // The cookie is cleared below either way; the row ends when it expires.
        tracing::error!(error = %e, "dashboard sign-out could not delete the session");
    }
    tracing::info!(session = %form.session.handle, "dashboard sign-out");
    let secure = state.config.cookie_security.secure(&headers);
    (
        StatusCode::SEE_OTHER,
        [
            (SET_COOKIE, clear_cookie(secure)),
            (LOCATION, "/signin".to_string()),
        ],
    )
        .into_response()
}
