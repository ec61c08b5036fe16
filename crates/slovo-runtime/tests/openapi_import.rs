//! A large OpenAPI document becomes one proposal per tag, each stored and reported, against
//! SQLite and PostgreSQL; importing the same document again changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use pretty_assertions::assert_eq;
use serde_json::{Map, json};
use slovo_core::lifecycle::ToolStatus;
use slovo_runtime::openapi::{IngestOptions, Source};
use slovo_runtime::{Actor, ImportOutcome, Runtime};
use slovo_sandbox::Backends;
use slovo_test_support::test_dbs;

/// 12 operations over two tags, with Spotify's `required: "true"` slip on one parameter.
fn shop() -> Source {
    let mut paths = Map::new();
    for tag in ["orders", "items"] {
        for i in 0..6 {
            paths.insert(
                format!("/{tag}/{i}"),
                json!({"get": {"operationId": format!("get_{tag}_{i}"), "tags": [tag],
                    "parameters": [{"name": "market", "in": "query", "required": "true",
                                    "schema": {"type": "string"}}]}}),
            );
        }
    }
    let doc = json!({"openapi": "3.0.3", "info": {"title": "Shop", "version": "1.2.0"},
        "servers": [{"url": "https://shop.example.com"}], "paths": paths});
    Source::from_bytes("shop.json", serde_json::to_vec(&doc).unwrap())
}

#[tokio::test]
async fn a_large_api_is_stored_as_one_pending_tool_per_tag() {
    for db in test_dbs().await {
        let label = db.label;
        let rt = Runtime::new(db.store().await, Backends::new(), db.dir.path());
        let actor = Actor("test".into());
        let options = IngestOptions {
            max_operations: 10,
            ..IngestOptions::default()
        };
        let out = rt.import_openapi(&shop(), &options, None, &actor).await.unwrap();
        let tools: Vec<(&str, ImportOutcome, ToolStatus)> = out
            .imports
            .iter()
            .map(|i| (i.tool.as_str(), i.outcome, i.status))
            .collect();
        assert_eq!(
            tools,
            [
                ("shop-orders", ImportOutcome::New, ToolStatus::PendingApproval),
                ("shop-items", ImportOutcome::New, ToolStatus::PendingApproval),
            ],
            "{label}"
        );
        assert_eq!(out.report.tools.len(), 2);
        assert_eq!(out.report.repairs.len(), 12, "{label}: {:?}", out.report.repairs);
        for name in ["shop-orders", "shop-items"] {
            let row = rt.store().tool(name).await.unwrap().unwrap();
            assert_eq!(row.status, ToolStatus::PendingApproval, "{label}");
            assert_eq!(row.pending_version.as_deref(), Some("1.2.0"));
        }

        // The same document again: every part is unchanged.
        let again = rt.import_openapi(&shop(), &options, None, &actor).await.unwrap();
        assert!(
            again
                .imports
                .iter()
                .all(|i| i.outcome == ImportOutcome::Unchanged),
            "{label}: {:?}",
            again.imports
        );
        // With the default limit the document is one tool.
        let whole = rt
            .import_openapi(&shop(), &IngestOptions::default(), None, &actor)
            .await
            .unwrap();
        assert_eq!(whole.imports.len(), 1);
        assert_eq!(whole.imports[0].tool, "shop");
    }
}
