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
        let existing = sqlx::query("SELECT id FROM audit_head WHERE instance = $1")
            .bind(instance)
            .fetch_optional(&mut *tx.tx)
            .await?;
        let chain = match existing {
            Some(row) => {
                tx.rollback().await?;
                row.try_get("id")?
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
                tracing::info!(chain, instance, "opened an audit chain for this instance's calls");
                chain
            }
        };
        self.call_chain.store(chain, Ordering::Release);
        Ok(chain)
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

impl Tx {
    /// The audit chain this transaction appends to.
    pub fn chain(&self) -> i64 {
        self.chain
    }
}
