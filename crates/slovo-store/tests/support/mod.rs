//! What the store's result-writing tests and the `audit_writers` benchmark share: an active
//! tool and a running call.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Each test binary and the benchmark include this module and use only part of it.
#![allow(dead_code)]

use serde_json::json;
use slovo_core::lifecycle::ToolStatus;
use slovo_store::{NewExecution, Store, ToolRow};

/// Saves `echo` as an active tool and returns its revision.
pub async fn active_tool(store: &Store) -> i64 {
    active_tool_named(store, "echo").await
}

/// Saves `name` as an active tool (version 1.0.0) and returns its revision.
pub async fn active_tool_named(store: &Store, name: &str) -> i64 {
    let mut tx = store.begin().await.unwrap();
    tx.save_tool(
        &ToolRow {
            name: name.into(),
            status: ToolStatus::Active,
            active_version: Some("1.0.0".into()),
            pending_version: None,
            grant_id: None,
            revision: 1,
            created_at: 1,
            updated_at: 1,
        },
        None,
    )
    .await
    .unwrap();
    tx.append_audit("tool.approved", Some(name), "test", &json!({}))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    store.tool(name).await.unwrap().unwrap().revision
}

/// A call `id` of `echo`, started by `instance`, ready to be recorded as running.
pub fn new_execution(id: &str, instance: &str) -> NewExecution {
    NewExecution {
        id: id.into(),
        tool: "echo".into(),
        version: "1.0.0".into(),
        capability: "say".into(),
        arguments: json!({"text": id}),
        conversation_id: None,
        turn_id: None,
        actor: "test".into(),
        started_at: 10,
        instance_id: instance.into(),
        parent_execution_id: None,
    }
}

/// Records `id` as a running call of `echo`, started by `instance`.
pub async fn start(store: &Store, id: &str, revision: i64, instance: &str) {
    assert!(
        store
            .insert_running_execution_at(&new_execution(id, instance), revision)
            .await
            .unwrap()
    );
}
