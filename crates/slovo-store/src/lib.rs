//! Persistence of Slovo Tools: SQLite by default, PostgreSQL for shared deployments.
//!
//! # Brief overview
//! - [`Store`] opens a database by URL, runs its migrations and answers reads.
//! - [`Tx`] is one write transaction. Its first statement locks an audit chain's head row (chain
//!   1 for every audited change; on PostgreSQL calls' results go to their instance's chain, see
//!   `audit_chain`), so the appends to a chain are serialised, one link at a time; commit makes
//!   the change and its audit events durable together, or neither.
//! - The row types ([`ToolRow`], [`VersionRow`], [`GrantRow`], [`ExecutionRow`], …) are plain
//!   data; the rules that decide what to write live in `slovo-runtime` and `slovo-core`.
//!
//! Architecture invariant: this is the only crate that knows SQL. Queries are written once,
//! with `$1`-style placeholders that both SQLite and PostgreSQL accept, and run through sqlx's
//! `Any` driver; the two schemas live side by side in `migrations/sqlite` and
//! `migrations/postgres`.
#![deny(missing_docs)]

mod access;
mod audit;
mod audit_chain;
mod audit_read;
mod bundles;
mod call_writer;
mod chains;
mod changes;
mod discovery;
mod embeddings;
mod error;
mod executions;
mod finish_batch;
mod instances;
mod rows;
mod secrets;
mod sessions;
mod store;
mod testing;
mod tools;
mod tx;

pub use audit_chain::{AuditChainHead, MAIN_AUDIT_CHAIN};
pub use audit_read::{AuditCursor, AuditQuery, BadAuditCursor};
pub use call_writer::FinishAudit;
pub use changes::{LISTENER_APPLICATION_NAME, TOOL_CHANGES_CHANNEL, ToolChangeEvent, ToolChangeListener};
pub use discovery::{DiscoveryRow, DiscoveryStatus};
pub use error::{Result, StoreError};
pub use instances::{InstanceRow, LeaseConnection};
pub use rows::*;
pub use sessions::SessionRow;
pub use store::{DbKind, SQLITE_BUSY_TIMEOUT_MS, Store, redact_url};
pub use tx::Tx;

pub(crate) use executions::{denials_text, insert_running_query, warm_text};
pub(crate) use store::SQLITE_PRAGMAS;
