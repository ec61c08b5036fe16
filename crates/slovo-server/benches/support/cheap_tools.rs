//! The cheap tools the load benchmarks call: `cheap-wasm` (the echo module of
//! `crates/slovo-sandbox/tests/wasm-tools`) and `cheap-process` (a static C program that reads
//! its request and prints `{"ok":true}`), each as a bundle directory, the clients that call them
//! ([`drive`]) and the percentile both benchmarks report. Included with `#[path]` by `slovo-server`'s and `slovo-cli`'s benchmarks.
#![allow(dead_code)] // each benchmark uses a different part

#[path = "../../../slovo-sandbox/tests/wasm_support/tools.rs"]
mod wasm_tools;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

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

/// `clients` clients calling `tool`'s `ping` through `POST /v1/calls` for `seconds`, client `i`
/// on `ports[i mod n]`: the sorted latencies of the answered calls, the calls turned away by
/// back-pressure (503), and the time it took.
pub async fn drive(
    ports: &[u16],
    token: &str,
    tool: &str,
    clients: usize,
    seconds: u64,
) -> (Vec<Duration>, usize, Duration) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..clients {
        let url = format!("http://127.0.0.1:{}/v1/calls", ports[i % ports.len()]);
        let token = token.to_string();
        let tool = tool.to_string();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut latencies = Vec::new();
            let mut rejected = 0usize;
            while Instant::now() < deadline {
                let t = Instant::now();
                let resp = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"tool": tool, "capability": "ping"}))
                    .send()
                    .await
                    .unwrap();
                let status = resp.status();
                let body: serde_json::Value = resp.json().await.unwrap();
                if status.is_success() {
                    assert_eq!(body["status"], "success", "{body}");
                    latencies.push(t.elapsed());
                } else {
                    assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE, "{body}");
                    rejected += 1;
                }
            }
            (latencies, rejected)
        }));
    }
    let mut latencies = Vec::new();
    let mut rejected = 0;
    for t in tasks {
        let (l, r) = t.await.unwrap();
        latencies.extend(l);
        rejected += r;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    (latencies, rejected, elapsed)
}
