//! Rejecting a proposal: the person's "no" to a version waiting for approval.

use slovo_core::audit::AuditRecord;
use slovo_core::audit::record::ProposalRejected;
use slovo_core::lifecycle::ToolStatus;
use slovo_core::time::now_ms;
use slovo_store::ToolRow;
use tracing::info;

use crate::audit_record::AppendRecord;
use crate::{Actor, Result, Runtime, RuntimeError};

/// Longest reason kept on the audit event (characters); longer ones are cut.
pub const MAX_REJECT_REASON_CHARS: usize = 2_000;

impl Runtime {
    /// Rejects the version waiting for approval, recording `reason` on the audit event.
    ///
    /// A tool that was never approved becomes `revoked` (`tool.rejected`), its version kept on
    /// record; a pending upgrade
    /// of an approved tool is withdrawn and the serving version keeps serving
    /// (`tool.upgrade_rejected`). Anything else has nothing to reject.
    pub async fn reject(&self, name: &str, reason: &str, actor: &Actor) -> Result<ToolRow> {
        let reason: String = reason.trim().chars().take(MAX_REJECT_REASON_CHARS).collect();
        let mut tx = self.store.begin().await?;
        let current = tx
            .tool(name)
            .await?
            .ok_or_else(|| RuntimeError::tool_not_found(name))?;
        let waiting = current
            .pending_version
            .clone()
            .filter(|_| current.status != ToolStatus::Revoked);
        let Some(version) = waiting else {
            return Err(RuntimeError::Conflict {
                tool: name.to_string(),
                reason: format!("no version waits for approval (the tool is {})", current.status),
            });
        };
        let status = if current.status == ToolStatus::PendingApproval {
            current
                .status
                .check_transition(ToolStatus::Revoked)
                .map_err(|source| RuntimeError::Transition {
                    tool: name.to_string(),
                    source,
                })?;
            ToolStatus::Revoked
        } else {
            current.status
        };
        // A rejected new tool keeps its version on the row, so it can still be shown (it never
        // had another); a rejected upgrade is withdrawn and the serving version stays.
        let pending_version = (status == ToolStatus::Revoked).then(|| version.clone());
        let row = ToolRow {
            status,
            pending_version,
            revision: current.revision + 1,
            updated_at: now_ms(),
            ..current.clone()
        };
        tx.save_tool(&row, Some(current.revision)).await?;
        // `tool.rejected` for a new tool (now revoked), `tool.upgrade_rejected` for an upgrade.
        tx.append_record(
            Some(name),
            &actor.0,
            &AuditRecord::ToolRejected(ProposalRejected {
                version: version.clone(),
                reason,
                from: current.status,
                to: status,
            }),
        )
        .await?;
        tx.commit().await?;
        info!(tool = name, version = %version, "proposal rejected");
        Ok(row)
    }
}
