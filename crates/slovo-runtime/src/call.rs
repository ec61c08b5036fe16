//! The call path: lookup → grant → validate → record as running → sandbox → record → audit.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::Value;
use sha2::{Digest, Sha256};
use slovo_core::audit::AuditRecord;
use slovo_core::audit::record::CallFinished;
use slovo_core::execution::{CallTarget, ExecutionStatus, Outcome, SandboxSpec};
use slovo_core::install::InstallFacts;
use slovo_core::lifecycle::ToolStatus;
use slovo_core::manifest::{Capability, Execution, Manifest, parse_manifest};
use slovo_core::permissions::Grant;
use slovo_core::secrets::Secrets;
use slovo_core::time::now_ms;
use slovo_sandbox::mcp::ToolListChange;
use slovo_store::{ExecutionResult, FinishAudit, NewExecution, ToolRow};
use tracing::{debug, info, warn};

use crate::chain::{ChainCall, StepRecord};
use crate::executions::ExecutionView;
use crate::{Actor, Result, Runtime, RuntimeError};

/// Most bytes of stderr kept on an execution record.
const MAX_STORED_STDERR: usize = 64 * 1024;

/// One call of a capability.
#[derive(Debug, Clone)]
pub struct CallRequest {
    /// The tool.
    pub tool: String,
    /// The capability.
    pub capability: String,
    /// The arguments (validated against the capability's schema).
    pub arguments: Value,
    /// The assistant's conversation, for the record.
    pub conversation_id: Option<String>,
    /// The turn within the conversation.
    pub turn_id: Option<String>,
    /// Who called.
    pub actor: Actor,
}

/// A call made as a step of a chain.
pub(crate) struct StepOf {
    /// The chain's execution.
    pub parent_execution_id: String,
    /// What is left of the chain's budget: the step's timeout is its grant's, narrowed to it.
    pub time_left: Duration,
}

/// A stored version's manifest with its argument validators compiled once.
pub struct CompiledTool {
    /// The manifest.
    pub manifest: Manifest,
    validators: HashMap<String, jsonschema::Validator>,
}

impl Runtime {
    /// The compiled form of a stored version (cached; versions never change once imported).
    pub async fn compiled(&self, tool: &str, version: &str) -> Result<Arc<CompiledTool>> {
        let key = (tool.to_string(), version.to_string());
        if let Ok(cache) = self.compiled.read()
            && let Some(c) = cache.get(&key)
        {
            return Ok(c.clone());
        }
        let row = self
            .store
            .version(tool, version)
            .await?
            .ok_or_else(|| RuntimeError::NotFound {
                what: "version",
                name: format!("{tool} {version}"),
            })?;
        let manifest = parse_manifest(
            &format!("stored manifest of {tool} {version}"),
            row.manifest.to_string().as_bytes(),
        )?;
        let mut validators = HashMap::new();
        for cap in &manifest.capabilities {
            // The schema was checked at import; failing here means the row was edited.
            let v = jsonschema::validator_for(&cap.parameters).map_err(|e| RuntimeError::Conflict {
                tool: tool.to_string(),
                reason: format!("stored schema of {} no longer compiles: {e}", cap.name),
            })?;
            validators.insert(cap.name.clone(), v);
        }
        let compiled = Arc::new(CompiledTool { manifest, validators });
        if let Ok(mut cache) = self.compiled.write() {
            cache.insert(key, compiled.clone());
        }
        Ok(compiled)
    }

    /// Everything about an active tool that a call needs besides its arguments, read from the
    /// store in one go.
    async fn load_serving(&self, name: &str) -> Result<Arc<Serving>> {
        let tool = self
            .store
            .tool(name)
            .await?
            .ok_or_else(|| RuntimeError::tool_not_found(name))?;
        if tool.status != ToolStatus::Active {
            let hint = match tool.status {
                ToolStatus::PendingApproval => "a person must approve it first (slovo tool approve)",
                ToolStatus::Approved => "it is approved but not installed yet (slovo tool approve retries)",
                ToolStatus::Disabled => "enable it first (slovo tool enable)",
                ToolStatus::Revoked => "it was revoked; import and approve it again",
                ToolStatus::Active => "",
            };
            return Err(RuntimeError::NotCallable {
                tool: tool.name.clone(),
                status: tool.status.to_string(),
                hint: hint.to_string(),
            });
        }
        let grant = self.grant_of(&tool).await?;
        let version = tool
            .active_version
            .clone()
            .ok_or_else(|| RuntimeError::Conflict {
                tool: tool.name.clone(),
                reason: "active tool has no version (corrupt state)".into(),
            })?;
        let compiled = self.compiled(&tool.name, &version).await?;
        let (bundle_digest, install_info) = self
            .store
            .version(&tool.name, &version)
            .await?
            .map(|v| (v.bundle_digest, v.install_info))
            .unwrap_or_default();
        if let Some(digest) = &bundle_digest
            && self.fetch_bundle(&compiled.manifest, digest).await?
        {
            // Approved and installed through another instance: prepare it here too.
            self.install_runtime(&compiled.manifest, Some(digest)).await?;
        }
        // State volumes are per instance (docs/deployment.md): a tool approved through another
        // instance gets its empty one here on first use, as approval made it there.
        let state_dir = self.volume_dir(&tool.name);
        if !state_dir.is_dir() {
            std::fs::create_dir_all(&state_dir).map_err(|e| RuntimeError::io("create", &state_dir, e))?;
        }
        let secrets = self.secrets_for(&tool.name).await?;
        let serving = Arc::new(Serving {
            bundle_dir: bundle_digest.map(|d| self.bundles_dir().join(d)),
            state_dir: self.volume_dir(&tool.name),
            tool,
            grant,
            version,
            compiled,
            install_info,
            secrets,
        });
        if let Ok(mut cache) = self.serving.write() {
            cache.insert(name.to_string(), serving.clone());
        }
        Ok(serving)
    }

    pub(crate) fn forget_serving(&self, name: &str) {
        if let Ok(mut cache) = self.serving.write() {
            cache.remove(name);
        }
    }

    /// Calls a capability. Refusals (unknown tool, not active, expired grant, invalid
    /// arguments) return an error and write nothing. Once the arguments are valid the call is
    /// recorded as `running`, run in its backend with a spec derived from the grant only, and
    /// its result recorded and audited; a tool failure is a recorded execution, not an error.
    ///
    /// The tool, grant, version and secrets come from a per-tool snapshot that is re-read
    /// whenever it could be stale: the statement that records the call as `running` succeeds
    /// only if the tool is still active at the snapshot's revision (every lifecycle change,
    /// grant and secret bumps it, from any process sharing the database), and a refusal
    /// decided on a cached snapshot is re-checked on a fresh one before it is returned.
    pub async fn call(&self, req: CallRequest) -> Result<ExecutionView> {
        self.call_inner(req, None).await
    }

    /// A call made by a chain: the same path as [`Runtime::call`], recorded with the chain's
    /// execution as its parent and bounded by what is left of the chain's budget. Boxed because
    /// a chain's call runs its steps' calls.
    pub(crate) fn call_step(
        &self,
        req: CallRequest,
        step_of: StepOf,
    ) -> Pin<Box<dyn Future<Output = Result<ExecutionView>> + Send + '_>> {
        Box::pin(self.call_inner(req, Some(step_of)))
    }

    async fn call_inner(&self, req: CallRequest, step_of: Option<StepOf>) -> Result<ExecutionView> {
        let id = uuid::Uuid::now_v7().to_string();
        let admitted = self.admit_and_record_running(&req, &id, step_of.as_ref()).await?;
        let guard = InflightGuard::new(self, &id);
        let spec = admitted.sandbox_spec(&id, &req, step_of.as_ref())?;
        let clock = Instant::now();
        let (outcome, chain_steps) = self.run_in_sandbox(&id, &spec, &req).await;
        let duration_ms = i64::try_from(clock.elapsed().as_millis()).unwrap_or(i64::MAX);
        let result = execution_result(&id, outcome, &admitted.serving.secrets, duration_ms);
        let record = finished_record(
            &id,
            &admitted,
            &req,
            &spec,
            &result,
            step_of.as_ref(),
            chain_steps,
        );
        self.record_finished(&id, &admitted, &result, &record, &req.actor, guard)
            .await?;
        self.follow_mcp_tool_list_change(&admitted, &spec.execution, &result, &req.actor)
            .await;
        let capability = admitted.capability();
        info!(execution = %id, tool = %admitted.serving.tool.name, capability = %capability.name,
              status = %result.status, duration_ms, "call finished");
        Ok(admitted.record_as_stored(id, req, result, step_of))
    }

    /// Every refusal decided before anything is written, then the `running` record: the call's
    /// snapshot of its tool is checked and, when the tool changed under it (or a refusal was
    /// decided on a cached snapshot), read again and checked again.
    async fn admit_and_record_running(
        &self,
        req: &CallRequest,
        id: &str,
        step_of: Option<&StepOf>,
    ) -> Result<Admitted> {
        let cached = self.serving.read().ok().and_then(|c| c.get(&req.tool).cloned());
        let mut from_cache = cached.is_some();
        let mut serving = match cached {
            Some(s) => s,
            None => self.load_serving(&req.tool).await?,
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            let checked = match check_call(&serving, req) {
                Ok(c) => self.check_chain(&serving, req, step_of).await.map(|()| c),
                Err(e) => Err(e),
            };
            let (capability_index, capability) = match checked {
                Ok(c) => c,
                Err(e) if from_cache => {
                    debug!(tool = %req.tool, error = %e, "refusal on a cached snapshot; re-reading");
                    self.forget_serving(&req.tool);
                    serving = self.load_serving(&req.tool).await?;
                    from_cache = false;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let started_at = now_ms();
            let recorded = self
                .store
                .insert_running_execution_at(
                    &NewExecution {
                        id: id.to_string(),
                        tool: serving.tool.name.clone(),
                        version: serving.version.clone(),
                        capability: capability.name.clone(),
                        arguments: req.arguments.clone(),
                        conversation_id: req.conversation_id.clone(),
                        turn_id: req.turn_id.clone(),
                        actor: req.actor.0.clone(),
                        started_at,
                        instance_id: self.instance_id.clone(),
                        parent_execution_id: step_of.map(|p| p.parent_execution_id.clone()),
                    },
                    serving.tool.revision,
                )
                .await?;
            if recorded {
                return Ok(Admitted {
                    serving,
                    capability_index,
                    started_at,
                });
            }
            // The tool changed since the snapshot was read: read it again and re-check.
            self.forget_serving(&req.tool);
            if attempts >= 3 {
                return Err(RuntimeError::Conflict {
                    tool: req.tool.clone(),
                    reason: "the tool kept changing while the call was being recorded; retry".into(),
                });
            }
            serving = self.load_serving(&req.tool).await?;
            from_cache = false;
        }
    }

    /// The refusals that only a chain has: a chain called as a step of a chain, and a chain
    /// whose step tools no longer hold the grants pinned at its approval. The step tools'
    /// state is read fresh each time; the chain's own grant comes from the snapshot.
    async fn check_chain(
        &self,
        serving: &Serving,
        req: &CallRequest,
        step_of: Option<&StepOf>,
    ) -> Result<()> {
        let Some(Execution::Chain { steps, .. }) = &serving.compiled.manifest.execution else {
            return Ok(());
        };
        if step_of.is_some() {
            return Err(RuntimeError::NotRunnable {
                tool: req.tool.clone(),
                reason: "it is a chain, and chains do not call chains".into(),
            });
        }
        self.check_chain_approval(&serving.tool, steps).await
    }

    /// Runs the call: a chain runs its steps through their own tools, every other kind of
    /// tool runs in its backend (a missing backend is a failed call, with the reason).
    async fn run_in_sandbox(
        &self,
        id: &str,
        spec: &SandboxSpec,
        req: &CallRequest,
    ) -> (Outcome, Option<Vec<StepRecord>>) {
        match &spec.execution {
            Execution::Chain { steps, result } => {
                let (outcome, records) = self
                    .run_chain(ChainCall {
                        execution_id: id,
                        steps,
                        result,
                        input: &req.arguments,
                        budget: spec.limits.timeout,
                        actor: &req.actor,
                        conversation_id: req.conversation_id.as_deref(),
                        turn_id: req.turn_id.as_deref(),
                    })
                    .await;
                (outcome, Some(records))
            }
            Execution::Process { .. }
            | Execution::Wasm { .. }
            | Execution::Docker { .. }
            | Execution::Http
            | Execution::Mcp { .. } => {
                let outcome = match self.backends.get(spec.execution.kind()) {
                    Ok(backend) => backend.run(spec).await,
                    Err(e) => Outcome::failed(e.to_string()),
                };
                (outcome, None)
            }
        }
    }

    /// Writes the call's result with its `execution.finished` event. If the tool ran but its
    /// result could not be written, the id is handed to the heartbeat's retry.
    async fn record_finished(
        &self,
        id: &str,
        admitted: &Admitted,
        result: &ExecutionResult,
        record: &AuditRecord,
        actor: &Actor,
        guard: InflightGuard<'_>,
    ) -> Result<()> {
        let tool = &admitted.serving.tool.name;
        let event = self
            .store
            .finish_call(
                id,
                result,
                &FinishAudit {
                    kind: record.kind(),
                    tool: Some(tool),
                    actor: &actor.0,
                    payload: &record.payload(),
                },
            )
            .await
            .map_err(|e| match e {
                // Someone closed the record first: another instance found this one's lease
                // lapsed and recorded the call as interrupted. That record stands.
                slovo_store::StoreError::Conflict(_) => RuntimeError::Conflict {
                    tool: tool.clone(),
                    reason: format!(
                        "execution {id} was recorded as interrupted while it ran (this instance's \
                         lease had lapsed); its result was not recorded"
                    ),
                },
                other => {
                    // The tool ran but its result could not be written: the record stays
                    // `running` until a heartbeat closes it as interrupted.
                    guard.unrecorded();
                    other.into()
                }
            })?;
        guard.complete();
        self.checkpoints.after_append(&event);
        Ok(())
    }

    /// An MCP server refused because it listed other tools than the ones approved: its version
    /// goes back to approval with the difference. The call stays refused on its record
    /// whatever happens here.
    async fn follow_mcp_tool_list_change(
        &self,
        admitted: &Admitted,
        execution: &Execution,
        result: &ExecutionResult,
        actor: &Actor,
    ) {
        if !matches!(execution, Execution::Mcp { .. }) {
            return;
        }
        let Some(change) = result.error.as_deref().and_then(ToolListChange::of_refusal) else {
            return;
        };
        let tool = &admitted.serving.tool.name;
        if let Err(e) = self
            .mcp_tool_list_changed(tool, &admitted.serving.version, &change, actor)
            .await
        {
            warn!(tool = %tool, error = %e, "failed to send the changed MCP server back to approval");
        }
    }
}

/// A call that passed every check and is recorded as `running`, with the snapshot it was
/// admitted on.
struct Admitted {
    serving: Arc<Serving>,
    capability_index: usize,
    started_at: i64,
}

impl Admitted {
    fn capability(&self) -> &Capability {
        &self.serving.compiled.manifest.capabilities[self.capability_index]
    }

    /// The sandbox spec: from the grant only, with the tool's secrets and install record, and
    /// for a chain's step no more time than is left of the chain's budget.
    fn sandbox_spec(&self, id: &str, req: &CallRequest, step_of: Option<&StepOf>) -> Result<SandboxSpec> {
        let serving = &self.serving;
        let manifest = &serving.compiled.manifest;
        let execution = manifest
            .execution
            .as_ref()
            .ok_or_else(|| RuntimeError::tool_not_found(&serving.tool.name))?;
        let mut spec = SandboxSpec::from_grant(
            &serving.grant,
            CallTarget {
                execution_id: id,
                tool: &serving.tool.name,
                version: &serving.version,
                capability: self.capability(),
                execution,
                api: manifest.api_requirements.as_ref(),
                bundle_dir: serving.bundle_dir.clone(),
                state_dir: serving.state_dir.clone(),
                arguments: &req.arguments,
            },
        );
        spec.secrets = serving.secrets.clone();
        spec.install_info = serving.install_info.clone();
        if let Some(p) = step_of {
            // Narrowing only: a step never gets more time than its own grant gives.
            spec.limits.timeout = spec.limits.timeout.min(p.time_left);
        }
        Ok(spec)
    }

    /// The record as stored, built from what was just written rather than read back.
    fn record_as_stored(
        &self,
        id: String,
        req: CallRequest,
        result: ExecutionResult,
        step_of: Option<StepOf>,
    ) -> ExecutionView {
        ExecutionView {
            id,
            tool: self.serving.tool.name.clone(),
            version: self.serving.version.clone(),
            capability: self.capability().name.clone(),
            arguments: req.arguments,
            status: result.status,
            output: result.output,
            stderr: result.stderr,
            error: result.error,
            exit_code: result.exit_code.map(i64::from),
            duration_ms: Some(result.duration_ms),
            cpu_ms: result.cpu_ms,
            peak_memory_bytes: result.peak_memory_bytes,
            sandbox_id: result.sandbox_id,
            conversation_id: req.conversation_id,
            turn_id: req.turn_id,
            actor: req.actor.0,
            started_at: self.started_at,
            finished_at: Some(result.finished_at),
            network_denials: result.network_denials,
            parent_execution_id: step_of.map(|p| p.parent_execution_id),
            warm: result.warm,
        }
    }
}

/// The result to record from a backend's outcome. Nothing a tool echoes of its credentials
/// reaches the record or the audit trail.
fn execution_result(id: &str, outcome: Outcome, secrets: &Secrets, duration_ms: i64) -> ExecutionResult {
    let status = match outcome.status {
        // A backend must never report a call as still running; treat it as a failure.
        ExecutionStatus::Running => {
            warn!(execution = %id, "backend returned status running");
            ExecutionStatus::Failure
        }
        s => s,
    };
    let output = match (outcome.output, secrets.is_empty()) {
        (Some(o), false) => {
            let redacted = secrets.redact(&o.to_string());
            Some(serde_json::from_str(&redacted).unwrap_or(Value::String(redacted)))
        }
        (o, _) => o,
    };
    ExecutionResult {
        status,
        output,
        stderr: (!outcome.stderr.is_empty())
            .then(|| secrets.redact(&truncate(&outcome.stderr, MAX_STORED_STDERR))),
        error: outcome.error.as_deref().map(|e| secrets.redact(e)),
        exit_code: outcome.exit_code,
        duration_ms,
        cpu_ms: outcome.cpu_ms.map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
        peak_memory_bytes: outcome
            .peak_memory_bytes
            .map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
        sandbox_id: outcome.sandbox_id,
        finished_at: now_ms(),
        // Egress proxy refusals (host, port, reason), passed through to the record.
        network_denials: outcome.network_denials,
        warm: outcome.warm,
    }
}

/// The call's `execution.finished` event: what ran under which limits, and digests of its
/// input and output that pin the record to the chain. The audit trail links a chain's call and
/// its steps both ways.
fn finished_record(
    id: &str,
    admitted: &Admitted,
    req: &CallRequest,
    spec: &SandboxSpec,
    result: &ExecutionResult,
    step_of: Option<&StepOf>,
    chain_steps: Option<Vec<StepRecord>>,
) -> AuditRecord {
    AuditRecord::CallFinished(Box::new(CallFinished {
        execution_id: id.to_string(),
        version: admitted.serving.version.clone(),
        capability: admitted.capability().name.clone(),
        status: result.status,
        exit_code: result.exit_code,
        error: result.error.clone(),
        duration_ms: result.duration_ms,
        cpu_ms: result.cpu_ms,
        peak_memory_bytes: result.peak_memory_bytes,
        sandbox_id: result.sandbox_id.clone(),
        arguments_sha256: sha256_json(Some(&req.arguments)),
        output_sha256: sha256_json(result.output.as_ref()),
        limits: spec.limits.clone(),
        network: spec.network.clone(),
        parent_execution_id: step_of.map(|p| p.parent_execution_id.clone()),
        steps: chain_steps,
    }))
}

/// What a call needs of an active tool, as the call path last read it (see [`Runtime::call`]).
pub(crate) struct Serving {
    tool: ToolRow,
    grant: Grant,
    version: String,
    compiled: Arc<CompiledTool>,
    bundle_dir: Option<PathBuf>,
    state_dir: PathBuf,
    install_info: Option<InstallFacts>,
    secrets: Secrets,
}

/// The refusals decided before anything is written: an expired grant, an unknown capability,
/// arguments that do not fit its schema, a tool with no way to run. Returns the capability's
/// index in the manifest.
fn check_call<'a>(serving: &'a Serving, req: &CallRequest) -> Result<(usize, &'a Capability)> {
    let tool = &serving.tool;
    if serving.grant.is_expired_at(Utc::now()) {
        return Err(RuntimeError::GrantExpired {
            tool: tool.name.clone(),
            expired_at: serving
                .grant
                .expires_at
                .map(|e| e.to_rfc3339())
                .unwrap_or_default(),
        });
    }
    let manifest = &serving.compiled.manifest;
    let (index, capability) = manifest
        .capabilities
        .iter()
        .enumerate()
        .find(|(_, c)| c.name == req.capability)
        .ok_or_else(|| RuntimeError::NotFound {
            what: "capability",
            name: format!("{}.{}", tool.name, req.capability),
        })?;
    let validator =
        serving
            .compiled
            .validators
            .get(&capability.name)
            .ok_or_else(|| RuntimeError::NotFound {
                what: "capability",
                name: req.capability.clone(),
            })?;
    let problems: Vec<String> = validator
        .iter_errors(&req.arguments)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("{at}: {e}")
            }
        })
        .collect();
    if !problems.is_empty() {
        return Err(RuntimeError::InvalidArguments {
            tool: tool.name.clone(),
            capability: capability.name.clone(),
            problems,
        });
    }
    if manifest.execution.is_none() {
        return Err(RuntimeError::NotRunnable {
            tool: tool.name.clone(),
            reason: "its manifest has no execution section".into(),
        });
    }
    Ok((index, capability))
}

/// Keeps an execution id in the runtime's in-flight set while its call runs. If the call's
/// future is dropped (a client went away, shutdown), the id stays behind for
/// [`Runtime::abandon_inflight`] to record; on normal completion it is removed.
struct InflightGuard<'a> {
    runtime: &'a Runtime,
    id: String,
}

impl<'a> InflightGuard<'a> {
    fn new(runtime: &'a Runtime, id: &str) -> Self {
        if let Ok(mut set) = runtime.inflight.lock() {
            set.insert(id.to_string());
        }
        InflightGuard {
            runtime,
            id: id.to_string(),
        }
    }
}

impl InflightGuard<'_> {
    /// The call's result could not be written; hand the id to the heartbeat's retry.
    fn unrecorded(&self) {
        if let Ok(mut set) = self.runtime.unrecorded.lock() {
            set.insert(self.id.clone());
        }
    }

    /// The call was recorded; nothing is left to abandon. (There is deliberately no `Drop`:
    /// a dropped call future must leave its id behind.)
    fn complete(self) {
        if let Ok(mut set) = self.runtime.inflight.lock() {
            set.remove(&self.id);
        }
    }
}

/// SHA-256 of a JSON value's compact text, so the audit trail pins a call's input and output
/// without copying them.
pub(crate) fn sha256_json(v: Option<&Value>) -> Option<String> {
    v.map(|v| hex::encode(Sha256::digest(v.to_string().as_bytes())))
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [truncated]", &s[..end])
}
