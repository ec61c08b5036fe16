//! Import, approve, install, disable, enable, revoke: each a transaction with one audit event.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use slovo_core::lifecycle::ToolStatus;
use slovo_core::manifest::{Execution, Manifest, parse_manifest};
use slovo_core::permissions::{Grant, Narrowing, Widening};
use slovo_core::time::now_ms;
use slovo_core::upgrade::{Change, Program, changes_what_runs, upgrade_needs_approval};
use slovo_sandbox::InstallRequest;
use slovo_store::{NewGrant, ToolRow, Tx, VersionRow, VolumeRow};
use tracing::info;

use crate::{Actor, Result, Runtime, RuntimeError};

/// What to import.
#[derive(Debug, Clone)]
pub enum ImportSource {
    /// A manifest alone, as bytes; `name` is how errors refer to it (a path, `-`).
    Manifest {
        /// Name for messages.
        name: String,
        /// The manifest's bytes.
        bytes: Vec<u8>,
    },
    /// A bundle: a directory or a tarball holding a manifest and the tool's files.
    Bundle(PathBuf),
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportOutcome {
    /// A new tool, waiting for approval.
    New,
    /// A never-approved tool's pending version was replaced by a newer one.
    PendingReplaced,
    /// A newer version that asks for no more than was granted (and, where the tool could send
    /// something out, runs the same program) now serves calls.
    UpgradedInPlace,
    /// A newer version that asks for more, or that runs another program where the tool has a
    /// network grant or secrets, waits for approval; the approved one keeps serving.
    UpgradePending,
    /// A revoked tool was imported again and waits for approval.
    Reimported,
    /// This exact version was imported before; nothing changed.
    Unchanged,
}

/// The result of an import.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    /// The tool.
    pub tool: String,
    /// The imported version.
    pub version: String,
    /// What happened.
    pub outcome: ImportOutcome,
    /// The tool's status afterwards.
    pub status: ToolStatus,
    /// For upgrades: how the new version asks for more than the grant.
    pub widenings: Vec<Widening>,
    /// For upgrades: how the new version runs something other than the serving one (command,
    /// module, image, bundle, `base_url`, credential header). Reported whether or not it
    /// needed approval.
    pub changes: Vec<Change>,
}

/// How a new version of an approved tool compares with the serving one and its grant.
struct UpgradeCheck {
    widenings: Vec<Widening>,
    changes: Vec<Change>,
    needs_approval: bool,
}

/// A parsed import, ready to store.
struct Prepared {
    manifest: Manifest,
    source_name: String,
    source_text: String,
    bundle_digest: Option<String>,
    digest: String,
    /// What an analysis of the document it came from noted (see [`VersionRow::analysis`]).
    analysis: Option<Value>,
}

/// The result of importing an OpenAPI document: the proposals and the ingester's report.
#[derive(Debug, Clone, Serialize)]
pub struct OpenApiImport {
    /// What the import did to each tool: one, or one per tag of a large API, in the order of
    /// `report.tools`.
    pub imports: Vec<ImportReport>,
    /// Operations, skipped ones with reasons, hosts, required secrets, risks.
    pub report: slovo_openapi::IngestReport,
    /// Which analysis filled descriptions and examples: `offline` or `llm:<model>`.
    pub analysis: String,
}

/// The risk notes of `analysis` for the capabilities of `manifest`, as stored with a version.
fn risk_notes(analysis: &slovo_openapi::Analysis, manifest: &Manifest) -> Vec<Value> {
    analysis
        .capabilities
        .iter()
        .filter(|a| manifest.capabilities.iter().any(|c| c.name == a.name))
        .filter_map(|a| {
            a.risk_note
                .as_ref()
                .map(|note| json!({"capability": a.name, "note": note}))
        })
        .collect()
}

impl Runtime {
    /// Turns an OpenAPI document into a proposal (`pending_approval` for a new tool; an
    /// upgrade of an existing one follows the usual rules): one capability per operation,
    /// the API's hosts as the requested allow list, with the offline analysis applied. A large
    /// API is several proposals, one per tag (see `slovo_openapi::IngestReport::tools`), each
    /// imported like any other; every one is in the result.
    ///
    /// With an `llm` analyzer, its analysis replaces the offline one when the answer is valid;
    /// otherwise the offline analysis stays and the report says why the answer was discarded.
    ///
    /// Every proposal is checked (parsed and validated as a manifest) before the first is
    /// stored, so a document whose parts cannot all be stored stores none. Each part is then
    /// stored in its own transaction; importing the same document again is idempotent, which
    /// completes an import interrupted between parts.
    pub async fn import_openapi(
        &self,
        source: &slovo_openapi::Source,
        options: &slovo_openapi::IngestOptions,
        llm: Option<(&slovo_llm::ChatAnalyzer, &str)>,
        actor: &Actor,
    ) -> Result<OpenApiImport> {
        let mut ingested = slovo_openapi::ingest(source, options)?;
        let mut analysis = "offline".to_string();
        // Per proposal: which analysis it carries and that analysis's risk notes, kept with
        // the version so the person deciding sees them.
        let mut analysis_notes: Vec<(String, Vec<Value>)> = ingested
            .manifests
            .iter()
            .map(|m| ("offline".to_string(), risk_notes(&ingested.analysis, m)))
            .collect();
        if let Some((analyzer, model)) = llm {
            let mut analyzed = 0;
            for (manifest, notes) in ingested.manifests.iter_mut().zip(&mut analysis_notes) {
                match analyzer.analyze(manifest).await {
                    Ok(a) => {
                        a.apply(manifest);
                        *notes = (format!("llm:{model}"), risk_notes(&a, manifest));
                        analyzed += 1;
                    }
                    Err(e) => ingested
                        .report
                        .warnings
                        .push(format!("{}: {e}; the offline analysis was kept", manifest.name)),
                }
            }
            if analyzed > 0 {
                analysis = format!("llm:{model}");
            }
        }
        if ingested.manifests.is_empty() {
            return Err(RuntimeError::OpenApi(
                slovo_openapi::IngestError::NoUsableOperations {
                    source_name: source.name.clone(),
                    skipped: ingested.report.skipped.clone(),
                },
            ));
        }
        let several = ingested.manifests.len() > 1;
        let mut prepared_parts = Vec::with_capacity(ingested.manifests.len());
        for (manifest, notes) in ingested.manifests.iter().zip(&analysis_notes) {
            let source = ImportSource::Manifest {
                name: if several {
                    format!("{}#{}.json", source.name, manifest.name)
                } else {
                    format!("{}.json", source.name)
                },
                bytes: manifest.to_canonical().to_string().into_bytes(),
            };
            // Every part is checked before the first is stored: a part that cannot be stored
            // stops the import before anything is stored.
            let mut prepared = self.prepare_import(source)?;
            prepared.analysis = Some(json!({"by": notes.0, "notes": notes.1}));
            prepared_parts.push(prepared);
        }
        let mut imports = Vec::with_capacity(prepared_parts.len());
        for prepared in prepared_parts {
            imports.push(self.import_prepared(prepared, actor).await?);
        }
        Ok(OpenApiImport {
            imports,
            report: ingested.report,
            analysis,
        })
    }

    /// Imports a manifest or bundle. A new tool waits for approval; a newer version of an
    /// approved tool is upgraded in place if it asks for no more than was granted, and waits
    /// for approval otherwise while the approved version keeps serving.
    pub async fn import(&self, source: ImportSource, actor: &Actor) -> Result<ImportReport> {
        let prepared = self.prepare_import(source)?;
        self.import_prepared(prepared, actor).await
    }

    /// [`Runtime::import`] of a checked proposal.
    async fn import_prepared(&self, prepared: Prepared, actor: &Actor) -> Result<ImportReport> {
        if let Some(digest) = &prepared.bundle_digest {
            self.share_bundle(digest).await?;
        }
        let m = &prepared.manifest;
        let name = m.name.clone();
        let version = m.version.to_string();

        let current = self.store.tool(&name).await?;
        // An in-place upgrade of an installed tool must be installed before it serves. One
        // that will wait for approval is not installed now (approval installs it): nothing of
        // an unapproved version is fetched or prepared.
        let mut installed = None;
        if let Some(t) = &current
            && matches!(t.status, ToolStatus::Active | ToolStatus::Disabled)
            && let Some(grant_id) = t.grant_id
            && let Some(g) = self.store.grant(grant_id).await?
            && self.store.version(&name, &version).await?.is_none()
            && !self
                .check_upgrade(t, &g.grant, m, prepared.bundle_digest.as_deref(), None)
                .await?
                .needs_approval
        {
            installed = Some(self.install_runtime(m, prepared.bundle_digest.as_deref()).await?);
        }

        let mut tx = self.store.begin().await?;
        let now = now_ms();
        let existing = tx.tool(&name).await?;
        let known = tx.version(&name, &version).await?;
        let revoked = existing.as_ref().is_some_and(|t| t.status == ToolStatus::Revoked);
        if let Some(v) = &known
            && revoked
            && v.digest == prepared.digest
        {
            // The same version of a revoked tool, imported again: it waits for approval anew.
            let t = existing.as_ref().map(|t| t.revision).unwrap_or_default();
            let row = ToolRow {
                status: ToolStatus::PendingApproval,
                active_version: None,
                pending_version: Some(version.clone()),
                grant_id: None,
                revision: t + 1,
                updated_at: now,
                ..existing
                    .clone()
                    .ok_or_else(|| RuntimeError::tool_not_found(&name))?
            };
            tx.save_tool(&row, Some(t)).await?;
            tx.append_audit(
                "tool.imported",
                Some(&name),
                &actor.0,
                &json!({"version": version, "outcome": ImportOutcome::Reimported, "digest": prepared.digest,
                        "source": prepared.source_name, "requested": m.permissions, "widenings": []}),
            )
            .await?;
            tx.commit().await?;
            return Ok(ImportReport {
                tool: name,
                version,
                outcome: ImportOutcome::Reimported,
                status: ToolStatus::PendingApproval,
                widenings: vec![],
                changes: vec![],
            });
        }
        if let Some(v) = known {
            tx.rollback().await?;
            if v.digest == prepared.digest {
                let status = existing.map(|t| t.status).unwrap_or(ToolStatus::PendingApproval);
                return Ok(ImportReport {
                    tool: name,
                    version,
                    outcome: ImportOutcome::Unchanged,
                    status,
                    widenings: vec![],
                    changes: vec![],
                });
            }
            return Err(RuntimeError::Conflict {
                tool: name,
                reason: format!(
                    "version {version} was already imported with different content; give the new content a new version"
                ),
            });
        }
        let (outcome, row, widenings, changes, expected) = match existing {
            None => {
                let row = ToolRow {
                    name: name.clone(),
                    status: ToolStatus::PendingApproval,
                    active_version: None,
                    pending_version: Some(version.clone()),
                    grant_id: None,
                    revision: 1,
                    created_at: now,
                    updated_at: now,
                };
                (ImportOutcome::New, row, vec![], vec![], None)
            }
            Some(t) => {
                check_newer(&t, m)?;
                let expected = Some(t.revision);
                let mut row = ToolRow {
                    revision: t.revision + 1,
                    updated_at: now,
                    ..t.clone()
                };
                match t.status {
                    ToolStatus::Revoked => {
                        row.status = ToolStatus::PendingApproval;
                        row.active_version = None;
                        row.pending_version = Some(version.clone());
                        row.grant_id = None;
                        (ImportOutcome::Reimported, row, vec![], vec![], expected)
                    }
                    ToolStatus::PendingApproval => {
                        row.pending_version = Some(version.clone());
                        (ImportOutcome::PendingReplaced, row, vec![], vec![], expected)
                    }
                    ToolStatus::Approved | ToolStatus::Active | ToolStatus::Disabled => {
                        let grant_id = t.grant_id.ok_or_else(|| RuntimeError::Conflict {
                            tool: name.clone(),
                            reason: "approved tool has no grant (corrupt state)".into(),
                        })?;
                        let grant =
                            self.store
                                .grant(grant_id)
                                .await?
                                .ok_or_else(|| RuntimeError::NotFound {
                                    what: "grant",
                                    name: grant_id.to_string(),
                                })?;
                        // Decided again here, inside the transaction: the head lock serialises
                        // this with every grant, secret and lifecycle change, and the tool's
                        // revision (checked on save) moves with each of them.
                        let image_id = installed.as_ref().and_then(pinned_image);
                        let check = self
                            .check_upgrade(&t, &grant.grant, m, prepared.bundle_digest.as_deref(), image_id)
                            .await?;
                        if check.needs_approval {
                            row.pending_version = Some(version.clone());
                            (
                                ImportOutcome::UpgradePending,
                                row,
                                check.widenings,
                                check.changes,
                                expected,
                            )
                        } else {
                            if installed.is_none()
                                && matches!(t.status, ToolStatus::Active | ToolStatus::Disabled)
                            {
                                // The tool changed between the first look and this one (a
                                // secret removed, say): never serve a version not installed.
                                return Err(RuntimeError::Conflict {
                                    tool: name,
                                    reason: "the tool changed while the version was being imported; import it again"
                                        .into(),
                                });
                            }
                            row.active_version = Some(version.clone());
                            row.pending_version = None;
                            (
                                ImportOutcome::UpgradedInPlace,
                                row,
                                vec![],
                                check.changes,
                                expected,
                            )
                        }
                    }
                }
            }
        };
        tx.save_tool(&row, expected).await?;
        tx.insert_version(&VersionRow {
            tool: name.clone(),
            version: version.clone(),
            manifest: m.to_canonical(),
            digest: prepared.digest.clone(),
            source_name: prepared.source_name.clone(),
            source_text: prepared.source_text.clone(),
            bundle_digest: prepared.bundle_digest.clone(),
            // What the backend found when this version was installed for an in-place upgrade;
            // calls run from it (a Docker tool's pinned image id).
            install_info: installed,
            imported_at: now,
            analysis: prepared.analysis.clone(),
        })
        .await?;
        let kind = match outcome {
            ImportOutcome::UpgradedInPlace => "tool.upgraded",
            ImportOutcome::UpgradePending => "tool.upgrade_pending",
            _ => "tool.imported",
        };
        tx.append_audit(
            kind,
            Some(&name),
            &actor.0,
            &json!({
                "version": version,
                "outcome": outcome,
                "digest": prepared.digest,
                "source": prepared.source_name,
                "requested": m.permissions,
                "widenings": widenings,
                "changes": changes,
            }),
        )
        .await?;
        tx.commit().await?;
        info!(tool = %name, %version, ?outcome, "imported");
        Ok(ImportReport {
            tool: name,
            version,
            outcome,
            status: row.status,
            widenings,
            changes,
        })
    }

    /// Compares a new version with the serving version of an approved tool `t` and its grant:
    /// what it asks for beyond the grant, what it runs differently, and whether either needs
    /// a person (`slovo_core::upgrade`). `image_id` is the new version's pinned image, if it
    /// was installed already.
    async fn check_upgrade(
        &self,
        t: &ToolRow,
        grant: &Grant,
        m: &Manifest,
        bundle_digest: Option<&str>,
        image_id: Option<&str>,
    ) -> Result<UpgradeCheck> {
        let widenings = m.permissions.widenings_over(grant);
        let changes = match &t.active_version {
            Some(serving) => {
                let row = self.store.version(&t.name, serving).await?;
                let old = self.manifest(&t.name, serving).await?;
                let old_bundle = row.as_ref().and_then(|v| v.bundle_digest.as_deref());
                let old_image = row
                    .as_ref()
                    .and_then(|v| v.install_info.as_ref())
                    .and_then(pinned_image);
                changes_what_runs(
                    &Program {
                        manifest: &old,
                        bundle_digest: old_bundle,
                        image_id: old_image,
                    },
                    &Program {
                        manifest: m,
                        bundle_digest,
                        image_id,
                    },
                )
            }
            None => vec![],
        };
        let holds_secrets = !self.store.secrets(&t.name).await?.is_empty();
        // A chain's approval pins the tools its steps reach: a new version of a chain (or a
        // tool becoming or ceasing to be one) is approved by a person, whatever it changes.
        let serving_is_chain = match &t.active_version {
            Some(v) => matches!(
                self.manifest(&t.name, v).await?.execution,
                Some(Execution::Chain { .. })
            ),
            None => false,
        };
        let chain = serving_is_chain || matches!(m.execution, Some(Execution::Chain { .. }));
        let needs_approval = chain || upgrade_needs_approval(&widenings, &changes, grant, holds_secrets);
        Ok(UpgradeCheck {
            widenings,
            changes,
            needs_approval,
        })
    }

    fn prepare_import(&self, source: ImportSource) -> Result<Prepared> {
        let (source_name, bytes, staged) = match source {
            ImportSource::Manifest { name, bytes } => (name, bytes, None),
            ImportSource::Bundle(path) => {
                // Copied and hashed first; the manifest and the files it names are then read
                // from the private copy, which is what gets installed.
                let staged = slovo_bundle::stage(&path, &self.bundles_dir())?;
                let (file_name, bytes) = staged.manifest()?;
                let shown = format!("{}/{}", path.display(), file_name);
                (shown, bytes, Some(staged))
            }
        };
        let manifest = parse_manifest(&source_name, &bytes)?;
        let source_text = String::from_utf8_lossy(&bytes).into_owned();
        let bundle_digest = match staged {
            Some(staged) => {
                staged.check_files_named_by(&manifest)?;
                Some(staged.commit()?)
            }
            None => {
                if matches!(
                    manifest.execution,
                    Some(Execution::Process { .. } | Execution::Wasm { .. } | Execution::Mcp { .. })
                ) {
                    return Err(RuntimeError::InvalidBundle {
                        path: PathBuf::from(&source_name),
                        reason: format!(
                            "a {} tool ships files: import its bundle directory or tarball, not the manifest alone",
                            manifest
                                .execution
                                .as_ref()
                                .map(Execution::kind)
                                .unwrap_or_default()
                        ),
                    });
                }
                None
            }
        };
        let mut h = Sha256::new();
        h.update(manifest.to_canonical().to_string());
        if let Some(b) = &bundle_digest {
            h.update(b"\nbundle:");
            h.update(b);
        }
        let digest = hex::encode(h.finalize());
        Ok(Prepared {
            manifest,
            source_name,
            source_text,
            bundle_digest,
            digest,
            analysis: None,
        })
    }

    /// Approves a tool's pending version with grants narrowed by `narrowing`, then installs
    /// it (runtime prepared, state volume created) and makes it active. Approving an approved
    /// tool whose install failed retries the install.
    pub async fn approve(&self, name: &str, narrowing: &Narrowing, actor: &Actor) -> Result<ToolRow> {
        let current = self
            .store
            .tool(name)
            .await?
            .ok_or_else(|| RuntimeError::tool_not_found(name))?;
        let mut tool = current.clone();
        let to_approve = match current.pending_version.clone() {
            Some(v) => Some(v),
            // A serving chain whose approval no longer holds is approved again as it is.
            None => self.serving_chain_version(&current).await?,
        };
        if let Some(version) = to_approve {
            if current.status == ToolStatus::PendingApproval {
                current
                    .status
                    .check_transition(ToolStatus::Approved)
                    .map_err(|source| RuntimeError::Transition {
                        tool: name.to_string(),
                        source,
                    })?;
            }
            let manifest = self.manifest(name, &version).await?;
            let grant =
                Grant::narrowed(&manifest.permissions, narrowing).map_err(|source| RuntimeError::Grant {
                    tool: name.to_string(),
                    source,
                })?;
            // An upgrade of a serving tool is installed before it replaces the serving version.
            let upgrading = matches!(current.status, ToolStatus::Active | ToolStatus::Disabled);
            let install_info = if upgrading {
                let digest = self
                    .store
                    .version(name, &version)
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
                    version: version.clone(),
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
                tx.set_install_info(name, &version, info).await?;
                self.ensure_volume(&mut tx, name, grant.storage_quota_mb, now)
                    .await?;
            }
            tool = ToolRow {
                status: if upgrading {
                    current.status
                } else {
                    ToolStatus::Approved
                },
                active_version: Some(version.clone()),
                pending_version: None,
                grant_id: Some(grant_id),
                revision: current.revision + 1,
                updated_at: now,
                ..current.clone()
            };
            tx.save_tool(&tool, Some(current.revision)).await?;
            tx.append_audit(
                "tool.approved",
                Some(name),
                &actor.0,
                &json!({
                    "version": version,
                    "previous_version": current.active_version,
                    "requested": manifest.permissions,
                    "granted": grant,
                    "step_grants": pins.iter().map(|(t, g)| json!({"tool": t, "grant_id": g})).collect::<Vec<_>>(),
                }),
            )
            .await?;
            tx.commit().await?;
            info!(tool = name, %version, "approved");
        } else if current.status != ToolStatus::Approved {
            return Err(RuntimeError::Conflict {
                tool: name.to_string(),
                reason: format!(
                    "nothing to approve (the tool is {} and has no pending version)",
                    current.status
                ),
            });
        }
        if tool.status == ToolStatus::Approved {
            tool = self.install(&tool, actor).await?;
        }
        Ok(tool)
    }

    /// `approved → active`: prepares the runtime and the state volume.
    async fn install(&self, tool: &ToolRow, actor: &Actor) -> Result<ToolRow> {
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
        tx.append_audit(
            "tool.installed",
            Some(name),
            &actor.0,
            &json!({"version": version, "volume": volume, "install": info}),
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
        tx.append_audit(
            "tool.reinstalled",
            Some(name),
            &actor.0,
            // Both records: what changed (a Docker image's pinned id, say) is on the record.
            &json!({"version": version, "install": info, "previous_install": previous}),
        )
        .await?;
        tx.commit().await?;
        info!(tool = name, %version, "installed again");
        Ok(row)
    }

    /// Creates the state directory and records the volume (keeping its contents if it exists).
    async fn ensure_volume(&self, tx: &mut Tx, tool: &str, quota_mb: u64, now: i64) -> Result<String> {
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
    ) -> Result<Value> {
        if let Some(digest) = bundle_digest {
            // Imported through another instance sharing the database: fetch it first.
            self.fetch_bundle(manifest, digest).await?;
        }
        let Some(execution) = &manifest.execution else {
            return Ok(json!({"runtime": "none", "note": "no execution section: the tool cannot be called"}));
        };
        if matches!(execution, Execution::Chain { .. }) {
            return Ok(json!({"runtime": "chain", "note": "runs its steps through their own tools"}));
        }
        let backend = match self.backends.get(execution.kind()) {
            Ok(b) => b,
            Err(e) => return Ok(json!({"runtime": execution.kind(), "deferred": e.to_string()})),
        };
        let request = InstallRequest {
            tool: manifest.name.clone(),
            version: manifest.version.to_string(),
            execution: execution.clone(),
            bundle_dir: bundle_digest.map(|d| self.bundles_dir().join(d)),
            state_dir: self.volume_dir(&manifest.name),
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

    /// `active → disabled`.
    pub async fn disable(&self, name: &str, actor: &Actor) -> Result<ToolRow> {
        self.transition(name, ToolStatus::Disabled, "tool.disabled", actor, json!({}))
            .await
    }

    /// `disabled → active`.
    pub async fn enable(&self, name: &str, actor: &Actor) -> Result<ToolRow> {
        self.transition(name, ToolStatus::Active, "tool.enabled", actor, json!({}))
            .await
    }

    /// `* → revoked`, keeping the tool's state or destroying it.
    pub async fn revoke(&self, name: &str, purge_state: bool, actor: &Actor) -> Result<ToolRow> {
        let volume = self.store.volume(name).await?;
        let row = self
            .transition_with(
                name,
                ToolStatus::Revoked,
                "tool.revoked",
                actor,
                json!({"purge_state": purge_state}),
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
                tx.append_audit("tool.state_purged", Some(name), &actor.0, &json!({"path": dir}))
                    .await?;
                tx.commit().await?;
            }
        }
        Ok(row)
    }

    async fn transition(
        &self,
        name: &str,
        to: ToolStatus,
        kind: &str,
        actor: &Actor,
        payload: Value,
    ) -> Result<ToolRow> {
        self.transition_with(name, to, kind, actor, payload, |_| {}).await
    }

    async fn transition_with(
        &self,
        name: &str,
        to: ToolStatus,
        kind: &str,
        actor: &Actor,
        mut payload: Value,
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
        if let Some(obj) = payload.as_object_mut() {
            obj.insert("from".into(), json!(current.status));
            obj.insert("to".into(), json!(to));
            if !chains.is_empty() {
                obj.insert("chains_needing_approval".into(), json!(chains));
            }
        }
        tx.append_audit(kind, Some(name), &actor.0, &payload).await?;
        tx.commit().await?;
        // Nothing prepared for the tool before the change serves a call after it.
        self.backends.forget_tool(name).await;
        info!(tool = name, from = %current.status, to = %to, "transition");
        Ok(row)
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

    /// The manifest of a stored version.
    pub(crate) async fn manifest(&self, name: &str, version: &str) -> Result<Manifest> {
        Ok(self.compiled(name, version).await?.manifest.clone())
    }

    pub(crate) async fn grant_of(&self, tool: &ToolRow) -> Result<Grant> {
        let id = tool.grant_id.ok_or_else(|| RuntimeError::NotCallable {
            tool: tool.name.clone(),
            status: tool.status.to_string(),
            hint: "it has no grant; approve it first".into(),
        })?;
        Ok(self
            .store
            .grant(id)
            .await?
            .ok_or_else(|| RuntimeError::NotFound {
                what: "grant",
                name: id.to_string(),
            })?
            .grant)
    }
}

/// The image id a Docker install pinned, from its install record.
pub(crate) fn pinned_image(info: &Value) -> Option<&str> {
    info.get("image_id").and_then(Value::as_str)
}

/// Refuses to import a version older than the serving or pending one.
fn check_newer(t: &ToolRow, m: &Manifest) -> Result<()> {
    for v in [&t.active_version, &t.pending_version].into_iter().flatten() {
        if let Ok(existing) = semver::Version::parse(v)
            && m.version < existing
            && t.status != ToolStatus::Revoked
        {
            return Err(RuntimeError::Conflict {
                tool: t.name.clone(),
                reason: format!("version {} is older than the imported {existing}", m.version),
            });
        }
    }
    Ok(())
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
