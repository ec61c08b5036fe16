//! A runtime whose MCP servers in images run in the real Docker backend, with its own uid and
//! volumes, with or without the warm pool; and the containers a tool has on this host. Used
//! with `oci_image.rs`, declared next to it by each test binary (`crate::oci_image`).
#![allow(dead_code)] // shared by test binaries, each using part of it

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use serde_json::Value;
use slovo_runtime::{Actor, CallRequest, ExecutionView, McpImport, McpSource, Runtime};
use slovo_sandbox::Backends;
use slovo_sandbox::docker::{DockerBackend, DockerConfig};
use slovo_sandbox::mcp::{McpBackend, PoolConfig};
use slovo_sandbox::process::{ProcessBackend, ProcessConfig};

/// The runtime and its parts. Dropped, it shuts the backends down (the state volumes the
/// calls mounted are unmounted); [`Harness::let_go`] drops it without.
pub struct Harness {
    pub rt: Runtime,
    /// The MCP backend (to wait for its warm containers).
    pub mcp: Arc<McpBackend>,
    pub docker: Arc<DockerBackend>,
    /// The uid the containers run as.
    pub uid: u32,
    /// Shuts the backends down when dropped, unless disarmed. Declared before `dir`: dropped
    /// before the directory holding the volumes is removed.
    shutdown: ShutdownOnDrop,
    pub dir: tempfile::TempDir,
}

/// Shuts `backends` down when dropped (from a thread with its own runtime, so that a test's
/// runtime need not be running), unless `armed` is false.
struct ShutdownOnDrop {
    backends: Option<Backends>,
}

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        let Some(backends) = self.backends.take() else {
            return;
        };
        let _ = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                runtime.block_on(backends.shutdown());
            }
        })
        .join();
    }
}

/// What [`Harness::let_go`] keeps: the Docker backend (to unmount the volumes afterwards)
/// and the directory.
pub struct Kept {
    pub docker: Arc<DockerBackend>,
    pub dir: tempfile::TempDir,
}

impl Kept {
    /// Unmounts the state volumes the calls mounted (the Docker backend's shutdown), from a
    /// runtime of its own.
    pub fn release_volumes(&self) {
        let docker = self.docker.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                runtime.block_on(slovo_sandbox::Backend::shutdown(docker.as_ref()));
            }
        })
        .join();
    }
}

impl Harness {
    /// No pool: every call starts its container cold.
    pub async fn new() -> Harness {
        Harness::with_pool(0).await
    }

    /// `size` warm containers per recently called tool (0: no pool).
    pub async fn with_pool(size: usize) -> Harness {
        Harness::with_pool_config(PoolConfig {
            size,
            ..PoolConfig::default()
        })
        .await
    }

    /// A pool as `pool` says.
    pub async fn with_pool_config(pool: PoolConfig) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let data = dir.path().join("data");
        let process = Arc::new(ProcessBackend::new(ProcessConfig::new(data.join("sandbox"))).unwrap());
        let uid = 1_970_000 + std::process::id() % 10_000;
        let mut config = DockerConfig::new(data.join("sandbox/volumes"));
        (config.uid, config.gid) = (uid, uid);
        let docker = DockerBackend::new(config);
        let mcp = Arc::new(McpBackend::with_pool(process.clone(), pool).with_docker(docker.clone()));
        let backends = Backends::new()
            .with(process)
            .with(docker.clone())
            .with(mcp.clone());
        let store = slovo_store::Store::open_sqlite(&dir.path().join("slovo.db"))
            .await
            .unwrap();
        Harness {
            rt: Runtime::new(store, backends.clone(), data),
            mcp,
            docker,
            uid,
            shutdown: ShutdownOnDrop {
                backends: Some(backends),
            },
            dir,
        }
    }

    pub async fn import(
        &self,
        source: McpSource,
        name: &str,
        args: &[&str],
    ) -> slovo_runtime::McpImportReport {
        let request = McpImport {
            source,
            name: Some(name.into()),
            env: Default::default(),
            args: args.iter().map(|a| a.to_string()).collect(),
            secrets: Default::default(),
        };
        self.rt.import_mcp(&request, &actor()).await.unwrap()
    }

    pub async fn call(&self, tool: &str, capability: &str, arguments: Value) -> ExecutionView {
        let exec = self
            .rt
            .call(CallRequest {
                tool: tool.into(),
                capability: capability.into(),
                arguments,
                conversation_id: None,
                turn_id: None,
                actor: actor(),
            })
            .await
            .unwrap();
        // What the call returned is what was stored.
        let stored = self.rt.execution(&exec.id).await.unwrap();
        assert_eq!(stored.status, exec.status);
        assert_eq!(stored.output, exec.output);
        assert_eq!(stored.warm, exec.warm);
        stored
    }

    /// Drops the runtime, its backends and its pool without shutting anything down, as a
    /// process that lets go of its runtime does; keeps what cleans up afterwards.
    pub fn let_go(self) -> Kept {
        let Harness {
            rt,
            mcp,
            docker,
            mut shutdown,
            dir,
            ..
        } = self;
        shutdown.backends = None;
        drop((rt, mcp, shutdown));
        Kept { docker, dir }
    }
}

pub fn actor() -> Actor {
    Actor("test".into())
}

/// The ids of the containers of `tool` that this test process's Docker backend made and
/// that still exist (running or not).
pub fn containers_of(tool: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args(["ps", "-aq", "--no-trunc", "--filter"])
        .arg(format!("label=dev.slovo.tool={tool}"))
        .args(["--filter"])
        .arg(format!("label=dev.slovo.pid={}", std::process::id()))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Waits (at most `seconds`) until `tool` has no container left; the ones left then.
pub fn settle_to_no_containers(tool: &str, seconds: u64) -> Vec<String> {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        let left = containers_of(tool);
        if left.is_empty() || std::time::Instant::now() > until {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
