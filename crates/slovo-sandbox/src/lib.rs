//! Execution backends of Slovo Tools.
//!
//! # Brief overview
//! Every way of running a tool (a sandboxed native process, a WebAssembly module, a Docker
//! container, a remote HTTP API) implements one trait, [`Backend`]. A backend receives a
//! [`SandboxSpec`] that the runtime derived from the person's grant and returns an [`Outcome`];
//! it never reads manifests, grants or the database.
//!
//! [`Backends`] maps an execution type (`process`, `wasm`, `docker`, `http`) to the backend
//! that serves it. A type with no backend is refused with a clear error: no tool ever runs
//! with less isolation than its type promises.
#![deny(missing_docs)]

#[cfg(all(feature = "docker", target_os = "linux"))]
pub mod docker;
pub mod doctor;
#[cfg(target_os = "linux")]
mod ending;
#[cfg(feature = "http")]
pub mod http;
#[cfg(target_os = "linux")]
pub mod linux;
#[cfg(target_os = "linux")]
pub mod mcp;
#[cfg(target_os = "linux")]
pub mod process;
#[cfg(feature = "wasm")]
pub mod wasm;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
pub use slovo_core::execution::{NetworkPolicy, Outcome, ResourceLimits, SandboxSpec};
pub use slovo_core::install::InstallFacts;
use slovo_core::manifest::Execution;

/// What a backend needs to prepare a tool version for calls.
#[derive(Debug, Clone)]
pub struct InstallRequest {
    /// The tool.
    pub tool: String,
    /// The version being installed.
    pub version: String,
    /// How it runs.
    pub execution: Execution,
    /// Its installed, read-only bundle, for tools that ship files.
    pub bundle_dir: Option<PathBuf>,
    /// Its persistent state directory (already created).
    pub state_dir: PathBuf,
    /// The tool's secrets, for an install that needs them: a remote MCP server that lists
    /// its tools only to a request carrying its credential. `Debug` shows their names only.
    pub secrets: slovo_core::secrets::Secrets,
}

/// The environment that points common HTTP clients (curl, Python, Go, Node, …) at a call's
/// egress-proxy listener at `proxy`; every backend that grants network sets the same names.
pub fn proxy_env(proxy: std::net::SocketAddr) -> Vec<String> {
    let url = format!("http://{proxy}");
    [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ]
    .iter()
    .map(|k| format!("{k}={url}"))
    .collect()
}

/// A backend could not prepare or run a tool.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// No backend serves this execution type on this host.
    #[error("no backend for execution type {kind:?}: {reason}")]
    Unavailable {
        /// The execution type.
        kind: String,
        /// Why (not built, host lacks a feature, daemon down, …).
        reason: String,
    },
    /// Installing failed.
    #[error("failed to install {tool}: {reason}")]
    Install {
        /// The tool.
        tool: String,
        /// Why.
        reason: String,
    },
}

/// One way of running tools.
#[async_trait]
pub trait Backend: Send + Sync {
    /// The execution type served: `process`, `wasm`, `docker` or `http`.
    fn kind(&self) -> &'static str;

    /// Prepares a tool version for calls (compile a module, check an image, …). Returns facts
    /// worth recording (an image digest, an artifact path), which its calls receive again.
    async fn install(&self, request: &InstallRequest) -> Result<InstallFacts, BackendError>;

    /// Runs one call. Never panics and never returns without an outcome: a failure to start
    /// is an [`Outcome`] with status `failure` and the reason.
    async fn run(&self, spec: &SandboxSpec) -> Outcome;

    /// Lets go of a tool's state directory (unmounts a quota volume, …) before the runtime
    /// keeps it idle or, with `purge`, deletes it. By default there is nothing to release.
    async fn release_state(&self, state_dir: &std::path::Path, purge: bool) -> Result<(), BackendError> {
        let _ = (state_dir, purge);
        Ok(())
    }

    /// Lets go of what the backend holds on the host for this process (mounted state volumes
    /// no other process uses), once no call runs any more. By default there is nothing.
    async fn shutdown(&self) {}

    /// The tool changed (its status, version, grant, pin or secrets): lets go of anything
    /// prepared ahead of its calls (warm MCP servers). By default there is nothing.
    async fn forget_tool(&self, tool: &str) {
        let _ = tool;
    }

    /// Runs an installer — a package manager fetching a tool's package before the tool exists —
    /// in a sandbox of its own built from `spec`: `spec.execution` is a process command whose
    /// program is an absolute path to a system program, `/data` (the spec's state directory,
    /// with its storage quota) is the only place it writes, its network is the spec's and
    /// passes the egress proxy, and `env` adds variables (replacing the sandbox's defaults of
    /// the same name). Nothing is written to its stdin; the outcome holds its output, its exit
    /// and the proxy's refusals. By default a backend runs no installers.
    async fn run_installer(&self, spec: &SandboxSpec, env: &[(String, String)]) -> Outcome {
        let _ = (spec, env);
        Outcome::failed(format!(
            "the {} backend runs no installers (the process sandbox does)",
            self.kind()
        ))
    }
}

/// The backends available to the runtime, by execution type.
#[derive(Clone, Default)]
pub struct Backends {
    by_kind: BTreeMap<&'static str, Arc<dyn Backend>>,
}

impl Backends {
    /// No backends: every call is refused.
    pub fn new() -> Self {
        Backends::default()
    }

    /// Adds (or replaces) the backend for its execution type.
    pub fn with(mut self, backend: Arc<dyn Backend>) -> Self {
        self.by_kind.insert(backend.kind(), backend);
        self
    }

    /// The backend for `kind`.
    pub fn get(&self, kind: &str) -> Result<&Arc<dyn Backend>, BackendError> {
        self.by_kind.get(kind).ok_or_else(|| BackendError::Unavailable {
            kind: kind.to_string(),
            reason: "this build or configuration has no backend for it".to_string(),
        })
    }

    /// Shuts every backend down ([`Backend::shutdown`]).
    pub async fn shutdown(&self) {
        for backend in self.by_kind.values() {
            backend.shutdown().await;
        }
    }

    /// Tells every backend that `tool` changed ([`Backend::forget_tool`]).
    pub async fn forget_tool(&self, tool: &str) {
        for backend in self.by_kind.values() {
            backend.forget_tool(tool).await;
        }
    }

    /// The execution types served.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.by_kind.keys().copied().collect()
    }
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends").field("kinds", &self.kinds()).finish()
    }
}
