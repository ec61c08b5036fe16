//! Test support: the hostile tool (compiled from `tools/hostile.c` at test time), sandboxes
//! with their own work directory, and specs.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use serde_json::{Value, json};
use slovo_core::execution::{CallTarget, SandboxSpec};
use slovo_core::manifest::{Capability, Execution};
use slovo_core::permissions::Grant;
use slovo_sandbox::process::{ProcessBackend, ProcessConfig};
use slovo_sandbox::{Backend, Outcome};

/// Skips the test (returns) unless running as root.
#[macro_export]
macro_rules! require_root {
    () => {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: the process sandbox tests need root");
            return;
        }
    };
}

/// A directory with the statically linked hostile tool, built once per test run.
pub fn tools_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("slovo-sandbox-tools-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/suite/tools/hostile.c");
        let out = Command::new("gcc")
            .args(["-static", "-O1", "-o"])
            .arg(dir.join("hostile"))
            .arg(&src)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "gcc failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

/// A bundle holding the hostile tool (and optionally a setuid-root copy of it).
pub fn bundle(parent: &Path, setuid_copy: bool) -> PathBuf {
    let b = parent.join("bundle");
    std::fs::create_dir_all(&b).unwrap();
    std::fs::copy(tools_dir().join("hostile"), b.join("hostile")).unwrap();
    if setuid_copy {
        std::fs::copy(tools_dir().join("hostile"), b.join("hostile-suid")).unwrap();
        std::fs::set_permissions(b.join("hostile-suid"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    }
    std::fs::set_permissions(&b, std::fs::Permissions::from_mode(0o755)).unwrap();
    b
}

/// A process backend in its own work directory; releases the volumes it mounted on drop.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub backend: ProcessBackend,
    pub bundle: PathBuf,
    states: Mutex<Vec<PathBuf>>,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox::with_config(|_| {})
    }

    pub fn with_config(edit: impl FnOnce(&mut ProcessConfig)) -> Sandbox {
        // Private, as a data directory is: the tool's uid cannot traverse it, and the bundle
        // and the state volume are still reached.
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let mut config = ProcessConfig::new(dir.path().join("work"));
        // Each sandbox its own host uid, so tests running in parallel can check for leftovers.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let id = 1_950_000 + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (config.host_uid, config.host_gid) = (id, id);
        edit(&mut config);
        let backend = ProcessBackend::new(config).unwrap();
        assert_eq!(backend.refusal(), None, "this host must support the full sandbox");
        let bundle = bundle(dir.path(), true);
        Sandbox {
            dir,
            backend,
            bundle,
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

    /// A spec running `hostile ARGS…` as `tool`.
    pub fn spec(&self, tool: &str, args: &[&str]) -> SandboxSpec {
        let mut command = vec!["hostile".to_string()];
        command.extend(args.iter().map(|a| a.to_string()));
        let grant = Grant {
            internet_access: false,
            network_allow: Vec::new(),
            storage_quota_mb: 8,
            cpu_limit_percent: 100,
            memory_limit_mb: 64,
            timeout_s: 10,
            pids_limit: 32,
            expires_at: None,
        };
        SandboxSpec::from_grant(
            &grant,
            CallTarget {
                execution_id: &format!("test-{tool}"),
                tool,
                version: "1.0.0",
                capability: &capability("probe"),
                execution: &Execution::Process {
                    command,
                    system_paths: false,
                },
                api: None,
                bundle_dir: Some(self.bundle.clone()),
                state_dir: self.state(tool),
                arguments: &json!({}),
            },
        )
    }

    /// Processes left on the host under this sandbox's uid.
    pub fn leftovers(&self) -> Vec<i32> {
        host_processes_of(self.backend.config().host_uid)
    }

    pub async fn run(&self, spec: &SandboxSpec) -> Outcome {
        self.backend.run(spec).await
    }

    /// Runs `hostile ARGS…` as `tool` and returns its JSON output; the call must succeed.
    pub async fn probe(&self, tool: &str, args: &[&str]) -> Value {
        let o = self.run(&self.spec(tool, args)).await;
        assert_eq!(o.status.as_str(), "success", "{args:?}: {o:#?}");
        o.output.unwrap_or(Value::Null)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for s in self.states.lock().unwrap().iter() {
            let _ = self.backend.release_state(s, true);
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

pub const EPERM: i64 = libc::EPERM as i64;
pub const ENOENT: i64 = libc::ENOENT as i64;
pub const EROFS: i64 = libc::EROFS as i64;
pub const ENOSYS: i64 = libc::ENOSYS as i64;
pub const EAFNOSUPPORT: i64 = libc::EAFNOSUPPORT as i64;
pub const EPROTONOSUPPORT: i64 = libc::EPROTONOSUPPORT as i64;
