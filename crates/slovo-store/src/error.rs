//! What a store operation can fail with, and how sqlx's errors map onto it.

use crate::SQLITE_BUSY_TIMEOUT_MS;

/// Result of a store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or could not be reached.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// SQLite: another process held the database's write lock for longer than Slovo waits
    /// for it (`busy_timeout`).
    #[error(
        "the database is busy: another process has held its write lock for more than {} s; nothing was written, try again",
        SQLITE_BUSY_TIMEOUT_MS / 1000
    )]
    Busy,
    /// The disk that holds the database is full.
    #[error("the database's disk is full; nothing was written ({0})")]
    DiskFull(sqlx::Error),
    /// The database server cannot be reached or is restarting; the operation may be retried
    /// once it is back (the pool reconnects by itself).
    #[error("the database is unreachable or restarting; try again ({0})")]
    Unreachable(sqlx::Error),
    /// Migrations failed.
    #[error("failed to migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A concurrent change won; the operation may be retried.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A stored value cannot be read back (edited by hand, or a newer schema).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// A version's install record is not one that an install writes.
    #[error("the install record of {tool} {version} (tool_versions.install_info) cannot be read: {source}")]
    InstallRecord {
        /// The tool.
        tool: String,
        /// The version.
        version: String,
        /// What is wrong with it.
        source: slovo_core::install::InstallFactsError,
    },
    /// The URL names no supported database.
    #[error("unsupported database URL {0:?} (use sqlite:PATH or postgres://…)")]
    UnsupportedUrl(String),
    /// The database file could not be created.
    #[error("failed to create {}: {source}", path.display())]
    CreateFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl From<sqlx::Error> for StoreError {
    /// Names the failures that pass by themselves, so that front ends can say "try again": a
    /// lock held elsewhere, a full disk (SQLite's primary result codes `SQLITE_BUSY` 5 and
    /// `SQLITE_FULL` 13, whose extended codes keep the primary one in their low byte;
    /// PostgreSQL's SQLSTATE `53100`), a server that cannot be reached or is shutting down
    /// (connection errors, a pool that timed out; SQLSTATE classes `08` and `57P`).
    fn from(e: sqlx::Error) -> StoreError {
        if matches!(
            e,
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_)
        ) {
            return StoreError::Unreachable(e);
        }
        let code = e
            .as_database_error()
            .and_then(|d| d.code().map(|c| c.into_owned()));
        let sqlite_primary = code
            .as_deref()
            .and_then(|c| c.parse::<i64>().ok())
            .map(|c| c & 0xff);
        match (sqlite_primary, code.as_deref()) {
            (Some(5), _) => StoreError::Busy,
            (Some(13), _) | (_, Some("53100")) => StoreError::DiskFull(e),
            (_, Some(c)) if c.starts_with("08") || c.starts_with("57P") => StoreError::Unreachable(e),
            _ => StoreError::Database(e),
        }
    }
}
