//! The cheap tools the load benchmarks call: `cheap-wasm` (the echo module of
//! `crates/slovo-sandbox/tests/wasm-tools`) and `cheap-process` (a static C program that reads
//! its request and prints `{"ok":true}`), each as a bundle directory, and the percentile both
//! benchmarks report. Included with `#[path]` by `slovo-server`'s and `slovo-cli`'s benchmarks.
#![allow(dead_code)] // each benchmark uses a different part

#[path = "../../../slovo-sandbox/tests/wasm_support/tools.rs"]
mod wasm_tools;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

const TRIVIAL_C: &str = r#"
#include <unistd.h>
int main(void) {
    char buf[4096];
    while (read(0, buf, sizeof buf) > 0) {}
    static const char out[] = "{\"ok\":true}\n";
    return write(1, out, sizeof out - 1) < 0;
}
"#;

pub struct Tool {
    pub kind: &'static str,
    pub bundle: std::path::PathBuf,
}

pub fn process_tool(dir: &std::path::Path) -> Option<Tool> {
    let bundle = dir.join("process-bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    let src = dir.join("trivial.c");
    std::fs::write(&src, TRIVIAL_C).unwrap();
    let ok = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(bundle.join("trivial"))
        .arg(&src)
        .status()
        .ok()?;
    if !ok.success() {
        return None;
    }
    std::fs::write(
        bundle.join("slovo.yaml"),
        "name: cheap-process\nversion: 1.0.0\ndescription: cheap\ncapabilities:\n  - name: ping\n    description: ping\n\
         permissions: {memory_limit_mb: 64, cpu_limit_percent: 100, pids_limit: 16, storage_quota_mb: 0}\n\
         execution: {type: process, command: [trivial], system_paths: false}\n",
    )
    .unwrap();
    Some(Tool {
        kind: "process",
        bundle,
    })
}

/// The echo module of `crates/slovo-sandbox/tests/wasm-tools`, built for wasm32-wasip1.
pub fn wasm_tool(dir: &std::path::Path) -> Tool {
    let bundle = dir.join("wasm-bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    let built = wasm_tools::wasm_tools_dir(Path::new(env!("CARGO_TARGET_TMPDIR"))).join("echo.wasm");
    std::fs::copy(built, bundle.join("echo.wasm")).unwrap();
    std::fs::write(
        bundle.join("slovo.yaml"),
        "name: cheap-wasm\nversion: 1.0.0\ndescription: cheap\ncapabilities:\n  - name: ping\n    description: ping\n\
         permissions: {memory_limit_mb: 64, cpu_limit_percent: 100, storage_quota_mb: 0}\n\
         execution: {type: wasm, module: echo.wasm}\n",
    )
    .unwrap();
    Tool { kind: "wasm", bundle }
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}
