//! The MCP backend: `execution.type: mcp` tools are MCP servers, each call served by a server
//! started fresh in the process sandbox and stopped after its one answer.
//!
//! # Brief overview
//! [`McpBackend`] implements [`Backend`] for `execution.type: mcp` with the `stdio`
//! transport. One call:
//! 1. the process sandbox starts the server's command (its bundle read-only at `/tool`, the
//!    system directories read-only with `system_paths`, `/data` its state, the grant's limits
//!    and network) — exactly as it starts a process tool;
//! 2. [`client::Session`] speaks MCP over the server's stdin and stdout: `initialize`
//!    (protocol 2025-11-25) and `notifications/initialized` — or `server/discover` with a
//!    server of the stateless 2026-07-28 revision —, `tools/call`, then closes stdin;
//! 3. the `tools/call` result becomes the call's verdict ([`result`]); the sandbox is destroyed.
//!
//! A server that comes as an OCI image (`execution.image`) runs the same way in a fresh
//! container of the Docker backend instead ([`oci`]): the client speaks over the container's
//! attached stdio ([`stdio::ServerStdio`]). The warm pool ([`pool`]) keeps servers of both
//! kinds started ahead of their call, each for one call.
//!
//! Everything the server writes counts against the stdout cap, stderr is kept with its cap,
//! and every wait ends at the call's deadline. `docs/mcp-servers.md` has the whole story.

mod client;
mod conversation;
#[cfg(feature = "docker")]
mod oci;
#[cfg(feature = "http")]
mod over_http;
mod pin;
mod pool;
#[cfg(feature = "http")]
mod remote;
mod result;
#[cfg(feature = "http")]
mod standard_headers;
mod stdio;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};
use slovo_core::install::{InstallFacts, McpFacts};
use slovo_core::manifest::{Execution, McpTransport};

pub use conversation::{PROTOCOL_VERSION, STATELESS_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS};
pub use pin::{ToolListChange, difference as tool_list_difference, digest as tools_digest};
pub use pool::PoolConfig;

use slovo_core::execution::{CallTarget, ExecutionStatus};
use slovo_core::manifest::Capability;
use slovo_core::permissions::{DEFAULT_MEMORY_MB, DEFAULT_PIDS, Grant};
use tokio::sync::Mutex;

use crate::process::{Conversed, Dialogue, ProcessBackend, Program, ToolIo, Verdict};
use crate::{Backend, BackendError, InstallRequest, Outcome, SandboxSpec};
use stdio::ServerStdio;

/// Runs MCP servers over stdio in the process sandbox, and reaches remote ones
/// (streamable-http) under the HTTP backend's network rules.
#[derive(Clone)]
pub struct McpBackend {
    process: Arc<ProcessBackend>,
    /// Warm sandboxes of recently used tools; `None` when disabled.
    pool: Option<Arc<pool::Pool>>,
    /// Starts warm servers in the process sandbox.
    in_process: Arc<dyn pool::Launcher>,
    /// Starts warm servers in containers, where this host has a Docker backend.
    #[cfg(feature = "docker")]
    in_container: Option<Arc<dyn pool::Launcher>>,
    /// The address policy, redirect limit and response cap for remote servers.
    #[cfg(feature = "http")]
    remote: Arc<crate::http::HttpConfig>,
    /// Runs servers that come as OCI images (`execution.image`); `None` where this host has
    /// no Docker backend, and such servers are refused with the reason.
    #[cfg(feature = "docker")]
    docker: Option<Arc<crate::docker::DockerBackend>>,
}

impl std::fmt::Debug for McpBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpBackend")
            .field("process", &self.process)
            .field("pool", &self.pool.is_some())
            .finish()
    }
}

impl McpBackend {
    /// A backend that starts each server cold, in `process`'s sandbox (and so with its
    /// configuration, host support and egress proxy), for every call; remote servers are
    /// reached under the default HTTP configuration (public addresses only).
    pub fn new(process: Arc<ProcessBackend>) -> McpBackend {
        McpBackend::with_pool(
            process,
            PoolConfig {
                size: 0,
                ..PoolConfig::default()
            },
        )
    }

    /// A backend that keeps `pool.size` warm, single-use sandboxes per recently called tool
    /// (`docs/mcp-servers.md`, "Warm, but never reused"); a size of 0 starts every server cold.
    pub fn with_pool(process: Arc<ProcessBackend>, pool: PoolConfig) -> McpBackend {
        let pool = (pool.size > 0).then(|| Arc::new(pool::Pool::new(pool)));
        McpBackend {
            in_process: Arc::new(pool::InProcess(process.clone())),
            process,
            pool,
            #[cfg(feature = "docker")]
            in_container: None,
            #[cfg(feature = "http")]
            remote: Arc::new(crate::http::HttpConfig::default()),
            #[cfg(feature = "docker")]
            docker: None,
        }
    }

    /// Runs servers that come as OCI images in `docker`'s containers, with its isolation (no
    /// network unless granted, read-only root, no capabilities, limits, `/data`, its user);
    /// with the pool on, warm ones too.
    #[cfg(feature = "docker")]
    pub fn with_docker(mut self, docker: Arc<crate::docker::DockerBackend>) -> McpBackend {
        self.in_container = Some(Arc::new(oci::InContainer(docker.clone())));
        self.docker = Some(docker);
        self
    }

    /// How many warm sandboxes are ready for `tool`.
    pub fn warm_ready(&self, tool: &str) -> usize {
        self.pool.as_ref().map_or(0, |p| p.ready(tool))
    }

    /// Waits until a warm sandbox of `tool` is ready (after its first call), at most
    /// `timeout`; `false` if none became ready (no pool, or its server failed to start).
    pub async fn wait_warm(&self, tool: &str, timeout: std::time::Duration) -> bool {
        match &self.pool {
            Some(p) => p.wait_ready(tool, timeout).await,
            None => false,
        }
    }

    /// Reaches remote servers under `config`: the same addresses, redirects and response
    /// cap as HTTP tools.
    #[cfg(feature = "http")]
    pub fn with_remote(mut self, config: crate::http::HttpConfig) -> McpBackend {
        self.remote = Arc::new(config);
        self
    }

    async fn install_remote(&self, request: &InstallRequest) -> Result<InstallFacts, String> {
        #[cfg(feature = "http")]
        {
            over_http::install(&self.remote, request)
                .await
                .map_err(|e| format!("the server did not list its tools: {e}"))
        }
        #[cfg(not(feature = "http"))]
        {
            let _ = request;
            Err("this build has no HTTP support for remote MCP servers".into())
        }
    }

    async fn run_remote(&self, spec: &SandboxSpec, tool: &str, arguments: &Value) -> Outcome {
        #[cfg(feature = "http")]
        {
            over_http::run(&self.remote, spec, tool, arguments).await
        }
        #[cfg(not(feature = "http"))]
        {
            let _ = (spec, tool, arguments);
            Outcome::failed("this build has no HTTP support for remote MCP servers")
        }
    }
}

impl McpBackend {
    /// The install run of a server in an image: the image found by its digest, started once in
    /// its container (no network, no state) to list its tools.
    async fn install_oci(
        &self,
        request: &InstallRequest,
        image: &str,
        program: &Program,
    ) -> Result<InstallFacts, String> {
        #[cfg(feature = "docker")]
        {
            let docker = self.docker.as_ref().ok_or_else(no_docker)?;
            oci::install(docker, request, image, program).await
        }
        #[cfg(not(feature = "docker"))]
        {
            let _ = (request, image, program);
            Err(no_docker())
        }
    }

    /// One call of a server in an image, in a fresh container started for it.
    async fn run_oci(&self, spec: &SandboxSpec, image: &str, program: &Program, call: &OneCall) -> Outcome {
        #[cfg(feature = "docker")]
        {
            match &self.docker {
                Some(docker) => oci::run(docker, spec, image, program, call).await,
                None => Outcome::failed(no_docker()),
            }
        }
        #[cfg(not(feature = "docker"))]
        {
            let _ = (spec, image, program, call);
            Outcome::failed(no_docker())
        }
    }
}

impl McpBackend {
    /// One call on a server started for it, in the kind of sandbox its tool runs in: a
    /// container of its image, or the process sandbox.
    async fn run_started_cold(
        &self,
        spec: &SandboxSpec,
        image: Option<&str>,
        program: &Program,
        call: &OneCall,
    ) -> Outcome {
        match image {
            Some(image) => self.run_oci(spec, image, program, call).await,
            None => self.run_cold(spec, program, call).await,
        }
    }

    /// What starts warm servers of a tool in `image` (or in the process sandbox); `None` where
    /// none can be started here.
    fn launcher(&self, image: Option<&str>) -> Option<Arc<dyn pool::Launcher>> {
        match image {
            None => Some(self.in_process.clone()),
            #[cfg(feature = "docker")]
            Some(_) => self.in_container.clone(),
            #[cfg(not(feature = "docker"))]
            Some(_) => None,
        }
    }
}

/// Why a server in an image cannot run here.
fn no_docker() -> String {
    "this MCP server comes as an OCI image, and this host gives MCP servers no Docker backend".into()
}

/// Whether the tool is a remote server (`transport: streamable-http`).
fn is_remote(execution: &Execution) -> bool {
    matches!(
        execution,
        Execution::Mcp {
            transport: McpTransport::StreamableHttp,
            ..
        }
    )
}

/// The OCI image a stdio server runs in (`execution.image`), if it runs in one.
fn image_of(execution: &Execution) -> Option<&str> {
    match execution {
        Execution::Mcp {
            transport: McpTransport::Stdio,
            image: Some(image),
            ..
        } => Some(image),
        _ => None,
    }
}

/// The sandboxed program of an MCP tool.
fn program_of(execution: &Execution) -> Result<Program, String> {
    let Execution::Mcp {
        transport: McpTransport::Stdio,
        command,
        system_paths,
        env,
        ..
    } = execution
    else {
        return Err(format!("a {} tool is not an MCP tool", execution.kind()));
    };
    Ok(Program {
        command: command.clone(),
        system_paths: *system_paths,
        env: env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        system_program_allowed: true,
        call_env: false,
    })
}

/// The server's secret variables (`secret_env`), from the tool's secrets; a call whose secret
/// is not set fails before the server starts.
fn add_secrets(program: &mut Program, spec: &SandboxSpec) -> Result<(), String> {
    let Execution::Mcp { secret_env, .. } = &spec.execution else {
        return Ok(());
    };
    for (variable, secret) in secret_env {
        let value = spec.secrets.get(secret).ok_or_else(|| {
            format!(
                "the secret {secret:?} (the server's {variable}) is not set: `slovo secret set {} {secret}`",
                spec.tool
            )
        })?;
        program.env.push((variable.clone(), value.to_string()));
    }
    Ok(())
}

/// The server's secret variables whose secrets the install run has (given at import, or set
/// before approval): a server may list its tools only with its credential. One not set is
/// left out, and the server lists what it lists without it.
fn add_install_secrets(program: &mut Program, request: &InstallRequest) {
    let Execution::Mcp { secret_env, .. } = &request.execution else {
        return;
    };
    for (variable, secret) in secret_env {
        if let Some(value) = request.secrets.get(secret) {
            program.env.push((variable.clone(), value.to_string()));
        }
    }
}

/// Limits of the one run at install that reads the server's tool list: no network, no
/// state (`/data` empty and read-only), and the defaults a manifest gets when it says nothing.
fn discovery_grant() -> Grant {
    Grant {
        internet_access: false,
        network_allow: Vec::new(),
        storage_quota_mb: 0,
        cpu_limit_percent: 100,
        memory_limit_mb: DEFAULT_MEMORY_MB,
        timeout_s: DISCOVERY_TIMEOUT_S,
        pids_limit: DEFAULT_PIDS,
        expires_at: None,
    }
}

/// Seconds the install run gets to start the server and list its tools.
const DISCOVERY_TIMEOUT_S: u64 = 30;

/// One `tools/call`, from `initialize` to shutdown; with a pinned tool list, the server's
/// `tools/list` must match it before the tool is called.
struct OneCall {
    tool: String,
    arguments: Value,
    pinned: Option<Vec<Value>>,
}

/// The call's refusal if the server served another tool list than the one pinned.
fn pin_refusal(pinned: &[Value], served: &[Value]) -> Option<String> {
    pin::difference(pinned, served).map(|difference| {
        ToolListChange {
            difference,
            served_sha256: pin::digest(served),
        }
        .refusal()
    })
}

impl OneCall {
    async fn talk<S: ServerStdio>(&self, session: &mut client::Session<S>) -> Verdict {
        if let Err(e) = session.initialize().await {
            return e.verdict();
        }
        if let Some(pinned) = &self.pinned {
            match session.list_tools().await {
                Ok(served) => {
                    if let Some(refusal) = pin_refusal(pinned, &served) {
                        return Verdict {
                            status: ExecutionStatus::Failure,
                            output: None,
                            error: Some(refusal),
                        };
                    }
                }
                Err(e) => return e.verdict(),
            }
        }
        match session.call_tool(&self.tool, &self.arguments).await {
            Ok(r) => result::verdict_of(&r),
            Err(e) => e.verdict(),
        }
    }

    /// The whole call over a started server's streams: the conversation, the shutdown, and
    /// what the record keeps.
    async fn over<S: ServerStdio>(&self, mut session: client::Session<S>) -> Conversed {
        let verdict = self.talk(&mut session).await;
        session.shutdown().await;
        let mut watched = std::mem::take(&mut session.watched);
        // Protocol notes (progress, log messages, ignored output) go on the record with stderr.
        for note in &session.notes {
            watched
                .stderr
                .extend_from_slice(format!("\n[mcp] {note}").as_bytes());
        }
        Conversed {
            watched,
            verdict: Some(verdict),
        }
    }
}

#[async_trait]
impl Dialogue for OneCall {
    async fn converse(&self, io: ToolIo) -> Conversed {
        self.over(client::Session::new(io)).await
    }
}

/// What the install run found: the server's `initialize` result and its tools, or why not.
type Listed = Result<(Value, Vec<Value>), String>;

/// `initialize` and `tools/list`, for install.
#[derive(Default)]
struct ListTools {
    found: Mutex<Option<Listed>>,
}

impl ListTools {
    /// `initialize` and `tools/list` over a started server's streams; what was found is kept.
    async fn over<S: ServerStdio>(&self, mut session: client::Session<S>) -> Conversed {
        let listed = match session.initialize().await {
            Ok(()) => session.list_tools().await,
            Err(e) => Err(e),
        };
        session.shutdown().await;
        let verdict = match &listed {
            Ok(_) => Verdict {
                status: ExecutionStatus::Success,
                output: None,
                error: None,
            },
            Err(e) => e.verdict(),
        };
        let server = session.server.clone().unwrap_or(Value::Null);
        *self.found.lock().await = Some(listed.map(|tools| (server, tools)).map_err(|e| e.to_string()));
        Conversed {
            watched: std::mem::take(&mut session.watched),
            verdict: Some(verdict),
        }
    }

    /// The server's `initialize` answer and tools, or why not (with the end of its stderr).
    async fn found(&self, outcome: Outcome) -> Result<(Value, Vec<Value>), String> {
        match self.found.lock().await.take() {
            Some(Ok(found)) => Ok(found),
            Some(Err(e)) => Err(with_stderr(e, &outcome.stderr)),
            None => Err(with_stderr(
                outcome.error.unwrap_or_else(|| "the server did not start".into()),
                &outcome.stderr,
            )),
        }
    }
}

#[async_trait]
impl Dialogue for ListTools {
    async fn converse(&self, io: ToolIo) -> Conversed {
        self.over(client::Session::new(io)).await
    }
}

/// The spec of the one run at install that reads the server's tool list ([`discovery_grant`]).
fn install_spec(request: &InstallRequest) -> SandboxSpec {
    let probe = Capability {
        name: "tools/list".into(),
        description: "the install run".into(),
        parameters: json!({"type": "object"}),
        returns: None,
        endpoint: None,
        method: None,
        examples: Vec::new(),
        read_only: Some(true),
        destructive: Some(false),
    };
    let execution_id = format!("install-{}-{}", request.tool, request.version);
    SandboxSpec::from_grant(
        &discovery_grant(),
        CallTarget {
            execution_id: &execution_id,
            tool: &request.tool,
            version: &request.version,
            capability: &probe,
            execution: &request.execution,
            api: None,
            bundle_dir: request.bundle_dir.clone(),
            state_dir: request.state_dir.clone(),
            arguments: &json!({}),
        },
    )
}

impl McpBackend {
    /// One call on a server started for it in the process sandbox: `initialize`, the pin's
    /// `tools/list`, `tools/call`, shutdown.
    async fn run_cold(&self, spec: &SandboxSpec, program: &Program, dialogue: &OneCall) -> Outcome {
        match self.process.run_program(spec, program, dialogue).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, tool = %spec.tool, execution = %spec.execution_id, "MCP call failed");
                Outcome::failed(e.to_string())
            }
        }
    }

    /// Starts the server once in its sandbox (no network, no state) and reads its
    /// `initialize` answer and its tool list.
    async fn list_tools(
        &self,
        request: &InstallRequest,
        program: &Program,
    ) -> Result<(Value, Vec<Value>), String> {
        let spec = install_spec(request);
        let dialogue = ListTools::default();
        let outcome = self
            .process
            .run_program(&spec, program, &dialogue)
            .await
            .map_err(|e| e.to_string())?;
        dialogue.found(outcome).await
    }
}

/// An error with the end of the server's stderr, which usually says why it failed.
fn with_stderr(error: String, stderr: &str) -> String {
    let tail: String = stderr
        .trim()
        .chars()
        .rev()
        .take(600)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if tail.is_empty() {
        error
    } else {
        format!("{error}; its stderr ends: {tail}")
    }
}

#[async_trait]
impl Backend for McpBackend {
    fn kind(&self) -> &'static str {
        "mcp"
    }

    async fn install(&self, request: &InstallRequest) -> Result<InstallFacts, BackendError> {
        // The reason may quote the server (its stderr, its error): never its secrets.
        let fail = |reason: String| BackendError::Install {
            tool: request.tool.clone(),
            reason: request.secrets.redact(&reason),
        };
        if is_remote(&request.execution) {
            return self.install_remote(request).await.map_err(fail);
        }
        let mut program = program_of(&request.execution).map_err(fail)?;
        add_install_secrets(&mut program, request);
        if let Some(image) = image_of(&request.execution) {
            return self.install_oci(request, image, &program).await.map_err(fail);
        }
        let bundle = request
            .bundle_dir
            .as_ref()
            .ok_or_else(|| fail("an MCP server tool needs its bundle".into()))?;
        let first = program.command.first().cloned().unwrap_or_default();
        let host = if first.starts_with('/') {
            // A system program: it must exist here, where the sandbox's system directories
            // come from.
            std::path::PathBuf::from(&first)
        } else {
            bundle.join(first.trim_start_matches("./"))
        };
        if !host.is_file() {
            return Err(fail(format!("{} is not a file", host.display())));
        }
        if let Some(refusal) = self.process.refusal() {
            // Calls will be refused with this reason (recorded); approval still stands.
            return Ok(InstallFacts::Mcp(McpFacts::Refused {
                program: first,
                refusal: refusal.to_string(),
            }));
        }
        let (server, tools) = self.list_tools(request, &program).await.map_err(|e| {
            fail(format!(
                "the server did not list its tools when started in its sandbox: {e}"
            ))
        })?;
        Ok(InstallFacts::Mcp(McpFacts::Stdio {
            program: first,
            system_paths: program.system_paths,
            listed: pin::listed(&server, tools),
        }))
    }

    async fn shutdown(&self) {
        // The process backend is shut down by its own registration; the warm servers here.
        if let Some(pool) = &self.pool {
            pool.shutdown().await;
        }
    }

    async fn forget_tool(&self, tool: &str) {
        if let Some(pool) = &self.pool {
            pool.forget(tool).await;
        }
    }

    async fn run_installer(&self, spec: &SandboxSpec, env: &[(String, String)]) -> Outcome {
        // An MCP server's package is fetched in the same process sandbox its server runs in.
        self.process.run_installer(spec, env).await
    }

    async fn release_state(&self, state_dir: &std::path::Path, purge: bool) -> Result<(), BackendError> {
        if let Some(pool) = &self.pool {
            // A warm server holds the volume it is about to lose.
            pool.forget_state(state_dir).await;
        }
        // A server in an image had its state mounted by the Docker backend.
        #[cfg(feature = "docker")]
        if let Some(docker) = &self.docker {
            docker.release_state(state_dir, purge).await?;
        }
        self.process
            .release_state(state_dir, purge)
            .map_err(|e| BackendError::Install {
                tool: state_dir.display().to_string(),
                reason: format!("failed to release the state volume: {e}"),
            })
    }

    async fn run(&self, spec: &SandboxSpec) -> Outcome {
        let tool = spec
            .execution
            .mcp_tool_name(&spec.capability.name)
            .unwrap_or(&spec.capability.name)
            .to_string();
        let arguments = spec
            .request
            .get("arguments")
            .cloned()
            .unwrap_or_else(|| json!({}));
        if is_remote(&spec.execution) {
            return self.run_remote(spec, &tool, &arguments).await;
        }
        let mut program = match program_of(&spec.execution) {
            Ok(p) => p,
            Err(e) => return Outcome::failed(e),
        };
        if let Err(e) = add_secrets(&mut program, spec) {
            return Outcome::failed(e);
        }
        let image = image_of(&spec.execution);
        let Some(pool) = &self.pool else {
            let call = OneCall {
                tool,
                arguments,
                pinned: pin::pinned(spec),
            };
            return self.run_started_cold(spec, image, &program, &call).await;
        };
        let key = pool::key_of(spec, &program);
        if let Some(warm) = pool.take(&spec.tool, &key) {
            return warm
                .call(
                    pool,
                    key,
                    spec.tool.clone(),
                    &tool,
                    &arguments,
                    spec.limits.timeout,
                )
                .await;
        }
        let call = OneCall {
            tool,
            arguments,
            pinned: pin::pinned(spec),
        };
        let outcome = self.run_started_cold(spec, image, &program, &call).await;
        if let Some(launcher) = self.launcher(image) {
            let recipe = pool::Recipe::new(spec, &program, call.pinned, key.clone(), launcher);
            pool.call_ended(&spec.tool, &key, Some(recipe));
        }
        outcome
    }
}
