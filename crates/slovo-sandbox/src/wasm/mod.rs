//! The WebAssembly backend: tools compiled to WebAssembly (WASI preview 1 command modules) run
//! in-process under wasmtime, with no kernel attack surface of their own.
//!
//! # Brief overview
//! [`WasmBackend`] implements [`Backend`] for `execution.type: wasm`.
//! - **Install** ([`Backend::install`]) reads the module from the tool's bundle, compiles it
//!   once and keeps the artifact in [`WasmConfig::cache_dir`], keyed by the module's SHA-256
//!   and the engine's fingerprint (`artifact.rs`). Imports are checked there: a module that
//!   imports anything but WASI preview 1 and `slovo_http` is refused at install.
//! - **Run** ([`Backend::run`]) never compiles. It loads the verified artifact (once per
//!   process), instantiates it from the pooling allocator and calls `_start` on a blocking
//!   thread, with
//!   - the request JSON on stdin, `SLOVO_CAPABILITY` in the environment, stdout and stderr
//!     captured and capped (`pipes.rs`);
//!   - `/data` preopened to the tool's state directory, under its storage quota, and nothing
//!     else of the host's file system; no sockets (`wasi.rs`);
//!   - outbound HTTP made by the host on the tool's behalf (`slovo_http`), each request and
//!     redirect checked by the egress proxy's check against the call's network grant; the
//!     refusals become the outcome's network denials (`http.rs`);
//!   - linear memory and tables limited to the grant, the wall-clock timeout and the CPU share
//!     enforced by epoch interruption (`limits.rs`).
//!
//! | how the call ended                     | status    | reason                                    |
//! |----------------------------------------|-----------|-------------------------------------------|
//! | `_start` returned or `proc_exit(0)`    | `success` |                                           |
//! | `proc_exit(n)`, n ≠ 0                  | `failure` | `exited with code n`                      |
//! | a trap (unreachable, stack overflow, …) | `failure` | `trap: …`                                 |
//! | memory growth past the grant           | `killed`  | `killed: memory limit of N MB exceeded`   |
//! | table growth past the limit            | `killed`  | `killed: table limit of N elements …`     |
//! | stdout past its cap                    | `killed`  | `killed: stdout exceeded the limit of …`  |
//! | the wall-clock deadline                | `timeout` | `timeout: wall-clock limit of …`          |
//! | not installed, bad module, no slot     | `failure` | the reason                                |
//!
//! The policy and its reasons are in `docs/wasm.md`.
//!
//! # Example
//! ```no_run
//! use std::sync::Arc;
//! use slovo_sandbox::Backends;
//! use slovo_sandbox::wasm::{WasmBackend, WasmConfig};
//! let wasm = WasmBackend::new(WasmConfig::new("/var/lib/slovo/wasm-cache")).unwrap();
//! let backends = Backends::new().with(Arc::new(wasm));
//! ```

pub mod artifact;
mod engine;
pub mod http;
pub mod limits;
pub mod pipes;
pub mod wasi;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use slovo_core::execution::ExecutionStatus;
use slovo_core::install::{InstallFacts, WasmFacts};
use slovo_core::manifest::Execution;
use slovo_egress::{CallGrant, EgressConfig, EgressProxy};
use wasmtime::{Engine, InstancePre, Linker, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};

use crate::{Backend, BackendError, InstallRequest, Outcome, SandboxSpec};
use limits::{CallClock, Limiter};
use pipes::{CappedPipe, Overflow};
use wasi::{CallState, QuotaCharge, Volume};

/// How the WebAssembly backend is set up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WasmConfig {
    /// Where precompiled artifacts are kept (the CLI uses `<data_dir>/wasm-cache`).
    pub cache_dir: PathBuf,
    /// Calls that can run at once (slots of the pooling allocator); one more fails with
    /// "no free instance slot". By default, 64.
    pub max_instances: u32,
    /// Largest linear memory any grant can give (MiB): the size of each pool slot's address
    /// space reservation. By default, 4096 (all of a 32-bit memory).
    pub max_memory_mb: u64,
    /// Elements per table. By default, 100 000.
    pub max_table_elements: usize,
    /// Bytes of native stack WebAssembly may use; deeper recursion traps. By default, 1 MiB.
    pub max_wasm_stack: usize,
    /// Bytes of stdout kept; more kills the call. By default, 4 MiB.
    pub stdout_limit: usize,
    /// Bytes of stderr kept; more is discarded. By default, 256 KiB.
    pub stderr_limit: usize,
    /// Epoch tick: the granularity of the timeout and of CPU throttling. By default, 5 ms.
    pub tick: Duration,
    /// Largest response body an outbound HTTP request of a tool accepts (bytes). By default,
    /// 4 MiB.
    pub http_response_limit: usize,
}

impl WasmConfig {
    /// The defaults, with `cache_dir`.
    pub fn new(cache_dir: impl Into<PathBuf>) -> WasmConfig {
        WasmConfig {
            cache_dir: cache_dir.into(),
            max_instances: 64,
            max_memory_mb: 4096,
            max_table_elements: 100_000,
            max_wasm_stack: 1024 * 1024,
            stdout_limit: 4 * 1024 * 1024,
            stderr_limit: 256 * 1024,
            tick: Duration::from_millis(5),
            http_response_limit: 4 * 1024 * 1024,
        }
    }
}

/// The backend could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    /// wasmtime refused the configuration (or the epoch thread could not start).
    #[error("failed to set up the WebAssembly engine: {0}")]
    Engine(String),
    /// The artifact cache directory could not be created.
    #[error("failed to create the WebAssembly cache directory {path}: {source}")]
    CacheDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Runs `execution.type: wasm` tools. Cheap to share: clone the `Arc` it sits in.
pub struct WasmBackend {
    inner: Arc<Inner>,
}

struct Inner {
    config: WasmConfig,
    engine: Engine,
    fingerprint: String,
    linker: Linker<CallState>,
    ticker: engine::Ticker,
    /// Loaded modules by module path (bundle directories are content-addressed and read-only,
    /// so a path always names the same bytes).
    modules: Mutex<HashMap<PathBuf, Arc<Loaded>>>,
    /// State directory usage, by directory.
    volumes: Mutex<HashMap<PathBuf, Arc<Volume>>>,
    /// Whose check outbound HTTP goes through.
    egress: RwLock<EgressProxy>,
}

/// A module ready to instantiate.
struct Loaded {
    pre: InstancePre<CallState>,
    module_sha256: String,
}

impl WasmBackend {
    /// Sets up the engine (and its epoch thread) and the cache directory.
    pub fn new(config: WasmConfig) -> Result<WasmBackend, WasmError> {
        std::fs::create_dir_all(&config.cache_dir).map_err(|source| WasmError::CacheDir {
            path: config.cache_dir.clone(),
            source,
        })?;
        let engine = engine::build(&config)?;
        let fingerprint = engine::fingerprint(&engine, &config);
        let linker = wasi::linker(&engine).map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        let ticker = engine::Ticker::start(engine.clone(), config.tick)?;
        Ok(WasmBackend {
            inner: Arc::new(Inner {
                config,
                engine,
                fingerprint,
                linker,
                ticker,
                modules: Mutex::default(),
                volumes: Mutex::default(),
                egress: RwLock::new(EgressProxy::new(EgressConfig::default())),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &WasmConfig {
        &self.inner.config
    }

    /// Checks outbound HTTP of calls with `proxy`'s policy and resolver (by default, the strict
    /// public-address policy and the system resolver), as `ProcessBackend::set_egress` does.
    pub fn set_egress(&self, proxy: EgressProxy) {
        *self.inner.egress.write().unwrap_or_else(PoisonError::into_inner) = proxy;
    }

    /// The engine fingerprint artifacts are keyed by.
    pub fn engine_fingerprint(&self) -> &str {
        &self.inner.fingerprint
    }

    /// Runs one call on the current thread, blocking it until the call ends. [`Backend::run`]
    /// is this on a blocking thread of the Tokio runtime, with a safety net on the timeout;
    /// callers with a thread of their own (and benchmarks) may call it directly. Must not be
    /// called from an async task.
    pub fn run_blocking(&self, spec: &SandboxSpec) -> Outcome {
        self.inner.run(spec)
    }
}

impl std::fmt::Debug for WasmBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmBackend")
            .field("config", &self.inner.config)
            .field("fingerprint", &self.inner.fingerprint)
            .finish()
    }
}

/// Extra time past a call's timeout before [`Backend::run`] stops waiting for its thread.
const ABANDON_GRACE: Duration = Duration::from_secs(2);

#[async_trait]
impl Backend for WasmBackend {
    fn kind(&self) -> &'static str {
        "wasm"
    }

    async fn install(&self, request: &InstallRequest) -> Result<InstallFacts, BackendError> {
        let inner = self.inner.clone();
        let request = request.clone();
        let tool = request.tool.clone();
        tokio::task::spawn_blocking(move || inner.install(&request))
            .await
            .unwrap_or_else(|e| Err(format!("install thread failed: {e}")))
            .map_err(|reason| BackendError::Install { tool, reason })
    }

    async fn run(&self, spec: &SandboxSpec) -> Outcome {
        let inner = self.inner.clone();
        let owned = spec.clone();
        let limit = spec.limits.timeout + ABANDON_GRACE;
        match tokio::time::timeout(limit, tokio::task::spawn_blocking(move || inner.run(&owned))).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) => Outcome::failed(format!("the WebAssembly call thread failed: {e}")),
            Err(_) => {
                tracing::error!(execution = %spec.execution_id, tool = %spec.tool, "wasm call outlived its timeout; abandoned");
                Outcome {
                    status: ExecutionStatus::Timeout,
                    error: Some(format!(
                        "timeout: wall-clock limit of {:?} exceeded (the call did not stop; its thread was abandoned)",
                        spec.limits.timeout
                    )),
                    ..Outcome::default()
                }
            }
        }
    }
}

impl Inner {
    fn install(&self, request: &InstallRequest) -> Result<InstallFacts, String> {
        let Execution::Wasm { module } = &request.execution else {
            return Err(format!(
                "the wasm backend cannot install an execution of type {}",
                request.execution.kind()
            ));
        };
        let bundle = request
            .bundle_dir
            .as_deref()
            .ok_or("a wasm tool needs its bundle (import the bundle, not the manifest alone)")?;
        let path = artifact::module_path(bundle, module)?;
        let (bytes, sha) = artifact::read_module(&path)?;
        let compiled = artifact::compile(
            &self.engine,
            &self.fingerprint,
            &self.config.cache_dir,
            &bytes,
            &sha,
        )?;
        let pre = self.prepare(&compiled.module)?;
        let imports: Vec<String> = compiled
            .module
            .imports()
            .map(|i| format!("{}::{}", i.module(), i.name()))
            .collect();
        self.modules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                path.clone(),
                Arc::new(Loaded {
                    pre,
                    module_sha256: sha.clone(),
                }),
            );
        Ok(InstallFacts::Wasm(WasmFacts {
            module: module.clone(),
            module_sha256: sha,
            module_bytes: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
            engine: format!("wasmtime 48 ({})", self.fingerprint),
            engine_fingerprint: self.fingerprint.clone(),
            artifact: compiled.paths.artifact,
            artifact_sha256: compiled.record.artifact_sha256,
            compiled: compiled.compile_ms.is_some(),
            compile_ms: compiled.compile_ms,
            imports,
        }))
    }

    /// Links a module (its imports must all be ours) and checks it is a WASI command.
    fn prepare(&self, module: &wasmtime::Module) -> Result<InstancePre<CallState>, String> {
        match module.get_export("_start") {
            Some(wasmtime::ExternType::Func(f)) if f.params().len() == 0 && f.results().len() == 0 => {}
            _ => {
                return Err(
                    "the module has no `_start` function: build it as a WASI command (a wasm32-wasip1 binary)".into(),
                );
            }
        }
        self.linker.instantiate_pre(module).map_err(|e| {
            format!(
                "the module cannot be linked: {e:#} (tools get WASI preview 1 and `{}` and nothing else)",
                http::MODULE
            )
        })
    }

    /// The loaded module for a call: from memory, or from its verified artifact. Never compiles.
    fn loaded(&self, spec: &SandboxSpec) -> Result<Arc<Loaded>, String> {
        let Execution::Wasm { module } = &spec.execution else {
            return Err(format!(
                "the wasm backend cannot run an execution of type {}",
                spec.execution.kind()
            ));
        };
        let bundle = spec
            .bundle_dir
            .as_deref()
            .ok_or("not installed: the tool has no bundle")?;
        let path = artifact::module_path(bundle, module)?;
        if let Some(l) = self
            .modules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&path)
        {
            return Ok(l.clone());
        }
        let (_, sha) = artifact::read_module(&path)?;
        let paths = artifact::ArtifactPaths::new(&self.config.cache_dir, &sha, &self.fingerprint);
        let module = artifact::load(&self.engine, &self.fingerprint, &paths, &sha).map_err(|e| {
            format!(
                "not installed: no valid precompiled artifact for module {module} (sha256 {sha}) on this engine; \
                 approve the tool again to install it ({e})"
            )
        })?;
        let pre = self.prepare(&module)?;
        let loaded = Arc::new(Loaded {
            pre,
            module_sha256: sha,
        });
        self.modules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(path, loaded.clone());
        Ok(loaded)
    }

    fn volume(&self, dir: &Path) -> Arc<Volume> {
        let mut volumes = self.volumes.lock().unwrap_or_else(PoisonError::into_inner);
        volumes
            .entry(dir.to_path_buf())
            .or_insert_with(|| Arc::new(Volume::measured(dir)))
            .clone()
    }

    fn run(&self, spec: &SandboxSpec) -> Outcome {
        let loaded = match self.loaded(spec) {
            Ok(l) => l,
            Err(reason) => return Outcome::failed(reason),
        };
        let _running = self.ticker.running();
        let clock = CallClock::start(spec.limits.timeout, spec.limits.cpu_percent);
        let stdout = CappedPipe::new(self.config.stdout_limit, Overflow::Trap);
        let stderr = CappedPipe::new(self.config.stderr_limit, Overflow::Truncate);
        let wasi = match self.wasi_ctx(spec, &stdout, &stderr) {
            Ok(w) => w,
            Err(reason) => return Outcome::failed(reason),
        };
        let quota = QuotaCharge::begin(
            self.volume(&spec.state_dir),
            spec.state_dir.clone(),
            spec.limits.storage_mb.saturating_mul(1024 * 1024),
        );
        let limiter = Limiter::new(spec.limits.memory_mb, self.config.max_table_elements);
        let checker = self
            .egress
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .checker(CallGrant {
                execution_id: spec.execution_id.clone(),
                policy: spec.network.clone(),
            });
        let http = http::HttpCalls::new(checker, self.config.http_response_limit);
        let mut store = Store::new(&self.engine, CallState::new(wasi, limiter, clock, quota, http));
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            ctx.data_mut().clock.on_tick()?;
            Ok(wasmtime::UpdateDeadline::Continue(1))
        });

        let result = loaded.pre.instantiate(&mut store).and_then(|instance| {
            let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
            start.call(&mut store, ())
        });

        let state = store.data();
        let cpu = state.clock.cpu_used();
        let mut outcome = classify(result, state, &stdout, spec, &self.config);
        outcome.stderr = String::from_utf8_lossy(&stderr.take()).into_owned();
        outcome.output = Outcome::output_from_stdout(&stdout.take());
        outcome.cpu_ms = Some(u64::try_from(cpu.as_millis()).unwrap_or(u64::MAX));
        outcome.peak_memory_bytes = Some(state.limiter.peak_memory as u64);
        outcome.network_denials = state.http.denials();
        outcome.sandbox_id = Some(format!(
            "wasm:{}:{}",
            &loaded.module_sha256[..12],
            spec.execution_id
        ));
        tracing::debug!(
            execution = %spec.execution_id,
            tool = %spec.tool,
            status = %outcome.status,
            cpu_ms = outcome.cpu_ms,
            throttled_ms = u64::try_from(state.clock.throttled.as_millis()).unwrap_or(u64::MAX),
            peak_memory = state.limiter.peak_memory,
            "wasm call finished"
        );
        drop(store); // ends the quota charge: the state directory is measured again if written
        outcome
    }

    fn wasi_ctx(
        &self,
        spec: &SandboxSpec,
        stdout: &CappedPipe,
        stderr: &CappedPipe,
    ) -> Result<wasmtime_wasi::p1::WasiP1Ctx, String> {
        let request =
            serde_json::to_vec(&spec.request).map_err(|e| format!("cannot encode the request: {e}"))?;
        let mut b = WasiCtxBuilder::new();
        // Our own blocking thread: file I/O runs on it rather than hopping to another.
        b.allow_blocking_current_thread(true)
            .stdin(MemoryInputPipe::new(request))
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .arg(&spec.tool)
            .env("SLOVO_CAPABILITY", &spec.capability.name)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        b.preopened_dir(&spec.state_dir, "/data", wasmtime_wasi::FsPerms::ReadWrite)
            .map_err(|e| {
                format!(
                    "cannot open the state directory {}: {e:#}",
                    spec.state_dir.display()
                )
            })?;
        Ok(b.build_p1())
    }
}

/// Turns how `_start` ended into an outcome (output and accounting are filled in by the caller).
fn classify(
    result: wasmtime::Result<()>,
    state: &CallState,
    stdout: &CappedPipe,
    spec: &SandboxSpec,
    config: &WasmConfig,
) -> Outcome {
    let killed = |reason: String| Outcome {
        status: ExecutionStatus::Killed,
        error: Some(format!("killed: {reason}")),
        ..Outcome::default()
    };
    // Limits first: whatever the guest did after hitting one, the limit is why it stopped.
    if state.clock.timed_out {
        return Outcome {
            status: ExecutionStatus::Timeout,
            error: Some(format!(
                "timeout: wall-clock limit of {:?} exceeded",
                spec.limits.timeout
            )),
            ..Outcome::default()
        };
    }
    if state.limiter.memory_exceeded {
        return killed(format!("memory limit of {} MB exceeded", spec.limits.memory_mb));
    }
    if state.limiter.table_exceeded {
        return killed(format!(
            "table limit of {} elements exceeded",
            config.max_table_elements
        ));
    }
    if stdout.exceeded() {
        return killed(format!(
            "stdout exceeded the limit of {} bytes",
            config.stdout_limit
        ));
    }
    let err = match result {
        Ok(()) => {
            return Outcome {
                status: ExecutionStatus::Success,
                exit_code: Some(0),
                ..Outcome::default()
            };
        }
        Err(e) => e,
    };
    if let Some(exit) = err.downcast_ref::<I32Exit>() {
        return Outcome {
            status: if exit.0 == 0 {
                ExecutionStatus::Success
            } else {
                ExecutionStatus::Failure
            },
            exit_code: Some(exit.0),
            error: (exit.0 != 0).then(|| format!("exited with code {}", exit.0)),
            ..Outcome::default()
        };
    }
    if let Some(trap) = err.downcast_ref::<Trap>() {
        return Outcome::failed(format!("trap: {trap}"));
    }
    Outcome::failed(format!("failed: {err:#}"))
}
