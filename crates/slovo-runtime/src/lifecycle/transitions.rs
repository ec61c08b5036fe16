//! Disable, enable, revoke: status transitions, each one transaction with one audit event.

use std::path::Path;

use slovo_core::audit::AuditRecord;
use slovo_core::audit::record::{StatePurged, StatusChange};
use slovo_core::lifecycle::ToolStatus;
use slovo_core::time::now_ms;
use slovo_store::{ToolRow, VolumeRow};
use tracing::info;

use crate::audit_record::AppendRecord;
use crate::{Actor, Result, Runtime, RuntimeError, ToolStateView};

impl Runtime {
    /// `active → disabled`.
    pub async fn disable(&self, name: &str, actor: &Actor) -> Result<ToolStateView> {
        self.transition(name, ToolStatus::Disabled, AuditRecord::ToolDisabled, actor)
            .await
            .map(ToolStateView::from)
    }

    /// `disabled → active`.
    pub async fn enable(&self, name: &str, actor: &Actor) -> Result<ToolStateView> {
        self.transition(name, ToolStatus::Active, AuditRecord::ToolEnabled, actor)
            .await
            .map(ToolStateView::from)
    }

    /// `* → revoked`, keeping the tool's state or destroying it.
    pub async fn revoke(&self, name: &str, purge_state: bool, actor: &Actor) -> Result<ToolStateView> {
        let volume = self.store.volume(name).await?;
        let row = self
            .transition_with(
                name,
                ToolStatus::Revoked,
                AuditRecord::ToolRevoked,
                actor,
                Some(purge_state),
                |tool| {
                    tool.pending_version = None;
                },
            )
            .await?;
        // Whatever backend holds the state (a mounted quota volume) lets go of it first.
        let dir = self.volume_dir(name);
        for kind in self.backends.kinds() {
            if let Ok(backend) = self.backends.get(kind) {
                backend
                    .release_state(&dir, purge_state)
                    .await
                    .map_err(|e| RuntimeError::Install {
                        tool: name.to_string(),
                        reason: e.to_string(),
                    })?;
            }
        }
        if purge_state {
            if dir.exists() {
                remove_dir_all_writable(&dir).map_err(|e| RuntimeError::io("purge", &dir, e))?;
            }
            if let Some(v) = volume {
                let mut tx = self.store.begin().await?;
                tx.save_volume(&VolumeRow {
                    purged_at: Some(now_ms()),
                    ..v
                })
                .await?;
                tx.append_record(
                    Some(name),
                    &actor.0,
                    &AuditRecord::ToolStatePurged(StatePurged { path: dir.clone() }),
                )
                .await?;
                tx.commit().await?;
            }
        }
        Ok(row.into())
    }

    async fn transition(
        &self,
        name: &str,
        to: ToolStatus,
        record: fn(StatusChange) -> AuditRecord,
        actor: &Actor,
    ) -> Result<ToolRow> {
        self.transition_with(name, to, record, actor, None, |_| {}).await
    }

    async fn transition_with(
        &self,
        name: &str,
        to: ToolStatus,
        record: fn(StatusChange) -> AuditRecord,
        actor: &Actor,
        purge_state: Option<bool>,
        adjust: impl FnOnce(&mut ToolRow),
    ) -> Result<ToolRow> {
        let mut tx = self.store.begin().await?;
        let current = tx
            .tool(name)
            .await?
            .ok_or_else(|| RuntimeError::tool_not_found(name))?;
        current
            .status
            .check_transition(to)
            .map_err(|source| RuntimeError::Transition {
                tool: name.to_string(),
                source,
            })?;
        let mut row = ToolRow {
            status: to,
            revision: current.revision + 1,
            updated_at: now_ms(),
            ..current.clone()
        };
        adjust(&mut row);
        tx.save_tool(&row, Some(current.revision)).await?;
        // Chains approved with this tool as a step need a new approval once it is disabled
        // or revoked, even if it is enabled again later.
        let chains = if matches!(to, ToolStatus::Disabled | ToolStatus::Revoked) {
            tx.invalidate_chain_pins(name, row.updated_at).await?
        } else {
            vec![]
        };
        let change = StatusChange {
            purge_state,
            from: current.status,
            to,
            chains_needing_approval: chains,
        };
        tx.append_record(Some(name), &actor.0, &record(change)).await?;
        tx.commit().await?;
        // Nothing prepared for the tool before the change serves a call after it.
        self.backends.forget_tool(name).await;
        info!(tool = name, from = %current.status, to = %to, "transition");
        Ok(row)
    }
}

/// Removes a state directory even where a tool left read-only subdirectories in it.
fn remove_dir_all_writable(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(_) => {
            let mut stack = vec![dir.to_path_buf()];
            while let Some(d) = stack.pop() {
                std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))?;
                for e in std::fs::read_dir(&d)? {
                    let e = e?;
                    if e.file_type()?.is_dir() {
                        stack.push(e.path());
                    }
                }
            }
            std::fs::remove_dir_all(dir)
        }
    }
}
