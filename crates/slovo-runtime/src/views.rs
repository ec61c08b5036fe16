//! Read models: what `tool list`, `tool show`, `executions`, `audit verify`, a status change,
//! `token list` and `discover list` report. Each front end serialises these, never a store row,
//! so the CLI's `--json`, REST and MCP answer in one shape.

use serde::Serialize;
use serde_json::Value;
use slovo_core::access::Role;
use slovo_core::install::{InstallFacts, ToolListChangedNote};
use slovo_core::lifecycle::ToolStatus;
use slovo_core::permissions::{Grant, Permissions, Widening};
use slovo_core::secrets::secrets_used;
use slovo_core::upgrade::{Change, Program, changes_what_runs};
use slovo_store::{DiscoveryRow, DiscoveryStatus, TokenRow, ToolRow, VolumeRow};

use crate::{Result, Runtime, RuntimeError};

/// One line of `tool list`.
#[derive(Debug, Clone, Serialize)]
pub struct ToolSummary {
    /// The tool.
    pub name: String,
    /// Lifecycle status.
    pub status: ToolStatus,
    /// The serving (or, before approval, the proposed) version.
    pub version: Option<String>,
    /// A newer version waiting for approval.
    pub pending_version: Option<String>,
    /// `process`, `wasm`, `docker`, `http` or `none`.
    pub runtime: String,
    /// Capabilities of the shown version.
    pub capabilities: Vec<String>,
    /// Description.
    pub description: String,
}

/// Where a tool's lifecycle stands after a status change (`disable`, `enable`, `revoke`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolStateView {
    /// The tool.
    pub name: String,
    /// Its lifecycle status.
    pub status: ToolStatus,
    /// The version that serves calls (set at approval).
    pub active_version: Option<String>,
    /// A newer version waiting for approval.
    pub pending_version: Option<String>,
    /// The id of the grant in force.
    pub grant_id: Option<i64>,
    /// Bumped on every change of the tool.
    pub revision: i64,
    /// First import (Unix ms).
    pub created_at: i64,
    /// Last change (Unix ms).
    pub updated_at: i64,
}

impl From<ToolRow> for ToolStateView {
    fn from(row: ToolRow) -> ToolStateView {
        let ToolRow {
            name,
            status,
            active_version,
            pending_version,
            grant_id,
            revision,
            created_at,
            updated_at,
        } = row;
        ToolStateView {
            name,
            status,
            active_version,
            pending_version,
            grant_id,
            revision,
            created_at,
            updated_at,
        }
    }
}

/// An API token as listed: never its secret, nor the hash of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenView {
    /// Public identifier (part of the token).
    pub id: String,
    /// What it may do.
    pub role: Role,
    /// A person's note on what it is for.
    pub label: Option<String>,
    /// Created (Unix ms).
    pub created_at: i64,
    /// Last used (Unix ms), updated at most once a minute.
    pub last_used_at: Option<i64>,
    /// Revoked (Unix ms).
    pub revoked_at: Option<i64>,
}

impl From<TokenRow> for TokenView {
    fn from(row: TokenRow) -> TokenView {
        let TokenRow {
            id,
            role,
            token_hash: _,
            label,
            created_at,
            last_used_at,
            revoked_at,
        } = row;
        TokenView {
            id,
            role,
            label,
            created_at,
            last_used_at,
            revoked_at,
        }
    }
}

/// A request to find a tool for a need no installed tool serves.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiscoveryRequestView {
    /// Id (UUID v7).
    pub id: String,
    /// The need, in the person's or planner's words.
    pub description: String,
    /// Where it stands.
    pub status: DiscoveryStatus,
    /// What the worker found: the chosen candidate, the runners-up, the sources.
    pub result: Option<Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// The tool proposed for it (`pending_approval` until the person decides).
    pub proposal_tool: Option<String>,
    /// Created (Unix ms).
    pub created_at: i64,
    /// Last change (Unix ms).
    pub updated_at: i64,
}

impl From<DiscoveryRow> for DiscoveryRequestView {
    fn from(row: DiscoveryRow) -> DiscoveryRequestView {
        let DiscoveryRow {
            id,
            description,
            status,
            result,
            error,
            proposal_tool,
            created_at,
            updated_at,
        } = row;
        DiscoveryRequestView {
            id,
            description,
            status,
            result,
            error,
            proposal_tool,
            created_at,
            updated_at,
        }
    }
}

/// One version in `tool show`.
#[derive(Debug, Clone, Serialize)]
pub struct VersionView {
    /// The version.
    pub version: String,
    /// `active` (serving), `pending_approval` or `superseded`.
    pub state: &'static str,
    /// When imported (RFC 3339).
    pub imported_at: String,
    /// Content digest.
    pub digest: String,
    /// Where it came from.
    pub source: String,
    /// An MCP server that answered a call with another tool list than the one approved: the
    /// difference and the digest of what it served (the version waits for approval again).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_list_changed: Option<ToolListChangedNote>,
    /// What the analysis of the OpenAPI document it came from noted: `{"by": "offline" |
    /// "llm:<model>", "notes": [{"capability", "note"}]}`. Unverified words, to be shown inert.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Value>,
}

/// Everything `tool show` reports.
#[derive(Debug, Clone, Serialize)]
pub struct ToolView {
    /// The tool.
    pub name: String,
    /// Lifecycle status.
    pub status: ToolStatus,
    /// Serving version.
    pub active_version: Option<String>,
    /// Version waiting for approval.
    pub pending_version: Option<String>,
    /// The manifest shown (the pending one if any, else the serving one), canonical.
    pub manifest: Value,
    /// What the shown manifest requests.
    pub requested: Permissions,
    /// What is granted now.
    pub granted: Option<Grant>,
    /// How the pending version asks for more than the grant.
    pub pending_widenings: Vec<Widening>,
    /// How the pending version runs something other than the serving one (command, module,
    /// image, bundle, `base_url`, credential header).
    pub pending_changes: Vec<Change>,
    /// Secrets the shown version's calls look up that the serving version's did not (every
    /// one it looks up when nothing serves yet), by name ([`slovo_core::secrets::secrets_used`]).
    pub new_secrets: Vec<String>,
    /// The state volume.
    pub volume: Option<VolumeRow>,
    /// Every imported version.
    pub versions: Vec<VersionView>,
    /// For a chain: its steps, the tools they reach, the union of their grants, its hints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<crate::chain::ChainView>,
}

/// The result of a successful `audit verify`.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    /// Events verified, on every chain.
    pub events: i64,
    /// Chains verified: 1, and on PostgreSQL one more for each instance that opened a chain
    /// for its calls' results.
    pub chains: i64,
    /// Hash of the last event.
    pub head_hash: String,
    /// Signed checkpoints in the log, all verified.
    pub checkpoints: i64,
    /// The event the newest checkpoint records (0 when there is none).
    pub checkpoint_seq: i64,
    /// Events after the newest checkpoint: the ones a truncation could still remove unseen.
    /// On every chain: chain 1's after the checkpoint's event, each other chain's after the
    /// head the newest anchor under that checkpoint records.
    pub unchecked_events: i64,
}

impl Runtime {
    /// Every tool.
    pub async fn list(&self) -> Result<Vec<ToolSummary>> {
        let mut out = Vec::new();
        for t in self.store.tools().await? {
            let shown = t.active_version.clone().or_else(|| t.pending_version.clone());
            let (runtime, capabilities, description) = match &shown {
                Some(v) => {
                    let m = self.manifest(&t.name, v).await?;
                    (
                        m.execution
                            .as_ref()
                            .map(|e| e.kind())
                            .unwrap_or("none")
                            .to_string(),
                        m.capabilities.iter().map(|c| c.name.clone()).collect(),
                        m.description.clone(),
                    )
                }
                None => ("none".into(), vec![], String::new()),
            };
            let pending_version = if t.active_version.is_some() {
                t.pending_version.clone()
            } else {
                None
            };
            out.push(ToolSummary {
                name: t.name,
                status: t.status,
                version: shown,
                pending_version,
                runtime,
                capabilities,
                description,
            });
        }
        Ok(out)
    }

    /// One tool in full: requested versus granted, status, versions.
    pub async fn show(&self, name: &str) -> Result<ToolView> {
        let t: ToolRow = self
            .store
            .tool(name)
            .await?
            .ok_or_else(|| RuntimeError::tool_not_found(name))?;
        let shown = t
            .pending_version
            .clone()
            .or_else(|| t.active_version.clone())
            .ok_or_else(|| RuntimeError::NotFound {
                what: "version",
                name: name.to_string(),
            })?;
        let manifest = self.manifest(name, &shown).await?;
        let granted = match t.grant_id {
            Some(id) => self.store.grant(id).await?.map(|g| g.grant),
            None => None,
        };
        let pending_widenings = match (&t.pending_version, &granted) {
            (Some(_), Some(g)) => manifest.permissions.widenings_over(g),
            _ => vec![],
        };
        let stored = self.store.versions(name).await?;
        let serving_manifest = match &t.active_version {
            Some(serving) if t.status != ToolStatus::PendingApproval && serving != &shown => {
                Some(self.manifest(name, serving).await?)
            }
            _ => None,
        };
        let serving_secrets = serving_manifest.as_ref().map(secrets_used).unwrap_or_default();
        let new_secrets = secrets_used(&manifest)
            .difference(&serving_secrets)
            .cloned()
            .collect();
        let pending_changes = match (&t.active_version, &t.pending_version) {
            (Some(serving), Some(pending)) if t.status != ToolStatus::PendingApproval => {
                let program = |v: &str| {
                    let row = stored.iter().find(|r| r.version == v);
                    (
                        row.and_then(|r| r.bundle_digest.as_deref()),
                        row.and_then(|r| r.install_info.as_ref())
                            .and_then(InstallFacts::pinned_image),
                    )
                };
                let old = self.manifest(name, serving).await?;
                let (old_bundle, old_image) = program(serving);
                let (new_bundle, new_image) = program(pending);
                changes_what_runs(
                    &Program {
                        manifest: &old,
                        bundle_digest: old_bundle,
                        image_id: old_image,
                    },
                    &Program {
                        manifest: &manifest,
                        bundle_digest: new_bundle,
                        image_id: new_image,
                    },
                )
            }
            _ => vec![],
        };
        let versions = stored
            .into_iter()
            .map(|v| VersionView {
                state: if Some(&v.version) == t.active_version.as_ref()
                    && t.status != ToolStatus::PendingApproval
                {
                    "active"
                } else if Some(&v.version) == t.pending_version.as_ref() {
                    "pending_approval"
                } else {
                    "superseded"
                },
                imported_at: slovo_core::time::to_rfc3339(v.imported_at),
                tool_list_changed: v
                    .install_info
                    .as_ref()
                    .and_then(InstallFacts::listed_tools)
                    .and_then(|listed| listed.tool_list_changed.clone()),
                digest: v.digest,
                source: v.source_name,
                analysis: v.analysis,
                version: v.version,
            })
            .collect();
        Ok(ToolView {
            name: t.name.clone(),
            status: t.status,
            active_version: t.active_version.clone(),
            pending_version: t.pending_version.clone(),
            manifest: manifest.to_canonical(),
            requested: manifest.permissions.clone(),
            granted,
            pending_widenings,
            pending_changes,
            new_secrets,
            volume: self.store.volume(name).await?,
            versions,
            chain: self.chain_view(&t, &manifest).await?,
        })
    }
}
