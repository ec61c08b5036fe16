//! Persistence of Slovo Tools: SQLite by default, PostgreSQL for shared deployments.
//!
//! # Brief overview
//! - [`Store`] opens a database by URL, runs its migrations and answers reads.
//! - [`Tx`] is one write transaction. Its first statement locks the audit chain's head row, so
//!   every audited change is serialised and appends exactly one link at a time; commit makes
//!   the change and its audit events durable together, or neither.
//! - The row types ([`ToolRow`], [`VersionRow`], [`GrantRow`], [`ExecutionRow`], …) are plain
//!   data; the rules that decide what to write live in `slovo-runtime` and `slovo-core`.
//!
//! Architecture invariant: this is the only crate that knows SQL. Queries are written once,
//! with `$1`-style placeholders that both SQLite and PostgreSQL accept, and run through sqlx's
//! `Any` driver; the two schemas live side by side in `migrations/sqlite` and
//! `migrations/postgres`.
#![deny(missing_docs)]

mod bundles;
mod call_writer;
mod chains;
mod changes;
mod embeddings;
mod finish_batch;
mod instances;
mod rows;
mod sessions;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use slovo_core::audit::{AuditEvent, event_hash};
use slovo_core::execution::ExecutionStatus;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, AssertSqlSafe, Executor, Row};

pub use call_writer::FinishAudit;
pub use changes::{LISTENER_APPLICATION_NAME, TOOL_CHANGES_CHANNEL, ToolChangeEvent, ToolChangeListener};
pub use instances::InstanceRow;
pub use rows::*;
pub use sessions::SessionRow;

use call_writer::CallWriter;
use finish_batch::FinishBatcher;

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

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    /// Embedded SQLite (the default).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a SQLite connection waits for another process's write lock, in ms: one literal
/// for both the pragma and the error message that names the wait.
macro_rules! sqlite_busy_timeout_ms {
    () => {
        10000
    };
}

/// Set on every SQLite connection: WAL lets readers proceed while one writer commits; the busy
/// timeout makes writers queue instead of failing.
pub(crate) const SQLITE_PRAGMAS: &str = concat!(
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = ",
    sqlite_busy_timeout_ms!(),
    "; PRAGMA foreign_keys = ON;"
);

/// How long a SQLite connection waits for another process's write lock (in [`SQLITE_PRAGMAS`]).
pub const SQLITE_BUSY_TIMEOUT_MS: u64 = sqlite_busy_timeout_ms!();

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

/// A connection pool to the Slovo database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    kind: DbKind,
    /// SQLite only: the call path's own connection (see `call_writer`).
    writer: Option<Arc<CallWriter>>,
    /// PostgreSQL only, unless turned off: calls' results written in batches (see
    /// `finish_batch`).
    batcher: Option<Arc<FinishBatcher>>,
    /// Where instance heartbeats go: on PostgreSQL a connection of their own, so that calls
    /// holding every pooled connection cannot delay a heartbeat past its lease and get their
    /// own instance declared dead; on SQLite the pool (one process per database, no leases).
    lease_pool: AnyPool,
    /// PostgreSQL only: the pool of one connection that listens for tool changes (see
    /// `changes`).
    listen_pool: Option<sqlx::PgPool>,
    /// The newest audit event this store (and its clones) committed: what tells the runtime's
    /// checkpointer that there is something new to sign, without asking the database.
    appended: Arc<AtomicI64>,
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path`.
    pub async fn open_sqlite(path: &Path) -> Result<Store> {
        // The database holds every call's input and output: readable by its owner only. An
        // empty file is an empty database, and SQLite gives its `-wal` and `-shm` files the
        // database file's mode.
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|source| StoreError::CreateFile {
                    path: path.to_path_buf(),
                    source,
                })?;
        }
        Store::connect(&format!("sqlite://{}?mode=rwc", path.display())).await
    }

    /// Connects to `url` (`sqlite:…` or `postgres://…`) and brings its schema up to date.
    pub async fn connect(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let kind = if url.starts_with("sqlite:") {
            DbKind::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            DbKind::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        let options = AnyConnectOptions::from_str(url)?;
        let pool = match kind {
            DbKind::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(8)
                    // A SQLite connection is a file handle in this process: it cannot go stale
                    // the way a network connection can, so the ping before every acquire would
                    // only add a round trip to each query.
                    .test_before_acquire(false)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute(SQLITE_PRAGMAS).await?;
                            Ok(())
                        })
                    })
                    .connect_with(options.clone())
                    .await?
            }
            DbKind::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options.clone())
                    .await?
            }
        };
        let lease_pool = match kind {
            DbKind::Sqlite => pool.clone(),
            DbKind::Postgres => AnyPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(10))
                .connect_lazy_with(options.clone()),
        };
        let listen_pool = match kind {
            DbKind::Sqlite => None,
            DbKind::Postgres => Some(changes::listener_pool(url)?),
        };
        let writer = (kind == DbKind::Sqlite).then(|| Arc::new(CallWriter::new(options)));
        let store = Store {
            pool,
            lease_pool,
            listen_pool,
            kind,
            writer,
            batcher: (kind == DbKind::Postgres).then(Arc::default),
            appended: Arc::default(),
        };
        match kind {
            DbKind::Sqlite => SQLITE_MIGRATIONS.run(&store.pool).await?,
            DbKind::Postgres => POSTGRES_MIGRATIONS.run(&store.pool).await?,
        }
        Ok(store)
    }

    /// PostgreSQL: whether calls' results are written in batches, each batch one transaction
    /// with one lock of the audit chain's head (the default), or each call in a transaction of
    /// its own (what the benchmarks compare against). No effect on SQLite, whose call path has
    /// a writer of its own.
    pub fn batch_call_results(mut self, batched: bool) -> Store {
        self.batcher = (batched && self.kind == DbKind::Postgres).then(Arc::default);
        self
    }

    /// Which database this is.
    pub fn kind(&self) -> DbKind {
        self.kind
    }

    /// The sequence number of the newest audit event this store (or a clone of it) committed;
    /// 0 before the first. Other processes' events are not counted.
    pub fn appended_seq(&self) -> i64 {
        self.appended.load(Ordering::Acquire)
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        if let Some(w) = &self.writer {
            w.close().await;
        }
        if let Some(p) = &self.listen_pool {
            // First: closing it ends a listener's wait, which returns its connection.
            p.close().await;
        }
        self.pool.close().await;
        self.lease_pool.close().await;
    }

    /// Starts a write transaction and locks the audit chain's head.
    pub async fn begin(&self) -> Result<Tx> {
        // `BEGIN` on a task of its own: sqlx's PostgreSQL `begin` is not cancellation-safe (a
        // future dropped while `BEGIN` is in flight returns the connection to the pool inside
        // a transaction nothing ends; sqlx issue 4393). Here a caller that goes away leaves a
        // finished `begin` behind, whose transaction is rolled back when it is dropped.
        let pool = self.pool.clone();
        let mut tx = tokio::spawn(async move { pool.begin().await })
            .await
            .map_err(|e| StoreError::Corrupt(format!("the task beginning a transaction failed: {e}")))??;
        let row = sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash")
            .fetch_one(&mut *tx)
            .await?;
        let head_seq: i64 = row.try_get("seq")?;
        let head_hash: String = row.try_get("hash")?;
        Ok(Tx {
            tx,
            head_seq,
            head_hash,
            appended: Vec::new(),
            writer: self.writer.clone(),
            appended_seq: self.appended.clone(),
        })
    }

    /// The tool called `name`.
    pub async fn tool(&self, name: &str) -> Result<Option<ToolRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TOOL_COLUMNS} FROM tools WHERE name = $1"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(ToolRow::from_row).transpose()
    }

    /// Every tool, by name.
    pub async fn tools(&self) -> Result<Vec<ToolRow>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TOOL_COLUMNS} FROM tools ORDER BY name"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ToolRow::from_row).collect()
    }

    /// One imported version of a tool.
    pub async fn version(&self, tool: &str, version: &str) -> Result<Option<VersionRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM tool_versions WHERE tool = $1 AND version = $2"
        )))
        .bind(tool)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(VersionRow::from_row).transpose()
    }

    /// Every imported version of a tool, oldest import first.
    pub async fn versions(&self, tool: &str) -> Result<Vec<VersionRow>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM tool_versions WHERE tool = $1 ORDER BY imported_at, version"
        )))
        .bind(tool)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(VersionRow::from_row).collect()
    }

    /// A grant by id.
    pub async fn grant(&self, id: i64) -> Result<Option<GrantRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(GrantRow::from_row).transpose()
    }

    /// A tool's state volume.
    pub async fn volume(&self, tool: &str) -> Result<Option<VolumeRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {VOLUME_COLUMNS} FROM volumes WHERE tool = $1"
        )))
        .bind(tool)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(VolumeRow::from_row).transpose()
    }

    /// Records a call as `running` before its sandbox starts (its own statement, committed at
    /// once, so a crash mid-call leaves a visible trace), but only while the tool is still
    /// `active` at `revision`: the check and the insert are one statement, so no call starts on
    /// a grant, version or secret that a concurrent change has just replaced. False (nothing
    /// written) when the tool has changed.
    pub async fn insert_running_execution_at(&self, e: &NewExecution, revision: i64) -> Result<bool> {
        if let Some(w) = &self.writer {
            return w.insert_running(e, revision).await;
        }
        let n = insert_running_query(e, revision)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Records the result of a call recorded as `running` and its audit event, in one
    /// transaction. A `Conflict` when the execution is no longer running (nothing written).
    pub async fn finish_call(
        &self,
        id: &str,
        result: &ExecutionResult,
        audit: &FinishAudit<'_>,
    ) -> Result<AuditEvent> {
        if let Some(w) = &self.writer {
            let event = w.finish(id, result, audit).await?;
            self.appended.fetch_max(event.seq, Ordering::AcqRel);
            return Ok(event);
        }
        if let Some(b) = &self.batcher {
            return b.finish(self, id, result, audit).await;
        }
        self.finish_call_alone(id, result, audit).await
    }

    /// [`Store::finish_call`] in a transaction of its own.
    async fn finish_call_alone(
        &self,
        id: &str,
        result: &ExecutionResult,
        audit: &FinishAudit<'_>,
    ) -> Result<AuditEvent> {
        let mut tx = self.begin().await?;
        tx.finish_execution(id, result).await?;
        let event = tx
            .append_audit(audit.kind, audit.tool, audit.actor, audit.payload)
            .await?;
        tx.commit().await?;
        Ok(event)
    }

    /// One execution.
    pub async fn execution(&self, id: &str) -> Result<Option<ExecutionRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(ExecutionRow::from_row).transpose()
    }

    /// Executions, newest first, filtered and paged.
    pub async fn executions(&self, filter: &ExecutionFilter) -> Result<Vec<ExecutionRow>> {
        // Optional filters are written as `($n IS NULL OR col = $n)` so that one statement
        // serves every combination and the placeholders stay in order for SQLite.
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions \
             WHERE ($1 IS NULL OR tool = $1) AND ($2 IS NULL OR status = $2) \
               AND ($3 IS NULL OR started_at < $3 OR (started_at = $3 AND id < $4)) \
             ORDER BY started_at DESC, id DESC LIMIT $5"
        )))
        .bind(filter.tool.as_deref())
        .bind(filter.status.map(|s| s.as_str()))
        .bind(filter.before.as_ref().map(|c| c.started_at))
        .bind(filter.before.as_ref().map(|c| c.id.clone()))
        .bind(filter.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ExecutionRow::from_row).collect()
    }

    /// Number of executions with each status, for metrics.
    pub async fn count_executions(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM executions")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Audit events with `seq > after`, in chain order, at most `limit`.
    pub async fn audit_page(&self, after: i64, limit: i64) -> Result<Vec<AuditEvent>> {
        let rows = sqlx::query(
            "SELECT seq, at_ms, kind, tool, actor, payload, prev_hash, hash FROM audit_events \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_from_row).collect()
    }

    /// The chain head: the last sequence number and its hash.
    pub async fn audit_head(&self) -> Result<(i64, String)> {
        let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok((row.try_get("seq")?, row.try_get("hash")?))
    }

    /// Records that the installation whose checkpoint key is `c.key` wrote checkpoint `c.n` to
    /// its log. Only ever moves forward: an older record never replaces a newer one.
    pub async fn record_checkpoint(&self, c: &CheckpointRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_checkpoints (key, n, seq, line_hash, at_ms) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (key) DO UPDATE SET n = excluded.n, seq = excluded.seq, \
             line_hash = excluded.line_hash, at_ms = excluded.at_ms WHERE audit_checkpoints.n < excluded.n",
        )
        .bind(&c.key)
        .bind(c.n)
        .bind(c.seq)
        .bind(&c.line_hash)
        .bind(c.at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every installation's newest recorded checkpoint, by key.
    pub async fn checkpoint_records(&self) -> Result<Vec<CheckpointRecord>> {
        let rows = sqlx::query("SELECT key, n, seq, line_hash, at_ms FROM audit_checkpoints ORDER BY key")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(CheckpointRecord {
                    key: r.try_get("key")?,
                    n: r.try_get("n")?,
                    seq: r.try_get("seq")?,
                    line_hash: r.try_get("line_hash")?,
                    at_ms: r.try_get("at_ms")?,
                })
            })
            .collect()
    }

    /// The status and the stored text of the arguments and output of each execution in
    /// `ids` that exists (in no particular order): what the digests on execution events are
    /// compared with. The text is returned as stored, not re-serialized, so the digests
    /// reproduce exactly.
    pub async fn execution_texts(&self, ids: &[String]) -> Result<Vec<ExecutionText>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders = (1..=ids.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql =
            format!("SELECT id, status, arguments, output FROM executions WHERE id IN ({placeholders})");
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for id in ids {
            q = q.bind(id);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(ExecutionText {
                    id: r.try_get("id")?,
                    status: r.try_get("status")?,
                    arguments: r.try_get("arguments")?,
                    output: r.try_get("output")?,
                })
            })
            .collect()
    }

    /// The ids of executions recorded as `running` by `instance_id`, or by any instance
    /// before `started_before`, oldest first.
    pub async fn stale_running_execution_ids(
        &self,
        instance_id: &str,
        started_before: i64,
    ) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT id FROM executions WHERE status = 'running' AND (instance_id = $1 OR started_at < $2) \
             ORDER BY started_at",
        )
        .bind(instance_id)
        .bind(started_before)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get::<String, _>("id")?)).collect()
    }

    /// An API token by id.
    pub async fn token(&self, id: &str) -> Result<Option<TokenRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(TokenRow::from_row).transpose()
    }

    /// Every API token, oldest first.
    pub async fn tokens(&self) -> Result<Vec<TokenRow>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at, id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(TokenRow::from_row).collect()
    }

    /// Records that a token was used (not audited: it is bookkeeping, not a decision).
    pub async fn touch_token(&self, id: &str, at: i64) -> Result<()> {
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The encrypted secrets of a tool: (name, nonce, ciphertext), by name.
    pub async fn secrets(&self, tool: &str) -> Result<Vec<SecretRow>> {
        let rows = sqlx::query(
            "SELECT tool, name, nonce, ciphertext, created_at, updated_at FROM secrets WHERE tool = $1 ORDER BY name",
        )
        .bind(tool)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SecretRow {
                    tool: r.try_get("tool")?,
                    name: r.try_get("name")?,
                    nonce: r.try_get("nonce")?,
                    ciphertext: r.try_get("ciphertext")?,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// Discovery requests, oldest first; only those in `status` when given.
    pub async fn discovery_requests(&self, status: Option<DiscoveryStatus>) -> Result<Vec<DiscoveryRow>> {
        let rows = match status {
            Some(st) => sqlx::query(AssertSqlSafe(format!(
                "SELECT {DISCOVERY_COLUMNS} FROM discovery_requests WHERE status = $1 ORDER BY created_at, id"
            )))
            .bind(st.as_str())
            .fetch_all(&self.pool)
            .await?,
            None => {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT {DISCOVERY_COLUMNS} FROM discovery_requests ORDER BY created_at, id"
                )))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(DiscoveryRow::from_row).collect()
    }

    /// One discovery request.
    pub async fn discovery_request(&self, id: &str) -> Result<Option<DiscoveryRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {DISCOVERY_COLUMNS} FROM discovery_requests WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(DiscoveryRow::from_row).transpose()
    }

    /// Runs a raw statement. For tests that tamper with the database on purpose.
    #[doc(hidden)]
    pub async fn execute_raw(&self, sql: &str) -> Result<u64> {
        Ok(sqlx::query(AssertSqlSafe(sql.to_string()))
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// A snapshot of every table's rows as text, for tests that check a failed operation left
    /// the database exactly as it was. `audit_checkpoints` is left out: a checkpoint may be
    /// written in the background at any time, and it records the log, not an operation.
    #[doc(hidden)]
    pub async fn dump(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for (table, order) in [
            ("tools", "name"),
            ("tool_versions", "tool, version"),
            ("grants", "id"),
            ("volumes", "tool"),
            ("executions", "id"),
            ("discovery_requests", "id"),
            ("secrets", "tool, name"),
            ("audit_events", "seq"),
            ("audit_head", "id"),
            ("api_tokens", "id"),
            ("chain_pins", "chain_grant_id, step_tool"),
        ] {
            let rows = sqlx::query(AssertSqlSafe(format!("SELECT * FROM {table} ORDER BY {order}")))
                .fetch_all(&self.pool)
                .await?;
            for row in rows {
                out.push(format!("{table}: {}", describe_row(&row)));
            }
        }
        Ok(out)
    }
}

fn describe_row(row: &AnyRow) -> String {
    use sqlx::Column;
    (0..row.columns().len())
        .map(|i| {
            let name = row.columns()[i].name().to_string();
            let value = row
                .try_get::<Option<String>, _>(i)
                .map(|v| format!("{v:?}"))
                .or_else(|_| row.try_get::<Option<i64>, _>(i).map(|v| format!("{v:?}")))
                .or_else(|_| row.try_get::<Option<Vec<u8>>, _>(i).map(|v| format!("{v:?}")))
                .unwrap_or_else(|_| "?".to_string());
            format!("{name}={value}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn audit_from_row(row: &AnyRow) -> Result<AuditEvent> {
    Ok(AuditEvent {
        seq: row.try_get("seq")?,
        at_ms: row.try_get("at_ms")?,
        kind: row.try_get("kind")?,
        tool: row.try_get("tool")?,
        actor: row.try_get("actor")?,
        payload: row.try_get("payload")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// Inserts a call as `running` only while its tool is `active` at `revision` (see
/// [`Store::insert_running_execution_at`]).
fn insert_running_query(
    e: &NewExecution,
    revision: i64,
) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments> {
    sqlx::query(
        "INSERT INTO executions (id, tool, version, capability, arguments, status, conversation_id, \
         turn_id, actor, started_at, instance_id, parent_execution_id) \
         SELECT $1, $2, $3, $4, $5, 'running', $6, $7, $8, $9, $10, $12 \
         WHERE EXISTS (SELECT 1 FROM tools WHERE name = $2 AND revision = $11 AND status = 'active')",
    )
    .bind(&e.id)
    .bind(&e.tool)
    .bind(&e.version)
    .bind(&e.capability)
    .bind(e.arguments.to_string())
    .bind(&e.conversation_id)
    .bind(&e.turn_id)
    .bind(&e.actor)
    .bind(e.started_at)
    .bind(&e.instance_id)
    .bind(revision)
    .bind(&e.parent_execution_id)
}

/// A call's network denials as stored: `None` when there were none (most calls).
fn denials_text(r: &ExecutionResult) -> Result<Option<String>> {
    if r.network_denials.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(&r.network_denials)
        .map(Some)
        .map_err(|e| StoreError::Corrupt(format!("executions.network_denials: {e}")))
}

/// Hides the password of a database URL for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// One write transaction, holding the audit chain's head.
pub struct Tx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    head_seq: i64,
    head_hash: String,
    appended: Vec<AuditEvent>,
    writer: Option<Arc<CallWriter>>,
    appended_seq: Arc<AtomicI64>,
}

impl Tx {
    /// The tool called `name`, read inside this transaction.
    pub async fn tool(&mut self, name: &str) -> Result<Option<ToolRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TOOL_COLUMNS} FROM tools WHERE name = $1"
        )))
        .bind(name)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.as_ref().map(ToolRow::from_row).transpose()
    }

    /// A version, read inside this transaction.
    pub async fn version(&mut self, tool: &str, version: &str) -> Result<Option<VersionRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM tool_versions WHERE tool = $1 AND version = $2"
        )))
        .bind(tool)
        .bind(version)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.as_ref().map(VersionRow::from_row).transpose()
    }

    /// Writes a tool's lifecycle row: inserted when `expected_revision` is `None`, otherwise
    /// updated only if nobody changed it since it was read (else [`StoreError::Conflict`]).
    pub async fn save_tool(&mut self, tool: &ToolRow, expected_revision: Option<i64>) -> Result<()> {
        let affected = match expected_revision {
            None => sqlx::query(
                "INSERT INTO tools (name, status, active_version, pending_version, grant_id, revision, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&tool.name)
            .bind(tool.status.as_str())
            .bind(&tool.active_version)
            .bind(&tool.pending_version)
            .bind(tool.grant_id)
            .bind(tool.revision)
            .bind(tool.created_at)
            .bind(tool.updated_at)
            .execute(&mut *self.tx)
            .await?
            .rows_affected(),
            Some(rev) => sqlx::query(
                "UPDATE tools SET status = $1, active_version = $2, pending_version = $3, grant_id = $4, \
                 revision = $5, updated_at = $6 WHERE name = $7 AND revision = $8",
            )
            .bind(tool.status.as_str())
            .bind(&tool.active_version)
            .bind(&tool.pending_version)
            .bind(tool.grant_id)
            .bind(tool.revision)
            .bind(tool.updated_at)
            .bind(&tool.name)
            .bind(rev)
            .execute(&mut *self.tx)
            .await?
            .rows_affected(),
        };
        if affected != 1 {
            return Err(StoreError::Conflict(format!(
                "tool {} changed concurrently; try again",
                tool.name
            )));
        }
        Ok(())
    }

    /// Stores an imported version.
    pub async fn insert_version(&mut self, v: &VersionRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO tool_versions (tool, version, manifest, digest, source_name, source_text, \
             bundle_digest, install_info, imported_at, analysis) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&v.tool)
        .bind(&v.version)
        .bind(v.manifest.to_string())
        .bind(&v.digest)
        .bind(&v.source_name)
        .bind(&v.source_text)
        .bind(&v.bundle_digest)
        .bind(v.install_info.as_ref().map(|i| i.to_string()))
        .bind(v.imported_at)
        .bind(v.analysis.as_ref().map(|a| a.to_string()))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Records what a backend's install step reported for a version.
    pub async fn set_install_info(
        &mut self,
        tool: &str,
        version: &str,
        info: &serde_json::Value,
    ) -> Result<()> {
        sqlx::query("UPDATE tool_versions SET install_info = $1 WHERE tool = $2 AND version = $3")
            .bind(info.to_string())
            .bind(tool)
            .bind(version)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Stores a grant and returns its id.
    pub async fn insert_grant(&mut self, g: &NewGrant) -> Result<i64> {
        let grant_json =
            serde_json::to_string(&g.grant).map_err(|e| StoreError::Corrupt(format!("grant: {e}")))?;
        let row = sqlx::query(
            "INSERT INTO grants (tool, version, grant_json, expires_at, granted_by, granted_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(&g.tool)
        .bind(&g.version)
        .bind(grant_json)
        .bind(g.grant.expires_at.map(|e| e.timestamp_millis()))
        .bind(&g.granted_by)
        .bind(g.granted_at)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(row.try_get("id")?)
    }

    /// Creates or updates a tool's volume row.
    pub async fn save_volume(&mut self, v: &VolumeRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO volumes (tool, path, quota_mb, created_at, purged_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tool) DO UPDATE SET path = excluded.path, quota_mb = excluded.quota_mb, \
             purged_at = excluded.purged_at",
        )
        .bind(&v.tool)
        .bind(&v.path)
        .bind(v.quota_mb)
        .bind(v.created_at)
        .bind(v.purged_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Stores the result of a call that was recorded as `running`.
    pub async fn finish_execution(&mut self, id: &str, r: &ExecutionResult) -> Result<()> {
        let affected = sqlx::query(
            "UPDATE executions SET status = $1, output = $2, stderr = $3, error = $4, exit_code = $5, \
             duration_ms = $6, cpu_ms = $7, peak_memory_bytes = $8, sandbox_id = $9, finished_at = $10 \
             WHERE id = $11 AND status = 'running'",
        )
        .bind(r.status.as_str())
        .bind(r.output.as_ref().map(|o| o.to_string()))
        .bind(&r.stderr)
        .bind(&r.error)
        .bind(r.exit_code.map(i64::from))
        .bind(r.duration_ms)
        .bind(r.cpu_ms)
        .bind(r.peak_memory_bytes)
        .bind(&r.sandbox_id)
        .bind(r.finished_at)
        .bind(id)
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        if affected != 1 {
            return Err(StoreError::Conflict(format!("execution {id} is not running")));
        }
        // Separate and only when there is something to keep: most calls have no denials.
        if let Some(denials) = denials_text(r)? {
            sqlx::query("UPDATE executions SET network_denials = $1 WHERE id = $2")
                .bind(denials)
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    /// Appends one event to the audit chain.
    pub async fn append_audit(
        &mut self,
        kind: &str,
        tool: Option<&str>,
        actor: &str,
        payload: &serde_json::Value,
    ) -> Result<AuditEvent> {
        let seq = self.head_seq + 1;
        let at_ms = slovo_core::time::now_ms();
        let payload = payload.to_string();
        let hash = event_hash(seq, at_ms, kind, tool, actor, &payload, &self.head_hash);
        sqlx::query(
            "INSERT INTO audit_events (seq, at_ms, kind, tool, actor, payload, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(seq)
        .bind(at_ms)
        .bind(kind)
        .bind(tool)
        .bind(actor)
        .bind(&payload)
        .bind(&self.head_hash)
        .bind(&hash)
        .execute(&mut *self.tx)
        .await?;
        // The trigger `audit_head_follows` moves the head to this event in the same statement.
        let event = AuditEvent {
            seq,
            at_ms,
            kind: kind.to_string(),
            tool: tool.map(str::to_string),
            actor: actor.to_string(),
            payload,
            prev_hash: std::mem::replace(&mut self.head_hash, hash.clone()),
            hash,
        };
        self.head_seq = seq;
        self.appended.push(event.clone());
        Ok(event)
    }

    /// Creates or replaces a tool's encrypted secret.
    pub async fn save_secret(&mut self, s: &SecretRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO secrets (tool, name, nonce, ciphertext, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (tool, name) DO UPDATE SET nonce = excluded.nonce, ciphertext = excluded.ciphertext, \
             updated_at = excluded.updated_at",
        )
        .bind(&s.tool)
        .bind(&s.name)
        .bind(&s.nonce)
        .bind(&s.ciphertext)
        .bind(s.created_at)
        .bind(s.updated_at)
        .execute(&mut *self.tx)
        .await?;
        self.bump_tool_revision(&s.tool).await
    }

    /// A secret is part of how a tool is called: changing one bumps the tool's revision, so
    /// that a runtime's cached view of the tool (see `insert_running_execution_at`) is
    /// refreshed before the next call. A secret set before its tool exists bumps nothing.
    async fn bump_tool_revision(&mut self, tool: &str) -> Result<()> {
        sqlx::query("UPDATE tools SET revision = revision + 1 WHERE name = $1")
            .bind(tool)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Deletes a tool's secret; false when there was none.
    pub async fn delete_secret(&mut self, tool: &str, name: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM secrets WHERE tool = $1 AND name = $2")
            .bind(tool)
            .bind(name)
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
        if n == 1 {
            self.bump_tool_revision(tool).await?;
        }
        Ok(n == 1)
    }

    /// Stores a new API token.
    pub async fn insert_token(&mut self, t: &TokenRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_tokens (id, role, token_hash, label, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&t.id)
        .bind(t.role.as_str())
        .bind(&t.token_hash)
        .bind(&t.label)
        .bind(t.created_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Stores a one-time dashboard sign-in link (its secret only as a hash).
    pub async fn insert_signin_link(
        &mut self,
        id: &str,
        secret_hash: &str,
        created_at: i64,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO dashboard_signin_links (id, secret_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(secret_hash)
        .bind(created_at)
        .bind(expires_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Marks a sign-in link used at `at`; false when there is no such link with that secret,
    /// or it was used already, or it expired. One statement, so two concurrent uses cannot both
    /// succeed.
    pub async fn use_signin_link(&mut self, id: &str, secret_hash: &str, at: i64) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE dashboard_signin_links SET used_at = $1 \
             WHERE id = $2 AND secret_hash = $3 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(at)
        .bind(id)
        .bind(secret_hash)
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Revokes an API token; false when there is no such (unrevoked) token.
    pub async fn revoke_token(&mut self, id: &str, at: i64) -> Result<bool> {
        let n = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(at)
            .bind(id)
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Ends an execution that is still `running` without a result (`interrupted` after a
    /// crash, `cancelled` at shutdown); false when it is no longer running.
    pub async fn abandon_execution(
        &mut self,
        id: &str,
        status: ExecutionStatus,
        at: i64,
        reason: &str,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE executions SET status = $1, error = $2, finished_at = $3 \
             WHERE id = $4 AND status = 'running'",
        )
        .bind(status.as_str())
        .bind(reason)
        .bind(at)
        .bind(id)
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Discovery requests still open (`pending`, `searching` or `found`), oldest first, read
    /// inside this transaction (which holds the audit head, so a check-then-insert is atomic).
    pub async fn open_discovery_requests(&mut self) -> Result<Vec<DiscoveryRow>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {DISCOVERY_COLUMNS} FROM discovery_requests \
             WHERE status IN ('pending', 'searching', 'found') ORDER BY created_at, id"
        )))
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(DiscoveryRow::from_row).collect()
    }

    /// One discovery request, read inside this transaction.
    pub async fn discovery_request(&mut self, id: &str) -> Result<Option<DiscoveryRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {DISCOVERY_COLUMNS} FROM discovery_requests WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.as_ref().map(DiscoveryRow::from_row).transpose()
    }

    /// Stores a new discovery request.
    pub async fn insert_discovery_request(&mut self, r: &DiscoveryRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO discovery_requests (id, description, status, result, error, proposal_tool, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&r.id)
        .bind(&r.description)
        .bind(r.status.as_str())
        .bind(r.result.as_ref().map(|v| v.to_string()))
        .bind(&r.error)
        .bind(&r.proposal_tool)
        .bind(r.created_at)
        .bind(r.updated_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Writes a request's new status, result, error and proposal, if it is still in
    /// `expected`; false when it is not (another worker or person got there first).
    pub async fn update_discovery_request(
        &mut self,
        r: &DiscoveryRow,
        expected: DiscoveryStatus,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE discovery_requests SET status = $1, result = $2, error = $3, proposal_tool = $4, updated_at = $5 \
             WHERE id = $6 AND status = $7",
        )
        .bind(r.status.as_str())
        .bind(r.result.as_ref().map(|v| v.to_string()))
        .bind(&r.error)
        .bind(&r.proposal_tool)
        .bind(r.updated_at)
        .bind(&r.id)
        .bind(expected.as_str())
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Makes every write of this transaction durable, with its audit events.
    pub async fn commit(self) -> Result<Vec<AuditEvent>> {
        self.tx.commit().await?;
        if let Some(last) = self.appended.last() {
            self.appended_seq.fetch_max(last.seq, Ordering::AcqRel);
            if let Some(w) = &self.writer {
                w.saw_head(last.seq, &last.hash);
            }
        }
        Ok(self.appended)
    }

    /// Abandons every write of this transaction.
    pub async fn rollback(self) -> Result<()> {
        self.tx.rollback().await?;
        Ok(())
    }
}

const DISCOVERY_COLUMNS: &str =
    "id, description, status, result, error, proposal_tool, created_at, updated_at";

/// Where a discovery request stands: `pending → searching → found | failed`, and `rejected`
/// by the person from any state but `rejected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscoveryStatus {
    /// Waiting for the worker.
    Pending,
    /// The worker is searching the sources.
    Searching,
    /// A proposal was imported and waits for the person's approval.
    Found,
    /// Nothing good enough was found; `error` says why.
    Failed,
    /// The person does not want it.
    Rejected,
}

impl DiscoveryStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DiscoveryStatus::Pending => "pending",
            DiscoveryStatus::Searching => "searching",
            DiscoveryStatus::Found => "found",
            DiscoveryStatus::Failed => "failed",
            DiscoveryStatus::Rejected => "rejected",
        }
    }
}

impl std::fmt::Display for DiscoveryStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DiscoveryStatus {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(match s {
            "pending" => DiscoveryStatus::Pending,
            "searching" => DiscoveryStatus::Searching,
            "found" => DiscoveryStatus::Found,
            "failed" => DiscoveryStatus::Failed,
            "rejected" => DiscoveryStatus::Rejected,
            other => return Err(format!("unknown discovery status {other:?}")),
        })
    }
}

/// A request to find a tool for a need no installed tool serves.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DiscoveryRow {
    /// Id (UUID v7).
    pub id: String,
    /// The need, in the person's or planner's words.
    pub description: String,
    /// Where it stands.
    pub status: DiscoveryStatus,
    /// What the worker found (JSON): the chosen candidate, the runners-up, the sources.
    pub result: Option<serde_json::Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// The tool proposed for it (`pending_approval` until the person decides).
    pub proposal_tool: Option<String>,
    /// Created (Unix ms).
    pub created_at: i64,
    /// Last change (Unix ms).
    pub updated_at: i64,
}

impl DiscoveryRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        let status: String = row.try_get("status")?;
        let result: Option<String> = row.try_get("result")?;
        Ok(DiscoveryRow {
            id: row.try_get("id")?,
            description: row.try_get("description")?,
            status: status
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("discovery_requests.status: {e}")))?,
            result: result
                .map(|t| serde_json::from_str(&t))
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("discovery_requests.result: {e}")))?,
            error: row.try_get("error")?,
            proposal_tool: row.try_get("proposal_tool")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}
