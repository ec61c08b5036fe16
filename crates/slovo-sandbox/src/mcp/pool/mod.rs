//! Warm, but never reused: a small pool, per recently called MCP tool, of sandboxes whose
//! server is already started, `initialize`d and (for a pinned tool) listed, each taken by
//! exactly one `tools/call` and destroyed after its answer.
//!
//! # Kinds of sandbox
//! The pool does not know how a sandbox is made: a tool's [`Recipe`] names its [`Launcher`],
//! which starts the server and hands it over as a [`WarmServer`]. A server in the process
//! sandbox is started by [`InProcess`] (`in_process.rs`), a server in an OCI image in a
//! container of the Docker backend by `super::oci::InContainer`. Both speak to the server
//! with the same client, get it ready the same way ([`get_ready`]) and serve the one call the
//! same way ([`answer`]); the rest of this module (keys, refills, epochs, expiry, shutdown) is
//! the same for both.
//!
//! # Why it is as isolated as a cold call
//! A warm sandbox is built by the same code from the same [`SandboxSpec`] (same grant,
//! bundle or image, `/data`, limits, network, secrets) as the call that follows it would have
//! been: [`crate::process::ProcessBackend::start_program`] for a process sandbox, the Docker
//! backend's `start_with` (the same container flags as a cold call's) for a container. Nothing
//! of it is ever handed to a second call: [`Pool::take`] removes it from the pool, and it is
//! destroyed when its call is over.
//!
//! # What is kept, and when it is thrown away
//! The pool of a tool is keyed by everything its sandbox is built from ([`key_of`]): the
//! version, the execution section (with the image and its digest), the bundle, the state
//! directory, the limits and network of the grant, the pinned tool list, the image id pinned
//! at install and the server's environment with its secrets. A call with another key (a new
//! version, image, grant, pin or secret) destroys every warm sandbox of the old key before
//! anything else. [`Pool::forget`] destroys a tool's pool (disable, revoke, any lifecycle
//! change the runtime hears of), [`Pool::shutdown`] all of them, and a pool that no call used
//! for [`PoolConfig::idle`] expires. A warm sandbox that is dropped rather than destroyed (the
//! pool dropped with the runtime) is still killed and removed: a process sandbox by
//! `Started`'s drop, a container by `StartedContainer`'s, from a thread of its own.
//!
//! # `/data`
//! A warm server has `/data` mounted from the moment it starts. So that it sees the state
//! exactly as a server started cold for the call would, a pool of a tool with state is
//! refilled only after a call is over (its server gone), and every call that ends throws away
//! the warm sandboxes started before it ended: a server never waits in the pool across a
//! change another call made to `/data`. Calls that overlap see `/data` as overlapping cold
//! calls do. (`/data` is the tool's one volume, the same for every sandbox of the tool, cold
//! or warm, process or container: a server always sees the latest state there.)

mod in_process;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use slovo_core::execution::{ExecutionStatus, WarmStart};
use slovo_core::install::InstallFacts;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::client::Session;
use super::result;
use super::stdio::ServerStdio;
use crate::Outcome;
use crate::SandboxSpec;
use crate::process::{Conversed, Program, Verdict};

pub(crate) use in_process::InProcess;

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
/// server's program, its pinned tool list, and the launcher of its kind of sandbox.
pub(crate) struct Recipe {
    spec: SandboxSpec,
    program: Program,
    pinned: Option<Vec<Value>>,
    launcher: Arc<dyn Launcher>,
    /// A digest of everything the sandbox is built from; a call with another key never gets
    /// one of these sandboxes.
    key: String,
}

impl std::fmt::Debug for Recipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recipe")
            .field("tool", &self.spec.tool)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Starts the servers of one kind of sandbox for the pool.
#[async_trait]
pub(crate) trait Launcher: Send + Sync {
    /// Starts `recipe`'s server in a fresh sandbox built from `spec` (the recipe's, with the
    /// warm-up's own execution id), and gets it ready ([`get_ready`]); the server waits,
    /// started, for its one call, or why it could not start.
    async fn warm_up(&self, recipe: &Recipe, spec: &SandboxSpec) -> Result<Ready, String>;
}

/// A server a [`Launcher`] started and got ready.
pub(crate) struct Ready {
    pub server: Box<dyn WarmServer>,
    /// The pin's refusal, if the server listed other tools than approved.
    pub pin_refusal: Option<String>,
}

/// A started sandbox of some kind whose server waits, initialised, for its one call.
/// Dropping it kills the server and destroys its sandbox (off the async threads).
#[async_trait]
pub(crate) trait WarmServer: Send {
    /// When its sandbox was started.
    fn started_at(&self) -> Instant;

    /// The one call ([`answer`]): its outcome at the answer, and what then shuts the server
    /// down and destroys its sandbox, to run off the call path.
    async fn serve(self: Box<Self>, call: WarmCall<'_>) -> (Outcome, Teardown);

    /// Destroys it without a call, and waits until it is gone.
    async fn destroy(self: Box<Self>);
}

/// What destroys a served warm sandbox: the server shut down as a cold one is (stdin closed,
/// a moment to exit), then its sandbox destroyed.
pub(crate) type Teardown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The one call a warm server serves.
pub(crate) struct WarmCall<'a> {
    /// The MCP tool.
    pub tool: &'a str,
    pub arguments: &'a Value,
    /// The grant's whole timeout from the moment the call took the sandbox.
    pub deadline: Instant,
    /// The pin's refusal found when the server was got ready: the call's verdict instead.
    pub pin_refusal: Option<String>,
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
        "image_id": spec.install_info.as_ref().and_then(InstallFacts::pinned_image),
        "command": program.command,
        "system_paths": program.system_paths,
        "env": program.env,
    });
    hex::encode(Sha256::digest(built_from.to_string().as_bytes()))
}

impl Recipe {
    /// The recipe of the sandbox `spec` and `program` make, whose key is `key` ([`key_of`]),
    /// started by `launcher`.
    pub fn new(
        spec: &SandboxSpec,
        program: &Program,
        pinned: Option<Vec<Value>>,
        key: String,
        launcher: Arc<dyn Launcher>,
    ) -> Recipe {
        let mut template = spec.clone();
        template.request = Value::Null;
        Recipe {
            spec: template,
            program: program.clone(),
            pinned,
            launcher,
            key,
        }
    }

    /// The server's program.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// The tool list approved, if the server's must match it.
    pub fn pinned(&self) -> Option<&[Value]> {
        self.pinned.as_deref()
    }

    /// The spec of one warm-up: the recipe's, with an execution id of its own.
    fn warm_up_spec(&self) -> SandboxSpec {
        let mut spec = self.spec.clone();
        spec.execution_id = format!("warm-{}", WARMED.fetch_add(1, Ordering::Relaxed));
        spec
    }

    /// Whether the tool has state: its warm servers must not outlive a call that may change it.
    fn stateful(&self) -> bool {
        self.spec.limits.storage_mb > 0
    }
}

/// A started, initialised server waiting for its one call.
pub(crate) struct Warm {
    server: Box<dyn WarmServer>,
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
    config: PoolConfig,
    tools: Mutex<HashMap<String, ToolPool>>,
    closed: AtomicBool,
    expiry_started: AtomicBool,
    /// Woken whenever a warm sandbox becomes ready or a warm-up fails.
    changed: Notify,
}

impl Pool {
    pub fn new(config: PoolConfig) -> Pool {
        Pool {
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
            discard(old.ready);
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
        discard(stale);
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
                let warmed = warm_up(&recipe).await;
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
        discard(unwanted.into_iter().collect());
        self.changed.notify_waiters();
    }

    /// Destroys the warm sandboxes of `tool` (its grant, version or status changed); waits
    /// until each is gone.
    pub async fn forget(&self, tool: &str) {
        let removed = self.tools().remove(tool);
        if let Some(pool) = removed {
            destroy_all(pool.ready).await;
        }
    }

    /// Destroys the warm sandboxes whose `/data` is `state_dir` (its volume is let go of);
    /// waits until each is gone.
    pub async fn forget_state(&self, state_dir: &std::path::Path) {
        let removed: Vec<ToolPool> = {
            let mut tools = self.tools();
            let names: Vec<String> = tools
                .iter()
                .filter(|(_, p)| p.recipe.spec.state_dir == state_dir)
                .map(|(n, _)| n.clone())
                .collect();
            names.iter().filter_map(|n| tools.remove(n)).collect()
        };
        destroy_all(removed.into_iter().flat_map(|p| p.ready).collect()).await;
    }

    /// Destroys every warm sandbox and starts no more; waits until each is gone.
    pub async fn shutdown(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let ready: Vec<Warm> = self.tools().drain().flat_map(|(_, p)| p.ready).collect();
        destroy_all(ready).await;
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
                // Not kept alive by its own expiry while the sandboxes go.
                drop(pool);
                destroy_all(expired.into_iter().flat_map(|p| p.ready).collect()).await;
            }
        });
    }
}

/// Destroys `warms` (at once, each in its own task) and waits until all are gone.
async fn destroy_all(warms: Vec<Warm>) {
    let mut destroying = tokio::task::JoinSet::new();
    for warm in warms {
        destroying.spawn(warm.server.destroy());
    }
    while destroying.join_next().await.is_some() {}
}

/// Destroys `warms` in the background. Without an async runtime to do it on, they are dropped,
/// which destroys them too (from threads of their own), as does a runtime that ends before
/// the task ran.
fn discard(warms: Vec<Warm>) {
    if warms.is_empty() {
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(destroy_all(warms));
        }
        Err(_) => drop(warms),
    }
}

/// Starts one server for `recipe`'s tool in its kind of sandbox and gets it ready. The
/// warm-up has the grant's whole timeout; the call that takes the sandbox gets it again.
async fn warm_up(recipe: &Recipe) -> Result<Warm, String> {
    let spec = recipe.warm_up_spec();
    let Ready { server, pin_refusal } = recipe.launcher.warm_up(recipe, &spec).await?;
    Ok(Warm {
        server,
        pin_refusal,
        ready_at: Instant::now(),
    })
}

/// Gets a started server ready for its call: `initialize`, and for a pinned tool `tools/list`
/// checked against the pin. The pin's refusal, if any, is kept for the call that takes it.
pub(crate) async fn get_ready<S: ServerStdio>(
    session: &mut Session<S>,
    pinned: Option<&[Value]>,
) -> Result<Option<String>, String> {
    session.initialize().await.map_err(|e| e.to_string())?;
    match pinned {
        Some(pinned) => {
            let served = session.list_tools().await.map_err(|e| e.to_string())?;
            Ok(super::pin_refusal(pinned, &served))
        }
        None => Ok(None),
    }
}

/// The one call over a ready server's session: `tools/call` (or the pin's refusal) under the
/// call's deadline, and what the record keeps (stderr with the protocol notes, the verdict).
pub(crate) async fn answer<S: ServerStdio>(session: &mut Session<S>, call: WarmCall<'_>) -> Conversed {
    session.set_deadline(call.deadline);
    let verdict = match call.pin_refusal {
        Some(refusal) => Verdict {
            status: ExecutionStatus::Failure,
            output: None,
            error: Some(refusal),
        },
        None => match session.call_tool(call.tool, call.arguments).await {
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
    Conversed {
        watched,
        verdict: Some(verdict),
    }
}

impl Warm {
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
            server,
            pin_refusal,
            ready_at,
        } = self;
        let taken_at = Instant::now();
        let started_at = server.started_at();
        let call = WarmCall {
            tool,
            arguments,
            deadline: taken_at + timeout,
            pin_refusal,
        };
        let (mut outcome, teardown) = server.serve(call).await;
        outcome.warm = Some(WarmStart {
            started_ms_before_call: millis(taken_at.duration_since(started_at)),
            ready_ms_before_call: millis(taken_at.duration_since(ready_at)),
        });
        let (pool, served) = (pool.clone(), spec_tool);
        tokio::spawn(async move {
            teardown.await;
            pool.call_ended(&served, &key, None);
        });
        outcome
    }
}

/// A duration in whole milliseconds, saturating (a warm server waits minutes at most).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
