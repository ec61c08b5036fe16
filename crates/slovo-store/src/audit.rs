//! The audit chain: appending events, reading them back, and the checkpoints recorded.

use slovo_core::audit::{AuditEvent, event_hash};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{CheckpointRecord, Result, Store, Tx};

impl Store {
    /// Audit events of chain 1 with `seq > after`, in chain order, at most `limit` (the
    /// results of calls an instance wrote to a chain of its own: [`Store::audit_chain_page`]).
    pub async fn audit_page(&self, after: i64, limit: i64) -> Result<Vec<AuditEvent>> {
        let rows = sqlx::query(
            "SELECT chain, seq, at_ms, kind, tool, actor, payload, prev_hash, hash FROM audit_events \
             WHERE chain = 1 AND seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_from_row).collect()
    }

    /// The head of chain 1: its last sequence number and hash.
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
}

impl Tx {
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
            "INSERT INTO audit_events (chain, seq, at_ms, kind, tool, actor, payload, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(self.chain)
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
            chain: self.chain,
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
}

pub(crate) fn audit_from_row(row: &AnyRow) -> Result<AuditEvent> {
    Ok(AuditEvent {
        chain: row.try_get("chain")?,
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
