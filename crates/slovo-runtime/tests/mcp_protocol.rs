//! Protocol versions as a client to MCP servers: Slovo asks for 2025-11-25, accepts a server
//! that answers with an earlier revision it speaks, speaks the stateless 2026-07-28 revision
//! with a server that speaks only that one (imported, approved and called, cold and warm), and
//! refuses clearly — at approval, naming the versions on both sides — a server that answers
//! with one it does not speak. Uses the hostile test server's `version` mode
//! (`tests/mcp-tools/hostile_server.py`), which checks the stateless revision's request
//! context as the `rmcp` SDK does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "mcp_support/mod.rs"]
mod mcp_support;

use mcp_support::{Harness, actor, build_wheel, capability, hostile_server};
use serde_json::{Value, json};
use slovo_core::execution::ExecutionStatus;
use slovo_core::lifecycle::ToolStatus;
use slovo_core::permissions::Narrowing;
use slovo_runtime::{ImportSource, McpImport, McpSource};

/// The test server answering `initialize` with `answer`.
fn manifest(name: &str, answer: &str) -> Value {
    json!({
        "name": name,
        "version": "1.0.0",
        "description": "An MCP server of a given protocol version",
        "capabilities": [capability("probe", json!({"type": "object"}))],
        "permissions": {"memory_limit_mb": 128, "timeout_s": 20, "storage_quota_mb": 8},
        "execution": {
            "type": "mcp", "transport": "stdio", "system_paths": true,
            "command": ["/usr/bin/python3", "hostile_server.py", "version"],
            "env": {"PYTHONDONTWRITEBYTECODE": "1", "ANSWER_VERSION": answer},
        },
    })
}

#[tokio::test]
async fn an_earlier_revision_the_client_speaks_is_accepted() {
    let Some(server) = hostile_server() else { return };
    let h = Harness::new().await;
    for answer in ["2025-11-25", "2025-06-18", "2025-03-26"] {
        let name = format!("v{}", answer.replace('-', ""));
        h.add(Some(&server), &manifest(&name, answer)).await;
        let exec = h.call(&name, "probe", json!({})).await;
        assert_eq!(exec.status, ExecutionStatus::Success, "{answer}: {exec:#?}");
        assert_eq!(
            exec.output.unwrap()["requested_version"],
            "2025-11-25",
            "the client asks for its latest revision"
        );
        let version = h.rt.store().version(&name, "1.0.0").await.unwrap().unwrap();
        let facts = version.install_info.unwrap();
        let listed = facts.listed_tools().unwrap();
        assert_eq!(listed.protocol_version, Some(json!(answer)), "{facts:?}");
    }
}

#[tokio::test]
async fn a_revision_the_client_does_not_speak_fails_approval_with_both_sides() {
    let Some(server) = hostile_server() else { return };
    let h = Harness::new().await;
    for (answer, expected) in [
        (
            "2024-11-05",
            "protocol version Some(\"2024-11-05\") is not one this client speaks (2025-11-25, 2025-06-18, 2025-03-26)",
        ),
        (
            // A server of the stateless revision must not answer `initialize` with it.
            "2026-07-28",
            "protocol version Some(\"2026-07-28\") is not one this client speaks",
        ),
        (
            "future-only",
            "the server speaks only the protocol versions [\"2099-12-31\"]; this client speaks 2025-11-25, 2025-06-18, 2025-03-26, 2026-07-28",
        ),
    ] {
        let name = format!("refused-{}", answer.replace('-', ""));
        let b = mcp_support::bundle(h.dir.path(), Some(&server), &manifest(&name, answer));
        h.rt.import(ImportSource::Bundle(b), &actor()).await.unwrap();
        let e =
            h.rt.approve(&name, &Narrowing::default(), &actor())
                .await
                .unwrap_err()
                .to_string();
        assert!(e.contains(expected), "{answer}: {e}");
        let shown = h.rt.show(&name).await.unwrap();
        assert_ne!(shown.status, ToolStatus::Active, "{answer}: {shown:#?}");
    }
}

#[tokio::test]
async fn a_server_of_the_stateless_revision_alone_is_approved_and_called_in_it() {
    let Some(server) = hostile_server() else { return };
    let h = Harness::new().await;
    h.add(Some(&server), &manifest("stateless", "modern-only")).await;

    // Approval opened the server with `server/discover` and recorded what it learned.
    let version = h.rt.store().version("stateless", "1.0.0").await.unwrap().unwrap();
    let facts = version.install_info.unwrap();
    let listed = facts.listed_tools().unwrap();
    assert_eq!(listed.protocol_version, Some(json!("2026-07-28")), "{facts:?}");
    assert_eq!(
        listed.server_info.as_ref().unwrap()["name"],
        "stateless",
        "{facts:?}"
    );
    assert_eq!(listed.tools[0]["name"], "probe", "{facts:?}");

    // The server refuses any request without the client's context in its `_meta`: the call
    // succeeding means `tools/list` (the pin) and `tools/call` carried it.
    let exec = h.call("stateless", "probe", json!({})).await;
    assert_eq!(exec.status, ExecutionStatus::Success, "{exec:#?}");
    assert_eq!(exec.output.unwrap()["requested_version"], "2026-07-28");
}

#[tokio::test]
async fn a_server_of_the_stateless_revision_is_served_warm_in_it() {
    let Some(server) = hostile_server() else { return };
    let h = Harness::with_pool(1).await;
    h.add(Some(&server), &manifest("stateless-warm", "modern-only"))
        .await;
    let cold = h.call("stateless-warm", "probe", json!({})).await;
    assert_eq!(cold.status, ExecutionStatus::Success, "{cold:#?}");
    assert!(cold.warm.is_none(), "{cold:#?}");
    assert!(
        h.mcp
            .wait_warm("stateless-warm", std::time::Duration::from_secs(20))
            .await,
        "no warm sandbox became ready"
    );
    let warm = h.call("stateless-warm", "probe", json!({})).await;
    assert_eq!(warm.status, ExecutionStatus::Success, "{warm:#?}");
    assert!(warm.warm.is_some(), "{warm:#?}");
    // The warm server was opened with `server/discover`; its one call carried the context.
    assert_eq!(warm.output.unwrap()["requested_version"], "2026-07-28");
}

#[tokio::test]
async fn a_stateless_server_imported_by_name_records_the_version_agreed() {
    let Some(server) = hostile_server() else { return };
    let wheels = tempfile::tempdir().unwrap();
    build_wheel(&server, wheels.path(), "slovo-stateless-mcp");
    let h = Harness::with_wheelhouse(wheels.path()).await;
    let import = McpImport {
        source: McpSource::parse("pypi:slovo-stateless-mcp==1.0.0"),
        name: None,
        env: [("ANSWER_VERSION".to_string(), "modern-only".to_string())].into(),
        args: vec!["version".into()],
        secrets: Default::default(),
    };
    let report = h.rt.import_mcp(&import, &actor()).await.unwrap();
    assert_eq!(report.import.tool, "slovo-stateless-mcp");
    // The import record: the version agreed and the server's name, from `server/discover`.
    assert_eq!(report.server["protocol_version"], "2026-07-28", "{report:#?}");
    assert_eq!(report.server["server_info"]["name"], "stateless", "{report:#?}");
    assert_eq!(report.tools.len(), 1, "{report:#?}");

    h.rt.approve("slovo-stateless-mcp", &Narrowing::default(), &actor())
        .await
        .unwrap();
    let exec = h.call("slovo-stateless-mcp", "probe", json!({})).await;
    assert_eq!(exec.status, ExecutionStatus::Success, "{exec:#?}");
    assert_eq!(exec.output.unwrap()["requested_version"], "2026-07-28");
}
