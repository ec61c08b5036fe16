//! Chains (`docs/chains.md`): running a chain's steps, each through [`Runtime::call`] under its
//! own tool's grant; what a chain's approval pins of its step tools; and what `tool show`
//! reports of a chain.
//!
//! A chain has no sandbox and no permissions of its own. Its call is an execution of the chain
//! tool; each step is an execution of the step's tool whose `parent_execution_id` is the
//! chain's, refused or allowed by that tool's grant exactly as a planner's own call would be.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use slovo_core::execution::{ExecutionStatus, Outcome};
use slovo_core::lifecycle::ToolStatus;
use slovo_core::manifest::chain::{ChainStep, OnError, Scope, StepState, dependencies};
use slovo_core::manifest::{Execution, Manifest};
use slovo_core::permissions::{Grant, HostPattern};
use slovo_store::{ToolRow, Tx};

use crate::call::{CallRequest, StepOf};
use crate::executions::ExecutionView;
use crate::{Actor, Result, Runtime, RuntimeError};

/// A step still running is given this long past the chain's own deadline to end by its
/// (narrowed) timeout before the chain stops waiting for it.
const STEP_GRACE: Duration = Duration::from_secs(5);

/// What a chain call hands the executor.
pub(crate) struct ChainCall<'a> {
    pub execution_id: &'a str,
    pub steps: &'a [ChainStep],
    pub result: &'a Value,
    pub input: &'a Value,
    pub budget: Duration,
    pub actor: &'a Actor,
    pub conversation_id: Option<&'a str>,
    pub turn_id: Option<&'a str>,
}

/// One step as the chain's record (and audit event) lists it.
pub(crate) use slovo_core::audit::record::StepRecord;

type StepFuture<'a> = Pin<Box<dyn Future<Output = (usize, Result<ExecutionView>)> + Send + 'a>>;

impl Runtime {
    /// Runs a chain's steps as their references allow (every step whose dependencies have
    /// ended starts at once), stops starting steps after a failure unless the step says
    /// `on_error: continue`, and assembles the result. Each step's timeout is its grant's,
    /// narrowed to what is left of the chain's budget.
    pub(crate) async fn run_chain(&self, c: ChainCall<'_>) -> (Outcome, Vec<StepRecord>) {
        let deadline = Instant::now() + c.budget;
        let deps = dependencies(c.steps);
        let mut scope = Scope {
            input: c.input.clone(),
            ..Scope::default()
        };
        let mut records: Vec<Option<StepRecord>> = vec![None; c.steps.len()];
        let mut waiting: Vec<usize> = (0..c.steps.len()).collect();
        let mut running: FuturesUnordered<StepFuture<'_>> = FuturesUnordered::new();
        let mut failure: Option<(ExecutionStatus, String)> = None;
        loop {
            if failure.is_none() {
                self.start_ready_steps(
                    &c,
                    &deps,
                    &mut scope,
                    &mut waiting,
                    &mut records,
                    &mut running,
                    deadline,
                )
                .map_err(|f| failure = Some(f))
                .ok();
            }
            if running.is_empty() {
                break;
            }
            let Ok(Some((index, called))) =
                tokio::time::timeout_at((deadline + STEP_GRACE).into(), running.next()).await
            else {
                let names: Vec<&str> = records
                    .iter()
                    .zip(c.steps)
                    .filter(|(r, _)| r.as_ref().is_some_and(|r| r.status == "running"))
                    .map(|(_, s)| s.id.as_str())
                    .collect();
                failure = Some((
                    ExecutionStatus::Timeout,
                    format!(
                        "the chain's budget of {}s ran out while step(s) {} were running",
                        c.budget.as_secs(),
                        names.join(", ")
                    ),
                ));
                break;
            };
            let step = &c.steps[index];
            let state = step_state(&called);
            if let Some(r) = records[index].as_mut() {
                r.status = state.status.clone();
                r.error = state.error.clone();
                r.execution_id = called.as_ref().ok().map(|e| e.id.clone());
            }
            let failed = state.status != ExecutionStatus::Success.as_str();
            if failed && step.on_error == OnError::Stop && failure.is_none() {
                let status = match &called {
                    Ok(e) if e.status == ExecutionStatus::Timeout => ExecutionStatus::Timeout,
                    _ => ExecutionStatus::Failure,
                };
                failure = Some((
                    status,
                    format!(
                        "step {:?} ({}) {}: {}",
                        step.id,
                        step.call,
                        state.status,
                        state.error.clone().unwrap_or_else(|| "no reason given".into())
                    ),
                ));
            }
            scope.steps.insert(step.id.clone(), state);
        }
        let records: Vec<StepRecord> = records
            .into_iter()
            .zip(c.steps)
            .map(|(r, s)| {
                r.unwrap_or_else(|| StepRecord {
                    step: s.id.clone(),
                    call: s.call.clone(),
                    status: "not_started".into(),
                    execution_id: None,
                    error: None,
                })
            })
            .collect();
        let outcome = match failure {
            Some((status, error)) => Outcome {
                status,
                // What ran is on the record: each step's status and execution id.
                output: Some(json!({"steps": records})),
                error: Some(error),
                ..Outcome::default()
            },
            None => Outcome {
                status: ExecutionStatus::Success,
                output: Some(assemble_result(c.result, &scope, c.steps)),
                ..Outcome::default()
            },
        };
        (outcome, records)
    }

    /// Starts every waiting step whose dependencies have all ended (skipping those whose
    /// `when` does not hold, which may free others). An error is the chain's failure: its
    /// budget ran out before a step could start.
    #[allow(clippy::too_many_arguments)]
    fn start_ready_steps<'a>(
        &'a self,
        c: &ChainCall<'a>,
        deps: &BTreeMap<String, HashSet<String>>,
        scope: &mut Scope,
        waiting: &mut Vec<usize>,
        records: &mut [Option<StepRecord>],
        running: &mut FuturesUnordered<StepFuture<'a>>,
        deadline: Instant,
    ) -> std::result::Result<(), (ExecutionStatus, String)> {
        loop {
            let ready: Vec<usize> = waiting
                .iter()
                .copied()
                .filter(|&i| {
                    deps.get(&c.steps[i].id)
                        .is_none_or(|d| d.iter().all(|d| scope.steps.contains_key(d)))
                })
                .collect();
            if ready.is_empty() {
                return Ok(());
            }
            waiting.retain(|i| !ready.contains(i));
            let mut skipped_any = false;
            for index in ready {
                let step = &c.steps[index];
                let mut record = StepRecord {
                    step: step.id.clone(),
                    call: step.call.clone(),
                    status: "running".into(),
                    execution_id: None,
                    error: None,
                };
                if let Some(when) = &step.when
                    && !scope.condition_holds(when)
                {
                    record.status = "skipped".into();
                    records[index] = Some(record);
                    scope.steps.insert(
                        step.id.clone(),
                        StepState {
                            status: "skipped".into(),
                            output: None,
                            error: None,
                        },
                    );
                    skipped_any = true;
                    continue;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err((
                        ExecutionStatus::Timeout,
                        format!(
                            "the chain's budget of {}s ran out before step {:?} could start",
                            c.budget.as_secs(),
                            step.id
                        ),
                    ));
                }
                let (tool, capability) = step.target().unwrap_or((step.call.as_str(), ""));
                let request = CallRequest {
                    tool: tool.to_string(),
                    capability: capability.to_string(),
                    arguments: scope.render(&Value::Object(step.with.clone())),
                    conversation_id: c.conversation_id.map(str::to_string),
                    turn_id: c.turn_id.map(str::to_string),
                    actor: c.actor.clone(),
                };
                let parent = StepOf {
                    parent_execution_id: c.execution_id.to_string(),
                    time_left: left,
                };
                records[index] = Some(record);
                // Boxed: a step is a call, and a call may be a chain's (the future is recursive).
                running.push(Box::pin(
                    async move { (index, self.call_step(request, parent).await) },
                ));
            }
            if !skipped_any {
                return Ok(());
            }
        }
    }

    /// Refuses a call of a chain whose approval no longer holds: a step tool that is not
    /// active, was disabled or revoked since, or holds another grant than the one approved.
    pub(crate) async fn check_chain_approval(&self, chain: &ToolRow, steps: &[ChainStep]) -> Result<()> {
        let grant_id = chain.grant_id.unwrap_or_default();
        let pins = self.store.chain_pins(grant_id).await?;
        let refuse = |why: String| RuntimeError::NotCallable {
            tool: chain.name.clone(),
            status: "a chain whose approval no longer holds".into(),
            hint: format!(
                "{why}; approve the chain again (slovo tool approve {})",
                chain.name
            ),
        };
        for tool in step_tools(steps) {
            let Some(pin) = pins.iter().find(|p| p.step_tool == tool) else {
                return Err(refuse(format!("its approval does not cover step tool {tool:?}")));
            };
            if pin.invalidated_at.is_some() {
                return Err(refuse(format!(
                    "step tool {tool:?} was disabled or revoked after the chain was approved"
                )));
            }
            let row = self.store.tool(&tool).await?;
            match row {
                Some(t) if t.status == ToolStatus::Active && t.grant_id == Some(pin.step_grant_id) => {}
                Some(t) if t.status != ToolStatus::Active => {
                    return Err(refuse(format!("step tool {tool:?} is {}", t.status)));
                }
                Some(_) => {
                    return Err(refuse(format!(
                        "step tool {tool:?} holds another grant than the one approved with the chain"
                    )));
                }
                None => return Err(refuse(format!("step tool {tool:?} no longer exists"))),
            }
        }
        Ok(())
    }

    /// For an approval of `chain`: the grant each step tool holds now, read inside the
    /// approval's transaction. Every step tool must be active, not a chain itself (chains do
    /// not nest), and offer the capability the step calls.
    pub(crate) async fn chain_pins_for_approval(
        &self,
        tx: &mut Tx,
        chain: &str,
        steps: &[ChainStep],
    ) -> Result<Vec<(String, i64)>> {
        let refuse = |reason: String| RuntimeError::Conflict {
            tool: chain.to_string(),
            reason,
        };
        let mut pins = Vec::new();
        for tool in step_tools(steps) {
            let row = tx.tool(&tool).await?.ok_or_else(|| {
                refuse(format!(
                    "step tool {tool:?} does not exist; import and approve it first"
                ))
            })?;
            let (ToolStatus::Active, Some(grant_id), Some(version)) =
                (row.status, row.grant_id, &row.active_version)
            else {
                return Err(refuse(format!(
                    "step tool {tool:?} is {}; only an active tool can be a step",
                    row.status
                )));
            };
            let manifest = self.manifest(&tool, version).await?;
            if matches!(manifest.execution, Some(Execution::Chain { .. })) {
                return Err(refuse(format!(
                    "step tool {tool:?} is a chain; chains do not call chains"
                )));
            }
            for s in steps
                .iter()
                .filter(|s| s.target().is_some_and(|(t, _)| t == tool))
            {
                let capability = s.target().map(|(_, c)| c).unwrap_or_default();
                if manifest.capability(capability).is_none() {
                    return Err(refuse(format!(
                        "step {:?}: tool {tool:?} has no capability {capability:?}",
                        s.id
                    )));
                }
            }
            pins.push((tool, grant_id));
        }
        Ok(pins)
    }

    /// The derived hints of `tool`'s serving (else pending) version if it is a chain; `None`
    /// for any other tool. Front ends show these instead of anything the manifest says.
    pub async fn chain_hints(&self, tool: &str) -> Result<Option<ChainHints>> {
        let Some(row) = self.store.tool(tool).await? else {
            return Ok(None);
        };
        let Some(version) = row.active_version.clone().or_else(|| row.pending_version.clone()) else {
            return Ok(None);
        };
        let manifest = self.manifest(tool, &version).await?;
        Ok(self.chain_view(&row, &manifest).await?.map(|v| v.hints))
    }

    /// What `tool show` reports of a chain: its steps, the tools they reach with each one's
    /// grant now, the union of those grants, derived hints, and whether its approval holds.
    pub(crate) async fn chain_view(&self, chain: &ToolRow, manifest: &Manifest) -> Result<Option<ChainView>> {
        let Some(Execution::Chain { steps, .. }) = &manifest.execution else {
            return Ok(None);
        };
        let deps = dependencies(steps);
        let mut tools = Vec::new();
        let mut union: Option<Grant> = None;
        let (mut all_read_only, mut any_destructive, mut any_open_world) = (true, false, false);
        for tool in step_tools(steps) {
            let row = self.store.tool(&tool).await?;
            let grant = match row.as_ref().and_then(|r| r.grant_id) {
                Some(id) => self.store.grant(id).await?.map(|g| g.grant),
                None => None,
            };
            let manifest = match row.as_ref().and_then(|r| r.active_version.clone()) {
                Some(v) => Some(self.manifest(&tool, &v).await?),
                None => None,
            };
            for s in steps
                .iter()
                .filter(|s| s.target().is_some_and(|(t, _)| t == tool))
            {
                let cap = manifest
                    .as_ref()
                    .and_then(|m| m.capability(s.target().map(|(_, c)| c).unwrap_or_default()));
                all_read_only &= cap.is_some_and(|c| c.read_only == Some(true));
                any_destructive |= cap.is_none_or(|c| c.destructive == Some(true));
            }
            let http = manifest
                .as_ref()
                .is_some_and(|m| matches!(m.execution, Some(Execution::Http)));
            any_open_world |= http
                || grant
                    .as_ref()
                    .is_none_or(|g| g.internet_access || !g.network_allow.is_empty());
            if let Some(g) = &grant {
                union = Some(match union {
                    None => g.clone(),
                    Some(u) => union_of(&u, g),
                });
            }
            tools.push(StepToolView {
                status: row
                    .as_ref()
                    .map(|r| r.status.to_string())
                    .unwrap_or_else(|| "missing".into()),
                tool,
                grant,
            });
        }
        let approval = if chain.grant_id.is_some() {
            match self.check_chain_approval(chain, steps).await {
                Ok(()) => "holds".to_string(),
                Err(e) => e.to_string(),
            }
        } else {
            "not approved".to_string()
        };
        Ok(Some(ChainView {
            steps: steps
                .iter()
                .map(|s| StepView {
                    id: s.id.clone(),
                    call: s.call.clone(),
                    after: deps
                        .get(&s.id)
                        .map(|d| d.iter().cloned().collect())
                        .unwrap_or_default(),
                    when: s.when.clone(),
                    on_error: s.on_error,
                })
                .collect(),
            tools,
            union,
            hints: ChainHints {
                read_only: all_read_only,
                destructive: any_destructive,
                open_world: any_open_world,
            },
            approval,
        }))
    }
}

/// A chain as `tool show` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct ChainView {
    /// Its steps, each with the steps it waits for.
    pub steps: Vec<StepView>,
    /// Every tool a step reaches, with its status and grant now.
    pub tools: Vec<StepToolView>,
    /// The union of those grants: any network any of them may reach, the largest limits.
    pub union: Option<Grant>,
    /// Hints derived from the steps' capabilities and tools.
    pub hints: ChainHints,
    /// `holds`, `not approved`, or why a call would be refused until it is approved again.
    pub approval: String,
}

/// One step in [`ChainView`].
#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    /// Step id.
    pub id: String,
    /// `tool.capability`.
    pub call: String,
    /// Steps it waits for (from its references).
    pub after: BTreeSet<String>,
    /// Its condition.
    pub when: Option<String>,
    /// What its failure does.
    pub on_error: OnError,
}

/// A tool a chain reaches.
#[derive(Debug, Clone, Serialize)]
pub struct StepToolView {
    /// The tool.
    pub tool: String,
    /// Its status now.
    pub status: String,
    /// Its grant now.
    pub grant: Option<Grant>,
}

/// A chain's conservative hints: read-only only if every step is; destructive or open-world
/// if any step is (a capability that does not say counts as destructive).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ChainHints {
    /// Every step's capability says `read_only: true`.
    pub read_only: bool,
    /// Some step's capability is destructive, or does not say.
    pub destructive: bool,
    /// Some step's tool reaches a network (an HTTP tool, or a network grant).
    pub open_world: bool,
}

/// The tools a chain's steps call, each once, sorted.
fn step_tools(steps: &[ChainStep]) -> BTreeSet<String> {
    steps
        .iter()
        .filter_map(|s| s.target().map(|(t, _)| t.to_string()))
        .collect()
}

/// What a step's call leaves for later references: its status, output and error; a refusal
/// (invalid arguments, a tool not active, an expired grant) is status `refused`.
fn step_state(called: &Result<ExecutionView>) -> StepState {
    match called {
        Ok(e) => StepState {
            status: e.status.as_str().to_string(),
            output: e.output.clone(),
            error: e.error.clone(),
        },
        Err(e) => StepState {
            status: "refused".into(),
            output: None,
            error: Some(e.to_string()),
        },
    }
}

/// The chain's result: its `result` template, or without one every step's output by id.
fn assemble_result(template: &Value, scope: &Scope, steps: &[ChainStep]) -> Value {
    if template.is_null() {
        let outputs = steps
            .iter()
            .filter_map(|s| {
                let st = scope.steps.get(&s.id)?;
                Some((s.id.clone(), st.output.clone().unwrap_or(Value::Null)))
            })
            .collect();
        return Value::Object(outputs);
    }
    scope.render(template)
}

/// The union of two grants: any network either reaches, the larger of each limit, the earlier
/// expiry.
fn union_of(a: &Grant, b: &Grant) -> Grant {
    let mut hosts: Vec<HostPattern> = a.network_allow.clone();
    for h in &b.network_allow {
        if !hosts.contains(h) {
            hosts.push(h.clone());
        }
    }
    Grant {
        internet_access: a.internet_access || b.internet_access,
        network_allow: hosts,
        storage_quota_mb: a.storage_quota_mb.max(b.storage_quota_mb),
        cpu_limit_percent: a.cpu_limit_percent.max(b.cpu_limit_percent),
        memory_limit_mb: a.memory_limit_mb.max(b.memory_limit_mb),
        timeout_s: a.timeout_s.max(b.timeout_s),
        pids_limit: a.pids_limit.max(b.pids_limit),
        expires_at: match (a.expires_at, b.expires_at) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        },
    }
}
