//! The SQLite connection that the call path writes through.
//!
//! Why it exists: sqlx runs each SQLite connection on a worker thread of its own, so every
//! statement is a message to that thread and a wake-up back, and a pooled connection adds a
//! ping on its way back to the pool. On a small machine those hand-offs, not SQLite, were most
//! of a call's own cost (eight per call through the pool). Here a call makes two: one
//! statement records it as `running`, and one command of several statements records its result
//! and its audit event in one transaction.
//!
//! The finishing command cannot read the audit chain's head and then hash against it within a
//! single command, so it hashes against the head this process last saw, and the database checks
//! that guess: the `audit_events_extend_head` trigger refuses any event that does not extend the
//! head, whoever inserts it. A refusal (another process appended meanwhile) rolls back and tries
//! again the slow way: the write lock first, then the head read under it.
//!
//! Cancellation: the connection is taken out of its slot while a command runs. If the caller's
//! future is dropped half-way, the connection is dropped with it, and SQLite rolls back the open
//! transaction when the handle closes; the next call opens a fresh connection. A connection in
//! the slot is therefore never inside a transaction.

use serde_json::Value;
use slovo_core::audit::{AuditEvent, event_hash};
use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, AssertSqlSafe, ConnectOptions, Connection, Executor, Row};
use tokio::sync::{Mutex, MutexGuard};

use crate::{ExecutionResult, NewExecution, Result, StoreError};

/// What the database says when an event does not extend the chain head (see the migration
/// `audit_chain_guard`).
pub(crate) const HEAD_MOVED: &str = "does not extend the audit chain head";

/// How many times a finishing command is retried after the head moved under it.
const HEAD_RETRIES: usize = 5;

pub(crate) struct CallWriter {
    options: AnyConnectOptions,
    slot: Mutex<Option<AnyConnection>>,
    /// The chain head this process last wrote or read: a guess the database checks.
    head: std::sync::Mutex<Option<(i64, String)>>,
}

impl std::fmt::Debug for CallWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallWriter").finish_non_exhaustive()
    }
}

/// A connection taken out of the writer's slot; it goes back only through [`Checkout::keep`].
struct Checkout<'a> {
    slot: MutexGuard<'a, Option<AnyConnection>>,
    conn: AnyConnection,
}

impl Checkout<'_> {
    fn keep(mut self) {
        *self.slot = Some(self.conn);
    }
}

/// The audit event that goes with a call's result.
pub struct FinishAudit<'a> {
    /// Event kind.
    pub kind: &'a str,
    /// The tool.
    pub tool: Option<&'a str>,
    /// Who acted.
    pub actor: &'a str,
    /// The event's payload.
    pub payload: &'a Value,
}

impl CallWriter {
    pub(crate) fn new(options: AnyConnectOptions) -> CallWriter {
        CallWriter {
            options,
            slot: Mutex::new(None),
            head: std::sync::Mutex::new(None),
        }
    }

    async fn checkout(&self) -> Result<Checkout<'_>> {
        let mut slot = self.slot.lock().await;
        let conn = match slot.take() {
            Some(c) => c,
            None => {
                let mut conn = self.options.connect().await?;
                conn.execute(crate::SQLITE_PRAGMAS).await?;
                conn
            }
        };
        Ok(Checkout { slot, conn })
    }

    /// Remembers the head after a write made elsewhere in this process (saves a refusal).
    pub(crate) fn saw_head(&self, seq: i64, hash: &str) {
        if let Ok(mut head) = self.head.lock()
            && head.as_ref().is_none_or(|(s, _)| *s < seq)
        {
            *head = Some((seq, hash.to_string()));
        }
    }

    fn forget_head(&self) {
        if let Ok(mut head) = self.head.lock() {
            *head = None;
        }
    }

    pub(crate) async fn close(&self) {
        if let Some(conn) = self.slot.lock().await.take() {
            let _ = conn.close().await;
        }
    }

    /// See [`crate::Store::insert_running_execution_at`].
    pub(crate) async fn insert_running(&self, e: &NewExecution, revision: i64) -> Result<bool> {
        let mut c = self.checkout().await?;
        let n = crate::insert_running_query(e, revision)
            .execute(&mut c.conn)
            .await?
            .rows_affected();
        c.keep();
        Ok(n == 1)
    }

    /// See [`crate::Store::finish_call`].
    pub(crate) async fn finish(
        &self,
        id: &str,
        r: &ExecutionResult,
        audit: &FinishAudit<'_>,
    ) -> Result<AuditEvent> {
        let denials = crate::denials_text(r)?;
        let warm = crate::warm_text(r)?;
        let output = r.output.as_ref().map(|o| o.to_string());
        let payload = audit.payload.to_string();
        let mut c = self.checkout().await?;
        for attempt in 0..HEAD_RETRIES {
            // After a refusal, stop guessing: take the write lock first, then read the head
            // under it, so nobody can move it before this transaction commits (two more
            // hand-offs, only when another writer is active).
            let locked = attempt > 0;
            if locked && let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut c.conn).await {
                drop(c);
                return Err(e.into());
            }
            let cached = if locked {
                None
            } else {
                self.head.lock().ok().and_then(|h| h.clone())
            };
            let (head_seq, head_hash) = match cached {
                Some(h) => h,
                None => {
                    let row = match sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
                        .fetch_one(&mut c.conn)
                        .await
                    {
                        Ok(row) => row,
                        Err(e) => {
                            // Closing the connection rolls back a transaction left open.
                            drop(c);
                            return Err(e.into());
                        }
                    };
                    (row.try_get("seq")?, row.try_get("hash")?)
                }
            };
            let seq = head_seq + 1;
            let at_ms = slovo_core::time::now_ms();
            let hash = event_hash(
                seq,
                at_ms,
                audit.kind,
                audit.tool,
                audit.actor,
                &payload,
                &head_hash,
            );
            // One command, one transaction: the result, then its audit event only if the result
            // was written (`changes()` is the row count of the UPDATE just before). Each
            // statement returns a row when it wrote one, so two rows mean both were written and
            // none means the execution was not running (and nothing was written).
            let begin = if locked { "" } else { "BEGIN IMMEDIATE; " };
            let written = sqlx::query(AssertSqlSafe(format!(
                "{begin}UPDATE executions SET status = $1, output = $2, stderr = $3, error = $4, exit_code = $5, \
                 duration_ms = $6, cpu_ms = $7, peak_memory_bytes = $8, sandbox_id = $9, finished_at = $10, \
                 network_denials = $11, warm = $21 WHERE id = $12 AND status = 'running' RETURNING 1 AS written; \
                 INSERT INTO audit_events (seq, at_ms, kind, tool, actor, payload, prev_hash, hash) \
                 SELECT $13, $14, $15, $16, $17, $18, $19, $20 WHERE changes() = 1 RETURNING 1 AS written; \
                 COMMIT;"
            )))
            .bind(r.status.as_str())
            .bind(output.as_deref())
            .bind(r.stderr.as_deref())
            .bind(r.error.as_deref())
            .bind(r.exit_code.map(i64::from))
            .bind(r.duration_ms)
            .bind(r.cpu_ms)
            .bind(r.peak_memory_bytes)
            .bind(r.sandbox_id.as_deref())
            .bind(r.finished_at)
            .bind(denials.as_deref())
            .bind(id)
            .bind(seq)
            .bind(at_ms)
            .bind(audit.kind)
            .bind(audit.tool)
            .bind(audit.actor)
            .bind(payload.as_str())
            .bind(head_hash.as_str())
            .bind(hash.as_str())
            .bind(warm.as_deref())
            .fetch_all(&mut c.conn)
            .await;
            match written {
                Ok(rows) if rows.len() == 2 => {
                    c.keep();
                    self.saw_head(seq, &hash);
                    return Ok(AuditEvent {
                        chain: crate::MAIN_AUDIT_CHAIN,
                        seq,
                        at_ms,
                        kind: audit.kind.to_string(),
                        tool: audit.tool.map(str::to_string),
                        actor: audit.actor.to_string(),
                        payload,
                        prev_hash: head_hash,
                        hash,
                    });
                }
                Ok(rows) if rows.is_empty() => {
                    c.keep();
                    return Err(StoreError::Conflict(format!("execution {id} is not running")));
                }
                Ok(rows) => {
                    // Cannot happen by the statements' construction; say so rather than guess.
                    return Err(StoreError::Corrupt(format!(
                        "finishing execution {id} wrote {} of its 2 rows",
                        rows.len()
                    )));
                }
                Err(e) => {
                    // The transaction is open at the failed statement: roll it back, or drop
                    // the connection (closing it rolls back) if even that fails.
                    if sqlx::query("ROLLBACK").execute(&mut c.conn).await.is_err() {
                        drop(c);
                        return Err(e.into());
                    }
                    if !e.to_string().contains(HEAD_MOVED) {
                        c.keep();
                        return Err(e.into());
                    }
                    // Another process appended since this one last looked: read the head again.
                    self.forget_head();
                }
            }
        }
        c.keep();
        Err(StoreError::Conflict(
            "the audit chain kept moving while a call's result was being recorded".into(),
        ))
    }
}
