//! Protocol versions as a client to MCP servers: Slovo asks for 2025-11-25, accepts a server
//! that answers with an earlier revision it speaks, and refuses clearly — at approval, naming
//! the versions on both sides — a server that answers with one it does not speak or that
//! speaks only the stateless 2026-07-28 revision. Uses the hostile test server's `version`
//! mode (`tests/mcp-tools/hostile_server.py`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "mcp_support/mod.rs"]
mod mcp_support;

use mcp_support::{Harness, actor, capability, hostile_server};
use serde_json::{Value, json};
use slovo_core::execution::ExecutionStatus;
use slovo_core::lifecycle::ToolStatus;
use slovo_core::permissions::Narrowing;
use slovo_runtime::ImportSource;

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
            "modern-only",
            "the server speaks only the protocol versions [\"2026-07-28\"]; this client speaks 2025-11-25, 2025-06-18, 2025-03-26",
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
