//! Support for the MCP server tests: the reference servers installed by
//! `scripts/ci-mcp-servers-setup.sh`, bundles made of them, and a runtime with the real
//! process sandbox.
#![allow(dead_code)] // shared by two test binaries, each using part of it

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};
use slovo_core::permissions::Narrowing;
use slovo_runtime::ExecutionView;
use slovo_runtime::{Actor, CallRequest, ImportSource, Runtime};
use slovo_sandbox::Backends;
use slovo_sandbox::mcp::{McpBackend, PoolConfig};
use slovo_sandbox::process::{ProcessBackend, ProcessConfig};

/// Where the setup script installs each server (`bundles/<name>`, complete once `.ready`
/// exists).
pub fn servers_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/root/.cache"));
    cache.join("slovo-test/mcp/bundles")
}

/// The installed server `name`, or `None` (with the reason printed) when the test should skip;
/// under CI a missing server is a failure naming the script.
pub fn installed_server(name: &str) -> Option<PathBuf> {
    // SAFETY: a plain getter.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the MCP server tests run servers in the process sandbox, which needs root");
        return None;
    }
    let dir = servers_dir().join(name);
    if dir.join(".ready").is_file() {
        return Some(dir);
    }
    let reason = format!(
        "the MCP server {name:?} is not installed at {}: run scripts/ci-mcp-servers-setup.sh",
        dir.display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("{reason}");
    }
    eprintln!("skipped: {reason}");
    None
}

/// Whether the process sandbox the harness builds can run here (it needs root); prints why
/// not, for the test to skip.
pub fn process_sandbox_runs() -> bool {
    // SAFETY: a plain getter.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the MCP server tests build the process sandbox, which needs root");
        return false;
    }
    true
}

/// The directory of the hostile test server (`tests/mcp-tools/hostile_server.py`), or `None`
/// (skip) where the sandbox cannot run it; under CI a missing prerequisite is a failure.
pub fn hostile_server() -> Option<PathBuf> {
    // SAFETY: a plain getter.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the MCP server tests run servers in the process sandbox, which needs root");
        return None;
    }
    if !Path::new("/usr/bin/python3").is_file() {
        let reason = "the hostile MCP server needs /usr/bin/python3 (Debian package python3)";
        if std::env::var_os("CI").is_some() {
            panic!("{reason}");
        }
        eprintln!("skipped: {reason}");
        return None;
    }
    Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp-tools"))
}

/// Builds a wheel of the hostile test server as the PyPI project `project` 1.0.0 (the server
/// as the package's `__main__`, a `console_scripts` entry point) into `wheelhouse`, with the
/// system's python3 and its standard library alone.
pub fn build_wheel(server: &Path, wheelhouse: &Path, project: &str) {
    const BUILD: &str = r#"
import base64, hashlib, sys, zipfile
source, wheel, project = sys.argv[1], sys.argv[2], sys.argv[3]
module = project.replace("-", "_")
info = module + "-1.0.0.dist-info"
files = {
    module + "/__init__.py": b"",
    module + "/__main__.py": open(source, "rb").read(),
    info + "/METADATA": f"Metadata-Version: 2.1\nName: {project}\nVersion: 1.0.0\n".encode(),
    info + "/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    info + "/entry_points.txt": f"[console_scripts]\n{project} = {module}:main\n".encode(),
}
def digest(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
record = "".join(f"{name},{digest(data)},{len(data)}\n" for name, data in files.items())
files[info + "/RECORD"] = (record + info + "/RECORD,,\n").encode()
with zipfile.ZipFile(wheel, "w") as z:
    for name, data in files.items():
        z.writestr(name, data)
"#;
    std::fs::create_dir_all(wheelhouse).unwrap();
    let module = project.replace('-', "_");
    let status = std::process::Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(BUILD)
        .arg(server.join("hostile_server.py"))
        .arg(wheelhouse.join(format!("{module}-1.0.0-py3-none-any.whl")))
        .arg(project)
        .status()
        .unwrap();
    assert!(status.success(), "building the test wheel failed");
}

/// A bundle directory: a copy of `server`'s files (if any) with `manifest` as `slovo.json`.
pub fn bundle(parent: &Path, server: Option<&Path>, manifest: &Value) -> PathBuf {
    let dir = parent.join(format!("bundle-{}", manifest["name"].as_str().unwrap_or("tool")));
    std::fs::create_dir_all(&dir).unwrap();
    if let Some(server) = server {
        copy_tree(server, &dir);
    }
    std::fs::write(
        dir.join("slovo.json"),
        serde_json::to_vec_pretty(manifest).unwrap(),
    )
    .unwrap();
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == ".ready" {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            std::fs::create_dir_all(&dst).unwrap();
            copy_tree(&src, &dst);
        } else if kind.is_file() {
            // Linked, not copied: the import copies (and hashes) them anyway.
            if std::fs::hard_link(&src, &dst).is_err() {
                std::fs::copy(&src, &dst).unwrap();
            }
        }
    }
}

/// No warm sandboxes: every call starts its server cold.
fn no_pool() -> PoolConfig {
    PoolConfig {
        size: 0,
        ..PoolConfig::default()
    }
}

/// A runtime over SQLite whose `mcp` tools run in the real process sandbox.
pub struct Harness {
    pub rt: Runtime,
    pub dir: tempfile::TempDir,
    /// The MCP backend (to wait for its warm sandboxes).
    pub mcp: Arc<McpBackend>,
}

impl Harness {
    pub async fn new() -> Harness {
        Harness::with_settings(slovo_runtime::RuntimeSettings::default()).await
    }

    async fn with_settings(settings: slovo_runtime::RuntimeSettings) -> Harness {
        Harness::build(settings, no_pool(), |mcp| mcp).await
    }

    /// A harness whose MCP backend keeps `size` warm sandboxes per recently called tool.
    pub async fn with_pool(size: usize) -> Harness {
        let pool = PoolConfig {
            size,
            ..PoolConfig::default()
        };
        Harness::build(slovo_runtime::RuntimeSettings::default(), pool, |mcp| mcp).await
    }

    /// A harness whose MCP backend reaches remote servers on loopback (the HTTP
    /// configuration's switch for every address; tests only).
    pub async fn with_loopback_remotes() -> Harness {
        Harness::build(slovo_runtime::RuntimeSettings::default(), no_pool(), |mcp| {
            mcp.with_remote(slovo_sandbox::http::HttpConfig {
                allow_private_addresses: true,
                ..slovo_sandbox::http::HttpConfig::default()
            })
        })
        .await
    }

    async fn build(
        settings: slovo_runtime::RuntimeSettings,
        pool: PoolConfig,
        configure: impl FnOnce(McpBackend) -> McpBackend,
    ) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let data = dir.path().join("data");
        let config = ProcessConfig::new(data.join("sandbox"));
        let process = Arc::new(ProcessBackend::new(config).unwrap());
        assert_eq!(process.refusal(), None, "this host must support the full sandbox");
        let mcp = Arc::new(configure(McpBackend::with_pool(process.clone(), pool)));
        let backends = Backends::new().with(process).with(mcp.clone());
        let store = slovo_store::Store::open_sqlite(&dir.path().join("slovo.db"))
            .await
            .unwrap();
        Harness {
            rt: Runtime::new(store, backends, data).with_settings(settings),
            dir,
            mcp,
        }
    }

    /// A harness whose runtime fetches MCP servers from the caches the setup script filled
    /// (offline: the npm cache and the wheelhouse).
    pub async fn with_package_caches() -> Harness {
        let root = servers_dir().parent().unwrap().to_path_buf();
        let packages = slovo_runtime::McpPackages {
            npm_cache: Some(root.join("npm-cache")),
            pip_find_links: Some(root.join("wheelhouse")),
            ..slovo_runtime::McpPackages::default()
        };
        let settings = slovo_runtime::RuntimeSettings {
            mcp_packages: packages,
            ..slovo_runtime::RuntimeSettings::default()
        };
        Harness::with_settings(settings).await
    }

    /// A harness whose runtime fetches PyPI servers offline from the wheels in `wheelhouse`.
    pub async fn with_wheelhouse(wheelhouse: &Path) -> Harness {
        let packages = slovo_runtime::McpPackages {
            pip_find_links: Some(wheelhouse.to_path_buf()),
            ..slovo_runtime::McpPackages::default()
        };
        let settings = slovo_runtime::RuntimeSettings {
            mcp_packages: packages,
            ..slovo_runtime::RuntimeSettings::default()
        };
        Harness::with_settings(settings).await
    }

    /// Imports `manifest` (with `server`'s files) and approves it as asked.
    pub async fn add(&self, server: Option<&Path>, manifest: &Value) {
        let b = bundle(self.dir.path(), server, manifest);
        self.rt.import(ImportSource::Bundle(b), &actor()).await.unwrap();
        let name = manifest["name"].as_str().unwrap();
        self.rt
            .approve(name, &Narrowing::default(), &actor())
            .await
            .unwrap();
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
        stored
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // Unmount the state volumes this harness's calls mounted.
        let backends = self.rt.backends().clone();
        let _ = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                runtime.block_on(backends.shutdown());
            }
        })
        .join();
    }
}

pub fn actor() -> Actor {
    Actor("test".into())
}

/// A capability of a manifest.
pub fn capability(name: &str, parameters: Value) -> Value {
    json!({"name": name, "description": format!("The server's {name} tool"), "parameters": parameters})
}

/// The manifest of a node server from npm, run by the system's node.
pub fn node_manifest(
    name: &str,
    package: &str,
    args: &[&str],
    env: Value,
    capabilities: Vec<Value>,
) -> Value {
    let mut command = vec![
        "/usr/bin/node".to_string(),
        format!("node_modules/@modelcontextprotocol/{package}/dist/index.js"),
    ];
    command.extend(args.iter().map(|a| a.to_string()));
    json!({
        "name": name,
        "version": "1.0.0",
        "description": format!("The MCP reference server {package}"),
        "capabilities": capabilities,
        "permissions": {"memory_limit_mb": 512, "timeout_s": 20, "storage_quota_mb": 16},
        "execution": {"type": "mcp", "transport": "stdio", "command": command, "system_paths": true, "env": env},
    })
}

/// The manifest of a Python server from PyPI, run by the system's python3.
pub fn python_manifest(name: &str, module: &str, args: &[&str], capabilities: Vec<Value>) -> Value {
    let mut command = vec![
        "/usr/bin/python3".to_string(),
        "-m".to_string(),
        module.to_string(),
    ];
    command.extend(args.iter().map(|a| a.to_string()));
    json!({
        "name": name,
        "version": "1.0.0",
        "description": format!("The MCP server {module}"),
        "capabilities": capabilities,
        "permissions": {"memory_limit_mb": 512, "timeout_s": 20, "storage_quota_mb": 16},
        "execution": {
            "type": "mcp", "transport": "stdio", "command": command, "system_paths": true,
            "env": {"PYTHONPATH": "/tool/site-packages", "PYTHONDONTWRITEBYTECODE": "1"},
        },
    })
}
