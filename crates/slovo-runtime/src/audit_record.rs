//! Audit events written from their typed records (`slovo_core::audit::AuditRecord`), so that
//! every writer spells a kind and shapes its payload in one place.

use slovo_core::audit::{AuditEvent, AuditRecord};
use slovo_store::Tx;

/// Appends typed audit records to a transaction.
pub(crate) trait AppendRecord {
    /// Appends `record` (its kind and payload) for `tool`, by `actor`.
    async fn append_record(
        &mut self,
        tool: Option<&str>,
        actor: &str,
        record: &AuditRecord,
    ) -> slovo_store::Result<AuditEvent>;
}

impl AppendRecord for Tx {
    async fn append_record(
        &mut self,
        tool: Option<&str>,
        actor: &str,
        record: &AuditRecord,
    ) -> slovo_store::Result<AuditEvent> {
        self.append_audit(record.kind(), tool, actor, &record.payload())
            .await
    }
}
