//! Warm, but never reused: a small pool, per recently called MCP tool, of sandboxes whose
//! server is already started, `initialize`d and (for a pinned tool) listed, each taken by
//! exactly one `tools/call` and destroyed after its answer.
//!
//! # Why it is as isolated as a cold call
//! A warm sandbox is built by the same [`ProcessBackend::start_program`] from the same
//! [`SandboxSpec`] (same grant, bundle, `/data`, limits, network, secrets) as the call that
//! follows it would have been: its own namespaces, its own fresh `/tmp`, its own cgroup with
//! the grant's limits. Nothing of it is ever handed to a second call: [`Pool::take`] removes
//! it from the pool, and it is destroyed when its call is over.
//!
//! # What is kept, and when it is thrown away
//! The pool of a tool is keyed by everything its sandbox is built from ([`Recipe::key`]): the
//! version, the execution section, the bundle, the state directory, the limits and network of
//! the grant, the pinned tool list and the server's environment with its secrets. A call with
//! another key (a new version, grant, pin or secret) destroys every warm sandbox of the old
//! key before anything else. [`Pool::forget`] destroys a tool's pool (disable, revoke, any
//! lifecycle change the runtime hears of), [`Pool::shutdown`] all of them, and a pool that no
//! call used for [`PoolConfig::idle`] expires.
//!
//! # `/data`
//! A warm server has `/data` mounted from the moment it starts. So that it sees the state
//! exactly as a server started cold for the call would, a pool of a tool with state is
//! refilled only after a call is over (its server gone), and every call that ends throws away
//! the warm sandboxes started before it ended: a server never waits in the pool across a
//! change another call made to `/data`. Calls that overlap see `/data` as overlapping cold
//! calls do.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use slovo_core::execution::{ExecutionStatus, WarmStart};
use slovo_core::install::InstallFacts;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::client::Session;
use super::result;
use super::stdio::PipeStdio;
use crate::Outcome;
use crate::SandboxSpec;
use crate::process::run::{Launch, Started};
use crate::process::{Conversed, ProcessBackend, Program, Verdict};

/// How many warm sandboxes each recently used MCP tool keeps, and for how long an unused
/// pool is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Warm sandboxes per tool; 0 disables the pool (every call starts its server cold).
    pub size: usize,
    /// A tool's pool is destroyed when no call used it for this long.
    pub idle: Duration,
}

impl Default for PoolConfig {
    fn default() -> PoolConfig {
        PoolConfig {
            size: 1,
            idle: Duration::from_secs(300),
        }
    }
}

/// What a tool's warm sandboxes are made from: the spec of a call (without the call), the
/// server's program and its pinned tool list.
#[derive(Debug)]
pub(crate) struct Recipe {
    spec: SandboxSpec,
    program: Program,
    pinned: Option<Vec<Value>>,
    /// A digest of everything the sandbox is built from; a call with another key never gets
    /// one of these sandboxes.
    key: String,
}

/// Warm sandboxes made by this process: their ids.
static WARMED: AtomicU64 = AtomicU64::new(0);

/// The key of the sandbox `spec` and `program` (with the server's secrets in its environment)
/// make: a digest of everything it is built from. The pinned tool list counts by the digest the
/// install recorded (`tools_sha256`), so that the key is cheap to compute on every call.
pub(crate) fn key_of(spec: &SandboxSpec, program: &Program) -> String {
    let built_from = json!({
        "tool": spec.tool,
        "version": spec.version,
        "execution": spec.execution,
        "bundle": spec.bundle_dir,
        "state": spec.state_dir,
        "limits": spec.limits,
        "network": spec.network,
        "pinned": spec
            .install_info
            .as_ref()
            .and_then(InstallFacts::listed_tools)
            .map(|listed| &listed.tools_sha256),
        "command": program.command,
        "system_paths": program.system_paths,
        "env": program.env,
    });
    hex::encode(Sha256::digest(built_from.to_string().as_bytes()))
}

impl Recipe {
    /// The recipe of the sandbox `spec` and `program` make, whose key is `key` ([`key_of`]).
    pub fn new(spec: &SandboxSpec, program: &Program, pinned: Option<Vec<Value>>, key: String) -> Recipe {
        let mut template = spec.clone();
        template.request = Value::Null;
        Recipe {
            spec: template,
            program: program.clone(),
            pinned,
            key,
        }
    }

    /// Whether the tool has state: its warm servers must not outlive a call that may change it.
    fn stateful(&self) -> bool {
        self.spec.limits.storage_mb > 0
    }
}

/// A started, initialised server waiting for its one call.
pub(crate) struct Warm {
    started: Box<Started>,
    session: Session<PipeStdio>,
    /// The pin's refusal, if the server listed other tools than approved.
    pin_refusal: Option<String>,
    ready_at: Instant,
}

/// The warm sandboxes of one tool.
struct ToolPool {
    recipe: Arc<Recipe>,
    ready: Vec<Warm>,
    /// Sandboxes being started for this pool.
    warming: usize,
    /// Moves when a call of a tool with state ends; a warm sandbox of an older epoch is stale.
    epoch: u64,
    last_used: Instant,
    /// Why the last warm-up failed: no refill until a call (cold) ends again.
    failed: Option<String>,
}

/// The pools of every recently used MCP tool.
pub(crate) struct Pool {
    process: Arc<ProcessBackend>,
    config: PoolConfig,
    tools: Mutex<HashMap<String, ToolPool>>,
    closed: AtomicBool,
    expiry_started: AtomicBool,
    /// Woken whenever a warm sandbox becomes ready or a warm-up fails.
    changed: Notify,
}

impl Pool {
    pub fn new(process: Arc<ProcessBackend>, config: PoolConfig) -> Pool {
        Pool {
            process,
            config,
            tools: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            expiry_started: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    /// The pools, even after a panic elsewhere poisoned the lock: every change under it
    /// leaves the map consistent.
    fn tools(&self) -> std::sync::MutexGuard<'_, HashMap<String, ToolPool>> {
        self.tools.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A warm sandbox of `tool` built from `key`, removed from the pool; `None` if there is
    /// none (the call starts cold). A pool of another key is destroyed.
    pub fn take(&self, tool: &str, key: &str) -> Option<Warm> {
        let mut stale = None;
        let warm = {
            let mut tools = self.tools();
            match tools.get_mut(tool) {
                Some(pool) if pool.recipe.key == key => {
                    pool.last_used = Instant::now();
                    pool.ready.pop()
                }
                Some(_) => {
                    stale = tools.remove(tool);
                    None
                }
                None => None,
            }
        };
        if let Some(old) = stale {
            tracing::debug!(
                tool,
                "its sandbox changed: the warm sandboxes of the old one are destroyed"
            );
            drop(old);
        }
        warm
    }

    /// A call of `tool` whose sandbox had `key` is over and its sandbox destroyed: a tool with
    /// state throws away the warm sandboxes started before now, and the pool is refilled.
    /// `recipe` makes the pool when there is none of this key (after a cold call); without it
    /// (after a warm call, whose pool has this key unless a change destroyed it) nothing is made.
    pub fn call_ended(self: &Arc<Self>, tool: &str, key: &str, recipe: Option<Recipe>) {
        if self.closed.load(Ordering::SeqCst) || self.config.size == 0 {
            return;
        }
        self.start_expiry();
        let mut stale = Vec::new();
        {
            let mut tools = self.tools();
            match (tools.get_mut(tool), recipe) {
                (Some(pool), _) if pool.recipe.key == key => {
                    if pool.recipe.stateful() {
                        pool.epoch += 1;
                        stale.append(&mut pool.ready);
                    }
                    pool.last_used = Instant::now();
                    pool.failed = None;
                }
                (Some(pool), Some(recipe)) => {
                    // Another sandbox than the pool's: the pool follows the call.
                    stale.append(&mut pool.ready);
                    pool.recipe = Arc::new(recipe);
                    pool.epoch += 1;
                    pool.last_used = Instant::now();
                    pool.failed = None;
                }
                (None, Some(recipe)) => {
                    tools.insert(
                        tool.to_string(),
                        ToolPool {
                            recipe: Arc::new(recipe),
                            ready: Vec::new(),
                            warming: 0,
                            epoch: 0,
                            last_used: Instant::now(),
                            failed: None,
                        },
                    );
                }
                (_, None) => return,
            }
        }
        drop(stale);
        self.refill(tool);
    }

    /// Starts as many warm sandboxes as the pool of `tool` lacks.
    fn refill(self: &Arc<Self>, tool: &str) {
        let mut tools = self.tools();
        let Some(pool) = tools.get_mut(tool) else {
            return;
        };
        if pool.failed.is_some() {
            return;
        }
        while pool.ready.len() + pool.warming < self.config.size {
            pool.warming += 1;
            let (this, recipe, epoch) = (self.clone(), pool.recipe.clone(), pool.epoch);
            tokio::spawn(async move {
                let warmed = warm_up(&this.process, &recipe).await;
                this.warmed(&recipe, epoch, warmed);
            });
        }
    }

    /// A warm-up ended: the sandbox joins its pool if the pool still wants it (same key, same
    /// epoch, not shut down); otherwise it is destroyed.
    fn warmed(&self, recipe: &Recipe, epoch: u64, warmed: Result<Warm, String>) {
        let mut unwanted = None;
        {
            let mut tools = self.tools();
            match tools.get_mut(&recipe.spec.tool) {
                Some(pool) if pool.recipe.key == recipe.key => {
                    pool.warming = pool.warming.saturating_sub(1);
                    match warmed {
                        Ok(warm) if epoch == pool.epoch && !self.closed.load(Ordering::SeqCst) => {
                            pool.ready.push(warm)
                        }
                        Ok(warm) => unwanted = Some(warm),
                        Err(reason) => {
                            tracing::warn!(tool = %recipe.spec.tool, %reason, "a warm MCP server did not start; calls start cold");
                            pool.failed = Some(reason);
                        }
                    }
                }
                _ => unwanted = warmed.ok(),
            }
        }
        drop(unwanted);
        self.changed.notify_waiters();
    }

    /// Destroys the warm sandboxes of `tool` (its grant, version or status changed).
    pub fn forget(&self, tool: &str) {
        let removed = self.tools().remove(tool);
        drop(removed);
    }

    /// Destroys the warm sandboxes whose `/data` is `state_dir` (its volume is let go of).
    pub fn forget_state(&self, state_dir: &std::path::Path) {
        let removed: Vec<ToolPool> = {
            let mut tools = self.tools();
            let names: Vec<String> = tools
                .iter()
                .filter(|(_, p)| p.recipe.spec.state_dir == state_dir)
                .map(|(n, _)| n.clone())
                .collect();
            names.iter().filter_map(|n| tools.remove(n)).collect()
        };
        drop(removed);
    }

    /// Destroys every warm sandbox and starts no more; waits until each is gone.
    pub async fn shutdown(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let ready: Vec<Warm> = self.tools().drain().flat_map(|(_, p)| p.ready).collect();
        let _ = tokio::task::spawn_blocking(move || {
            for warm in ready {
                warm.destroy();
            }
        })
        .await;
    }

    /// The number of warm sandboxes ready for `tool` (for tests and benchmarks).
    pub fn ready(&self, tool: &str) -> usize {
        self.tools().get(tool).map_or(0, |p| p.ready.len())
    }

    /// Waits until `tool` has a warm sandbox ready, or `timeout` passes; `false` then, or if
    /// its warm-up failed.
    pub async fn wait_ready(&self, tool: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let tools = self.tools();
                match tools.get(tool) {
                    Some(p) if !p.ready.is_empty() => return true,
                    Some(p) if p.failed.is_some() => return false,
                    _ => {}
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    /// Starts the task that destroys pools no call used for [`PoolConfig::idle`] (once).
    fn start_expiry(self: &Arc<Self>) {
        if self.expiry_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let pool: Weak<Pool> = Arc::downgrade(self);
        let every = (self.config.idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(30));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(pool) = pool.upgrade() else { return };
                if pool.closed.load(Ordering::SeqCst) {
                    return;
                }
                let expired: Vec<ToolPool> = {
                    let mut tools = pool.tools();
                    let idle: Vec<String> = tools
                        .iter()
                        .filter(|(_, p)| p.last_used.elapsed() >= pool.config.idle)
                        .map(|(n, _)| n.clone())
                        .collect();
                    idle.iter().filter_map(|n| tools.remove(n)).collect()
                };
                if !expired.is_empty() {
                    tracing::debug!(pools = expired.len(), "idle MCP pools expired");
                }
                drop(expired);
            }
        });
    }
}

/// Starts one server for `recipe`'s tool: `initialize`, and for a pinned tool `tools/list`
/// checked against the pin (a refusal is kept for the call that takes it). The warm-up has
/// the grant's whole timeout; the call that takes the sandbox gets it again.
async fn warm_up(process: &ProcessBackend, recipe: &Recipe) -> Result<Warm, String> {
    let mut spec = recipe.spec.clone();
    spec.execution_id = format!("warm-{}", WARMED.fetch_add(1, Ordering::Relaxed));
    let mut started = match process.start_program(&spec, &recipe.program).await {
        Ok(Launch::Started(s)) => s,
        Ok(Launch::Failed(outcome)) => {
            return Err(outcome
                .error
                .unwrap_or_else(|| "the sandbox did not start".into()));
        }
        Err(e) => return Err(e.to_string()),
    };
    let io = started.take_io().map_err(|e| e.to_string())?;
    let mut session = Session::new(io);
    session.initialize().await.map_err(|e| e.to_string())?;
    let pin_refusal = match &recipe.pinned {
        Some(pinned) => {
            let served = session.list_tools().await.map_err(|e| e.to_string())?;
            super::pin_refusal(pinned, &served)
        }
        None => None,
    };
    Ok(Warm {
        started,
        session,
        pin_refusal,
        ready_at: Instant::now(),
    })
}

impl Warm {
    /// Kills the server and everything in its sandbox, and waits for it. Blocking.
    fn destroy(self) {
        let Warm { started, session, .. } = self;
        drop(session);
        started.destroy();
    }

    /// The one call of this sandbox: `tools/call` (or the pin's refusal), with the grant's
    /// whole timeout from now. The outcome, which says it was served warm and how long the
    /// server waited ([`WarmStart`]), is returned at the answer; the server is then shut
    /// down as a cold one is (stdin closed, a moment to exit) and destroyed with its sandbox
    /// off the call path, after which `pool` hears that the call is over.
    pub async fn call(
        self,
        pool: &Arc<Pool>,
        key: String,
        spec_tool: String,
        tool: &str,
        arguments: &Value,
        timeout: Duration,
    ) -> Outcome {
        let Warm {
            mut started,
            mut session,
            pin_refusal,
            ready_at,
        } = self;
        let taken_at = Instant::now();
        session.set_deadline(taken_at + timeout);
        let verdict = match pin_refusal {
            Some(refusal) => Verdict {
                status: ExecutionStatus::Failure,
                output: None,
                error: Some(refusal),
            },
            None => match session.call_tool(tool, arguments).await {
                Ok(r) => result::verdict_of(&r),
                Err(e) => e.verdict(),
            },
        };
        let mut watched = std::mem::take(&mut session.watched);
        for note in session.notes.drain(..) {
            watched
                .stderr
                .extend_from_slice(format!("\n[mcp] {note}").as_bytes());
        }
        let conversed = Conversed {
            watched,
            verdict: Some(verdict),
        };
        let mut outcome = pool.process.outcome_before_destroy(&mut started, conversed);
        outcome.warm = Some(WarmStart {
            started_ms_before_call: millis(taken_at.duration_since(started.started_at)),
            ready_ms_before_call: millis(taken_at.duration_since(ready_at)),
        });
        let (pool, served) = (pool.clone(), spec_tool);
        tokio::spawn(async move {
            session.shutdown().await;
            drop(session);
            let _ = tokio::task::spawn_blocking(move || started.destroy()).await;
            pool.call_ended(&served, &key, None);
        });
        outcome
    }
}

/// A duration in whole milliseconds, saturating (a warm server waits minutes at most).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
