//! Builds the WebAssembly test tools (`tests/wasm-tools`) for wasm32-wasip1, once per process.
//! Standard library only, so benchmarks of other crates can include it with `#[path]`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The directory holding `<tool>.wasm` for every binary of `tests/wasm-tools`.
pub fn wasm_tools_dir(target_root: &Path) -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let manifest =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../slovo-sandbox/tests/wasm-tools/Cargo.toml");
        let target_dir = target_root.join("slovo-wasm-tools");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "--release",
                "--target",
                "wasm32-wasip1",
                "--manifest-path",
            ])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target_dir)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET")
            .env_remove("CARGO_TARGET_DIR")
            .output()
            .unwrap_or_else(|e| panic!("cannot run cargo to build the wasm test tools: {e}"));
        assert!(
            out.status.success(),
            "building the wasm test tools failed (is the wasm32-wasip1 target installed? run \
             scripts/ci-wasm-setup.sh):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        target_dir.join("wasm32-wasip1/release")
    })
}
