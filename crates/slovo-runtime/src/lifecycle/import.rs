//! Import: a manifest, a bundle or an OpenAPI document becomes a proposal, a replaced pending
//! version, an in-place upgrade or an upgrade that waits for approval.

use std::path::PathBuf;

use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use slovo_core::audit::AuditRecord;
use slovo_core::audit::record::ToolImported;
use slovo_core::install::InstallFacts;
use slovo_core::lifecycle::ToolStatus;
use slovo_core::manifest::{Execution, Manifest, parse_manifest};
use slovo_core::permissions::{Grant, Widening};
use slovo_core::time::now_ms;
use slovo_core::upgrade::{Change, Program, changes_what_runs, upgrade_needs_approval};
use slovo_store::{SecretRow, ToolRow, Tx, VersionRow};
use tracing::info;

use crate::audit_record::AppendRecord;
use crate::secrets::save_sealed;
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

pub use slovo_core::lifecycle::ImportOutcome;

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

impl Prepared {
    /// The tool's name and the version's, as stored.
    fn name_and_version(&self) -> (String, String) {
        (self.manifest.name.clone(), self.manifest.version.to_string())
    }
}

/// What an import of a new version does to its tool, decided inside the import's transaction.
struct ImportDecision {
    outcome: ImportOutcome,
    /// The tool's row afterwards.
    row: ToolRow,
    /// The revision the row is saved against (`None` for a new tool).
    expected_revision: Option<i64>,
    widenings: Vec<Widening>,
    changes: Vec<Change>,
}

impl ImportDecision {
    fn of(outcome: ImportOutcome, row: ToolRow, expected_revision: Option<i64>) -> Self {
        ImportDecision {
            outcome,
            row,
            expected_revision,
            widenings: vec![],
            changes: vec![],
        }
    }
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
            imports.push(self.import_prepared(prepared, &[], actor).await?);
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
        self.import_with_secrets(source, &[], actor).await
    }

    /// [`Runtime::import`], storing `sealed` secrets of the tool ([`Runtime::seal_secret`]) in
    /// the same transaction as the proposal, each with its `secret.set` event: both are
    /// stored or neither.
    pub(crate) async fn import_with_secrets(
        &self,
        source: ImportSource,
        sealed: &[SecretRow],
        actor: &Actor,
    ) -> Result<ImportReport> {
        let prepared = self.prepare_import(source)?;
        self.import_prepared(prepared, sealed, actor).await
    }

    /// [`Runtime::import`] of a checked proposal.
    async fn import_prepared(
        &self,
        prepared: Prepared,
        sealed: &[SecretRow],
        actor: &Actor,
    ) -> Result<ImportReport> {
        if let Some(digest) = &prepared.bundle_digest {
            self.share_bundle(digest).await?;
        }
        let installed = self.install_if_upgrading_in_place(&prepared).await?;
        let (name, version) = prepared.name_and_version();
        let mut tx = self.store.begin().await?;
        let existing = tx.tool(&name).await?;
        if let Some(known) = tx.version(&name, &version).await? {
            return self
                .import_known_version(tx, &prepared, existing, &known, sealed, actor)
                .await;
        }
        let now = now_ms();
        let decision = self
            .decide_import(existing, &prepared, installed.as_ref(), now)
            .await?;
        tx.save_tool(&decision.row, decision.expected_revision).await?;
        tx.insert_version(&VersionRow {
            tool: name.clone(),
            version: version.clone(),
            manifest: prepared.manifest.to_canonical(),
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
        // The outcome decides the kind: `tool.imported`, `tool.upgraded` or `tool.upgrade_pending`.
        tx.append_record(
            Some(&name),
            &actor.0,
            &AuditRecord::ToolImported(ToolImported {
                version: version.clone(),
                outcome: decision.outcome,
                digest: prepared.digest.clone(),
                source: prepared.source_name.clone(),
                requested: prepared.manifest.permissions.clone(),
                widenings: decision.widenings.clone(),
                changes: Some(decision.changes.clone()),
            }),
        )
        .await?;
        save_sealed(&mut tx, sealed, actor).await?;
        tx.commit().await?;
        info!(tool = %name, %version, outcome = ?decision.outcome, "imported");
        Ok(ImportReport {
            tool: name,
            version,
            outcome: decision.outcome,
            status: decision.row.status,
            widenings: decision.widenings,
            changes: decision.changes,
        })
    }

    /// An in-place upgrade of an installed tool must be installed before it serves. One that
    /// will wait for approval is not installed now (approval installs it): nothing of an
    /// unapproved version is fetched or prepared. Returns the install record, if installed.
    async fn install_if_upgrading_in_place(&self, prepared: &Prepared) -> Result<Option<InstallFacts>> {
        let m = &prepared.manifest;
        let (name, version) = prepared.name_and_version();
        if let Some(t) = self.store.tool(&name).await?
            && matches!(t.status, ToolStatus::Active | ToolStatus::Disabled)
            && let Some(grant_id) = t.grant_id
            && let Some(g) = self.store.grant(grant_id).await?
            && self.store.version(&name, &version).await?.is_none()
            && !self
                .check_upgrade(&t, &g.grant, m, prepared.bundle_digest.as_deref(), None)
                .await?
                .needs_approval
        {
            return Ok(Some(
                self.install_runtime(m, prepared.bundle_digest.as_deref()).await?,
            ));
        }
        Ok(None)
    }

    /// A version imported before: the same version of a revoked tool waits for approval anew;
    /// otherwise the same content changes nothing and other content is a conflict.
    async fn import_known_version(
        &self,
        mut tx: Tx,
        prepared: &Prepared,
        existing: Option<ToolRow>,
        known: &VersionRow,
        sealed: &[SecretRow],
        actor: &Actor,
    ) -> Result<ImportReport> {
        let (name, version) = prepared.name_and_version();
        let same_content = known.digest == prepared.digest;
        match existing {
            Some(t) if t.status == ToolStatus::Revoked && same_content => {
                let revision = t.revision;
                let row = ToolRow {
                    status: ToolStatus::PendingApproval,
                    active_version: None,
                    pending_version: Some(version.clone()),
                    grant_id: None,
                    revision: revision + 1,
                    updated_at: now_ms(),
                    ..t
                };
                tx.save_tool(&row, Some(revision)).await?;
                tx.append_record(
                    Some(&name),
                    &actor.0,
                    &AuditRecord::ToolImported(ToolImported {
                        version: version.clone(),
                        outcome: ImportOutcome::Reimported,
                        digest: prepared.digest.clone(),
                        source: prepared.source_name.clone(),
                        requested: prepared.manifest.permissions.clone(),
                        widenings: vec![],
                        changes: None,
                    }),
                )
                .await?;
                save_sealed(&mut tx, sealed, actor).await?;
                tx.commit().await?;
                Ok(ImportReport {
                    tool: name,
                    version,
                    outcome: ImportOutcome::Reimported,
                    status: ToolStatus::PendingApproval,
                    widenings: vec![],
                    changes: vec![],
                })
            }
            existing => {
                if same_content && existing.is_some() && !sealed.is_empty() {
                    // The proposal is unchanged; the secrets given with it are stored.
                    save_sealed(&mut tx, sealed, actor).await?;
                    tx.commit().await?;
                } else {
                    tx.rollback().await?;
                }
                if !same_content {
                    return Err(RuntimeError::Conflict {
                        tool: name,
                        reason: format!(
                            "version {version} was already imported with different content; give the new content a new version"
                        ),
                    });
                }
                Ok(ImportReport {
                    tool: name,
                    version,
                    outcome: ImportOutcome::Unchanged,
                    status: existing.map(|t| t.status).unwrap_or(ToolStatus::PendingApproval),
                    widenings: vec![],
                    changes: vec![],
                })
            }
        }
    }

    /// What a new version does to its tool: a new tool, a replaced pending version, a
    /// re-import of a revoked tool, or an upgrade (in place or waiting for approval).
    async fn decide_import(
        &self,
        existing: Option<ToolRow>,
        prepared: &Prepared,
        installed: Option<&InstallFacts>,
        now: i64,
    ) -> Result<ImportDecision> {
        let m = &prepared.manifest;
        let (name, version) = prepared.name_and_version();
        let Some(t) = existing else {
            let row = ToolRow {
                name,
                status: ToolStatus::PendingApproval,
                active_version: None,
                pending_version: Some(version),
                grant_id: None,
                revision: 1,
                created_at: now,
                updated_at: now,
            };
            return Ok(ImportDecision::of(ImportOutcome::New, row, None));
        };
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
                row.pending_version = Some(version);
                row.grant_id = None;
                Ok(ImportDecision::of(ImportOutcome::Reimported, row, expected))
            }
            ToolStatus::PendingApproval => {
                row.pending_version = Some(version);
                Ok(ImportDecision::of(ImportOutcome::PendingReplaced, row, expected))
            }
            ToolStatus::Approved | ToolStatus::Active | ToolStatus::Disabled => {
                let grant_id = t.grant_id.ok_or_else(|| RuntimeError::Conflict {
                    tool: name.clone(),
                    reason: "approved tool has no grant (corrupt state)".into(),
                })?;
                let grant = self
                    .store
                    .grant(grant_id)
                    .await?
                    .ok_or_else(|| RuntimeError::NotFound {
                        what: "grant",
                        name: grant_id.to_string(),
                    })?;
                // Decided again here, inside the transaction: the head lock serialises this
                // with every grant, secret and lifecycle change, and the tool's revision
                // (checked on save) moves with each of them.
                let image_id = installed.and_then(InstallFacts::pinned_image);
                let check = self
                    .check_upgrade(&t, &grant.grant, m, prepared.bundle_digest.as_deref(), image_id)
                    .await?;
                if check.needs_approval {
                    row.pending_version = Some(version);
                    return Ok(ImportDecision {
                        widenings: check.widenings,
                        changes: check.changes,
                        ..ImportDecision::of(ImportOutcome::UpgradePending, row, expected)
                    });
                }
                if installed.is_none() && matches!(t.status, ToolStatus::Active | ToolStatus::Disabled) {
                    // The tool changed between the first look and this one (a secret removed,
                    // say): never serve a version not installed.
                    return Err(RuntimeError::Conflict {
                        tool: name,
                        reason: "the tool changed while the version was being imported; import it again"
                            .into(),
                    });
                }
                row.active_version = Some(version);
                row.pending_version = None;
                Ok(ImportDecision {
                    changes: check.changes,
                    ..ImportDecision::of(ImportOutcome::UpgradedInPlace, row, expected)
                })
            }
        }
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
                    .and_then(InstallFacts::pinned_image);
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
