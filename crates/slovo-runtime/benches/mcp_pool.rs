//! One call of a real MCP server, three ways, in one run (`docs/BENCHMARKS.md`, MCP pool):
//! - **pooled**: `Runtime::call` on SQLite with the MCP pool on: the call takes a sandbox
//!   whose server was started and initialised (and its tool list checked against the pin)
//!   before the call, sends `tools/call`, and has its answer recorded; the sandbox is destroyed
//!   afterwards, off the call path;
//! - **cold sandboxed**: the same `Runtime::call` with the pool off: a fresh sandbox, the
//!   server started, `initialize`, the pin's `tools/list`, `tools/call`, shutdown;
//! - **bare cold start**: the same server started directly on the host (no sandbox, no Slovo),
//!   `initialize`, `notifications/initialized`, `tools/call`, timed to the answer;
//! - **call path, no-op backend**: `Runtime::call` of the same tool with a backend that runs
//!   nothing, i.e. what the call path itself (lookup, validation, records, audit) costs; the
//!   pooled figure minus this one is the pool's own part.
//!
//! Each round measures the three in turn; the pooled call is measured once its warm sandbox is
//! ready, and the next variant only once the pool has refilled, so that no server start in the
//! background overlaps a measurement. Servers: the memory server from npm (`read_graph`) and,
//! when installed, the time server from PyPI (`get_current_time`), from the caches of
//! `scripts/ci-mcp-servers-setup.sh`.
//!
//! Then, where the Docker daemon answers, a server in an OCI image (the test image of
//! `tests/mcp_support/oci_image.rs`, bash answering `echo`): **pooled** (a warm container) vs
//! **cold container** (created, started, `initialize`, the pin's `tools/list`, `tools/call`,
//! removed), both through `Runtime::call`, measured the same way.
//!
//! Run as root: `cargo bench -p slovo-runtime --bench mcp_pool`. `SLOVO_BENCH_ITERS` sets the
//! rounds (default 30; 3 when run by `cargo test --all-targets`, as a smoke test).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/mcp_support/mod.rs"]
mod mcp_support;
#[path = "../tests/mcp_support/oci_harness.rs"]
mod oci_harness;
#[path = "../tests/mcp_support/oci_image.rs"]
mod oci_image;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mcp_support::{Harness, capability, installed_server, node_manifest, python_manifest};
use serde_json::{Value, json};
use slovo_core::execution::ExecutionStatus;
use slovo_runtime::CallRequest;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// p50, p95, mean in ms.
fn summary(name: &str, samples: &mut [Duration]) -> f64 {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mean = samples.iter().map(|d| ms(*d)).sum::<f64>() / samples.len() as f64;
    let p50 = ms(percentile(samples, 0.50));
    println!(
        "  {name:<34} n={:<4} p50 {:>9.2} ms   p95 {:>9.2} ms   mean {:>9.2} ms   min {:>9.2} ms",
        samples.len(),
        p50,
        ms(percentile(samples, 0.95)),
        mean,
        ms(samples[0]),
    );
    p50
}

/// One server to measure: how Slovo runs it and how the host runs it bare.
struct Server {
    label: &'static str,
    tool: &'static str,
    capability: &'static str,
    arguments: Value,
    manifest: Value,
    bundle: std::path::PathBuf,
    /// The bare command, run in the bundle directory.
    bare: Vec<String>,
    bare_env: Vec<(String, String)>,
}

fn servers(scratch: &Path) -> Vec<Server> {
    let mut servers = Vec::new();
    if let Some(bundle) = installed_server("memory") {
        let script = "node_modules/@modelcontextprotocol/server-memory/dist/index.js";
        servers.push(Server {
            label: "memory (npm, node)",
            tool: "memory",
            capability: "read_graph",
            arguments: json!({}),
            manifest: node_manifest(
                "memory",
                "server-memory",
                &[],
                json!({"MEMORY_FILE_PATH": "/data/memory.jsonl"}),
                vec![capability("read_graph", json!({"type": "object"}))],
            ),
            bare: vec!["/usr/bin/node".into(), script.into()],
            bare_env: vec![(
                "MEMORY_FILE_PATH".into(),
                scratch.join("memory.jsonl").display().to_string(),
            )],
            bundle,
        });
    }
    if let Some(bundle) = installed_server("time") {
        servers.push(Server {
            label: "time (PyPI, python3)",
            tool: "clock",
            capability: "get_current_time",
            arguments: json!({"timezone": "Europe/Prague"}),
            manifest: python_manifest(
                "clock",
                "mcp_server_time",
                &["--local-timezone", "UTC"],
                vec![capability("get_current_time", json!({"type": "object"}))],
            ),
            bare: [
                "/usr/bin/python3",
                "-m",
                "mcp_server_time",
                "--local-timezone",
                "UTC",
            ]
            .map(String::from)
            .to_vec(),
            bare_env: vec![
                (
                    "PYTHONPATH".into(),
                    bundle.join("site-packages").display().to_string(),
                ),
                ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
            ],
            bundle,
        });
    }
    servers
}

/// Starts the server on the host, initialises it and calls its tool; the time to the answer.
fn bare_cold_start(server: &Server) -> Duration {
    let started = Instant::now();
    let mut child = Command::new(&server.bare[0])
        .args(&server.bare[1..])
        .current_dir(&server.bundle)
        .envs(server.bare_env.iter().cloned())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut send = |v: Value| {
        stdin.write_all(format!("{v}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    };
    let mut answer = |id: i64| loop {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "the server exited");
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && v["id"] == json!(id)
        {
            return v;
        }
    };
    send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "bench", "version": "1"}}}),
    );
    answer(1);
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized", "params": {}}));
    send(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": server.capability, "arguments": server.arguments}}),
    );
    let result = answer(2);
    let elapsed = started.elapsed();
    assert!(result.get("result").is_some(), "{result}");
    let _ = child.kill();
    let _ = child.wait();
    elapsed
}

/// Runs nothing: the call path's own cost.
struct NoopMcp;

#[async_trait::async_trait]
impl slovo_sandbox::Backend for NoopMcp {
    fn kind(&self) -> &'static str {
        "mcp"
    }
    async fn install(
        &self,
        _: &slovo_sandbox::InstallRequest,
    ) -> Result<slovo_core::install::InstallFacts, slovo_sandbox::BackendError> {
        // Starts no server, so it lists no tools and pins none.
        Ok(slovo_core::install::InstallFacts::Mcp(
            slovo_core::install::McpFacts::Refused {
                program: "noop".into(),
                refusal: "a no-op backend starts no server".into(),
            },
        ))
    }
    async fn run(&self, _: &slovo_core::execution::SandboxSpec) -> slovo_core::execution::Outcome {
        slovo_core::execution::Outcome {
            status: ExecutionStatus::Success,
            output: Some(json!({"ok": true})),
            ..Default::default()
        }
    }
}

/// A runtime whose `mcp` backend runs nothing, with `server`'s tool approved.
async fn noop_runtime(dir: &Path, server: &Server) -> slovo_runtime::Runtime {
    std::fs::create_dir_all(dir).unwrap();
    let store = slovo_store::Store::open_sqlite(&dir.join("noop.db"))
        .await
        .unwrap();
    let backends = slovo_sandbox::Backends::new().with(std::sync::Arc::new(NoopMcp));
    let rt = slovo_runtime::Runtime::new(store, backends, dir.join("noop-data"));
    let bundle = mcp_support::bundle(&dir.join("noop"), Some(&server.bundle), &server.manifest);
    rt.import(slovo_runtime::ImportSource::Bundle(bundle), &mcp_support::actor())
        .await
        .unwrap();
    rt.approve(
        server.tool,
        &slovo_core::permissions::Narrowing::default(),
        &mcp_support::actor(),
    )
    .await
    .unwrap();
    rt
}

async fn timed_noop(rt: &slovo_runtime::Runtime, server: &Server) -> Duration {
    let started = Instant::now();
    let exec = rt.call(request(server)).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(exec.status, ExecutionStatus::Success, "{exec:#?}");
    elapsed
}

fn request(server: &Server) -> CallRequest {
    CallRequest {
        tool: server.tool.into(),
        capability: server.capability.into(),
        arguments: server.arguments.clone(),
        conversation_id: None,
        turn_id: None,
        actor: mcp_support::actor(),
    }
}

async fn timed_call(h: &Harness, server: &Server) -> (Duration, bool) {
    let request = request(server);
    let started = Instant::now();
    let exec = h.rt.call(request).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(exec.status, ExecutionStatus::Success, "{exec:#?}");
    let warm = exec.warm.is_some();
    (elapsed, warm)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let rounds: usize = std::env::var("SLOVO_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 30 } else { 3 });
    let scratch = tempfile::tempdir().unwrap();
    let servers = servers(scratch.path());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if oci_image::docker_ready().is_some() {
        rt.block_on(oci_pass(rounds));
    }
    if servers.is_empty() {
        println!("skipped: no MCP server installed (scripts/ci-mcp-servers-setup.sh)");
        return;
    }
    rt.block_on(async {
        let pooled = Harness::with_pool(1).await;
        let cold = Harness::new().await;
        let mut figures = Vec::new();
        for server in &servers {
            pooled.add(Some(&server.bundle), &server.manifest).await;
            cold.add(Some(&server.bundle), &server.manifest).await;
            let noop_dir = scratch.path().join(server.tool);
            let noop = noop_runtime(&noop_dir, server).await;
            timed_noop(&noop, server).await;
            // One call of each first: the pool fills, caches warm up.
            timed_call(&pooled, server).await;
            timed_call(&cold, server).await;
            bare_cold_start(server);
            let (mut p, mut c, mut b, mut n) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for _ in 0..rounds {
                assert!(pooled.mcp.wait_warm(server.tool, Duration::from_secs(60)).await);
                let (elapsed, warm) = timed_call(&pooled, server).await;
                assert!(warm, "the pooled call was served cold");
                p.push(elapsed);
                // The refill happens now; nothing else is measured until it is done.
                assert!(pooled.mcp.wait_warm(server.tool, Duration::from_secs(60)).await);
                let (elapsed, warm) = timed_call(&cold, server).await;
                assert!(!warm);
                c.push(elapsed);
                b.push(tokio::task::block_in_place(|| bare_cold_start(server)));
                n.push(timed_noop(&noop, server).await);
            }
            println!("{}: {rounds} rounds", server.label);
            let pooled_p50 = summary("pooled (Runtime::call, warm)", &mut p);
            let cold_p50 = summary("cold sandboxed (Runtime::call)", &mut c);
            let bare_p50 = summary("bare cold start (no sandbox)", &mut b);
            let noop_p50 = summary("call path, no-op backend", &mut n);
            println!(
                "  p50 ratios: cold sandboxed / pooled {:.1}x, bare cold start / pooled {:.1}x; pooled minus the call path: {:.2} ms",
                cold_p50 / pooled_p50,
                bare_p50 / pooled_p50,
                pooled_p50 - noop_p50
            );
            figures.push((server.label, pooled_p50, bare_p50));
        }
        for (label, pooled_p50, bare_p50) in figures {
            println!(
                "target {label}: pooled p50 {pooled_p50:.2} ms < 10 ms: {}; bare / pooled {:.1}x >= 20x: {}",
                if pooled_p50 < 10.0 { "met" } else { "NOT met" },
                bare_p50 / pooled_p50,
                if bare_p50 / pooled_p50 >= 20.0 { "met" } else { "NOT met" },
            );
        }
    });
}

/// Calls `echo` of the OCI test server in `h` once; the time and whether it was warm.
async fn timed_oci_call(h: &oci_harness::Harness) -> (Duration, bool) {
    let request = CallRequest {
        tool: "oci-bench".into(),
        capability: "echo".into(),
        arguments: json!({"text": "bench"}),
        conversation_id: None,
        turn_id: None,
        actor: oci_harness::actor(),
    };
    let started = Instant::now();
    let exec = h.rt.call(request).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(exec.status, ExecutionStatus::Success, "{exec:#?}");
    (elapsed, exec.warm.is_some())
}

/// A server in an OCI image: a warm container of the pool vs a container started for the call.
async fn oci_pass(rounds: usize) {
    let image = oci_image::image();
    let pooled = oci_harness::Harness::with_pool(1).await;
    let cold = oci_harness::Harness::new().await;
    for h in [&pooled, &cold] {
        h.import(
            slovo_runtime::McpSource::parse(&format!("oci:{}", image.by_digest())),
            "oci-bench",
            &["plain"],
        )
        .await;
        h.rt.approve(
            "oci-bench",
            &slovo_core::permissions::Narrowing::default(),
            &oci_harness::actor(),
        )
        .await
        .unwrap();
    }
    // One call of each first: the pool fills.
    timed_oci_call(&pooled).await;
    timed_oci_call(&cold).await;
    let (mut p, mut c) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        assert!(pooled.mcp.wait_warm("oci-bench", Duration::from_secs(60)).await);
        let (elapsed, warm) = timed_oci_call(&pooled).await;
        assert!(warm, "the pooled call was served cold");
        p.push(elapsed);
        // The refill happens now; nothing else is measured until it is done.
        assert!(pooled.mcp.wait_warm("oci-bench", Duration::from_secs(60)).await);
        let (elapsed, warm) = timed_oci_call(&cold).await;
        assert!(!warm);
        c.push(elapsed);
    }
    println!("OCI image (bash in a container): {rounds} rounds");
    let pooled_p50 = summary("pooled (warm container)", &mut p);
    let cold_p50 = summary("cold container (Runtime::call)", &mut c);
    println!(
        "  p50 ratio: cold container / pooled {:.1}x",
        cold_p50 / pooled_p50
    );
    pooled.rt.backends().shutdown().await;
}
