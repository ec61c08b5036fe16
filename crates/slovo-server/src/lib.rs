//! The network doors of Slovo Tools: a REST API and, beside it, the MCP server ([`mcp`]) over
//! one [`Runtime`].
//!
//! # Brief overview
//! - [`app`] builds the axum router from an [`AppState`]; tests call it directly.
//! - [`serve`] runs it on a listener until a shutdown signal, then records calls that were cut
//!   short as `cancelled`.
//! - Every handler is a few lines: authenticate ([`auth::Caller`]), check the role, call the
//!   runtime, render JSON. Errors become responses in one place ([`error::ApiError`]).
//!
//! Architecture invariant: this crate re-implements nothing of the call path: validation,
//! grants, sandboxing and auditing all happen in `slovo-runtime`.
#![deny(missing_docs)]

mod audit_routes;
pub mod auth;
pub mod error;
pub mod limits;
pub mod mcp;
pub mod metrics;
mod routes;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use slovo_core::execution::ExecutionStatus;
use slovo_runtime::Runtime;
use tokio::net::TcpListener;

pub use routes::ApiDoc;

/// Tunables of the server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Calls that may run at once. By default, 64.
    pub max_concurrent_calls: usize,
    /// Calls that may wait for a slot; beyond that, 503. By default, 256.
    pub max_queued_calls: usize,
    /// Largest request body accepted (bytes). By default, 2 MiB.
    pub max_body_bytes: usize,
    /// How long shutdown waits for calls in flight before recording them as cancelled. By
    /// default, 10 seconds.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_concurrent_calls: 64,
            max_queued_calls: 256,
            max_body_bytes: 2 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    /// The runtime every door goes through.
    pub runtime: Arc<Runtime>,
    /// Back-pressure on calls.
    pub calls: Arc<limits::CallLimiter>,
    /// Metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// The configuration.
    pub config: Arc<ServerConfig>,
    /// Cancelled when shutdown begins, so long-lived MCP streams end and connections drain.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// The approval dashboard's state (its sessions).
    pub dashboard: slovo_dashboard::DashboardState,
}

impl AppState {
    /// State for `runtime` with `config`.
    pub fn new(runtime: Arc<Runtime>, config: ServerConfig) -> Self {
        let shutdown = tokio_util::sync::CancellationToken::new();
        AppState {
            calls: Arc::new(limits::CallLimiter::new(
                config.max_concurrent_calls,
                config.max_queued_calls,
            )),
            metrics: Arc::new(metrics::Metrics::default()),
            dashboard: slovo_dashboard::DashboardState::new(
                runtime.clone(),
                slovo_dashboard::DashboardConfig::default(),
            )
            .with_shutdown(shutdown.clone()),
            runtime,
            config: Arc::new(config),
            shutdown,
        }
    }

    /// The same state with the dashboard configured by `config` (sessions start empty).
    pub fn with_dashboard(mut self, config: slovo_dashboard::DashboardConfig) -> Self {
        self.dashboard = slovo_dashboard::DashboardState::new(self.runtime.clone(), config)
            .with_shutdown(self.shutdown.clone());
        self
    }
}

/// The router: REST API, health, metrics, the OpenAPI description, MCP at `/mcp`, and the
/// approval dashboard at `/`.
pub fn app(state: AppState) -> Router {
    let dashboard = slovo_dashboard::router(state.dashboard.clone());
    routes::router(state.clone())
        .merge(mcp::router(state))
        .merge(dashboard)
}

/// Serves until `shutdown` completes. Registers this instance and renews its lease while it
/// serves (declaring dead any instance sharing the database whose lease lapsed), follows
/// changes made through other instances ([`Runtime::spawn_change_feed`]), and marks it
/// stopped at the end. Calls left `running` by an earlier crash are recorded as `interrupted`
/// first; after shutdown, calls still in flight get `shutdown_grace` to
/// finish and are then recorded as `cancelled`.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let runtime = state.runtime.clone();
    let grace = state.config.shutdown_grace;
    let mcp_shutdown = state.shutdown.clone();
    if let Err(e) = runtime.register_instance().await {
        tracing::error!(error = %e, "failed to register this instance");
    }
    match runtime.recover_interrupted().await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(count = n, "recorded calls left running by a crash as interrupted"),
        Err(e) => tracing::error!(error = %e, "failed to recover interrupted calls"),
    }
    let checkpoint_timer = runtime.spawn_audit_checkpoint_timer();
    let heartbeat = runtime.spawn_heartbeat();
    runtime.spawn_change_feed();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, app(state)).with_graceful_shutdown(async move {
        shutdown.await;
        mcp_shutdown.cancel();
        let _ = stop_tx.send(true);
    });
    let mut stop_rx_timer = stop_rx.clone();
    let result = tokio::select! {
        r = server => r,
        _ = async move {
            // Shutdown began: give calls in flight their grace, then stop waiting for them.
            let _ = stop_rx_timer.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        } => Ok(()),
    };
    match runtime
        .abandon_inflight(ExecutionStatus::Cancelled, "the server shut down during the call")
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::warn!(count = n, "recorded calls cut short by shutdown as cancelled"),
        Err(e) => tracing::error!(error = %e, "failed to record cancelled calls"),
    }
    heartbeat.stop().await;
    if let Err(e) = runtime.stop_instance().await {
        tracing::error!(error = %e, "failed to mark this instance stopped");
    }
    // The events since the last checkpoint, including those just recorded, get theirs.
    checkpoint_timer.abort();
    if let Err(e) = runtime.flush_audit_checkpoints().await {
        tracing::error!(error = %e, "failed to write the audit checkpoint at shutdown");
    }
    result
}
