//! The approval dashboard: the web pages where a person decides what tools may do.
//!
//! # Brief overview
//! - [`router`] serves every page at `/` beside the REST API and MCP (same port); `slovo-server`
//!   merges it in.
//! - Pages are rendered on the server with `maud`, whose templates escape every interpolated
//!   value at compile time: text from manifests, OpenAPI documents, tool output and LLM analysis
//!   is always inert. One first-party script ([`assets`]) formats times in the browser's zone
//!   and refreshes live regions from server-sent events; pages work without it.
//! - [`session`] signs a person in with an admin token and keeps a session cookie; every
//!   state-changing request carries the session's CSRF token.
//! - [`security`] sets a strict Content-Security-Policy (no inline script or style) and the
//!   other protective headers on every answer.
//!
//! Architecture invariant: every action is one `Runtime` operation, the same one REST and the
//! CLI call; this crate checks nothing that the runtime checks, and every change is audited with
//! the session as actor ([`session::Session::actor`]).
#![deny(missing_docs)]

mod assets;
mod describe;
mod error;
mod events;
mod form;
mod origin;
mod pages;
mod render;
pub mod security;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use slovo_runtime::Runtime;

pub use session::CookieSecurity;

/// Tunables of the dashboard.
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    /// How long a session lasts after sign-in. By default, 8 hours.
    pub session_ttl: Duration,
    /// When the session cookie carries `Secure`.
    pub cookie_security: CookieSecurity,
    /// How often the live-update stream looks for changes. By default, 1 second.
    pub poll_interval: Duration,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            session_ttl: Duration::from_secs(8 * 3600),
            cookie_security: CookieSecurity::FromRequest,
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// Shared by every dashboard handler.
#[derive(Clone)]
pub struct DashboardState {
    /// The runtime every action goes through.
    pub runtime: Arc<Runtime>,
    /// Signed-in sessions.
    pub sessions: Arc<session::Sessions>,
    /// The configuration.
    pub config: Arc<DashboardConfig>,
    /// Cancelled when the server shuts down, so live-update streams end and connections drain.
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl DashboardState {
    /// State for `runtime` with `config`.
    pub fn new(runtime: Arc<Runtime>, config: DashboardConfig) -> Self {
        DashboardState {
            sessions: Arc::new(session::Sessions::new(runtime.clone(), config.session_ttl)),
            runtime,
            config: Arc::new(config),
            shutdown: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// The same state, its streams ending when `shutdown` is cancelled.
    pub fn with_shutdown(mut self, shutdown: tokio_util::sync::CancellationToken) -> Self {
        self.shutdown = shutdown;
        self
    }
}

/// Every dashboard page, asset and form target, with the security headers on every answer.
pub fn router(state: DashboardState) -> Router {
    Router::new()
        .route("/assets/dashboard.css", get(assets::css))
        .route("/assets/dashboard.js", get(assets::js))
        .route("/signin", get(pages::signin::form).post(pages::signin::submit))
        .route("/signin/link/{code}", get(pages::signin::link_page))
        .route("/signin/link", post(pages::signin::link_submit))
        .route("/signout", post(pages::signin::signout))
        .route("/", get(pages::inbox::landing))
        .route("/inbox", get(pages::inbox::page))
        .route("/proposals/{name}", get(pages::proposal::page))
        .route("/proposals/{name}/approve", post(pages::approve::approve))
        .route("/proposals/{name}/reject", post(pages::proposal::reject))
        .route("/tools", get(pages::tools::list))
        .route("/tools/{name}", get(pages::tools::page))
        .route("/tools/{name}/action", post(pages::tools::action))
        .route("/tools/{name}/revoke", post(pages::tools::revoke))
        .route("/tools/{name}/secrets", post(pages::tools::set_secret))
        .route("/tools/{name}/secrets/delete", post(pages::tools::delete_secret))
        .route("/activity", get(pages::activity::list))
        .route("/activity/{id}", get(pages::activity::page))
        .route("/activity/{id}/download", get(pages::activity::download))
        .route("/audit", get(pages::audit::page))
        .route("/audit/verify", post(pages::audit::verify))
        .route("/audit/export", get(pages::audit::export))
        .route("/discovery", get(pages::discovery::list))
        .route("/discovery/{id}/reject", post(pages::discovery::reject))
        .route("/events", get(events::stream))
        .layer(middleware::from_fn(security::headers))
        .with_state(state)
}
