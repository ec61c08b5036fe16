//! Reading the audit trail for the front ends: the events of every chain together, how many
//! there are, and each chain's head (`docs/audit.md`, "Reading every chain").

use slovo_core::audit::AuditEvent;
use slovo_store::{AuditChainHead, AuditQuery};

use crate::{Result, Runtime};

impl Runtime {
    /// Audit events of every chain, newest first in display order (time, then chain, then
    /// sequence number), filtered and paged by `query` (a page continues from the
    /// [`slovo_store::AuditCursor`] of the previous page's last event).
    pub async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>> {
        Ok(self.store.audit_events(query).await?)
    }

    /// How many audit events the database holds, on every chain.
    pub async fn audit_event_total(&self) -> Result<i64> {
        Ok(self.store.audit_event_total().await?)
    }

    /// Events of `chain` with `seq > after`, in chain order, at most `limit`: a stretch
    /// whose links can be checked by anyone holding it.
    pub async fn audit_chain_events(&self, chain: i64, after: i64, limit: i64) -> Result<Vec<AuditEvent>> {
        Ok(self.store.audit_chain_page(chain, after, limit).await?)
    }

    /// Every chain's head, chain 1 first (on SQLite, chain 1 only).
    pub async fn audit_chain_heads(&self) -> Result<Vec<AuditChainHead>> {
        Ok(self.store.audit_chain_heads().await?)
    }
}
