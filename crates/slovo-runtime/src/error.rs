//! Runtime errors, and the one mapping from an error to its kind (exit code, HTTP status).

use std::path::PathBuf;

use slovo_core::ManifestError;
use slovo_core::audit::ChainError;
use slovo_core::lifecycle::TransitionError;
use slovo_core::permissions::GrantError;
use slovo_store::StoreError;

/// A runtime operation that failed. Every variant says what, which tool and why.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The manifest cannot be imported.
    #[error(transparent)]
    InvalidManifest(#[from] ManifestError),
    /// A tool bundle (directory or tarball) is unusable.
    #[error("{path}: {reason}")]
    InvalidBundle {
        /// The bundle.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An entry of a tool bundle that import refuses (a link leading out, a special file, an
    /// entry that changed while it was read).
    #[error("bundle {bundle}: {entry}: {reason}")]
    BundleEntry {
        /// The bundle, as named on import (a directory or a tarball).
        bundle: PathBuf,
        /// The entry, relative to the bundle's root.
        entry: PathBuf,
        /// Why.
        reason: slovo_bundle::BundleRefusal,
    },
    /// No such tool, capability or execution.
    #[error("{what} {name:?} not found")]
    NotFound {
        /// `tool`, `capability`, `execution`, `version`.
        what: &'static str,
        /// What was asked for.
        name: String,
    },
    /// The lifecycle does not allow this now.
    #[error("tool {tool}: {source}")]
    Transition {
        /// The tool.
        tool: String,
        /// The refused transition.
        #[source]
        source: TransitionError,
    },
    /// The tool exists but cannot serve calls in its current state.
    #[error("tool {tool} is {status}: {hint}")]
    NotCallable {
        /// The tool.
        tool: String,
        /// Its status.
        status: String,
        /// What to do about it.
        hint: String,
    },
    /// The grant has lapsed.
    #[error("tool {tool}: its grant expired at {expired_at}; approve it again to renew")]
    GrantExpired {
        /// The tool.
        tool: String,
        /// When it expired (RFC 3339).
        expired_at: String,
    },
    /// An approval asked to grant more than was requested.
    #[error("tool {tool}: {source}")]
    Grant {
        /// The tool.
        tool: String,
        /// What was too wide.
        #[source]
        source: GrantError,
    },
    /// Nothing to approve, or a version conflict on import.
    #[error("tool {tool}: {reason}")]
    Conflict {
        /// The tool.
        tool: String,
        /// Why.
        reason: String,
    },
    /// Arguments that violate the capability's schema; the call never reached a sandbox.
    #[error("invalid arguments for {tool}.{capability}: {}", .problems.join("; "))]
    InvalidArguments {
        /// The tool.
        tool: String,
        /// The capability.
        capability: String,
        /// Each violation, with its JSON pointer.
        problems: Vec<String>,
    },
    /// The tool cannot run at all (no execution section).
    #[error("tool {tool} cannot run: {reason}")]
    NotRunnable {
        /// The tool.
        tool: String,
        /// Why.
        reason: String,
    },
    /// Installing failed; the tool stays approved and installing can be retried.
    #[error(
        "tool {tool} was approved but installing it failed: {reason} (run `slovo tool approve {tool}` again to retry)"
    )]
    Install {
        /// The tool.
        tool: String,
        /// Why.
        reason: String,
    },
    /// An OpenAPI document that cannot be imported.
    #[error(transparent)]
    OpenApi(#[from] slovo_openapi::IngestError),
    /// A document could not be fetched (refused address, network error, too large).
    #[error(transparent)]
    Fetch(#[from] slovo_sandbox::http::FetchError),
    /// An MCP server that cannot be imported: its source, its package, its fetch, its tool
    /// list.
    #[error("MCP server {source_name}: {reason}")]
    McpImport {
        /// The source as given (`npm:…`, `pypi:…`, a `server.json`).
        source_name: String,
        /// Why.
        reason: String,
    },
    /// The audit chain does not verify.
    #[error("audit trail is broken: {0}")]
    AuditBroken(#[from] ChainError),
    /// A file-system operation failed.
    #[error("failed to {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The broad class of an error: what a front end maps to an exit code or HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is wrong (manifest, bundle, arguments, narrowing): exit 3, HTTP 400/422.
    InvalidInput,
    /// Something named does not exist: exit 4, HTTP 404.
    NotFound,
    /// The state does not allow it (lifecycle, expiry, conflict): exit 5, HTTP 409.
    InvalidState,
    /// The audit trail failed verification: exit 7.
    AuditBroken,
    /// The database cannot take writes now (its lock held by another process, its disk
    /// full, its server unreachable or restarting); the same request may succeed later: exit
    /// 75, HTTP 503.
    Unavailable,
    /// Anything else (database, file system, install): exit 1, HTTP 500.
    Internal,
}

impl From<slovo_bundle::BundleError> for RuntimeError {
    fn from(e: slovo_bundle::BundleError) -> Self {
        use slovo_bundle::BundleError;
        match e {
            BundleError::Invalid { path, reason } => RuntimeError::InvalidBundle { path, reason },
            BundleError::Entry {
                bundle,
                entry,
                reason,
            } => RuntimeError::BundleEntry {
                bundle,
                entry,
                reason,
            },
            BundleError::Io { action, path, source } => RuntimeError::Io { action, path, source },
        }
    }
}

impl RuntimeError {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RuntimeError::InvalidManifest(_)
            | RuntimeError::OpenApi(_)
            | RuntimeError::Fetch(_)
            | RuntimeError::McpImport { .. }
            | RuntimeError::InvalidBundle { .. }
            | RuntimeError::BundleEntry { .. }
            | RuntimeError::Grant { .. }
            | RuntimeError::InvalidArguments { .. } => ErrorKind::InvalidInput,
            RuntimeError::NotFound { .. } => ErrorKind::NotFound,
            RuntimeError::Transition { .. }
            | RuntimeError::NotCallable { .. }
            | RuntimeError::GrantExpired { .. }
            | RuntimeError::Conflict { .. }
            | RuntimeError::NotRunnable { .. } => ErrorKind::InvalidState,
            RuntimeError::AuditBroken(_) => ErrorKind::AuditBroken,
            RuntimeError::Store(StoreError::Busy | StoreError::DiskFull(_) | StoreError::Unreachable(_)) => {
                ErrorKind::Unavailable
            }
            RuntimeError::Install { .. } | RuntimeError::Io { .. } | RuntimeError::Store(_) => {
                ErrorKind::Internal
            }
        }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RuntimeError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn tool_not_found(name: &str) -> Self {
        RuntimeError::NotFound {
            what: "tool",
            name: name.to_string(),
        }
    }
}
