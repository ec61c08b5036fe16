//! Hostile WebAssembly tools: each attack is attempted for real and must be contained and
//! recorded with the right status and reason.
#![cfg(feature = "wasm")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "wasm_support/mod.rs"]
mod wasm_support;

use std::time::{Duration, Instant};

use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use slovo_core::execution::ExecutionStatus;
use slovo_sandbox::Backend;
use wasm_support::{World, host_bytes, tool_wasm, wat};

#[tokio::test]
async fn an_infinite_loop_times_out() {
    let w = World::new();
    w.install("spin", &tool_wasm("spin")).await;
    let mut spec = w.spec("spin", json!({}));
    spec.limits.timeout = Duration::from_millis(300);
    let clock = Instant::now();
    let out = w.backend.run(&spec).await;
    let took = clock.elapsed();
    assert_eq!(out.status, ExecutionStatus::Timeout, "{out:?}");
    assert_eq!(
        out.error.as_deref(),
        Some("timeout: wall-clock limit of 300ms exceeded")
    );
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    assert!(out.cpu_ms.unwrap() >= 10, "it did run: {out:?}");
}

#[tokio::test]
async fn a_sleep_in_a_host_call_ends_at_the_deadline() {
    let w = World::new();
    w.install("sleepy", &tool_wasm("sleepy")).await;
    let mut spec = w.spec("sleepy", json!({}));
    spec.limits.timeout = Duration::from_millis(300);
    let clock = Instant::now();
    let out = w.backend.run(&spec).await;
    let took = clock.elapsed();
    assert_eq!(out.status, ExecutionStatus::Timeout, "{out:?}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
    assert_eq!(out.output, None, "it never woke up");
}

/// A module that polls one clock subscription (`clock` 0 = realtime, 1 = monotonic) with an
/// absolute timeout far in the future, then exits with poll_oneoff's errno.
fn absolute_sleep(clock: u8) -> Vec<u8> {
    wat(&format!(
        r#"(module
          (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory (export "memory") 1)
          (data (i32.const 0)
            "\00\00\00\00\00\00\00\00" "\00\00\00\00\00\00\00\00"
            "\{clock:02x}\00\00\00\00\00\00\00" "\ff\ff\ff\ff\ff\ff\ff\7f"
            "\00\00\00\00\00\00\00\00" "\01\00\00\00\00\00\00\00")
          (func (export "_start")
            (call $exit (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))))"#
    ))
}

#[tokio::test]
async fn absolute_sleeps_end_at_the_deadline_or_are_refused() {
    let w = World::new();
    w.install("realtime", &absolute_sleep(0)).await;
    let mut spec = w.spec("realtime", json!({}));
    spec.limits.timeout = Duration::from_millis(300);
    let clock = Instant::now();
    let out = w.backend.run(&spec).await;
    assert_eq!(out.status, ExecutionStatus::Timeout, "{out:?}");
    assert!(clock.elapsed() < Duration::from_millis(1500));

    // Monotonic absolute time has the host's origin: refused with ENOTSUP (58).
    w.install("monotonic", &absolute_sleep(1)).await;
    let out = w.backend.run(&w.spec("monotonic", json!({}))).await;
    assert_eq!(out.exit_code, Some(58), "{out:?}");
}

#[tokio::test]
async fn cpu_time_is_held_to_the_granted_share() {
    let w = World::new();
    w.install("burn", &tool_wasm("burn")).await;
    let mut spec = w.spec("burn", json!({"ms": 600}));
    spec.limits.cpu_percent = 100;
    let full = w.backend.run(&spec).await;
    assert_eq!(full.status, ExecutionStatus::Success, "{full:?}");
    spec.limits.cpu_percent = 20;
    let throttled = w.backend.run(&spec).await;
    assert_eq!(throttled.status, ExecutionStatus::Success, "{throttled:?}");
    let (full_ms, slow_ms) = (full.cpu_ms.unwrap(), throttled.cpu_ms.unwrap());
    // 600 ms of wall time at 20% of a CPU is about 120 ms of CPU (plus one tick). Unthrottled
    // it is up to 600 ms, less on a busy machine.
    assert!(
        slow_ms <= 200,
        "throttled to 20%: {slow_ms} ms of CPU (unthrottled: {full_ms} ms)"
    );
    assert!(
        slow_ms < full_ms,
        "throttled {slow_ms} ms, unthrottled {full_ms} ms"
    );
}

#[tokio::test]
async fn memory_growth_past_the_grant_is_killed() {
    let w = World::new();
    w.install("grow", &tool_wasm("grow")).await;
    let mut spec = w.spec("grow", json!({}));
    spec.limits.memory_mb = 32;
    let out = w.backend.run(&spec).await;
    assert_eq!(out.status, ExecutionStatus::Killed, "{out:?}");
    assert_eq!(
        out.error.as_deref(),
        Some("killed: memory limit of 32 MB exceeded")
    );
    let peak = out.peak_memory_bytes.unwrap();
    assert!(peak <= 32 * 1024 * 1024 && peak > 16 * 1024 * 1024, "peak {peak}");
}

#[tokio::test]
async fn a_module_declaring_more_memory_than_granted_is_killed_at_instantiation() {
    let w = World::new();
    // 1024 pages = 64 MiB of initial memory.
    w.install("big", &wat(r#"(module (memory 1024) (func (export "_start")))"#))
        .await;
    let mut spec = w.spec("big", json!({}));
    spec.limits.memory_mb = 16;
    let out = w.backend.run(&spec).await;
    assert_eq!(out.status, ExecutionStatus::Killed, "{out:?}");
    assert_eq!(
        out.error.as_deref(),
        Some("killed: memory limit of 16 MB exceeded")
    );
}

#[tokio::test]
async fn table_growth_past_the_limit_is_killed() {
    let w = World::with(|c| c.max_table_elements = 1000);
    w.install(
        "tables",
        &wat(r#"(module (table 1 funcref)
              (func (export "_start") (drop (table.grow (ref.null func) (i32.const 5000)))))"#),
    )
    .await;
    let out = w.backend.run(&w.spec("tables", json!({}))).await;
    assert_eq!(out.status, ExecutionStatus::Killed, "{out:?}");
    assert_eq!(
        out.error.as_deref(),
        Some("killed: table limit of 1000 elements exceeded")
    );
}

#[tokio::test]
async fn deep_recursion_traps_on_its_stack_limit() {
    let w = World::new();
    // Rust keeps its frames on a shadow stack in linear memory: overflowing it runs off the
    // bottom of the memory, which traps as an out-of-bounds access.
    w.install("recurse", &tool_wasm("recurse")).await;
    let out = w.backend.run(&w.spec("recurse", json!({}))).await;
    assert_eq!(out.status, ExecutionStatus::Failure, "{out:?}");
    let err = out.error.unwrap();
    assert_eq!(err, "trap: wasm trap: out of bounds memory access");
    assert_eq!(out.exit_code, None);

    // Recursion of WebAssembly calls themselves exhausts the native stack given to wasm
    // (max_wasm_stack), which traps too.
    w.install(
        "deep",
        &wat(r#"(module (func $f (call $f)) (func (export "_start") (call $f)))"#),
    )
    .await;
    let out = w.backend.run(&w.spec("deep", json!({}))).await;
    assert_eq!(out.status, ExecutionStatus::Failure, "{out:?}");
    let err = out.error.unwrap();
    assert!(
        err.starts_with("trap: ") && err.contains("call stack exhausted"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreachable_trap_is_a_failure_with_its_reason() {
    let w = World::new();
    w.install("trap", &wat(r#"(module (func (export "_start") unreachable))"#))
        .await;
    let out = w.backend.run(&w.spec("trap", json!({}))).await;
    assert_eq!(out.status, ExecutionStatus::Failure, "{out:?}");
    let err = out.error.unwrap();
    assert!(err.starts_with("trap: ") && err.contains("unreachable"), "{err}");
}

#[tokio::test]
async fn nothing_outside_data_is_visible() {
    let w = World::new();
    w.install("escape", &tool_wasm("escape")).await;
    // Another tool's state next door, and a link to the host planted in this tool's /data.
    let other = w.state("other-tool");
    std::fs::write(other.join("secret"), "other tool's secret").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", w.state("escape").join("planted")).unwrap();

    let out = w.backend.run(&w.spec("escape", json!({}))).await;
    assert_eq!(out.status, ExecutionStatus::Success, "{out:?}");
    let report = out.output.unwrap();
    let report = report.as_object().unwrap();
    for (attempt, result) in report {
        let result = result.as_str().unwrap();
        assert!(
            !result.contains("root:") && !result.contains("secret"),
            "{attempt}: {result}"
        );
        match attempt.as_str() {
            "own_file" => assert_eq!(result, "ok:hello"),
            // Creating a link inside /data is allowed; following it out is not.
            "symlink_abs_create" | "symlink_rel_create" => {}
            _ => assert!(result.starts_with("err:"), "{attempt} should fail: {result}"),
        }
    }
    assert_eq!(report.len(), 14, "{report:?}");
    assert!(!std::path::Path::new(&other.join("mine.txt")).exists());
}

/// Runs the `fill` tool in `mode` with a 1 MB quota; returns its report.
async fn fill(w: &World, mode: &str, extra: Value) -> Value {
    let mut args = json!({"mode": mode});
    args.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let mut spec = w.spec("fill", args);
    spec.limits.storage_mb = 1;
    let out = w.backend.run(&spec).await;
    assert_eq!(out.status, ExecutionStatus::Success, "{out:?}");
    out.output.unwrap()
}

#[tokio::test]
async fn writes_past_the_quota_fail_in_the_tool_with_enospc() {
    let w = World::new();
    w.install("fill", &tool_wasm("fill")).await;
    let state = w.state("fill");

    let report = fill(&w, "fill", json!({})).await;
    assert_eq!(report["kind"], "StorageFull", "{report}");
    let written = report["written"].as_u64().unwrap();
    assert!((900 * 1024..=1024 * 1024).contains(&written), "{written}");
    assert!(host_bytes(&state) <= 1024 * 1024, "{}", host_bytes(&state));

    // The quota holds across calls: the next call finds it full.
    let report = fill(&w, "fill", json!({})).await;
    assert_eq!(report["kind"], "StorageFull", "{report}");
    assert!(host_bytes(&state) <= 1024 * 1024);

    // Many empty files are not free.
    std::fs::remove_file(state.join("big")).unwrap();
    let w = World::new(); // a fresh backend measures the emptied directory
    w.install("fill", &tool_wasm("fill")).await;
    let report = fill(&w, "files", json!({})).await;
    assert_eq!(report["kind"], "StorageFull", "{report}");
    assert!(report["written"].as_u64().unwrap() <= 256, "{report}");

    // Nor is a file stretched with set_len.
    let w = World::new();
    w.install("fill", &tool_wasm("fill")).await;
    let report = fill(&w, "set_size", json!({"mb": 64})).await;
    assert_eq!(report["kind"], "StorageFull", "{report}");
    assert!(host_bytes(&w.state("fill")) <= 1024 * 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_of_a_tool_share_one_quota() {
    let w = std::sync::Arc::new(World::new());
    w.install("fill", &tool_wasm("fill")).await;
    let calls: Vec<_> = (0..4)
        .map(|i| {
            let w = w.clone();
            tokio::spawn(async move { fill(&w, "fill", json!({"file": format!("part{i}")})).await })
        })
        .collect();
    let mut total = 0;
    for call in calls {
        let report = call.await.unwrap();
        assert_eq!(report["kind"], "StorageFull", "{report}");
        total += report["written"].as_u64().unwrap();
    }
    assert!(total <= 1024 * 1024, "four writers together wrote {total} bytes");
    assert!(host_bytes(&w.state("fill")) <= 1024 * 1024);
}

#[tokio::test]
async fn standard_streams_cannot_be_turned_into_uncharged_files() {
    let w = World::new();
    w.install("tricks", &tool_wasm("stdio_tricks")).await;
    let mut spec = w.spec("tricks", json!({}));
    spec.limits.storage_mb = 1;
    let out = w.backend.run(&spec).await;
    assert_eq!(out.status, ExecutionStatus::Success, "{out:?}");
    // fd 1 stayed stdout (closing it did nothing), the file got another descriptor, and the
    // renumbering onto 1 was refused with ENOTSUP (58).
    assert!(out.stderr.contains("renumber=58"), "{}", out.stderr);
    assert!(!out.stderr.contains("fd=1 "), "{}", out.stderr);
    assert!(host_bytes(&w.state("tricks")) <= 1024 * 1024);
    assert_eq!(
        out.output.unwrap().as_str().unwrap().len(),
        2 * 1024 * 1024,
        "stdout got the bytes"
    );
}

#[tokio::test]
async fn a_flood_of_stdout_is_killed_at_the_cap() {
    let w = World::with(|c| c.stdout_limit = 1024 * 1024);
    w.install("flood", &tool_wasm("flood")).await;
    let clock = Instant::now();
    let out = w.backend.run(&w.spec("flood", json!({}))).await;
    assert_eq!(out.status, ExecutionStatus::Killed, "{out:?}");
    assert_eq!(
        out.error.as_deref(),
        Some("killed: stdout exceeded the limit of 1048576 bytes")
    );
    assert!(clock.elapsed() < Duration::from_secs(5));
    assert!(out.output.unwrap().as_str().unwrap().len() <= 1024 * 1024);
}

#[tokio::test]
async fn a_module_importing_a_host_function_it_was_not_given_is_refused() {
    let w = World::new();
    let module = wat(r#"(module (import "env" "host_secret" (func $s (result i32)))
                   (func (export "_start") (drop (call $s))))"#);
    let bundle = w.bundle("importer", &module);
    let err = w
        .backend
        .install(&w.install_request("importer", &bundle))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("env::host_secret"), "{err}");
    // Even with its artifact on disk (install compiles before linking), a call refuses it.
    let restarted = w.restart(|_| {});
    let out = restarted.run(&w.spec("importer", json!({}))).await;
    assert_eq!(out.status, ExecutionStatus::Failure);
    let err = out.error.unwrap();
    assert!(err.contains("env::host_secret"), "{err}");
    // Sockets are not in preview 1's command world either: nothing to import.
    let module = wat(
        r#"(module (import "wasi:sockets/tcp@0.2.0" "create-tcp-socket" (func (param i32) (result i32)))
                   (func (export "_start")))"#,
    );
    let bundle = w.bundle("socket", &module);
    let err = w
        .backend
        .install(&w.install_request("socket", &bundle))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("create-tcp-socket"), "{err}");
}

#[tokio::test]
async fn no_socket_is_reachable_through_preview_1() {
    let w = World::new();
    // sock_accept on every descriptor a tool has (stdio and /data): each must fail; the exit
    // code is the number of successes.
    w.install(
        "sockets",
        &wat(r#"(module
          (import "wasi_snapshot_preview1" "sock_accept" (func $accept (param i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory (export "memory") 1)
          (func (export "_start") (local $fd i32) (local $ok i32)
            (loop $next
              (if (i32.eqz (call $accept (local.get $fd) (i32.const 0) (i32.const 64)))
                (then (local.set $ok (i32.add (local.get $ok) (i32.const 1)))))
              (local.set $fd (i32.add (local.get $fd) (i32.const 1)))
              (br_if $next (i32.lt_u (local.get $fd) (i32.const 16))))
            (call $exit (local.get $ok))))"#),
    )
    .await;
    let out = w.backend.run(&w.spec("sockets", json!({}))).await;
    assert_eq!(out.status, ExecutionStatus::Success, "{out:?}");
    assert_eq!(out.exit_code, Some(0));
}
