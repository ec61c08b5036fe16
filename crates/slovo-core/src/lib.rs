//! The domain model of Slovo Tools: what a tool is, what it asks for, what a person granted,
//! where it is in its lifecycle and what one call of it produced.
//!
//! # Brief overview
//! - [`manifest`]: parses both of Slovo's manifest dialects (YAML or JSON) into one
//!   [`Manifest`], strictly: unknown fields, bad names and out-of-range limits are errors that
//!   name the file, the field and, where the parser knows it, the line.
//! - [`permissions`]: what a manifest *requests* ([`Permissions`]) and what a person *grants*
//!   ([`Grant`]), and the rules that compare them.
//! - [`lifecycle`]: the tool states and the transitions between them.
//! - [`execution`]: the sandbox spec a backend receives and the outcome it returns.
//! - [`install`]: what installing a version found, one shape per backend.
//! - [`audit`]: the hash chain of the audit trail.
//! - [`upgrade`]: what a new version changes in the program that runs, and when that needs
//!   approval again.
//! - [`access`]: the roles of API tokens.
//!
//! This crate does no I/O: it never touches the filesystem, the network or a database, so
//! every rule in it is a pure function that tests can call directly.
#![deny(missing_docs)]

pub mod access;
pub mod audit;
pub mod execution;
pub mod install;
pub mod lifecycle;
pub mod manifest;
pub mod net;
pub mod permissions;
pub mod secrets;
pub mod time;
pub mod upgrade;

pub use execution::{ExecutionStatus, Outcome, SandboxSpec};
pub use lifecycle::ToolStatus;
pub use manifest::{Capability, Execution, Manifest, ManifestError, parse_manifest};
pub use permissions::{Grant, HostPattern, Narrowing, Permissions};
