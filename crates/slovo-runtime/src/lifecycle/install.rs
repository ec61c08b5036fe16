//! Install: the backend prepares a version's runtime, and the state volume is created.

use slovo_core::audit::AuditRecord;
use slovo_core::audit::record::{ToolInstalled, ToolReinstalled};
use slovo_core::install::InstallFacts;
use slovo_core::lifecycle::ToolStatus;
use slovo_core::manifest::{Execution, Manifest};
use slovo_core::time::now_ms;
use slovo_sandbox::InstallRequest;
use slovo_store::{ToolRow, Tx, VolumeRow};
use tracing::info;

use crate::audit_record::AppendRecord;
use crate::{Actor, Result, Runtime, RuntimeError};

impl Runtime {
    /// `approved → active`: prepares the runtime and the state volume.
    pub(super) async fn install(&self, tool: &ToolRow, actor: &Actor) -> Result<ToolRow> {
        let name = tool.name.as_str();
        let version = tool
            .active_version
            .clone()
            .ok_or_else(|| RuntimeError::Conflict {
                tool: name.to_string(),
                reason: "approved tool has no version (corrupt state)".into(),
            })?;
        let manifest = self.manifest(name, &version).await?;
        let grant = self.grant_of(tool).await?;
        let bundle_digest = self
            .store
            .version(name, &version)
            .await?
            .and_then(|v| v.bundle_digest);
        let info = self.install_runtime(&manifest, bundle_digest.as_deref()).await?;
        let mut tx = self.store.begin().await?;
        let now = now_ms();
        tool.status
            .check_transition(ToolStatus::Active)
            .map_err(|source| RuntimeError::Transition {
                tool: name.to_string(),
                source,
            })?;
        tx.set_install_info(name, &version, &info).await?;
        let volume = self
            .ensure_volume(&mut tx, name, grant.storage_quota_mb, now)
            .await?;
        let row = ToolRow {
            status: ToolStatus::Active,
            revision: tool.revision + 1,
            updated_at: now,
            ..tool.clone()
        };
        tx.save_tool(&row, Some(tool.revision)).await?;
        tx.append_record(
            Some(name),
            &actor.0,
            &AuditRecord::ToolInstalled(ToolInstalled {
                version: version.clone(),
                volume,
                install: info,
            }),
        )
        .await?;
        tx.commit().await?;
        info!(tool = name, %version, "installed");
        Ok(row)
    }

    /// Prepares the serving version of an active or disabled tool again — after its Docker
    /// image was loaded, its WebAssembly artifact cache was cleared, its bundle's runtime was
    /// repaired — and records what the backend found. The version, its grant and its state
    /// stay as approved: nothing more is asked for, so nothing needs approving. Calls pick up
    /// the new install record with the next call (the tool's revision moves).
    pub async fn reinstall(&self, name: &str, actor: &Actor) -> Result<ToolRow> {
        let current = self
            .store
            .tool(name)
            .await?
            .ok_or_else(|| RuntimeError::tool_not_found(name))?;
        let version = match (&current.status, &current.active_version) {
            (ToolStatus::Active | ToolStatus::Disabled, Some(v)) => v.clone(),
            _ => {
                return Err(RuntimeError::Conflict {
                    tool: name.to_string(),
                    reason: format!(
                        "only an active or disabled tool can be installed again (the tool is {}; \
                         approving installs it)",
                        current.status
                    ),
                });
            }
        };
        let manifest = self.manifest(name, &version).await?;
        let stored = self.store.version(name, &version).await?;
        let previous = stored.as_ref().and_then(|v| v.install_info.clone());
        let bundle_digest = stored.and_then(|v| v.bundle_digest);
        let info = self.install_runtime(&manifest, bundle_digest.as_deref()).await?;
        let mut tx = self.store.begin().await?;
        tx.set_install_info(name, &version, &info).await?;
        let row = ToolRow {
            revision: current.revision + 1,
            updated_at: now_ms(),
            ..current.clone()
        };
        // Against the revision read above: a tool changed meanwhile (upgraded, revoked) is a
        // conflict, not silently given this version's install record.
        tx.save_tool(&row, Some(current.revision)).await?;
        tx.append_record(
            Some(name),
            &actor.0,
            // Both records: what changed (a Docker image's pinned id, say) is on the record.
            &AuditRecord::ToolReinstalled(ToolReinstalled {
                version: version.clone(),
                install: info,
                previous_install: previous.map(Box::new),
            }),
        )
        .await?;
        tx.commit().await?;
        info!(tool = name, %version, "installed again");
        Ok(row)
    }

    /// Creates the state directory and records the volume (keeping its contents if it exists).
    pub(super) async fn ensure_volume(
        &self,
        tx: &mut Tx,
        tool: &str,
        quota_mb: u64,
        now: i64,
    ) -> Result<String> {
        let dir = self.volume_dir(tool);
        std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::io("create", &dir, e))?;
        let path = dir.to_string_lossy().into_owned();
        tx.save_volume(&VolumeRow {
            tool: tool.to_string(),
            path: path.clone(),
            quota_mb: i64::try_from(quota_mb).unwrap_or(i64::MAX),
            created_at: now,
            purged_at: None,
        })
        .await?;
        Ok(path)
    }

    /// Asks the tool's backend to prepare the runtime. A missing backend is not an install
    /// failure: the tool is approved by a person's decision, and calls will fail with the
    /// backend's reason (recorded) until one is available.
    pub(crate) async fn install_runtime(
        &self,
        manifest: &Manifest,
        bundle_digest: Option<&str>,
    ) -> Result<InstallFacts> {
        if let Some(digest) = bundle_digest {
            // Imported through another instance sharing the database: fetch it first.
            self.fetch_bundle(manifest, digest).await?;
        }
        let Some(execution) = &manifest.execution else {
            return Ok(InstallFacts::NotCallable {
                note: "no execution section: the tool cannot be called".to_string(),
            });
        };
        let kind = match execution {
            Execution::Chain { .. } => {
                return Ok(InstallFacts::Chain {
                    note: "runs its steps through their own tools".to_string(),
                });
            }
            Execution::Process { .. }
            | Execution::Wasm { .. }
            | Execution::Docker { .. }
            | Execution::Http
            | Execution::Mcp { .. } => execution.kind(),
        };
        let backend = match self.backends.get(kind) {
            Ok(b) => b,
            Err(e) => {
                return Ok(InstallFacts::NoBackend {
                    runtime: kind.to_string(),
                    reason: e.to_string(),
                });
            }
        };
        // An MCP server may list its tools only with its credential: a remote one in its
        // secret headers, one run here in its secret environment variables.
        let secrets = match execution {
            Execution::Mcp {
                secret_headers,
                secret_env,
                ..
            } if !secret_headers.is_empty() || !secret_env.is_empty() => {
                self.secrets_for(&manifest.name).await?
            }
            _ => Default::default(),
        };
        let request = InstallRequest {
            tool: manifest.name.clone(),
            version: manifest.version.to_string(),
            execution: execution.clone(),
            bundle_dir: bundle_digest.map(|d| self.bundles_dir().join(d)),
            state_dir: self.volume_dir(&manifest.name),
            secrets,
        };
        let info = backend
            .install(&request)
            .await
            .map_err(|e| RuntimeError::Install {
                tool: manifest.name.clone(),
                reason: e.to_string(),
            })?;
        let stored = self
            .store
            .version(&manifest.name, &request.version)
            .await?
            .and_then(|v| v.install_info);
        self.check_mcp_pin(manifest, request.bundle_dir.as_deref(), stored.as_ref(), &info)?;
        Ok(info)
    }
}
