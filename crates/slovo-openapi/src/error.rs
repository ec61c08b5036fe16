//! Why a whole document is refused. A problem in one operation is never an error: the
//! operation is skipped and the report says why ([`crate::Skipped`]).

use crate::report::Skipped;

/// A document that cannot be imported at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// The file could not be read.
    #[error("{source_name}: cannot read: {reason}")]
    Read {
        /// The document.
        source_name: String,
        /// The I/O error.
        reason: String,
    },
    /// Larger than the configured limit.
    #[error("{source_name}: the document is {size} bytes, larger than the {max}-byte limit")]
    TooLarge {
        /// The document.
        source_name: String,
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Not JSON or YAML (or not UTF-8, or a YAML alias bomb, or nested too deep).
    #[error("{source_name}: {reason}")]
    Syntax {
        /// The document.
        source_name: String,
        /// The parser's message.
        reason: String,
    },
    /// JSON or YAML, but not an OpenAPI or Swagger document.
    #[error("{source_name}: not an OpenAPI document: {reason}")]
    NotOpenApi {
        /// The document.
        source_name: String,
        /// What is missing.
        reason: String,
    },
    /// An OpenAPI version this ingester does not read.
    #[error("{source_name}: unsupported version {version:?} (Swagger 2.0, OpenAPI 3.0.x and 3.1.x are)")]
    UnsupportedVersion {
        /// The document.
        source_name: String,
        /// The `swagger` / `openapi` field.
        version: String,
    },
    /// The document breaks the OpenAPI specification outside any single operation.
    #[error("{source_name}: invalid OpenAPI document: {}", errors.join("; "))]
    Invalid {
        /// The document.
        source_name: String,
        /// Each problem, with its JSON pointer.
        errors: Vec<String>,
    },
    /// The document has operations but none of them could be turned into a capability.
    #[error("{source_name}: none of its {} operations could be imported: {}", skipped.len(),
        skipped.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    NoUsableOperations {
        /// The document.
        source_name: String,
        /// Every operation and why it was skipped.
        skipped: Vec<Skipped>,
    },
    /// The options are unusable (a bad tool name override, a bad base URL).
    #[error("{source_name}: {reason}")]
    Options {
        /// The document.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
}
