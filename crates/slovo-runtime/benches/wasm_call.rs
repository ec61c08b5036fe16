//! One call of a trivial WebAssembly tool, end to end through the call path
//! (`Runtime::call` on SQLite: lookup → grant → validation → record as running → wasm backend →
//! record → audit), against baselines measured in the same run:
//! - `backend.run_blocking`: the same module instantiated from its precompiled artifact and run
//!   on the calling thread, with no runtime (the wasm backend alone);
//! - `backend.run`: the same through the async `Backend::run` (one hop to a blocking thread);
//! - `Runtime::call, no-op backend`: the call path with a backend that runs nothing, i.e. what
//!   the call path itself costs on SQLite.
//!
//! Run: `cargo bench -p slovo-runtime --bench wasm_call` (builds the test tool from
//! `crates/slovo-sandbox/tests/wasm-tools` for wasm32-wasip1 first; see
//! `scripts/ci-wasm-setup.sh`). `SLOVO_BENCH_ITERS` sets the number of calls per variant
//! (default 500; 20 when run by `cargo test --all-targets`, as a smoke test).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../slovo-sandbox/tests/wasm_support/tools.rs"]
mod tools;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use slovo_core::execution::{CallTarget, ExecutionStatus, SandboxSpec};
use slovo_core::manifest::{Capability, Execution};
use slovo_core::permissions::Grant;
use slovo_core::permissions::Narrowing;
use slovo_runtime::{Actor, CallRequest, ImportSource, Runtime};
use slovo_sandbox::wasm::{WasmBackend, WasmConfig};
use slovo_sandbox::{Backend, Backends};
use slovo_store::Store;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{name:<28} n={:<5} p50 {:>8.1} µs   p95 {:>8.1} µs   min {:>8.1} µs",
        samples.len(),
        us(percentile(&samples, 0.50)),
        us(percentile(&samples, 0.95)),
        us(samples[0]),
    );
}

/// Runs nothing: measures the call path alone.
struct NoopBackend;

#[async_trait::async_trait]
impl Backend for NoopBackend {
    fn kind(&self) -> &'static str {
        "docker"
    }
    async fn install(
        &self,
        _: &slovo_sandbox::InstallRequest,
    ) -> Result<slovo_core::install::InstallFacts, slovo_sandbox::BackendError> {
        Ok(slovo_core::install::InstallFacts::Docker(
            slovo_core::install::DockerFacts::Deferred(slovo_core::install::DockerDeferred {
                image: "noop".into(),
                entrypoint: None,
                reason: "a no-op backend pins no image".into(),
            }),
        ))
    }
    async fn run(&self, _: &SandboxSpec) -> slovo_core::execution::Outcome {
        slovo_core::execution::Outcome {
            status: ExecutionStatus::Success,
            output: Some(json!({"ok": true})),
            exit_code: Some(0),
            ..Default::default()
        }
    }
}

fn noop_manifest() -> Vec<u8> {
    json!({
        "name": "noop",
        "version": "1.0.0",
        "description": "Runs nothing (benchmark baseline)",
        "capabilities": [{
            "name": "echo",
            "description": "Echo",
            "parameters": {"type": "object", "properties": {"text": {"type": "string"}}}
        }],
        "execution": {"type": "docker", "image": "bench/noop:1"}
    })
    .to_string()
    .into_bytes()
}

fn call(tool: &str) -> CallRequest {
    CallRequest {
        tool: tool.into(),
        capability: "echo".into(),
        arguments: json!({"text": "hi"}),
        conversation_id: None,
        turn_id: None,
        actor: Actor("bench".into()),
    }
}

fn manifest() -> String {
    json!({
        "name": "wasm-echo",
        "version": "1.0.0",
        "description": "Echoes its request (benchmark)",
        "capabilities": [{
            "name": "echo",
            "description": "Echo",
            "parameters": {"type": "object", "properties": {"text": {"type": "string"}}}
        }],
        "permissions": {"memory_limit_mb": 64, "storage_quota_mb": 1, "cpu_limit_percent": 100, "timeout_s": 10},
        "execution": {"type": "wasm", "module": "tool.wasm"}
    })
    .to_string()
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a quick smoke test.
    let bench = std::env::args().any(|a| a == "--bench");
    let iters: usize = std::env::var("SLOVO_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 500 } else { 20 });
    let wasm = tools::wasm_tools_dir(Path::new(env!("CARGO_TARGET_TMPDIR"))).join("echo.wasm");
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::copy(&wasm, bundle.join("tool.wasm")).unwrap();
    std::fs::write(bundle.join("slovo.json"), manifest()).unwrap();
    let data = dir.path().join("data");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let backend = Arc::new(WasmBackend::new(WasmConfig::new(data.join("wasm-cache"))).unwrap());
    let runtime = rt.block_on(async {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("slovo.db").display());
        let store = Store::connect(&url).await.unwrap();
        let backends = Backends::new().with(backend.clone()).with(Arc::new(NoopBackend));
        let runtime = Runtime::new(store, backends, &data);
        let actor = Actor("bench".into());
        runtime
            .import(ImportSource::Bundle(bundle.clone()), &actor)
            .await
            .unwrap();
        runtime
            .approve("wasm-echo", &Narrowing::default(), &actor)
            .await
            .unwrap();
        let noop = ImportSource::Manifest {
            name: "noop.json".into(),
            bytes: noop_manifest(),
        };
        runtime.import(noop, &actor).await.unwrap();
        runtime
            .approve("noop", &Narrowing::default(), &actor)
            .await
            .unwrap();
        runtime
    });

    // The spec the runtime hands the backend, rebuilt for the baselines.
    let bundle_dir = std::fs::read_dir(data.join("bundles"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let grant = Grant {
        internet_access: false,
        network_allow: Vec::new(),
        storage_quota_mb: 1,
        cpu_limit_percent: 100,
        memory_limit_mb: 64,
        timeout_s: 10,
        pids_limit: 64,
        expires_at: None,
    };
    let capability = Capability {
        name: "echo".into(),
        description: "Echo".into(),
        parameters: json!({"type": "object"}),
        returns: None,
        endpoint: None,
        method: None,
        examples: vec![],
        read_only: None,
        destructive: None,
    };
    let spec = SandboxSpec::from_grant(
        &grant,
        CallTarget {
            execution_id: "bench",
            tool: "wasm-echo",
            version: "1.0.0",
            capability: &capability,
            execution: &Execution::Wasm {
                module: "tool.wasm".into(),
            },
            api: None,
            bundle_dir: Some(bundle_dir),
            state_dir: data.join("volumes").join("wasm-echo"),
            arguments: &json!({"text": "hi"}),
        },
    );

    let warm = iters / 10 + 1;
    let mut samples = Vec::with_capacity(iters);
    for i in 0..warm + iters {
        let t = Instant::now();
        let out = backend.run_blocking(&spec);
        if i >= warm {
            samples.push(t.elapsed());
        }
        assert_eq!(out.status, ExecutionStatus::Success, "{out:?}");
    }
    report("wasm backend.run_blocking", samples);

    let samples = rt.block_on(async {
        let mut samples = Vec::with_capacity(iters);
        for i in 0..warm + iters {
            let t = Instant::now();
            let out = backend.run(&spec).await;
            if i >= warm {
                samples.push(t.elapsed());
            }
            assert_eq!(out.status, ExecutionStatus::Success, "{out:?}");
        }
        samples
    });
    report("wasm backend.run", samples);

    for (label, tool) in [
        ("Runtime::call, no-op backend", "noop"),
        ("wasm Runtime::call (SQLite)", "wasm-echo"),
    ] {
        let samples = rt.block_on(async {
            let mut samples = Vec::with_capacity(iters);
            for i in 0..warm + iters {
                let t = Instant::now();
                let row = runtime.call(call(tool)).await.unwrap();
                if i >= warm {
                    samples.push(t.elapsed());
                }
                assert_eq!(row.status, ExecutionStatus::Success, "{row:?}");
            }
            samples
        });
        report(label, samples);
    }
}
