//! Warm, but never reused: MCP calls served from the pool of pre-started sandboxes
//! (`slovo_sandbox::mcp::PoolConfig`) through `Runtime::call`, with the hostile test server
//! (`tests/mcp-tools/hostile_server.py`) and the real memory server.
//!
//! - a warm sandbox serves exactly one call: the next call's server has not seen the first
//!   call's `/tmp` marker nor its in-memory call count (mutation-checked: handing a used
//!   sandbox back to the pool fails this test);
//! - warm sandboxes are destroyed when the tool is disabled, when a new version serves it, and
//!   at shutdown, leaving no process and no mount behind;
//! - the memory server's graph in `/data` is seen by a warm server exactly as by a cold one;
//! - a tool list that changed legitimately (an upgraded server) is approved again, then served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "mcp_support/mod.rs"]
mod mcp_support;

use std::time::{Duration, Instant};

use mcp_support::{Harness, actor, capability, hostile_server, installed_server, node_manifest};
use serde_json::{Value, json};
use slovo_core::execution::ExecutionStatus;
use slovo_core::permissions::Narrowing;
use slovo_runtime::ImportSource;

/// How long a test waits for a warm sandbox (a server start in the sandbox, debug build,
/// shared machine).
const WARM_WAIT: Duration = Duration::from_secs(30);

/// The hostile server in `mode`, with `mark` in its environment (to find its processes).
fn manifest(name: &str, version: &str, mode: &str, mark: &str) -> Value {
    json!({
        "name": name,
        "version": version,
        "description": "A hostile MCP server",
        "capabilities": [capability("probe", json!({"type": "object"}))],
        "permissions": {"memory_limit_mb": 128, "timeout_s": 20, "storage_quota_mb": 8},
        "execution": {
            "type": "mcp", "transport": "stdio", "system_paths": true,
            "command": ["/usr/bin/python3", "hostile_server.py", mode],
            "env": {"PYTHONDONTWRITEBYTECODE": "1", "POOL_TEST_MARK": mark},
        },
    })
}

/// Host processes whose environment holds `POOL_TEST_MARK=mark`.
fn processes_marked(mark: &str) -> usize {
    let needle = format!("POOL_TEST_MARK={mark}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read(e.path().join("environ"))
                .map(|env| env.split(|b| *b == 0).any(|v| v == needle.as_bytes()))
                .unwrap_or(false)
        })
        .count()
}

/// Waits (at most 10 s) until no process carries `mark`; the count left.
async fn settle_to_zero(mark: &str) -> usize {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let n = processes_marked(mark);
        if n == 0 || Instant::now() > until {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether a warm sandbox served the call, as its stored record says (`warm`); a warm
/// record's times agree with each other (the server was ready after its sandbox started).
fn was_warm(exec: &slovo_runtime::ExecutionView) -> bool {
    match exec.warm {
        Some(w) => {
            assert!(w.ready_ms_before_call <= w.started_ms_before_call, "{w:?}");
            true
        }
        None => false,
    }
}

#[tokio::test]
async fn a_warm_sandbox_serves_exactly_one_call() {
    let Some(server) = hostile_server() else { return };
    let h = Harness::with_pool(1).await;
    h.add(Some(&server), &manifest("probe", "1.0.0", "escape", "one-call"))
        .await;

    // The first call starts its server cold; it leaves a marker in /tmp and a count in memory.
    let first = h.call("probe", "probe", json!({})).await;
    assert_eq!(first.status, ExecutionStatus::Success, "{first:#?}");
    assert!(!was_warm(&first), "{first:#?}");
    let left = &first.output.as_ref().unwrap()["left_behind"];
    assert_eq!(left, &json!({"tmp_marker_seen": false, "calls_served_before": 0}));

    for round in 0..3 {
        assert!(
            h.mcp.wait_warm("probe", WARM_WAIT).await,
            "round {round}: no warm sandbox"
        );
        let exec = h.call("probe", "probe", json!({})).await;
        assert_eq!(exec.status, ExecutionStatus::Success, "{exec:#?}");
        assert!(was_warm(&exec), "round {round}: served cold: {exec:#?}");
        let output = exec.output.as_ref().unwrap();
        // A fresh server in a fresh sandbox: nothing of any earlier call.
        assert_eq!(
            output["left_behind"],
            json!({"tmp_marker_seen": false, "calls_served_before": 0}),
            "round {round}: the sandbox was used before"
        );
        // As isolated as a cold call: the same escapes fail, only /data is writable.
        assert_eq!(output["write_data"]["ok"], json!(true), "{output}");
        for escape in ["read_shadow", "write_bundle", "write_system", "connect_outside"] {
            assert_eq!(output[escape]["ok"], json!(false), "{escape}: {output}");
        }
        // Audited as a cold call is: the record, with its sandbox and accounting.
        assert!(exec.sandbox_id.is_some(), "{exec:#?}");
        assert_ne!(exec.sandbox_id, first.sandbox_id);
    }
    let executions = h.rt.store().audit_page(0, 1000).await.unwrap();
    let calls = executions
        .iter()
        .filter(|e| e.kind.starts_with("execution."))
        .count();
    assert_eq!(calls, 4, "every call, warm or cold, is on the audit trail");
}

#[tokio::test]
async fn warm_sandboxes_go_on_disable_on_a_new_version_and_at_shutdown() {
    let Some(server) = hostile_server() else { return };
    let h = Harness::with_pool(2).await;
    h.add(Some(&server), &manifest("kept", "1.0.0", "escape", "kept-v1"))
        .await;
    let exec = h.call("kept", "probe", json!({})).await;
    assert_eq!(exec.status, ExecutionStatus::Success, "{exec:#?}");
    assert!(h.mcp.wait_warm("kept", WARM_WAIT).await);
    assert!(processes_marked("kept-v1") >= 1, "a warm server runs");

    // Disabled: its warm servers are destroyed at once.
    h.rt.disable("kept", &actor()).await.unwrap();
    assert_eq!(h.mcp.warm_ready("kept"), 0);
    assert_eq!(
        settle_to_zero("kept-v1").await,
        0,
        "warm servers outlived the disable"
    );

    // Enabled and called again: warm again.
    h.rt.enable("kept", &actor()).await.unwrap();
    h.call("kept", "probe", json!({})).await;
    assert!(h.mcp.wait_warm("kept", WARM_WAIT).await);
    assert!(processes_marked("kept-v1") >= 1);

    // A new version (the same grant, no network, no secret: it serves at once): its first call
    // destroys the old version's warm servers and is served cold by the new one.
    let b = mcp_support::bundle(
        &h.dir.path().join("v2"),
        Some(&server),
        &manifest("kept", "1.0.1", "escape", "kept-v2"),
    );
    h.rt.import(ImportSource::Bundle(b), &actor()).await.unwrap();
    let exec = h.call("kept", "probe", json!({})).await;
    assert_eq!(exec.status, ExecutionStatus::Success, "{exec:#?}");
    assert_eq!(exec.version, "1.0.1");
    assert!(
        !was_warm(&exec),
        "a warm server of the old version served: {exec:#?}"
    );
    assert_eq!(
        settle_to_zero("kept-v1").await,
        0,
        "old warm servers outlived the upgrade"
    );
    assert!(h.mcp.wait_warm("kept", WARM_WAIT).await);
    assert!(processes_marked("kept-v2") >= 1);

    // Shutdown: nothing left, no process and no mount.
    h.rt.backends().shutdown().await;
    assert_eq!(
        settle_to_zero("kept-v2").await,
        0,
        "warm servers outlived shutdown"
    );
    let data = h.dir.path().to_string_lossy().into_owned();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let left: Vec<&str> = mounts.lines().filter(|l| l.contains(&data)).collect();
    assert!(left.is_empty(), "mounts left: {left:#?}");
}

#[tokio::test]
async fn a_warm_memory_server_sees_the_graph_as_a_cold_one() {
    let Some(server) = installed_server("memory") else {
        return;
    };
    let h = Harness::with_pool(1).await;
    let manifest = node_manifest(
        "memory",
        "server-memory",
        &[],
        json!({"MEMORY_FILE_PATH": "/data/memory.jsonl"}),
        vec![
            capability("create_entities", json!({"type": "object"})),
            capability("read_graph", json!({"type": "object"})),
        ],
    );
    h.add(Some(&server), &manifest).await;
    let entity = |name: &str| json!({"entities": [{"name": name, "entityType": "person", "observations": ["met in a test"]}]});
    let exec = h.call("memory", "create_entities", entity("Ada")).await;
    assert_eq!(exec.status, ExecutionStatus::Success, "{exec:#?}");
    for (round, name) in ["Grace", "Barbara"].into_iter().enumerate() {
        // Each warm server was started after the previous call ended: it sees its writes.
        assert!(h.mcp.wait_warm("memory", WARM_WAIT).await, "round {round}");
        let exec = h.call("memory", "create_entities", entity(name)).await;
        assert_eq!(exec.status, ExecutionStatus::Success, "{exec:#?}");
        assert!(was_warm(&exec), "{exec:#?}");
    }
    assert!(h.mcp.wait_warm("memory", WARM_WAIT).await);
    let graph = h.call("memory", "read_graph", json!({})).await;
    assert!(was_warm(&graph), "{graph:#?}");
    let names: Vec<String> = graph.output.as_ref().unwrap()["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["Ada", "Grace", "Barbara"], "{graph:#?}");
}

#[tokio::test]
async fn an_upgraded_tool_list_is_approved_again_and_then_served() {
    let Some(server) = hostile_server() else { return };
    let h = Harness::with_pool(1).await;
    // The server lists a second tool from a moment on, as after an upgrade of what it serves.
    let upgrade_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        + 4.0;
    let mut m = manifest("upgraded", "1.0.0", "upgrade", "upgraded");
    m["execution"]["env"]["UPGRADE_AT"] = json!(format!("{upgrade_at}"));
    h.add(Some(&server), &m).await;
    let exec = h.call("upgraded", "probe", json!({})).await;
    assert_eq!(exec.status, ExecutionStatus::Success, "{exec:#?}");

    // After the upgrade: refused with the difference, back to approval.
    let wait = upgrade_at
        - std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
    if wait > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(wait + 0.2)).await;
    }
    // A server warmed before the upgrade listed the old tools; let it go (as it would be once
    // idle) so that this call's server lists after the upgrade.
    h.rt.backends().forget_tool("upgraded").await;
    let refused = h.call("upgraded", "probe", json!({})).await;
    assert_eq!(refused.status, ExecutionStatus::Failure, "{refused:#?}");
    let error = refused.error.unwrap();
    assert!(error.contains("added \"status\""), "{error}");
    let shown = h.rt.show("upgraded").await.unwrap();
    assert_eq!(shown.pending_version.as_deref(), Some("1.0.0"), "{shown:#?}");

    // A person looks at the difference and approves again: install lists the new tools,
    // which become the pin, and calls are served (warm ones included).
    h.rt.approve("upgraded", &Narrowing::default(), &actor())
        .await
        .unwrap();
    let shown = h.rt.show("upgraded").await.unwrap();
    assert_eq!(shown.pending_version, None, "{shown:#?}");
    let exec = h.call("upgraded", "probe", json!({})).await;
    assert_eq!(exec.status, ExecutionStatus::Success, "{exec:#?}");
    assert!(h.mcp.wait_warm("upgraded", WARM_WAIT).await);
    let exec = h.call("upgraded", "probe", json!({})).await;
    assert_eq!(exec.status, ExecutionStatus::Success, "{exec:#?}");
    assert!(was_warm(&exec), "{exec:#?}");
    let events = h.rt.store().audit_page(0, 1000).await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == "tool.tool_list_changed")
            .count(),
        1
    );
}
