//! A hostile MCP server (`tests/mcp-tools/hostile_server.py`) run as a `type: mcp` tool through
//! `Runtime::call`: one that never answers, one that floods its output, and one that tries the
//! process sandbox's escapes. Every attempt is contained and on the execution record.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "mcp_support/mod.rs"]
mod mcp_support;

use std::io::Read;
use std::time::{Duration, Instant};

use mcp_support::{Harness, capability, hostile_server};
use serde_json::{Value, json};
use slovo_core::execution::ExecutionStatus;
use slovo_core::permissions::Narrowing;
use slovo_runtime::ImportSource;

fn manifest(name: &str, mode: &str, timeout_s: u64) -> Value {
    let mut command = vec!["/usr/bin/python3", "hostile_server.py"];
    command.extend(mode.split(' '));
    json!({
        "name": name,
        "version": "1.0.0",
        "description": "A hostile MCP server",
        "capabilities": [capability("probe", json!({"type": "object"}))],
        "permissions": {"memory_limit_mb": 128, "timeout_s": timeout_s, "storage_quota_mb": 8},
        "execution": {
            "type": "mcp", "transport": "stdio", "system_paths": true,
            "command": command,
            "env": {"PYTHONDONTWRITEBYTECODE": "1"},
        },
    })
}

#[tokio::test]
async fn a_server_that_never_answers_meets_the_timeout() {
    let Some(server) = hostile_server() else { return };
    let h = Harness::new().await;
    h.add(Some(&server), &manifest("silent", "silent", 2)).await;
    let started = Instant::now();
    // Bounded here too, so that a missing deadline fails the test instead of hanging it.
    let exec = tokio::time::timeout(Duration::from_secs(30), h.call("silent", "probe", json!({})))
        .await
        .expect("the call outlived its timeout");
    assert_eq!(exec.status, ExecutionStatus::Timeout, "{exec:#?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(exec.error.as_deref().unwrap().contains("timed out"), "{exec:#?}");
}

#[tokio::test]
async fn a_call_that_times_out_is_cancelled_at_the_server_before_it_is_killed() {
    let Some(server) = hostile_server() else { return };
    let h = Harness::new().await;
    h.add(Some(&server), &manifest("stall", "stall", 2)).await;
    let started = Instant::now();
    let exec = tokio::time::timeout(Duration::from_secs(30), h.call("stall", "probe", json!({})))
        .await
        .expect("the call outlived its timeout");
    assert_eq!(exec.status, ExecutionStatus::Timeout, "{exec:#?}");
    assert!(exec.error.as_deref().unwrap().contains("timed out"), "{exec:#?}");
    // Telling the server costs at most a moment on top of the timeout.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // The server wrote what it received to its stderr, which is on the record: the
    // cancellation of the pending `tools/call` (request 3, after `initialize` and the pin's
    // `tools/list`), with the reason.
    let stderr = exec.stderr.as_deref().unwrap_or_default();
    assert!(
        stderr.contains("cancelled request 3: the call's timeout passed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("[mcp] sent notifications/cancelled for request 3"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_server_that_floods_its_output_is_killed_at_the_cap() {
    let Some(server) = hostile_server() else { return };
    let h = Harness::new().await;
    h.add(Some(&server), &manifest("flood", "flood", 20)).await;
    let started = Instant::now();
    let exec = h.call("flood", "probe", json!({})).await;
    assert_eq!(exec.status, ExecutionStatus::Killed, "{exec:#?}");
    assert_eq!(exec.error.as_deref(), Some("killed: stdout exceeded its limit"));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_server_that_floods_when_its_tools_are_listed_is_refused_at_approval() {
    let Some(server) = hostile_server() else { return };
    let h = Harness::new().await;
    let b = mcp_support::bundle(
        h.dir.path(),
        Some(&server),
        &manifest("flood", "flood always", 20),
    );
    h.rt.import(ImportSource::Bundle(b), &mcp_support::actor())
        .await
        .unwrap();
    let err =
        h.rt.approve("flood", &Narrowing::default(), &mcp_support::actor())
            .await
            .unwrap_err()
            .to_string();
    assert!(
        err.contains("did not list its tools")
            && err.contains("more than the output limit during initialize"),
        "{err}"
    );
}

#[tokio::test]
async fn a_server_trying_the_sandboxs_escapes_is_contained() {
    let Some(server) = hostile_server() else { return };
    let h = Harness::new().await;
    h.add(Some(&server), &manifest("escape", "escape", 20)).await;
    let secret = h.dir.path().join("host-secret.txt");
    std::fs::write(&secret, "the host's secret").unwrap();
    // A listener on the host's loopback that no tool may reach.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();

    let exec = h
        .call(
            "escape",
            "probe",
            json!({"host_file": secret.to_str().unwrap(), "port": port}),
        )
        .await;
    assert_eq!(exec.status, ExecutionStatus::Success, "{exec:#?}");
    let report = exec.output.clone().unwrap();
    let refused = |what: &str| {
        assert_eq!(report[what]["ok"], json!(false), "{what} succeeded: {report:#}");
    };
    for what in [
        "read_host_file",
        "read_shadow",
        "write_bundle",
        "write_system",
        "connect_host_loopback",
        "connect_outside",
    ] {
        refused(what);
    }
    // Its own state is writable, and it is alone in its pid namespace.
    assert_eq!(report["write_data"]["ok"], json!(true), "{report:#}");
    let pids = report["host_processes"]["value"].as_array().unwrap();
    assert!(pids.len() <= 3, "the server sees other processes: {pids:?}");
    assert!(!exec.output.unwrap().to_string().contains("the host's secret"));
    // Nothing reached the host's listener.
    let mut accepted = listener.accept();
    if let Ok((stream, _)) = &mut accepted {
        let mut got = String::new();
        let _ = stream.read_to_string(&mut got);
        panic!("the sandbox reached the host's loopback: {got:?}");
    }
}

#[tokio::test]
async fn a_tool_list_that_changes_after_approval_is_refused_with_the_difference() {
    let Some(server) = hostile_server() else { return };
    let h = Harness::new().await;
    h.add(Some(&server), &manifest("honest", "escape", 20)).await;
    h.add(Some(&server), &manifest("rugpull", "rugpull", 20)).await;

    // The same server, unchanged since approval, is called.
    let honest = h.call("honest", "probe", json!({})).await;
    assert_eq!(honest.status, ExecutionStatus::Success, "{honest:#?}");

    let exec = h.call("rugpull", "probe", json!({})).await;
    assert_eq!(exec.status, ExecutionStatus::Failure, "{exec:#?}");
    let error = exec.error.unwrap();
    assert!(
        error.starts_with(
            "refused: the server's tool list differs from the one approved (served tools_sha256 "
        ),
        "{error}"
    );
    assert!(
        error.contains("): changed \"probe\" (description: \"Probes the sandbox.\" → "),
        "{error}"
    );
    assert!(
        error.contains("~/.ssh/id_rsa"),
        "the difference is shown: {error}"
    );
    assert_eq!(exec.output, None, "the tool was not called");

    // The version goes back to approval, with the difference on the audit trail.
    let shown = h.rt.show("rugpull").await.unwrap();
    assert_eq!(shown.pending_version.as_deref(), Some("1.0.0"), "{shown:#?}");
    assert_eq!(shown.active_version.as_deref(), Some("1.0.0"));
    let change = shown.versions[0].tool_list_changed.as_ref().unwrap();
    assert!(change.difference.contains("~/.ssh/id_rsa"), "{change:?}");
    let honest = h.rt.show("honest").await.unwrap();
    assert_eq!(honest.pending_version, None);
    let events = h.rt.store().audit_page(0, 1000).await.unwrap();
    let changed: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "tool.tool_list_changed")
        .collect();
    assert_eq!(changed.len(), 1, "{changed:#?}");
    assert_eq!(changed[0].tool.as_deref(), Some("rugpull"));
    let payload: Value = serde_json::from_str(&changed[0].payload).unwrap();
    assert!(
        payload["difference"].as_str().unwrap().contains("~/.ssh/id_rsa"),
        "{payload}"
    );

    // A second refused call records nothing new.
    let again = h.call("rugpull", "probe", json!({})).await;
    assert_eq!(again.status, ExecutionStatus::Failure);
    let events = h.rt.store().audit_page(0, 1000).await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == "tool.tool_list_changed")
            .count(),
        1
    );

    // This server lists one thing when watched (no state: as at install) and serves another:
    // approving the list it served is refused, since installing it lists the other one.
    let e =
        h.rt.approve("rugpull", &Narrowing::default(), &mcp_support::actor())
            .await
            .unwrap_err();
    assert!(e.to_string().contains("behaves differently when watched"), "{e}");
}
