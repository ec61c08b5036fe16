//! Real MCP servers from npm and PyPI as tools, through `Runtime::call`: each call a fresh
//! server in the process sandbox. The servers are installed (offline, install scripts off)
//! by `scripts/ci-mcp-servers-setup.sh`; without them the tests skip, or fail under CI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "mcp_support/mod.rs"]
mod mcp_support;

use mcp_support::{Harness, capability, installed_server, node_manifest, python_manifest};
use serde_json::json;
use slovo_core::execution::ExecutionStatus;

#[tokio::test]
async fn everything_echoes_and_returns_structured_content() {
    let Some(server) = installed_server("everything") else {
        return;
    };
    let h = Harness::new().await;
    let manifest = node_manifest(
        "everything",
        "server-everything",
        &["stdio"],
        json!({}),
        vec![
            capability(
                "echo",
                json!({"type": "object", "properties": {"message": {"type": "string"}}}),
            ),
            capability("get-structured-content", json!({"type": "object"})),
        ],
    );
    h.add(Some(&server), &manifest).await;

    let echo = h
        .call("everything", "echo", json!({"message": "hello sandbox"}))
        .await;
    assert_eq!(echo.status, ExecutionStatus::Success, "{echo:#?}");
    assert_eq!(echo.output, Some(json!("Echo: hello sandbox")));
    assert!(echo.sandbox_id.is_some());

    let weather = h
        .call(
            "everything",
            "get-structured-content",
            json!({"location": "Chicago"}),
        )
        .await;
    assert_eq!(weather.status, ExecutionStatus::Success, "{weather:#?}");
    let output = weather.output.unwrap();
    assert!(
        output.get("temperature").is_some(),
        "structuredContent is the output: {output}"
    );
}

#[tokio::test]
async fn memory_graph_persists_across_calls_and_stays_with_its_tool() {
    let Some(server) = installed_server("memory") else {
        return;
    };
    let h = Harness::new().await;
    let caps = || {
        vec![
            capability("create_entities", json!({"type": "object"})),
            capability("read_graph", json!({"type": "object"})),
        ]
    };
    let env = json!({"MEMORY_FILE_PATH": "/data/memory.jsonl"});
    for name in ["memory-a", "memory-b"] {
        h.add(
            Some(&server),
            &node_manifest(name, "server-memory", &[], env.clone(), caps()),
        )
        .await;
    }
    let created = h
        .call(
            "memory-a",
            "create_entities",
            json!({"entities": [{"name": "Ada", "entityType": "person", "observations": ["wrote the first program"]}]}),
        )
        .await;
    assert_eq!(created.status, ExecutionStatus::Success, "{created:#?}");

    // A later call is a new server in a new sandbox: only /data carried the graph over.
    let graph = h.call("memory-a", "read_graph", json!({})).await;
    assert_eq!(graph.status, ExecutionStatus::Success, "{graph:#?}");
    let entities = graph.output.as_ref().unwrap()["entities"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(entities.len(), 1, "{graph:#?}");
    assert_eq!(entities[0]["name"], "Ada");

    let other = h.call("memory-b", "read_graph", json!({})).await;
    assert_eq!(other.status, ExecutionStatus::Success, "{other:#?}");
    assert_eq!(
        other.output.as_ref().unwrap()["entities"],
        json!([]),
        "{other:#?}"
    );
}

#[tokio::test]
async fn filesystem_server_sees_only_its_data() {
    let Some(server) = installed_server("filesystem") else {
        return;
    };
    let h = Harness::new().await;
    // A file on the host that no tool may read.
    let secret = h.dir.path().join("host-secret.txt");
    std::fs::write(&secret, "the host's secret").unwrap();
    let caps = || {
        vec![
            capability("write_file", json!({"type": "object"})),
            capability("read_text_file", json!({"type": "object"})),
        ]
    };
    h.add(
        Some(&server),
        &node_manifest("files", "server-filesystem", &["/data"], json!({}), caps()),
    )
    .await;
    // Rooted at `/`, the server itself would allow anything: the sandbox is what stops it.
    h.add(
        Some(&server),
        &node_manifest("files-root", "server-filesystem", &["/"], json!({}), caps()),
    )
    .await;

    let written = h
        .call(
            "files",
            "write_file",
            json!({"path": "/data/note.txt", "content": "kept"}),
        )
        .await;
    assert_eq!(written.status, ExecutionStatus::Success, "{written:#?}");
    let read = h
        .call("files", "read_text_file", json!({"path": "/data/note.txt"}))
        .await;
    assert_eq!(read.status, ExecutionStatus::Success, "{read:#?}");
    assert_eq!(read.output.as_ref().unwrap()["content"], "kept", "{read:#?}");

    let outside = h
        .call(
            "files",
            "read_text_file",
            json!({"path": secret.to_str().unwrap()}),
        )
        .await;
    assert_eq!(outside.status, ExecutionStatus::Failure, "{outside:#?}");
    assert!(
        outside
            .error
            .as_deref()
            .unwrap()
            .contains("the tool reported an error")
    );

    let escaped = h
        .call(
            "files-root",
            "read_text_file",
            json!({"path": secret.to_str().unwrap()}),
        )
        .await;
    assert_eq!(escaped.status, ExecutionStatus::Failure, "{escaped:#?}");
    let error = escaped.error.unwrap();
    assert!(
        error.contains("ENOENT") || error.contains("no such file"),
        "{error}"
    );
    assert!(!format!("{:?}", escaped.output).contains("the host's secret"));
}

#[tokio::test]
async fn time_server_answers_in_a_timezone() {
    let Some(server) = installed_server("time") else {
        return;
    };
    let h = Harness::new().await;
    let manifest = python_manifest(
        "clock",
        "mcp_server_time",
        &["--local-timezone", "UTC"],
        vec![capability("get_current_time", json!({"type": "object"}))],
    );
    h.add(Some(&server), &manifest).await;
    let now = h
        .call("clock", "get_current_time", json!({"timezone": "Asia/Tokyo"}))
        .await;
    assert_eq!(now.status, ExecutionStatus::Success, "{now:#?}");
    let output = now.output.unwrap();
    assert_eq!(output["timezone"], "Asia/Tokyo", "{output}");
    assert!(
        output["datetime"].as_str().unwrap().ends_with("+09:00"),
        "{output}"
    );
}
