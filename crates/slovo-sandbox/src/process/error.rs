//! Errors of the process backend. Every message is lowercase, says what failed, and keeps its
//! context (paths, steps) as fields.

use std::io;
use std::path::PathBuf;

/// The process backend could not prepare, start or clean up a sandbox.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The host or the spec does not allow running the call with the promised isolation.
    #[error("refusing to run: {reason}")]
    Refused {
        /// Why, for a person.
        reason: String,
    },
    /// A host file operation failed.
    #[error("failed to {action} {path}: {source}")]
    Io {
        /// What was attempted ("create", "write", …).
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A system call of the parent failed (clone, pipe, …).
    #[error("failed to {action}: {source}")]
    Sys {
        /// What was attempted.
        action: &'static str,
        /// The cause.
        source: io::Error,
    },
    /// The child failed one of its setup steps before running the tool.
    #[error("failed to set up the sandbox ({step}): {source}")]
    Setup {
        /// The step that failed.
        step: &'static str,
        /// The cause.
        source: io::Error,
    },
    /// The state volume could not be created or mounted.
    #[error(transparent)]
    Volume(#[from] crate::linux::volume::VolumeError),
}

impl ProcessError {
    /// An [`ProcessError::Io`] for `path`.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> ProcessError {
        ProcessError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// A [`ProcessError::Sys`] from `errno`.
    pub(crate) fn sys(action: &'static str) -> ProcessError {
        ProcessError::Sys {
            action,
            source: io::Error::last_os_error(),
        }
    }

    /// A [`ProcessError::Refused`].
    pub(crate) fn refused(reason: impl Into<String>) -> ProcessError {
        ProcessError::Refused {
            reason: reason.into(),
        }
    }
}

/// Results of the process backend.
pub type Result<T, E = ProcessError> = std::result::Result<T, E>;
