//! [`Tx`]: one write transaction, holding the audit chain's head.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use slovo_core::audit::AuditEvent;
use sqlx::Row;

use crate::audit_chain::KnownHead;
use crate::call_writer::CallWriter;
use crate::{Result, Store, StoreError};

impl Store {
    /// Starts a write transaction and locks the head of audit chain 1, the chain of every
    /// audited change but calls' results.
    pub async fn begin(&self) -> Result<Tx> {
        self.begin_on_chain(crate::MAIN_AUDIT_CHAIN).await
    }

    /// Starts a write transaction and locks the head of audit chain `chain`: the events it
    /// appends go to that chain.
    pub(crate) async fn begin_on_chain(&self, chain: i64) -> Result<Tx> {
        // `BEGIN` on a task of its own: sqlx's PostgreSQL `begin` is not cancellation-safe (a
        // future dropped while `BEGIN` is in flight returns the connection to the pool inside
        // a transaction nothing ends; sqlx issue 4393). Here a caller that goes away leaves a
        // finished `begin` behind, whose transaction is rolled back when it is dropped.
        let pool = self.pool.clone();
        let mut tx = tokio::spawn(async move { pool.begin().await })
            .await
            .map_err(|e| StoreError::Corrupt(format!("the task beginning a transaction failed: {e}")))??;
        let row = sqlx::query("UPDATE audit_head SET seq = seq WHERE id = $1 RETURNING seq, hash")
            .bind(chain)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("audit chain {chain} has no head")))?;
        let head_seq: i64 = row.try_get("seq")?;
        let head_hash: String = row.try_get("hash")?;
        Ok(Tx {
            tx,
            chain,
            head_seq,
            head_hash,
            appended: Vec::new(),
            writer: self.writer.clone(),
            appended_seq: self.appended.clone(),
            appended_elsewhere: self.appended_elsewhere.clone(),
            call_head: self.call_head.clone(),
        })
    }
}

/// One write transaction, holding the head of one audit chain.
pub struct Tx {
    pub(crate) tx: sqlx::Transaction<'static, sqlx::Any>,
    /// The chain whose head this transaction holds and appends to.
    pub(crate) chain: i64,
    pub(crate) head_seq: i64,
    pub(crate) head_hash: String,
    pub(crate) appended: Vec<AuditEvent>,
    pub(crate) writer: Option<Arc<CallWriter>>,
    pub(crate) appended_seq: Arc<AtomicI64>,
    pub(crate) appended_elsewhere: Arc<AtomicI64>,
    pub(crate) call_head: Arc<KnownHead>,
}

impl Tx {
    /// The sequence number of the head this transaction holds: as it was when the lock was
    /// taken, or this transaction's newest event.
    pub fn head_seq(&self) -> i64 {
        self.head_seq
    }

    /// Makes every write of this transaction durable, with its audit events.
    pub async fn commit(self) -> Result<Vec<AuditEvent>> {
        self.tx.commit().await?;
        if self.chain != crate::MAIN_AUDIT_CHAIN {
            self.appended_elsewhere
                .fetch_add(self.appended.len() as i64, Ordering::AcqRel);
            if let Some(last) = self.appended.last() {
                self.call_head.saw(self.chain, last.seq, &last.hash);
            }
        } else if let Some(last) = self.appended.last() {
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
