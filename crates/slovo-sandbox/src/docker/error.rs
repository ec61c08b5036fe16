//! Errors of the Docker backend.

use std::path::PathBuf;

/// Why the Docker backend could not prepare or run a call.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The daemon does not answer (not running, no socket, no permission).
    #[error("the Docker daemon is not available at {host}: {reason}")]
    Unavailable {
        /// Where the daemon was looked for (`DOCKER_HOST` or the default socket).
        host: String,
        /// Why it did not answer.
        reason: String,
    },
    /// A request to the Engine API failed.
    #[error("Docker API request {action} failed: {source}")]
    Api {
        /// What was being done (`create the container`, …).
        action: &'static str,
        /// The client's error.
        #[source]
        source: bollard::errors::Error,
    },
    /// The call cannot run as granted (network, image, configuration).
    #[error("{0}")]
    Refused(String),
    /// A host file operation failed.
    #[error("failed to {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The tool's state volume (the `/data` quota) could not be prepared.
    #[error("state volume: {0}")]
    Volume(#[from] crate::linux::volume::VolumeError),
}

impl DockerError {
    /// A refusal with `reason`.
    pub fn refused(reason: impl Into<String>) -> DockerError {
        DockerError::Refused(reason.into())
    }

    /// An API error while doing `action`.
    pub fn api(action: &'static str) -> impl FnOnce(bollard::errors::Error) -> DockerError {
        move |source| DockerError::Api { action, source }
    }
}

/// Whether `e` is the daemon's "not found" answer (HTTP 404).
pub fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }
    )
}

/// The result type of the Docker backend.
pub type Result<T, E = DockerError> = std::result::Result<T, E>;
