//! Capability gaps and discovery: resolve a request against the installed and proposed tools,
//! open a discovery request when nothing fits, and the worker that searches the configured
//! sources and imports the best candidate as a proposal.
//!
//! Every status change of a request is one store transaction with one audit event
//! (`discovery.requested`, `discovery.searching`, `discovery.found`, `discovery.failed`,
//! `discovery.rejected`, and `discovery.pending` when an abandoned search is requeued); importing the proposal is the ordinary import (`tool.imported`).

use std::sync::{Arc, RwLock};

use serde::Serialize;
use serde_json::{Value, json};
use slovo_core::audit::AuditRecord;
use slovo_core::audit::record::{DiscoveryMoved, DiscoveryRejected, DiscoveryRequested, DiscoveryState};
use slovo_core::lifecycle::ToolStatus;
use slovo_core::time::now_ms;
use slovo_discovery::sources::{Catalogue, SourceConfig};
use slovo_discovery::{
    Document, GapModel, GapRule, Index, Ranker, Resolution, Semantic, SemanticIndex, need_key,
};
use slovo_openapi::{RemoteFetchError, RemoteFetcher};
use slovo_sandbox::http::{FetchError, FetchFailure};
use slovo_store::{DiscoveryRow, DiscoveryStatus};
use tracing::{info, warn};

use crate::audit_record::AppendRecord;
use crate::{Actor, DiscoveryRequestView, Result, Runtime, RuntimeError};

/// How many candidates `resolve` returns by default.
pub const DEFAULT_RESOLVE_LIMIT: usize = 5;

/// A request `searching` for longer than this was abandoned (its worker crashed or stopped)
/// and goes back to `pending`.
pub const STALE_SEARCH_MS: i64 = 10 * 60 * 1000;

/// Which tools (name, revision) an index was built from.
type Fingerprint = Vec<(String, i64)>;

/// The capability index over installed and proposed tools, rebuilt when a tool changes.
#[derive(Default)]
pub(crate) struct DiscoveryCache {
    index: RwLock<Option<(Fingerprint, Arc<CapabilityIndex>)>>,
    /// The LLM judge of borderline gap decisions, made when first needed.
    pub(crate) judge: tokio::sync::OnceCell<slovo_llm::GapJudge>,
}

impl DiscoveryCache {
    /// Whether an index was built (someone resolves on this runtime).
    pub(crate) fn has_index(&self) -> bool {
        self.index.read().is_ok_and(|i| i.is_some())
    }
}

/// The lexical index and, with an embedder, the vectors of its documents.
pub(crate) struct CapabilityIndex {
    lexical: Index,
    semantic: Option<SemanticIndex>,
}

/// The answer of [`Runtime::resolve`].
#[derive(Debug, Clone, Serialize)]
pub struct ResolveOutcome {
    /// Ranked capabilities, or a gap.
    #[serde(flatten)]
    pub resolution: Resolution,
    /// For a gap: the discovery request that carries it (new, or the equivalent one already
    /// open).
    pub discovery: Option<DiscoveryRef>,
    /// How the gap decision was made (rule, model, or the LLM judge).
    pub decision: crate::judge::GapDecision,
}

/// A discovery request opened (or found open) for a gap.
#[derive(Debug, Clone, Serialize)]
pub struct DiscoveryRef {
    /// The request.
    pub id: String,
    /// Its status.
    pub status: DiscoveryStatus,
    /// Whether this resolve created it (false: an equivalent request was already open).
    pub created: bool,
}

/// Fetches the OpenAPI documents of [`SourceConfig::openapi_urls`] with
/// [`slovo_sandbox::http::fetch_document`]: http(s) only, public addresses only (every
/// resolution and redirect is checked) unless [`UrlFetcher::allow_private_addresses`], a
/// 30-second timeout and a size cap.
///
/// [`slovo_openapi::RemoteFetcher`] is synchronous (the catalogue is loaded off the async
/// runtime), so each fetch runs on a short-lived thread with its own single-threaded tokio
/// runtime; that works whether the caller is inside a runtime or not.
#[derive(Debug, Clone)]
pub struct UrlFetcher {
    /// Allow loopback, private and link-local addresses (`http.allow_private`).
    pub allow_private_addresses: bool,
    /// Which addresses count as public (`egress.also_public`).
    pub public: slovo_core::net::PublicPolicy,
    /// Largest document accepted, in bytes.
    pub max_bytes: usize,
}

impl Default for UrlFetcher {
    fn default() -> Self {
        UrlFetcher {
            allow_private_addresses: false,
            public: slovo_core::net::PublicPolicy::strict(),
            max_bytes: slovo_openapi::DEFAULT_MAX_DOCUMENT_BYTES,
        }
    }
}

impl RemoteFetcher for UrlFetcher {
    fn fetch(&self, url: &url::Url) -> std::result::Result<Vec<u8>, RemoteFetchError> {
        slovo_sandbox::http::ensure_tls_provider();
        let link = url.to_string();
        let config = slovo_sandbox::http::HttpConfig {
            max_response_bytes: self.max_bytes,
            allow_private_addresses: self.allow_private_addresses,
            public: self.public.clone(),
            ..slovo_sandbox::http::HttpConfig::default()
        };
        std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| RemoteFetchError::Transport(Box::new(e)))?;
                rt.block_on(slovo_sandbox::http::fetch_document_with(&link, &config))
                    .map(|(_, bytes)| bytes)
                    .map_err(|e| self.remote_fetch_error(e))
            })
            .join()
            .unwrap_or_else(|_| Err(RemoteFetchError::Transport("the download panicked".into())))
        })
    }
}

impl UrlFetcher {
    /// The sandbox's reason (without the URL: the catalogue's problem line names it), and for
    /// an address the public rule refuses, the settings that would allow it.
    fn remote_fetch_error(&self, e: FetchError) -> RemoteFetchError {
        match e.failure {
            FetchFailure::Refused(ref refusal) | FetchFailure::RedirectRefused { ref refusal, .. } => {
                let reason = e.failure.to_string();
                let reason = if !self.allow_private_addresses && refusal.is_address() {
                    format!(
                        "{reason} (discovery fetches public addresses only; `http.allow_private` (SLOVO_HTTP_ALLOW_PRIVATE=1) or `egress.also_public` in the configuration allows others)"
                    )
                } else {
                    reason
                };
                RemoteFetchError::Refused { reason }
            }
            FetchFailure::TooLarge { max_bytes } => RemoteFetchError::TooLarge { max_bytes },
            FetchFailure::Status(status) => RemoteFetchError::Status {
                status: status.to_string(),
            },
            FetchFailure::TimedOut => RemoteFetchError::TimedOut,
            other @ (FetchFailure::InvalidUrl(_)
            | FetchFailure::TooManyRedirects { .. }
            | FetchFailure::Transport(_)
            | FetchFailure::Client(_)) => RemoteFetchError::Transport(Box::new(other)),
        }
    }
}

/// What one pass of the discovery worker did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DiscoveryRun {
    /// Requests taken up, in their final state.
    pub processed: Vec<DiscoveryRow>,
    /// Candidates the sources offered.
    pub candidates: usize,
    /// Files or URLs of the sources that could not be used.
    pub problems: Vec<String>,
}

impl Runtime {
    /// Ranks the capabilities of active and proposed tools for `query`, with scores and the
    /// arguments the request already gives, or reports a gap by the calibrated rule. A gap opens
    /// a discovery request unless an equivalent one (same content words) is already open.
    pub async fn resolve(&self, query: &str, limit: usize, actor: &Actor) -> Result<ResolveOutcome> {
        let index = self.capability_index().await?;
        let query_vector = self.query_vector(&index, query).await;
        let (semantic, ranker) = match (&index.semantic, &query_vector) {
            (Some(vectors), Some(q)) => (
                Some(Semantic {
                    index: vectors,
                    query: q,
                }),
                crate::semantic::FUSED_RANKER,
            ),
            _ => (None, Ranker::Lexical),
        };
        let mut resolution = slovo_discovery::resolve_with(
            &index.lexical,
            semantic,
            query,
            limit.max(1),
            ranker,
            &GapRule::default(),
            &GapModel::default(),
        );
        let decision = self.judge_gap(query, &mut resolution).await;
        let discovery = if resolution.gap && !need_key(query).is_empty() {
            let (row, created) = self.request_discovery(query, actor).await?;
            Some(DiscoveryRef {
                id: row.id,
                status: row.status,
                created,
            })
        } else {
            None
        };
        Ok(ResolveOutcome {
            resolution,
            discovery,
            decision,
        })
    }

    /// Which ranking `resolve` uses: lexical, or fused with the configured embedding model
    /// (loaded and asked for one vector here, so a broken model shows).
    pub async fn discovery_ranking(&self) -> crate::RankingReport {
        crate::semantic::probe(self.settings.embedder.as_deref()).await
    }

    /// Opens a discovery request for `description`, or returns the equivalent open one
    /// (`false`).
    pub async fn request_discovery(&self, description: &str, actor: &Actor) -> Result<(DiscoveryRow, bool)> {
        let key = need_key(description);
        let mut tx = self.store.begin().await?;
        // The transaction holds the audit head, so no other request can slip in between.
        if let Some(open) = tx
            .open_discovery_requests()
            .await?
            .into_iter()
            .find(|r| need_key(&r.description) == key)
        {
            tx.rollback().await?;
            return Ok((open, false));
        }
        let now = now_ms();
        let row = DiscoveryRow {
            id: uuid::Uuid::now_v7().to_string(),
            description: description.to_string(),
            status: DiscoveryStatus::Pending,
            result: None,
            error: None,
            proposal_tool: None,
            created_at: now,
            updated_at: now,
        };
        tx.insert_discovery_request(&row).await?;
        tx.append_record(
            None,
            &actor.0,
            &AuditRecord::DiscoveryRequested(DiscoveryRequested {
                request: row.id.clone(),
                description: description.to_string(),
                status: discovery_state(row.status),
            }),
        )
        .await?;
        tx.commit().await?;
        info!(request = %row.id, "discovery requested");
        Ok((row, true))
    }

    /// Every discovery request, oldest first.
    pub async fn discovery_requests(&self) -> Result<Vec<DiscoveryRequestView>> {
        let rows = self.store.discovery_requests(None).await?;
        Ok(rows.into_iter().map(DiscoveryRequestView::from).collect())
    }

    /// One discovery request.
    pub async fn discovery_request(&self, id: &str) -> Result<DiscoveryRequestView> {
        self.store
            .discovery_request(id)
            .await?
            .map(DiscoveryRequestView::from)
            .ok_or_else(|| RuntimeError::NotFound {
                what: "discovery request",
                name: id.to_string(),
            })
    }

    /// The person does not want what a request asks for (or what it found): the request
    /// becomes `rejected`, and its proposal, if still waiting for approval, is revoked.
    /// Rejecting a rejected request changes nothing.
    pub async fn reject_request(&self, id: &str, actor: &Actor) -> Result<DiscoveryRequestView> {
        let mut tx = self.store.begin().await?;
        let current = tx
            .discovery_request(id)
            .await?
            .ok_or_else(|| RuntimeError::NotFound {
                what: "discovery request",
                name: id.to_string(),
            })?;
        if current.status == DiscoveryStatus::Rejected {
            tx.rollback().await?;
            return Ok(current.into());
        }
        let row = DiscoveryRow {
            status: DiscoveryStatus::Rejected,
            updated_at: now_ms(),
            ..current.clone()
        };
        if !tx.update_discovery_request(&row, current.status).await? {
            tx.rollback().await?;
            return Err(RuntimeError::Store(slovo_store::StoreError::Conflict(format!(
                "discovery request {id} changed meanwhile; try again"
            ))));
        }
        tx.append_record(
            row.proposal_tool.as_deref(),
            &actor.0,
            &AuditRecord::DiscoveryRejected(DiscoveryRejected {
                request: id.to_string(),
                from: discovery_state(current.status),
                status: discovery_state(row.status),
            }),
        )
        .await?;
        tx.commit().await?;
        if let Some(tool) = &row.proposal_tool {
            self.withdraw_proposal(tool, actor).await?;
        }
        Ok(row.into())
    }

    /// One pass of the discovery worker: requeues searches abandoned for longer than
    /// [`STALE_SEARCH_MS`], loads the sources (only if a request is pending), then takes up
    /// every pending request: `pending → searching → found | failed`.
    pub async fn run_discovery_once(&self, sources: &SourceConfig, actor: &Actor) -> Result<DiscoveryRun> {
        let stale_before = now_ms() - STALE_SEARCH_MS;
        for r in self
            .store
            .discovery_requests(Some(DiscoveryStatus::Searching))
            .await?
        {
            if r.updated_at < stale_before {
                warn!(request = %r.id, "requeueing an abandoned search");
                self.move_request(&r, DiscoveryStatus::Searching, actor, |r| {
                    r.status = DiscoveryStatus::Pending;
                })
                .await?;
            }
        }
        let pending = self
            .store
            .discovery_requests(Some(DiscoveryStatus::Pending))
            .await?;
        let mut run = DiscoveryRun::default();
        if pending.is_empty() {
            return Ok(run);
        }
        let config = sources.clone();
        let catalogue = tokio::task::spawn_blocking(move || {
            let catalogue = Catalogue::load(&config);
            let (index, owner) = catalogue.index();
            (catalogue, index, owner)
        })
        .await;
        let (catalogue, index, owner) = match catalogue {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "loading the discovery sources panicked");
                (Catalogue::default(), Index::build(vec![]), vec![])
            }
        };
        run.candidates = catalogue.candidates.len();
        run.problems = catalogue.problems.clone();
        let vectors = self.catalogue_vectors(&index).await;
        for request in pending {
            let Some(searching) = self
                .move_request(&request, DiscoveryStatus::Pending, actor, |r| {
                    r.status = DiscoveryStatus::Searching;
                })
                .await?
            else {
                continue; // another worker took it, or the person rejected it
            };
            let outcome = self
                .search_and_propose(
                    &searching,
                    sources,
                    &catalogue,
                    (&index, vectors.as_ref()),
                    &owner,
                    actor,
                )
                .await;
            let done = match outcome {
                Ok((tool, result)) => {
                    let done = self
                        .move_request(&searching, DiscoveryStatus::Searching, actor, |r| {
                            r.status = DiscoveryStatus::Found;
                            r.proposal_tool = Some(tool.clone());
                            r.result = Some(result);
                        })
                        .await?;
                    if done.is_none() {
                        // Rejected while we searched: take the proposal back.
                        self.withdraw_proposal(&tool, actor).await?;
                    }
                    done
                }
                Err((reason, result)) => {
                    self.move_request(&searching, DiscoveryStatus::Searching, actor, |r| {
                        r.status = DiscoveryStatus::Failed;
                        r.error = Some(reason);
                        r.result = result;
                    })
                    .await?
                }
            };
            if let Some(row) = done {
                info!(request = %row.id, status = %row.status, "discovery request processed");
                run.processed.push(row);
            }
        }
        Ok(run)
    }

    /// Ranks the catalogue for the request and imports the best candidate. `Err` carries the
    /// reason the request fails and what was looked at.
    async fn search_and_propose(
        &self,
        request: &DiscoveryRow,
        sources: &SourceConfig,
        catalogue: &Catalogue,
        (index, vectors): (&Index, Option<&SemanticIndex>),
        owner: &[usize],
        actor: &Actor,
    ) -> std::result::Result<(String, Value), (String, Option<Value>)> {
        if sources.is_empty() {
            return Err((
                "no discovery sources are configured (--source-dir, --catalogue, --openapi-url, --mcp-registry)".into(),
                None,
            ));
        }
        if catalogue.candidates.is_empty() {
            let why = match catalogue.problems.first() {
                Some(p) => format!(
                    "the sources offer no usable candidate ({} problems, first: {p})",
                    catalogue.problems.len()
                ),
                None => "the sources offer no candidate".to_string(),
            };
            return Err((why, None));
        }
        let r = self.rank_catalogue(index, vectors, &request.description).await;
        let ranked: Vec<Value> = r
            .candidates
            .iter()
            .map(|c| {
                let cand = &catalogue.candidates[owner[c.doc]];
                json!({
                    "tool": c.tool, "capability": c.capability, "description": c.description,
                    "score": c.score, "normalized": c.normalized, "coverage": c.coverage,
                    "similarity": c.similarity, "confident": c.confident, "source": cand.origin, "kind": cand.kind,
                    "arguments": c.arguments, "missing": c.missing,
                })
            })
            .collect();
        let searched = json!({"candidates": catalogue.candidates.len(), "capabilities": index.len(), "problems": catalogue.problems.len()});
        let best = match (r.gap, r.candidates.first()) {
            (false, Some(best)) => best,
            _ => {
                let reason = format!(
                    "nothing in the sources fits: {}",
                    r.gap_reason.unwrap_or_else(|| "no candidate".into())
                );
                return Err((reason, Some(json!({"runners_up": ranked, "searched": searched}))));
            }
        };
        let candidate = &catalogue.candidates[owner[best.doc]];
        // An MCP registry server is imported to be callable (`mcp_import/discovered.rs`).
        let (report, mcp) = self
            .propose_candidate(candidate, actor)
            .await
            .map_err(|e| (format!("importing {} failed: {e}", candidate.origin), None))?;
        let chosen = ranked.first().cloned().unwrap_or(Value::Null);
        let runners_up: Vec<Value> = ranked.into_iter().skip(1).take(5).collect();
        Ok((
            report.tool.clone(),
            json!({
                "proposal": {"tool": report.tool, "version": report.version, "status": report.status,
                             "outcome": report.outcome, "mcp": mcp},
                "chosen": chosen,
                "runners_up": runners_up,
                "searched": searched,
            }),
        ))
    }

    /// Moves a request from `from` to what `change` makes of it, in one audited transaction;
    /// `None` when the request is no longer in `from`.
    async fn move_request(
        &self,
        request: &DiscoveryRow,
        from: DiscoveryStatus,
        actor: &Actor,
        change: impl FnOnce(&mut DiscoveryRow),
    ) -> Result<Option<DiscoveryRow>> {
        let mut row = request.clone();
        change(&mut row);
        row.updated_at = now_ms();
        let mut tx = self.store.begin().await?;
        if !tx.update_discovery_request(&row, from).await? {
            tx.rollback().await?;
            return Ok(None);
        }
        // The kind follows the new status: `discovery.searching`, `discovery.found`, …
        tx.append_record(
            row.proposal_tool.as_deref(),
            &actor.0,
            &AuditRecord::DiscoveryMoved(DiscoveryMoved {
                request: row.id.clone(),
                from: discovery_state(from),
                status: discovery_state(row.status),
                error: row.error.clone(),
                proposal_tool: row.proposal_tool.clone(),
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(row))
    }

    /// Revokes a proposal that still waits for approval (it was made for a rejected request).
    async fn withdraw_proposal(&self, tool: &str, actor: &Actor) -> Result<()> {
        if let Some(t) = self.store.tool(tool).await?
            && t.status == ToolStatus::PendingApproval
        {
            self.revoke(tool, false, actor).await?;
        }
        Ok(())
    }

    /// The vectors of the catalogue's capabilities when an embedder is configured (from the
    /// store's cache, so only the first pass over a catalogue embeds it); `None` without an
    /// embedder or when embedding fails (logged: the worker then ranks lexically).
    async fn catalogue_vectors(&self, index: &Index) -> Option<SemanticIndex> {
        let embedder = self.settings.embedder.as_ref()?;
        if index.is_empty() {
            return None;
        }
        match crate::semantic::document_vectors(&self.store, embedder, index).await {
            Ok((vectors, embedded)) => {
                info!(embedded, capabilities = index.len(), "catalogue vectors ready");
                Some(vectors)
            }
            Err(e) => {
                warn!(error = %e, "embedding the catalogue failed; the worker ranks lexically");
                None
            }
        }
    }

    /// Ranks the catalogue for a discovery request the way `resolve` ranks installed tools: by
    /// meaning too when the catalogue has vectors and the request can be embedded, with the
    /// gap model; lexically with the gap rule otherwise.
    async fn rank_catalogue(
        &self,
        index: &Index,
        vectors: Option<&SemanticIndex>,
        description: &str,
    ) -> Resolution {
        let query = match (vectors, self.settings.embedder.as_ref()) {
            (Some(_), Some(embedder)) => match embedder.embed(vec![description.to_string()]).await {
                Ok(mut v) => v.pop(),
                Err(e) => {
                    warn!(error = %e, "embedding the discovery request failed; ranking lexically");
                    None
                }
            },
            _ => None,
        };
        let (semantic, ranker) = match (vectors, &query) {
            (Some(index), Some(query)) => (Some(Semantic { index, query }), crate::semantic::FUSED_RANKER),
            _ => (None, Ranker::Lexical),
        };
        slovo_discovery::resolve_with(
            index,
            semantic,
            description,
            10,
            ranker,
            &GapRule::default(),
            &GapModel::default(),
        )
    }

    /// The request's vector, when there is an embedder and the capabilities have vectors.
    /// A failure falls back to lexical ranking (logged), never fails the request.
    async fn query_vector(&self, index: &CapabilityIndex, query: &str) -> Option<Vec<f32>> {
        index.semantic.as_ref()?;
        let embedder = self.settings.embedder.as_ref()?;
        match embedder.embed(vec![query.to_string()]).await {
            Ok(mut v) => v.pop(),
            Err(e) => {
                warn!(error = %e, "embedding the request failed; ranking lexically");
                None
            }
        }
    }

    /// The index over active, approved, disabled-excluded and proposed tools (with their
    /// vectors when an embedder is configured), rebuilt only when a tool's revision changed.
    pub(crate) async fn capability_index(&self) -> Result<Arc<CapabilityIndex>> {
        let tools = self.store.tools().await?;
        let servable: Vec<_> = tools
            .into_iter()
            .filter(|t| {
                matches!(
                    t.status,
                    ToolStatus::Active | ToolStatus::Approved | ToolStatus::PendingApproval
                )
            })
            .collect();
        let fingerprint: Fingerprint = servable.iter().map(|t| (t.name.clone(), t.revision)).collect();
        if let Ok(cache) = self.discovery.index.read()
            && let Some((fp, index)) = cache.as_ref()
            && *fp == fingerprint
        {
            return Ok(index.clone());
        }
        let mut docs = Vec::new();
        for t in &servable {
            let version = match t.status {
                ToolStatus::PendingApproval => t.pending_version.clone().or_else(|| t.active_version.clone()),
                _ => t.active_version.clone().or_else(|| t.pending_version.clone()),
            };
            let Some(version) = version else { continue };
            let compiled = self.compiled(&t.name, &version).await?;
            docs.extend(Document::from_manifest(&compiled.manifest, t.status.as_str()));
        }
        let lexical = Index::build(docs);
        let semantic = match &self.settings.embedder {
            None => None,
            Some(embedder) => {
                match crate::semantic::document_vectors(&self.store, embedder, &lexical).await {
                    Ok((vectors, _)) => Some(vectors),
                    Err(e) => {
                        warn!(error = %e, "embedding the capabilities failed; ranking lexically");
                        None
                    }
                }
            }
        };
        // An index whose vectors failed is not kept: the next request tries again.
        let complete = self.settings.embedder.is_none() || semantic.is_some();
        let index = Arc::new(CapabilityIndex { lexical, semantic });
        if complete && let Ok(mut cache) = self.discovery.index.write() {
            *cache = Some((fingerprint, index.clone()));
        }
        Ok(index)
    }
}

/// A request's status as its audit events spell it.
fn discovery_state(status: DiscoveryStatus) -> DiscoveryState {
    match status {
        DiscoveryStatus::Pending => DiscoveryState::Pending,
        DiscoveryStatus::Searching => DiscoveryState::Searching,
        DiscoveryStatus::Found => DiscoveryState::Found,
        DiscoveryStatus::Failed => DiscoveryState::Failed,
        DiscoveryStatus::Rejected => DiscoveryState::Rejected,
    }
}
