//! The WebAssembly backend's contract: request on stdin, result on stdout, stderr and exit
//! code captured, artifacts compiled at install and only loaded (verified) by calls, state
//! kept across calls.
#![cfg(feature = "wasm")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "wasm_support/mod.rs"]
mod wasm_support;

use pretty_assertions::assert_eq;
use serde_json::json;
use slovo_core::execution::ExecutionStatus;
use slovo_sandbox::Backend;
use wasm_support::{World, tool_wasm, wat};

#[tokio::test]
async fn echo_reads_the_request_on_stdin_and_answers_on_stdout() {
    let w = World::new();
    let bytes = tool_wasm("echo");
    let facts = w.install("echo", &bytes).await;
    assert_eq!(facts["runtime"], "wasm");
    assert_eq!(facts["compiled"], true);
    assert_eq!(
        facts["module_sha256"].as_str().unwrap(),
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes))
    );
    assert!(std::path::Path::new(facts["artifact"].as_str().unwrap()).is_file());
    assert_eq!(facts["engine_fingerprint"], w.backend.engine_fingerprint());

    let out = w.backend.run(&w.spec("echo", json!({"text": "héllo"}))).await;
    assert_eq!(out.status, ExecutionStatus::Success, "{out:?}");
    assert_eq!(
        out.output,
        Some(json!({"capability": "run", "request": {"capability": "run", "arguments": {"text": "héllo"}}}))
    );
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(out.error, None);
    assert_eq!(out.stderr, "");
    assert!(out.cpu_ms.is_some());
    assert!(out.peak_memory_bytes.unwrap() >= 64 * 1024);
    assert!(out.sandbox_id.unwrap().starts_with("wasm:"));
}

#[tokio::test]
async fn a_non_zero_exit_is_a_failure_with_its_code_and_stderr_is_capped() {
    let w = World::with(|c| c.stderr_limit = 4096);
    w.install("exit", &tool_wasm("exit_code")).await;
    let out = w.backend.run(&w.spec("exit", json!({}))).await;
    assert_eq!(out.status, ExecutionStatus::Failure, "{out:?}");
    assert_eq!(out.exit_code, Some(3));
    assert_eq!(out.error.as_deref(), Some("exited with code 3"));
    assert_eq!(out.stderr.len(), 4096, "1 MiB of stderr is cut to the cap");
    assert_eq!(out.output, Some(json!("partial\n")));
}

#[tokio::test]
async fn calls_load_the_installed_artifact_and_never_compile() {
    let w = World::new();
    let bytes = tool_wasm("echo");
    w.install("echo", &bytes).await;
    // Installing again reuses the verified artifact.
    let again = w.install("echo", &bytes).await;
    assert_eq!(again["compiled"], false);

    // After a restart the artifact on disk serves the call.
    let restarted = w.restart(|_| {});
    let out = restarted.run(&w.spec("echo", json!({"n": 1}))).await;
    assert_eq!(out.status, ExecutionStatus::Success, "{out:?}");

    // Without an artifact a call is refused, not compiled.
    let artifact = again["artifact"].as_str().unwrap();
    std::fs::remove_file(artifact).unwrap();
    let restarted = w.restart(|_| {});
    let out = restarted.run(&w.spec("echo", json!({}))).await;
    assert_eq!(out.status, ExecutionStatus::Failure);
    let err = out.error.unwrap();
    assert!(err.starts_with("not installed:"), "{err}");
    assert_eq!(
        std::path::Path::new(artifact).exists(),
        false,
        "the call compiled nothing"
    );
}

#[tokio::test]
async fn a_damaged_or_foreign_artifact_is_never_loaded() {
    let w = World::new();
    let facts = w.install("echo", &tool_wasm("echo")).await;
    let artifact = std::path::PathBuf::from(facts["artifact"].as_str().unwrap());

    // Another engine configuration has another fingerprint: the artifact is not its own.
    let other = w.restart(|c| c.max_wasm_stack = 256 * 1024);
    assert!(other.engine_fingerprint() != w.backend.engine_fingerprint());
    let out = other.run(&w.spec("echo", json!({}))).await;
    assert_eq!(out.status, ExecutionStatus::Failure);
    assert!(out.error.unwrap().starts_with("not installed:"));

    // A damaged artifact no longer matches its record.
    let mut bytes = std::fs::read(&artifact).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&artifact, &bytes).unwrap();
    let restarted = w.restart(|_| {});
    let out = restarted.run(&w.spec("echo", json!({}))).await;
    assert_eq!(out.status, ExecutionStatus::Failure);
    let err = out.error.unwrap();
    assert!(err.contains("does not match its record"), "{err}");

    // A changed module (same path, new bytes) has another hash: no artifact for it.
    w.bundle("echo", &tool_wasm("exit_code"));
    let restarted = w.restart(|_| {});
    let out = restarted.run(&w.spec("echo", json!({}))).await;
    assert!(out.error.unwrap().starts_with("not installed:"));
}

#[tokio::test]
async fn state_in_data_survives_across_calls() {
    let w = World::new();
    w.install("counter", &tool_wasm("fill")).await;
    for n in 1..=3 {
        let out = w.backend.run(&w.spec("counter", json!({"mode": "count"}))).await;
        assert_eq!(out.status, ExecutionStatus::Success, "{out:?}");
        assert_eq!(out.output, Some(json!({"count": n})));
    }
    assert_eq!(
        std::fs::read_to_string(w.state("counter").join("counter")).unwrap(),
        "3"
    );
}

#[tokio::test]
async fn only_wasi_command_modules_install() {
    let w = World::new();
    async fn refuse(w: &World, bytes: Vec<u8>) -> String {
        let bundle = w.bundle("bad", &bytes);
        let req = w.install_request("bad", &bundle);
        w.backend.install(&req).await.unwrap_err().to_string()
    }
    let err = refuse(&w, b"#!/bin/sh\necho hi\n".to_vec()).await;
    assert!(err.contains("not a WebAssembly module"), "{err}");
    let err = refuse(&w, wat("(component)")).await;
    assert!(err.contains("component"), "{err}");
    let err = refuse(&w, wat(r#"(module (func (export "run")))"#)).await;
    assert!(err.contains("no `_start`"), "{err}");
    // A module path that leaves the bundle.
    let bundle = w.bundle("bad", &tool_wasm("echo"));
    let mut req = w.install_request("bad", &bundle);
    req.execution = slovo_core::manifest::Execution::Wasm {
        module: "../echo/tool.wasm".into(),
    };
    let err = w.backend.install(&req).await.unwrap_err().to_string();
    assert!(err.contains("inside the bundle"), "{err}");
}
