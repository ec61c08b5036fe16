//! The runtime instances that share one database, and their heartbeats.
//!
//! An instance is alive while `heartbeat_at + lease_ms` lies in the future. The rows are plain
//! bookkeeping, not audited: what matters for the audit trail is what a survivor does about a
//! dead instance's calls, and that goes through [`crate::Tx`] like every other audited change.

use sqlx::any::{AnyConnectOptions, AnyRow};
use sqlx::{AnyConnection, ConnectOptions, Connection, Executor, Row};

use crate::{DbKind, Result, Store};

/// One runtime instance as registered in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRow {
    /// The instance id (kept in the instance's data directory across restarts).
    pub id: String,
    /// The host name the instance runs on.
    pub host: String,
    /// Its process id on that host.
    pub pid: i64,
    /// The Slovo Tools version it runs.
    pub version: String,
    /// When it (last) started, Unix ms.
    pub started_at: i64,
    /// Its latest heartbeat, Unix ms.
    pub heartbeat_at: i64,
    /// How long after a heartbeat it still counts as alive, ms.
    pub lease_ms: i64,
    /// When it stopped: set by the instance itself at a clean shutdown, or by a survivor that
    /// found its lease lapsed.
    pub stopped_at: Option<i64>,
}

impl InstanceRow {
    /// Whether the lease has lapsed at `now` without a clean stop.
    pub fn lapsed(&self, now: i64) -> bool {
        self.stopped_at.is_none() && self.heartbeat_at.saturating_add(self.lease_ms) < now
    }
}

const INSTANCE_COLUMNS: &str = "id, host, pid, version, started_at, heartbeat_at, lease_ms, stopped_at";

fn instance_from_row(r: &AnyRow) -> Result<InstanceRow> {
    Ok(InstanceRow {
        id: r.try_get("id")?,
        host: r.try_get("host")?,
        pid: r.try_get("pid")?,
        version: r.try_get("version")?,
        started_at: r.try_get("started_at")?,
        heartbeat_at: r.try_get("heartbeat_at")?,
        lease_ms: r.try_get("lease_ms")?,
        stopped_at: r.try_get("stopped_at")?,
    })
}

impl Store {
    /// Registers (or re-registers, after a restart) an instance as alive from `row.started_at`.
    pub async fn register_instance(&self, row: &InstanceRow) -> Result<()> {
        register_query(row).execute(&self.pool).await?;
        Ok(())
    }

    /// A connection of its own for renewing one instance's lease, opened on its first use by
    /// whichever async runtime uses it (see [`LeaseConnection`]).
    pub fn lease_connection(&self) -> LeaseConnection {
        LeaseConnection {
            options: self.connect_options.clone(),
            kind: self.kind,
            conn: None,
        }
    }

    /// Moves an instance's heartbeat to `at`. Returns false when the instance is not registered
    /// as alive any more (a survivor declared it dead: its calls were already recorded as
    /// interrupted, so it must register again before it counts as alive).
    pub async fn heartbeat(&self, id: &str, at: i64) -> Result<bool> {
        let done = heartbeat_query(id, at).execute(&self.lease_pool).await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks an instance stopped at `at`, if it is not already. Returns whether this call did
    /// it (so that of two survivors only one reports the death).
    pub async fn stop_instance(&self, id: &str, at: i64) -> Result<bool> {
        let done = sqlx::query("UPDATE instances SET stopped_at = $1 WHERE id = $2 AND stopped_at IS NULL")
            .bind(at)
            .bind(id)
            .execute(&self.lease_pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every registered instance, alive or not, newest start first.
    pub async fn instances(&self) -> Result<Vec<InstanceRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {INSTANCE_COLUMNS} FROM instances ORDER BY started_at DESC, id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(instance_from_row).collect()
    }

    /// Instances not stopped whose lease has lapsed at `now`.
    pub async fn lapsed_instances(&self, now: i64) -> Result<Vec<InstanceRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {INSTANCE_COLUMNS} FROM instances \
             WHERE stopped_at IS NULL AND heartbeat_at + lease_ms < $1 ORDER BY heartbeat_at, id"
        )))
        .bind(now)
        .fetch_all(&self.lease_pool)
        .await?;
        rows.iter().map(instance_from_row).collect()
    }

    /// The executions an instance left `running`, oldest first.
    pub async fn running_execution_ids_of(&self, instance_id: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT id FROM executions WHERE status = 'running' AND instance_id = $1 ORDER BY started_at",
        )
        .bind(instance_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get::<String, _>("id")?)).collect()
    }

    /// Executions left `running` by no registered instance (recorded before instances were
    /// registered, or by an instance whose row was removed) that started before
    /// `started_before`.
    pub async fn orphaned_running_execution_ids(&self, started_before: i64) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT e.id FROM executions e WHERE e.status = 'running' AND e.started_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.id = e.instance_id) ORDER BY e.started_at",
        )
        .bind(started_before)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get::<String, _>("id")?)).collect()
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

fn register_query(row: &InstanceRow) -> AnyQuery<'_> {
    sqlx::query(
        "INSERT INTO instances (id, host, pid, version, started_at, heartbeat_at, lease_ms, stopped_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, NULL) \
         ON CONFLICT (id) DO UPDATE SET host = $2, pid = $3, version = $4, started_at = $5, \
         heartbeat_at = $6, lease_ms = $7, stopped_at = NULL",
    )
    .bind(&row.id)
    .bind(&row.host)
    .bind(row.pid)
    .bind(&row.version)
    .bind(row.started_at)
    .bind(row.heartbeat_at)
    .bind(row.lease_ms)
}

fn heartbeat_query(id: &str, at: i64) -> AnyQuery<'_> {
    sqlx::query("UPDATE instances SET heartbeat_at = $1 WHERE id = $2 AND stopped_at IS NULL")
        .bind(at)
        .bind(id)
}

/// One connection that renews one instance's lease, and nothing else.
///
/// Why it exists: a connection's socket belongs to the async runtime that opened it, and only
/// that runtime's threads drive it. The store's own connections belong to the runtime that
/// serves calls; a lease renewed through them waits for that runtime's worker threads, which
/// calls may keep busy or block. This connection is opened by whichever runtime first uses
/// it, so that a lease keeper can renew the lease from a thread of its own. A failed statement
/// drops the connection; the next renewal opens a fresh one.
#[derive(Debug)]
pub struct LeaseConnection {
    options: AnyConnectOptions,
    kind: DbKind,
    conn: Option<AnyConnection>,
}

impl LeaseConnection {
    async fn connection(&mut self) -> Result<&mut AnyConnection> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => {
                let mut conn = self.options.connect().await?;
                if self.kind == DbKind::Sqlite {
                    conn.execute(crate::SQLITE_PRAGMAS).await?;
                }
                conn
            }
        };
        Ok(self.conn.insert(conn))
    }

    /// See [`Store::heartbeat`].
    pub async fn heartbeat(&mut self, id: &str, at: i64) -> Result<bool> {
        let conn = self.connection().await?;
        match heartbeat_query(id, at).execute(&mut *conn).await {
            Ok(done) => Ok(done.rows_affected() == 1),
            Err(e) => {
                self.conn = None;
                Err(e.into())
            }
        }
    }

    /// See [`Store::register_instance`].
    pub async fn register_instance(&mut self, row: &InstanceRow) -> Result<()> {
        let conn = self.connection().await?;
        if let Err(e) = register_query(row).execute(&mut *conn).await {
            self.conn = None;
            return Err(e.into());
        }
        Ok(())
    }

    /// Closes the connection, if one is open.
    pub async fn close(mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
    }
}
