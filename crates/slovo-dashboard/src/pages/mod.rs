//! One module per screen. Each handler: the session, one runtime operation, one page.

pub(crate) mod activity;
pub(crate) mod approve;
pub(crate) mod audit;
pub(crate) mod discovery;
pub(crate) mod inbox;
pub(crate) mod proposal;
pub(crate) mod signin;
pub(crate) mod tools;

use axum::response::{IntoResponse, Redirect, Response};

/// After a change: back to a page (303, so a reload does not post again).
pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// A path segment for a link: tool names and ids are restricted by the runtime, but a link is
/// built from them only after percent-encoding anyway.
pub(crate) fn segment(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
