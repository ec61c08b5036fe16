//! Test support: a FROM-scratch image holding the statically linked hostile tool (compiled
//! from `suite/tools/hostile.c`, imported with `docker import`), backends with their own
//! volumes directory and uid, and specs.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bollard::query_parameters::ListContainersOptions;
use serde_json::{Value, json};
use slovo_core::execution::{CallTarget, SandboxSpec};
use slovo_core::manifest::{Capability, Execution};
use slovo_core::permissions::Grant;
use slovo_sandbox::docker::{DockerBackend, DockerConfig};
use slovo_sandbox::{Backend, InstallFacts, InstallRequest, Outcome};

/// Skips the test (returns) only when SLOVO_TEST_SKIP_DOCKER=1; otherwise a missing daemon
/// fails the test.
#[macro_export]
macro_rules! require_docker {
    () => {
        if std::env::var("SLOVO_TEST_SKIP_DOCKER").as_deref() == Ok("1") {
            eprintln!("skipped: SLOVO_TEST_SKIP_DOCKER=1");
            return;
        }
        $crate::docker_suite::support::assert_daemon();
    };
}

/// Panics with a clear message if no daemon answers.
pub fn assert_daemon() {
    if let Err(e) = slovo_sandbox::docker::daemon::probe_blocking(slovo_sandbox::docker::daemon::DEFAULT_HOST)
    {
        panic!(
            "no Docker daemon answers at {} ({e}): run scripts/ci-docker-setup.sh (as root), or set \
             SLOVO_TEST_SKIP_DOCKER=1 to skip the Docker tests",
            slovo_sandbox::docker::daemon::DEFAULT_HOST
        );
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The statically linked hostile tool, built once per test run.
pub fn hostile_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("slovo-docker-tools-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/suite/tools/hostile.c");
        run(Command::new("gcc")
            .args(["-static", "-O1", "-o"])
            .arg(dir.join("hostile"))
            .arg(&src));
        dir.join("hostile")
    })
}

/// Imports a FROM-scratch image `reference` holding `/hostile`, a setuid-root copy
/// `/hostile-suid`, empty `/data` and `/tmp`, and `extra` (a file name, to make a different
/// image). Returns the image id.
pub fn import_image(reference: &str, extra: Option<&str>) -> String {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::copy(hostile_binary(), r.join("hostile")).unwrap();
    std::fs::copy(hostile_binary(), r.join("hostile-suid")).unwrap();
    std::fs::set_permissions(r.join("hostile-suid"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    for d in ["data", "tmp", "etc"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    // As in real images: /tmp is world-writable and sticky (runc keeps the image's mode on
    // the tmpfs mounted over it).
    std::fs::set_permissions(r.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::write(r.join("etc/shadow"), "root:image-shadow:::::::\n").unwrap();
    add_shell(r);
    if let Some(name) = extra {
        std::fs::write(r.join(name), name).unwrap();
    }
    let tar = root.path().with_extension("tar");
    run(Command::new("tar")
        .args(["--owner=0", "--group=0", "--numeric-owner", "-C"])
        .arg(r)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    run(Command::new("docker").arg("import").arg(&tar).arg(reference));
    let _ = std::fs::remove_file(&tar);
    run(Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", reference]))
}

/// Copies the host's bash, dash and the few utilities the shell tests use into `root/shell`,
/// with the shared libraries they load at the host's paths (outside `/usr`, which the image
/// must not have), so that ordinary dynamically linked programs run in the container.
fn add_shell(root: &Path) {
    std::fs::create_dir_all(root.join("shell")).unwrap();
    for name in [
        "bash", "dash", "cat", "tr", "sort", "uniq", "wc", "mktemp", "mv", "cp", "ln", "rm", "chmod",
        "mkfifo", "sleep", "sed",
    ] {
        let program = Path::new("/usr/bin").join(name);
        std::fs::copy(&program, root.join("shell").join(name)).unwrap();
        let libs = run(Command::new("ldd").arg(&program));
        for lib in libs.split_whitespace().filter(|w| w.starts_with('/')) {
            let target = root.join(lib.trim_start_matches('/'));
            if !target.exists() {
                std::fs::create_dir_all(target.parent().unwrap()).unwrap();
                std::fs::copy(lib, &target).unwrap();
            }
        }
    }
}

/// The shared test image (one per test process); images of earlier runs are removed.
pub fn image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let listed = run(Command::new("docker").args([
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}}",
            "slovo-test-*",
        ]));
        for old in listed.lines() {
            let pid = old.rsplit(':').next().and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                let _ = Command::new("docker").args(["rmi", "-f", old]).output();
            }
        }
        let reference = format!("slovo-test-hostile:{}", std::process::id());
        import_image(&reference, None);
        reference
    })
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A Docker backend with its own volumes directory and uid.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub backend: Arc<DockerBackend>,
    pub uid: u32,
    pub prefix: String,
    install_info: InstallFacts,
    states: Mutex<Vec<PathBuf>>,
}

impl Sandbox {
    pub async fn new() -> Sandbox {
        Sandbox::with_config(|_| {}).await
    }

    pub async fn with_config(edit: impl FnOnce(&mut DockerConfig)) -> Sandbox {
        let image = image();
        let dir = tempfile::tempdir().unwrap();
        // Private, as a data directory is: the daemon binds the state volume by path as root.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let uid = 1_960_000 + (std::process::id() % 1000) * 100 + n;
        let mut config = DockerConfig::new(dir.path().join("volumes"));
        (config.uid, config.gid) = (uid, uid);
        edit(&mut config);
        let backend = DockerBackend::new(config);
        let install_info = backend
            .install(&InstallRequest {
                tool: "hostile".into(),
                version: "1.0.0".into(),
                execution: Execution::Docker {
                    image: image.to_string(),
                    entrypoint: None,
                },
                bundle_dir: None,
                state_dir: dir.path().join("state/hostile"),
                secrets: Default::default(),
            })
            .await
            .unwrap();
        Sandbox {
            dir,
            backend,
            uid,
            prefix: format!("t{}-{n}", std::process::id()),
            install_info,
            states: Mutex::new(Vec::new()),
        }
    }

    /// The state directory of `tool`.
    pub fn state(&self, tool: &str) -> PathBuf {
        let p = self.dir.path().join("state").join(tool);
        let mut s = self.states.lock().unwrap();
        if !s.contains(&p) {
            s.push(p.clone());
        }
        p
    }

    /// A spec running `/hostile ARGS…` as `tool`.
    pub fn spec(&self, tool: &str, args: &[&str]) -> SandboxSpec {
        let mut entrypoint = vec!["/hostile".to_string()];
        entrypoint.extend(args.iter().map(|a| a.to_string()));
        let grant = Grant {
            internet_access: false,
            network_allow: Vec::new(),
            storage_quota_mb: 8,
            cpu_limit_percent: 100,
            memory_limit_mb: 64,
            timeout_s: 20,
            pids_limit: 32,
            expires_at: None,
        };
        let mut spec = SandboxSpec::from_grant(
            &grant,
            CallTarget {
                execution_id: &format!("{}-{tool}", self.prefix),
                tool: &format!("{}-{tool}", self.prefix),
                version: "1.0.0",
                capability: &capability("probe"),
                execution: &Execution::Docker {
                    image: image().to_string(),
                    entrypoint: Some(entrypoint),
                },
                api: None,
                bundle_dir: None,
                state_dir: self.state(tool),
                arguments: &json!({}),
            },
        );
        spec.install_info = Some(self.install_info.clone());
        spec
    }

    pub async fn run(&self, spec: &SandboxSpec) -> Outcome {
        self.backend.run(spec).await
    }

    /// Runs `/hostile ARGS…` as `tool` and returns its JSON output; the call must succeed.
    pub async fn probe(&self, tool: &str, args: &[&str]) -> Value {
        let o = self.run(&self.spec(tool, args)).await;
        assert_eq!(o.status.as_str(), "success", "{args:?}: {o:#?}");
        o.output.unwrap_or(Value::Null)
    }

    /// Containers of this sandbox's tools still known to the daemon.
    pub async fn containers(&self) -> Vec<String> {
        let docker = slovo_sandbox::docker::daemon::connect(slovo_sandbox::docker::daemon::DEFAULT_HOST)
            .await
            .unwrap();
        let mut filters = HashMap::new();
        filters.insert(
            "label".to_string(),
            vec![format!("dev.slovo.pid={}", std::process::id())],
        );
        docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_iter()
            .filter(|c| {
                c.labels
                    .as_ref()
                    .and_then(|l| l.get("dev.slovo.tool"))
                    .is_some_and(|t| t.starts_with(&format!("{}-", self.prefix)))
            })
            .filter_map(|c| c.id)
            .collect()
    }

    /// Asserts that no container and no process of this sandbox is left.
    pub async fn assert_nothing_left(&self) {
        assert_eq!(
            self.containers().await,
            Vec::<String>::new(),
            "containers left behind"
        );
        // Processes may take a moment to be reaped after the forced removal.
        for _ in 0..50 {
            if host_processes_of(self.uid).is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left: Vec<String> = host_processes_of(self.uid)
            .into_iter()
            .map(|p| {
                let status = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
                let pick = |k: &str| {
                    status
                        .lines()
                        .find(|l| l.starts_with(k))
                        .unwrap_or("")
                        .split_whitespace()
                        .skip(1)
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                format!(
                    "{p} ({}, ppid {}, tracer {})",
                    pick("State:"),
                    pick("PPid:"),
                    pick("TracerPid:")
                )
            })
            .collect();
        panic!("processes left on the host: {left:?}");
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for s in self.states.lock().unwrap().iter() {
            let _ = futures_lite_block(self.backend.release_state(s, true));
        }
    }
}

/// Runs a future that does not actually wait (volume release is synchronous inside).
fn futures_lite_block<F: std::future::Future>(f: F) -> F::Output {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

pub fn capability(name: &str) -> Capability {
    Capability {
        name: name.into(),
        description: "test".into(),
        parameters: json!({"type": "object"}),
        returns: None,
        endpoint: None,
        method: None,
        examples: vec![],
        read_only: None,
        destructive: None,
    }
}

/// Processes on the host running as `uid`.
pub fn host_processes_of(uid: u32) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
                .map(|pid| (pid, e.path()))
        })
        .filter(|(_, p)| std::fs::metadata(p).map(|m| m.uid() == uid).unwrap_or(false))
        .map(|(pid, _)| pid)
        .collect()
}

pub fn errno(v: &Value) -> i64 {
    v["errno"].as_i64().unwrap_or(-1)
}

pub const ENOENT: i64 = libc::ENOENT as i64;
