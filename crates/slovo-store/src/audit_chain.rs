//! Audit chains besides chain 1: on PostgreSQL, each instance writes its calls' results to a
//! chain of its own, so that instances sharing the database no longer queue on one head
//! (`docs/audit.md`, "Several writers").
//!
//! A chain is opened by an audited write on chain 1 (`audit.chain_opened`, naming the chain
//! and the instance) that also inserts the new chain's head at sequence number 0 with that
//! event's hash, so the chain's first event links to its opening. The database refuses a head
//! that does not start at such an event (`audit_head_opened`), and every event still has to
//! extend its own chain's head (`audit_events_extend_head`). SQLite keeps chain 1 only: one
//! process writes it.

use std::sync::atomic::Ordering;

use slovo_core::audit::record::AuditChainOpened;
use slovo_core::audit::{AuditEvent, AuditRecord, kinds};
use sqlx::Row;

use crate::audit::audit_from_row;
use crate::{DbKind, Result, Store, Tx};

/// The chain every installation starts with, and the one that holds every audited change but
/// the results of calls written by an instance that opened a chain of its own.
pub const MAIN_AUDIT_CHAIN: i64 = 1;

const EVENT_COLUMNS: &str = "chain, seq, at_ms, kind, tool, actor, payload, prev_hash, hash";

/// The head of the chain this store writes calls' results to, as this store last wrote or read
/// it: a guess that lets a batch of results be written in one statement (`finish_batch`), which
/// the database checks (every event must extend its chain's head). Right as long as this
/// instance is the chain's only writer, which is what a chain per instance means; after a
/// refusal it is forgotten, and the next batch is written the locking way and reads it afresh.
#[derive(Debug, Default)]
pub(crate) struct KnownHead(std::sync::Mutex<Option<(i64, i64, String)>>);

impl KnownHead {
    /// The head of `chain` (sequence number and hash), if known.
    pub(crate) fn of(&self, chain: i64) -> Option<(i64, String)> {
        let known = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*known {
            Some((c, seq, hash)) if *c == chain => Some((*seq, hash.clone())),
            _ => None,
        }
    }

    /// Notes that `chain`'s head is at least at `seq` with `hash` (committed); an older head
    /// of the same chain never replaces a newer one.
    pub(crate) fn saw(&self, chain: i64, seq: i64, hash: &str) {
        // A panic while holding this lock leaves a whole Option behind (it is only ever
        // replaced), so a poisoned lock is safe to use.
        let mut known = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !matches!(&*known, Some((c, s, _)) if *c == chain && *s >= seq) {
            *known = Some((chain, seq, hash.to_string()));
        }
    }

    /// Forgets the head (the database refused it).
    pub(crate) fn forget(&self) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}

/// One chain's head row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditChainHead {
    /// The chain.
    pub chain: i64,
    /// Its newest event's sequence number (0 before its first event).
    pub seq: i64,
    /// That event's hash (before the first event: the opening event's hash, or for chain 1
    /// the genesis hash).
    pub hash: String,
    /// The instance that writes it (none for chain 1).
    pub instance: Option<String>,
}

impl Store {
    /// Makes this store write calls' results to the audit chain of `instance`, opening it if
    /// the instance has none yet (an `audit.chain_opened` event on chain 1, by `actor`); a
    /// restarted instance finds its chain again. Returns the chain. On SQLite nothing is
    /// written and the chain is 1.
    pub async fn open_audit_chain(&self, instance: &str, actor: &str) -> Result<i64> {
        if self.kind != DbKind::Postgres {
            return Ok(MAIN_AUDIT_CHAIN);
        }
        // Under chain 1's head lock: two instances opening chains at once take turns, so each
        // gets a number of its own.
        let mut tx = self.begin().await?;
        let existing = sqlx::query("SELECT id, seq, hash FROM audit_head WHERE instance = $1")
            .bind(instance)
            .fetch_optional(&mut *tx.tx)
            .await?;
        let chain = match existing {
            Some(row) => {
                tx.rollback().await?;
                let chain = row.try_get("id")?;
                // This instance is the chain's only writer, so its head stays as read here until
                // this store moves it (and a head that moved anyway is refused by the database).
                self.call_head
                    .saw(chain, row.try_get("seq")?, &row.try_get::<String, _>("hash")?);
                chain
            }
            None => {
                let chain: i64 = sqlx::query("SELECT MAX(id) + 1 AS next FROM audit_head")
                    .fetch_one(&mut *tx.tx)
                    .await?
                    .try_get("next")?;
                let record = AuditRecord::AuditChainOpened(AuditChainOpened {
                    chain,
                    instance: instance.to_string(),
                });
                let opening = tx
                    .append_audit(record.kind(), None, actor, &record.payload())
                    .await?;
                sqlx::query("INSERT INTO audit_head (id, seq, hash, instance) VALUES ($1, 0, $2, $3)")
                    .bind(chain)
                    .bind(&opening.hash)
                    .bind(instance)
                    .execute(&mut *tx.tx)
                    .await?;
                tx.commit().await?;
                self.call_head.saw(chain, 0, &opening.hash);
                tracing::info!(chain, instance, "opened an audit chain for this instance's calls");
                chain
            }
        };
        self.call_chain.store(chain, Ordering::Release);
        Ok(chain)
    }

    /// Appends `event`, already linked by the caller to what it read as its chain's head, in a
    /// statement of its own (its own transaction: the head row is locked only while the
    /// statement runs). False, with nothing written, when the database refused it because the
    /// head is no longer there (another event came first).
    pub async fn append_event_at_head(&self, event: &AuditEvent) -> Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO audit_events (chain, seq, at_ms, kind, tool, actor, payload, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(event.chain)
        .bind(event.seq)
        .bind(event.at_ms)
        .bind(&event.kind)
        .bind(&event.tool)
        .bind(&event.actor)
        .bind(&event.payload)
        .bind(&event.prev_hash)
        .bind(&event.hash)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => {
                if event.chain == MAIN_AUDIT_CHAIN {
                    self.appended.fetch_max(event.seq, Ordering::AcqRel);
                    if let Some(w) = &self.writer {
                        w.saw_head(event.seq, &event.hash);
                    }
                } else {
                    self.appended_elsewhere.fetch_add(1, Ordering::AcqRel);
                }
                Ok(true)
            }
            Err(e) if head_moved(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Every chain's head row, chain 1 first.
    pub async fn audit_chain_heads(&self) -> Result<Vec<AuditChainHead>> {
        let rows = sqlx::query("SELECT id, seq, hash, instance FROM audit_head ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditChainHead {
                    chain: r.try_get("id")?,
                    seq: r.try_get("seq")?,
                    hash: r.try_get("hash")?,
                    instance: r.try_get("instance")?,
                })
            })
            .collect()
    }

    /// The chains that hold at least one event, in order (chain 1 included when it does).
    pub async fn audit_chains_with_events(&self) -> Result<Vec<i64>> {
        let rows = sqlx::query("SELECT DISTINCT chain FROM audit_events ORDER BY chain")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get::<i64, _>("chain")?)).collect()
    }

    /// Events of `chain` with `seq > after`, in chain order, at most `limit`.
    pub async fn audit_chain_page(&self, chain: i64, after: i64, limit: i64) -> Result<Vec<AuditEvent>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM audit_events WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        )))
        .bind(chain)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_from_row).collect()
    }

    /// Event `seq` of `chain`, if the database holds it.
    pub async fn audit_chain_event(&self, chain: i64, seq: i64) -> Result<Option<AuditEvent>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM audit_events WHERE chain = $1 AND seq = $2"
        )))
        .bind(chain)
        .bind(seq)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(audit_from_row).transpose()
    }

    /// The `audit.chain_opened` events on chain 1, in order.
    pub async fn audit_chain_openings(&self) -> Result<Vec<AuditEvent>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM audit_events WHERE chain = 1 AND kind = $1 ORDER BY seq"
        )))
        .bind(kinds::AUDIT_CHAIN_OPENED)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_from_row).collect()
    }

    /// The newest `audit.chains_anchored` event on chain 1, if any.
    pub async fn latest_audit_anchor(&self) -> Result<Option<AuditEvent>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM audit_events WHERE chain = 1 AND kind = $1 \
             ORDER BY seq DESC LIMIT 1"
        )))
        .bind(kinds::AUDIT_CHAINS_ANCHORED)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(audit_from_row).transpose()
    }

    /// How many audit events of `kind` the database holds, on every chain.
    pub async fn count_audit_events(&self, kind: &str) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM audit_events WHERE kind = $1")
            .bind(kind)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// The newest `limit` events of every chain, in the order they are shown together:
    /// by time, then chain, then sequence number.
    pub async fn audit_events_in_display_order(&self, limit: i64) -> Result<Vec<AuditEvent>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM (SELECT {EVENT_COLUMNS} FROM audit_events \
             ORDER BY at_ms DESC, chain DESC, seq DESC LIMIT $1) AS newest \
             ORDER BY at_ms, chain, seq"
        )))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_from_row).collect()
    }
}

/// Whether the database refused an event because it does not extend its chain's head: the
/// guard's message (`audit_events_extend_head`), or, for two events racing for the same link,
/// the primary key of `(chain, seq)` (SQLSTATE 23505; SQLite's extended code 1555).
fn head_moved(e: &sqlx::Error) -> bool {
    let Some(db) = e.as_database_error() else {
        return false;
    };
    db.message().contains(crate::call_writer::HEAD_MOVED)
        || matches!(db.code().as_deref(), Some("23505") | Some("1555"))
}

impl Tx {
    /// The audit chain this transaction appends to.
    pub fn chain(&self) -> i64 {
        self.chain
    }
}
