//! Shared by the WebAssembly backend's tests: test tools built from source, bundles, specs.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod tools;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use slovo_core::execution::{CallTarget, SandboxSpec};
use slovo_core::manifest::{Capability, Execution};
use slovo_core::permissions::Grant;
use slovo_sandbox::InstallRequest;
use slovo_sandbox::wasm::{WasmBackend, WasmConfig};
use tempfile::TempDir;

/// A compiled test tool from `tests/wasm-tools/src/bin/<name>.rs`.
pub fn tool_wasm(name: &str) -> Vec<u8> {
    let dir = tools::wasm_tools_dir(Path::new(env!("CARGO_TARGET_TMPDIR")));
    std::fs::read(dir.join(format!("{name}.wasm"))).unwrap_or_else(|e| panic!("{name}.wasm: {e}"))
}

/// A module from WebAssembly text.
pub fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).unwrap()
}

/// A test world: a backend with its cache, a data directory with bundles and state volumes.
pub struct World {
    pub backend: WasmBackend,
    pub dir: TempDir,
}

impl World {
    pub fn new() -> World {
        World::with(|_| {})
    }

    pub fn with(adjust: impl FnOnce(&mut WasmConfig)) -> World {
        let dir = tempfile::tempdir().unwrap();
        let mut config = WasmConfig::new(dir.path().join("wasm-cache"));
        adjust(&mut config);
        World {
            backend: WasmBackend::new(config).unwrap(),
            dir,
        }
    }

    /// Another backend over the same cache (as after a restart), with its own settings.
    pub fn restart(&self, adjust: impl FnOnce(&mut WasmConfig)) -> WasmBackend {
        let mut config = WasmConfig::new(self.dir.path().join("wasm-cache"));
        adjust(&mut config);
        WasmBackend::new(config).unwrap()
    }

    /// Puts `bytes` into a bundle for `tool` as `tool.wasm`; returns the bundle directory.
    pub fn bundle(&self, tool: &str, bytes: &[u8]) -> PathBuf {
        let dir = self.dir.path().join("bundles").join(tool);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tool.wasm"), bytes).unwrap();
        dir
    }

    /// The state directory of `tool` (created).
    pub fn state(&self, tool: &str) -> PathBuf {
        let dir = self.dir.path().join("volumes").join(tool);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    pub fn install_request(&self, tool: &str, bundle: &Path) -> InstallRequest {
        InstallRequest {
            tool: tool.into(),
            version: "1.0.0".into(),
            execution: Execution::Wasm {
                module: "tool.wasm".into(),
            },
            bundle_dir: Some(bundle.to_path_buf()),
            state_dir: self.state(tool),
            secrets: Default::default(),
        }
    }

    /// Bundles and installs a tool; returns the install facts as they are recorded.
    pub async fn install(&self, tool: &str, bytes: &[u8]) -> Value {
        let bundle = self.bundle(tool, bytes);
        use slovo_sandbox::Backend;
        let facts = self
            .backend
            .install(&self.install_request(tool, &bundle))
            .await
            .unwrap_or_else(|e| panic!("install {tool}: {e}"));
        serde_json::to_value(facts).unwrap_or_else(|e| panic!("install {tool}: {e}"))
    }

    /// A call of `tool` with default limits and `arguments`.
    pub fn spec(&self, tool: &str, arguments: Value) -> SandboxSpec {
        let grant = Grant {
            internet_access: false,
            network_allow: Vec::new(),
            storage_quota_mb: 10,
            cpu_limit_percent: 100,
            memory_limit_mb: 64,
            timeout_s: 10,
            pids_limit: 16,
            expires_at: None,
        };
        SandboxSpec::from_grant(
            &grant,
            CallTarget {
                execution_id: &format!("exec-{tool}"),
                tool,
                version: "1.0.0",
                capability: &capability("run"),
                execution: &Execution::Wasm {
                    module: "tool.wasm".into(),
                },
                api: None,
                bundle_dir: Some(self.dir.path().join("bundles").join(tool)),
                state_dir: self.state(tool),
                arguments: &arguments,
            },
        )
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

/// Bytes a directory tree holds on the host (file lengths).
pub fn host_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = e.path().symlink_metadata().unwrap();
        total += if m.is_dir() {
            host_bytes(&e.path())
        } else {
            m.len()
        };
    }
    total
}
