//! The store itself: opening a database by URL, its pools and migrations, closing it.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

use crate::audit_chain::KnownHead;
use crate::call_writer::CallWriter;
use crate::changes;
use crate::finish_batch::FinishBatcher;
use crate::{Result, StoreError};

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

/// A connection pool to the Slovo database.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    pub(crate) kind: DbKind,
    /// SQLite only: the call path's own connection (see `call_writer`).
    pub(crate) writer: Option<Arc<CallWriter>>,
    /// PostgreSQL only, unless turned off: calls' results written in batches (see
    /// `finish_batch`).
    pub(crate) batcher: Option<Arc<FinishBatcher>>,
    /// Where instance heartbeats go: on PostgreSQL a connection of their own, so that calls
    /// holding every pooled connection cannot delay a heartbeat past its lease and get their
    /// own instance declared dead; on SQLite the pool (one process per database, no leases).
    pub(crate) lease_pool: AnyPool,
    /// How to open a connection of one's own to this database: what
    /// [`Store::lease_connection`] connects with.
    pub(crate) connect_options: AnyConnectOptions,
    /// PostgreSQL only: the pool of one connection that listens for tool changes (see
    /// `changes`).
    pub(crate) listen_pool: Option<sqlx::PgPool>,
    /// The newest event of audit chain 1 this store (and its clones) committed: what tells the
    /// runtime's checkpointer that there is something new to sign, without asking the database.
    pub(crate) appended: Arc<AtomicI64>,
    /// How many audit events this store (and its clones) committed on chains other than 1.
    pub(crate) appended_elsewhere: Arc<AtomicI64>,
    /// The audit chain calls' results go to: 1 until [`Store::open_audit_chain`] opens this
    /// instance's own (PostgreSQL only).
    pub(crate) call_chain: Arc<AtomicI64>,
    /// The head of `call_chain` as this store last wrote or read it (PostgreSQL, own chains
    /// only; see `finish_batch`).
    pub(crate) call_head: Arc<KnownHead>,
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
        let writer = (kind == DbKind::Sqlite).then(|| Arc::new(CallWriter::new(options.clone())));
        let store = Store {
            pool,
            lease_pool,
            connect_options: options,
            listen_pool,
            kind,
            writer,
            batcher: (kind == DbKind::Postgres).then(|| Arc::new(FinishBatcher::new(true))),
            appended: Arc::default(),
            appended_elsewhere: Arc::default(),
            call_chain: Arc::new(AtomicI64::new(crate::MAIN_AUDIT_CHAIN)),
            call_head: Arc::default(),
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
        self.batcher = (batched && self.kind == DbKind::Postgres).then(|| Arc::new(FinishBatcher::new(true)));
        self
    }

    /// PostgreSQL, results batched: whether a batch bound for this instance's own audit chain
    /// is written in one statement, its events hashed against the head this store knows (the
    /// default), or always in a transaction that locks the head first and reads it (what the
    /// benchmarks compare against). Either way the database checks every link. No effect
    /// without batching, or on SQLite.
    pub fn finish_on_known_head(mut self, yes: bool) -> Store {
        if self.batcher.is_some() {
            self.batcher = Some(Arc::new(FinishBatcher::new(yes)));
        }
        self
    }

    /// Which database this is.
    pub fn kind(&self) -> DbKind {
        self.kind
    }

    /// The sequence number of the newest event of audit chain 1 this store (or a clone of it)
    /// committed; 0 before the first. Other processes' events are not counted, nor events on
    /// other chains ([`Store::appended_elsewhere`]).
    pub fn appended_seq(&self) -> i64 {
        self.appended.load(Ordering::Acquire)
    }

    /// How many audit events this store (or a clone of it) committed on chains other than 1.
    pub fn appended_elsewhere(&self) -> i64 {
        self.appended_elsewhere.load(Ordering::Acquire)
    }

    /// The audit chain this store writes calls' results to (1 unless an instance chain was
    /// opened).
    pub fn call_chain(&self) -> i64 {
        self.call_chain.load(Ordering::Acquire)
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
