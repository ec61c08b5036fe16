//! Load: N concurrent clients call a cheap tool through the REST API for a fixed time, every
//! call audited in SQLite. Reports calls/s and p50/p99 latency, then checks that the number of
//! execution records and audit events equals the number of calls answered.
//!
//! Run (as root, for the process sandbox): `cargo bench -p slovo-server --bench load`.
//! `SLOVO_LOAD_SECONDS` (default 10) and `SLOVO_LOAD_CLIENTS` (default 16) tune it;
//! `SLOVO_LOAD_KINDS=wasm,process` picks the tools (default: both).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/cheap_tools.rs"]
mod cheap_tools;

use std::sync::Arc;

use cheap_tools::{drive, percentile, process_tool, wasm_tool};
use slovo_core::access::Role;
use slovo_runtime::{Actor, ImportSource, Runtime};
use slovo_sandbox::Backends;
use slovo_server::{AppState, ServerConfig};

fn main() {
    slovo_sandbox::http::ensure_tls_provider();
    let seconds: u64 = std::env::var("SLOVO_LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let clients: usize = std::env::var("SLOVO_LOAD_CLIENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let wanted = std::env::var("SLOVO_LOAD_KINDS").unwrap_or_else(|_| "wasm,process".into());
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let mut tools = Vec::new();
    if wanted.contains("wasm") {
        tools.push(wasm_tool(dir.path()));
    }
    if wanted.contains("process") {
        match process_tool(dir.path()) {
            Some(t) => tools.push(t),
            None => eprintln!("gcc -static failed: skipping the process tool"),
        }
    }
    println!(
        "| tool | clients | seconds | calls answered | calls/s | p50 (ms) | p99 (ms) | records = events = answered |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    for tool in tools {
        let data = dir.path().join(format!("data-{}", tool.kind));
        rt.block_on(async {
            std::fs::create_dir_all(&data).unwrap();
            let store = slovo_store::Store::open_sqlite(&data.join("slovo.db"))
                .await
                .unwrap();
            let mut backends = Backends::new();
            #[cfg(target_os = "linux")]
            {
                let process = slovo_sandbox::process::ProcessBackend::new(
                    slovo_sandbox::process::ProcessConfig::new(data.join("sandbox")),
                )
                .unwrap();
                backends = backends.with(Arc::new(process));
            }
            backends = backends.with(Arc::new(
                slovo_sandbox::wasm::WasmBackend::new(slovo_sandbox::wasm::WasmConfig::new(
                    data.join("wasm-cache"),
                ))
                .unwrap(),
            ));
            let runtime = Arc::new(Runtime::new(store, backends, &data));
            let actor = Actor("bench".into());
            let report = runtime
                .import(ImportSource::Bundle(tool.bundle.clone()), &actor)
                .await
                .unwrap();
            runtime
                .approve(&report.tool, &Default::default(), &actor)
                .await
                .unwrap();
            let token = runtime
                .create_token(Role::Agent, None, &actor)
                .await
                .unwrap()
                .token;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let state = AppState::new(
                runtime.clone(),
                ServerConfig {
                    max_concurrent_calls: clients,
                    max_queued_calls: clients,
                    ..ServerConfig::default()
                },
            );
            tokio::spawn(slovo_server::serve(listener, state, std::future::pending()));
            let events_before = runtime.store().audit_head().await.unwrap().0;

            let (latencies, rejected, elapsed) =
                drive(&[addr.port()], &token, &report.tool, clients, seconds).await;
            let answered = latencies.len();
            let records = runtime
                .store()
                .executions(&slovo_store::ExecutionFilter {
                    limit: i64::MAX,
                    ..Default::default()
                })
                .await
                .unwrap()
                .len();
            let events = (runtime.store().audit_head().await.unwrap().0 - events_before) as usize;
            let consistent = records == answered && events == answered;
            println!(
                "| {} | {clients} | {:.1} | {answered} | {:.0} | {:.2} | {:.2} | {} |",
                tool.kind,
                elapsed.as_secs_f64(),
                answered as f64 / elapsed.as_secs_f64(),
                percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
                percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
                if consistent {
                    "yes".to_string()
                } else {
                    format!("NO: {records} records, {events} events")
                },
            );
            if rejected > 0 {
                println!("({rejected} calls were turned away by back-pressure and are not counted)");
            }
            runtime.verify_audit().await.unwrap();
            assert!(
                consistent,
                "every answered call must have one record and one audit event"
            );
        });
    }
}
