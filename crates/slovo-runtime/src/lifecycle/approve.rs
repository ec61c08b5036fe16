//! Approval: a person's narrowed grant for a pending version (or a chain's renewed pins).

use slovo_core::audit::AuditRecord;
use slovo_core::audit::record::{StepGrant, ToolApproved};
use slovo_core::lifecycle::ToolStatus;
use slovo_core::manifest::Execution;
use slovo_core::permissions::{Grant, Narrowing};
use slovo_core::time::now_ms;
use slovo_store::{NewGrant, ToolRow};
use tracing::info;

use crate::audit_record::AppendRecord;
use crate::{Actor, Result, Runtime, RuntimeError};

impl Runtime {
    /// Approves a tool's pending version with grants narrowed by `narrowing`, then installs
    /// it (runtime prepared, state volume created) and makes it active. Approving an approved
    /// tool whose install failed retries the install.
    pub async fn approve(&self, name: &str, narrowing: &Narrowing, actor: &Actor) -> Result<ToolRow> {
        let current = self
            .store
            .tool(name)
            .await?
            .ok_or_else(|| RuntimeError::tool_not_found(name))?;
        let tool = match self.version_to_approve(&current).await? {
            Some(version) => self.record_approval(&current, &version, narrowing, actor).await?,
            None if current.status == ToolStatus::Approved => current,
            None => {
                return Err(RuntimeError::Conflict {
                    tool: name.to_string(),
                    reason: format!(
                        "nothing to approve (the tool is {} and has no pending version)",
                        current.status
                    ),
                });
            }
        };
        if tool.status == ToolStatus::Approved {
            return self.install(&tool, actor).await;
        }
        Ok(tool)
    }

    /// The version an approval is for: the pending one, or the serving version of a chain
    /// whose approval no longer holds (approved again as it is).
    async fn version_to_approve(&self, current: &ToolRow) -> Result<Option<String>> {
        match &current.pending_version {
            Some(v) => Ok(Some(v.clone())),
            None => self.serving_chain_version(current).await,
        }
    }

    /// Records the grant for `version` and the tool's new row with its `tool.approved` event.
    /// An upgrade of a serving tool is installed first, since it replaces the serving version
    /// at once; a new tool stays `approved` until [`Runtime::install`].
    async fn record_approval(
        &self,
        current: &ToolRow,
        version: &str,
        narrowing: &Narrowing,
        actor: &Actor,
    ) -> Result<ToolRow> {
        let name = current.name.as_str();
        if current.status == ToolStatus::PendingApproval {
            current
                .status
                .check_transition(ToolStatus::Approved)
                .map_err(|source| RuntimeError::Transition {
                    tool: name.to_string(),
                    source,
                })?;
        }
        let manifest = self.manifest(name, version).await?;
        let grant =
            Grant::narrowed(&manifest.permissions, narrowing).map_err(|source| RuntimeError::Grant {
                tool: name.to_string(),
                source,
            })?;
        let upgrading = matches!(current.status, ToolStatus::Active | ToolStatus::Disabled);
        let install_info = if upgrading {
            let digest = self
                .store
                .version(name, version)
                .await?
                .and_then(|v| v.bundle_digest);
            Some(self.install_runtime(&manifest, digest.as_deref()).await?)
        } else {
            None
        };
        let mut tx = self.store.begin().await?;
        let now = now_ms();
        let grant_id = tx
            .insert_grant(&NewGrant {
                tool: name.to_string(),
                version: version.to_string(),
                grant: grant.clone(),
                granted_by: actor.0.clone(),
                granted_at: now,
            })
            .await?;
        // A chain's approval pins the grant each of its step tools holds now.
        let pins = match &manifest.execution {
            Some(Execution::Chain { steps, .. }) => {
                let pins = self.chain_pins_for_approval(&mut tx, name, steps).await?;
                tx.insert_chain_pins(grant_id, name, &pins).await?;
                pins
            }
            Some(
                Execution::Process { .. }
                | Execution::Wasm { .. }
                | Execution::Docker { .. }
                | Execution::Http
                | Execution::Mcp { .. },
            )
            | None => vec![],
        };
        if let Some(info) = &install_info {
            tx.set_install_info(name, version, info).await?;
            self.ensure_volume(&mut tx, name, grant.storage_quota_mb, now)
                .await?;
        }
        let tool = ToolRow {
            status: if upgrading {
                current.status
            } else {
                ToolStatus::Approved
            },
            active_version: Some(version.to_string()),
            pending_version: None,
            grant_id: Some(grant_id),
            revision: current.revision + 1,
            updated_at: now,
            ..current.clone()
        };
        tx.save_tool(&tool, Some(current.revision)).await?;
        tx.append_record(
            Some(name),
            &actor.0,
            &AuditRecord::ToolApproved(ToolApproved {
                version: version.to_string(),
                previous_version: current.active_version.clone(),
                requested: manifest.permissions.clone(),
                granted: grant,
                step_grants: pins
                    .into_iter()
                    .map(|(tool, grant_id)| StepGrant { tool, grant_id })
                    .collect(),
            }),
        )
        .await?;
        tx.commit().await?;
        info!(tool = name, %version, "approved");
        Ok(tool)
    }

    /// The serving version of an active or disabled chain, which `approve` accepts again
    /// without a pending version (to renew the pins of its step tools); `None` for other tools.
    async fn serving_chain_version(&self, tool: &ToolRow) -> Result<Option<String>> {
        let (ToolStatus::Active | ToolStatus::Disabled, Some(v)) = (tool.status, &tool.active_version) else {
            return Ok(None);
        };
        let is_chain = matches!(
            self.manifest(&tool.name, v).await?.execution,
            Some(Execution::Chain { .. })
        );
        Ok(is_chain.then(|| v.clone()))
    }
}
