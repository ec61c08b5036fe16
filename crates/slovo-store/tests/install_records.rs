//! A version's install record is stored as the JSON text its install writes and read back as
//! the same typed facts; a record of no known shape (edited by hand, written by something
//! else) is a typed error naming the tool and version, not a panic and not a guess. Against
//! SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use slovo_core::install::{DockerFacts, DockerPinned, InstallFacts};
use slovo_core::lifecycle::ToolStatus;
use slovo_store::{Store, StoreError, ToolRow, VersionRow};
use slovo_test_support::test_dbs;
use sqlx::{AnyConnection, Connection};

fn pinned() -> InstallFacts {
    InstallFacts::Docker(DockerFacts::Pinned(DockerPinned {
        image: "example/dict:1".into(),
        image_id: "sha256:ab".into(),
        repo_digests: vec![],
        entrypoint: None,
        user: "65534:65534".into(),
    }))
}

async fn tool_with_version(store: &Store, install_info: Option<InstallFacts>) {
    let mut tx = store.begin().await.unwrap();
    tx.save_tool(
        &ToolRow {
            name: "dict".into(),
            status: ToolStatus::PendingApproval,
            active_version: None,
            pending_version: Some("1.0.0".into()),
            grant_id: None,
            revision: 1,
            created_at: 1,
            updated_at: 1,
        },
        None,
    )
    .await
    .unwrap();
    tx.insert_version(&VersionRow {
        tool: "dict".into(),
        version: "1.0.0".into(),
        manifest: json!({"name": "dict"}),
        digest: "d".into(),
        source_name: "dict.yaml".into(),
        source_text: "name: dict".into(),
        bundle_digest: None,
        install_info,
        imported_at: 1,
        analysis: None,
    })
    .await
    .unwrap();
    tx.append_audit("tool.imported", Some("dict"), "test", &json!({}))
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// The stored text of the version's install record.
async fn stored_text(url: &str) -> Option<String> {
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(url).await.unwrap();
    let text: Option<String> = sqlx::query_scalar(
        "SELECT install_info FROM tool_versions WHERE tool = 'dict' AND version = '1.0.0'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    text
}

async fn overwrite(url: &str, text: &str) {
    let mut conn = AnyConnection::connect(url).await.unwrap();
    sqlx::query("UPDATE tool_versions SET install_info = $1 WHERE tool = 'dict' AND version = '1.0.0'")
        .bind(text)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

#[tokio::test]
async fn install_records_keep_their_text_and_an_unknown_one_is_a_typed_error() {
    for db in test_dbs().await {
        let label = db.label;
        let store = db.store().await;
        tool_with_version(&store, None).await;
        let mut tx = store.begin().await.unwrap();
        tx.set_install_info("dict", "1.0.0", &pinned()).await.unwrap();
        tx.commit().await.unwrap();

        // The text as the Docker backend wrote it with `json!`, field for field and in order.
        assert_eq!(
            stored_text(&db.url).await.as_deref(),
            Some(
                r#"{"image":"example/dict:1","image_id":"sha256:ab","repo_digests":[],"entrypoint":null,"user":"65534:65534"}"#
            ),
            "{label}"
        );
        let read = store.version("dict", "1.0.0").await.unwrap().unwrap();
        assert_eq!(read.install_info, Some(pinned()), "{label}");

        // A record that no install writes is refused with the reason, naming the version.
        overwrite(&db.url, r#"{"installed":"1.0.0"}"#).await;
        let err = store.version("dict", "1.0.0").await.unwrap_err();
        assert!(
            matches!(err, StoreError::InstallRecord { .. }),
            "{label}: {err:?}"
        );
        assert_eq!(
            err.to_string(),
            "the install record of dict 1.0.0 (tool_versions.install_info) cannot be read: the install record \
             has fields [installed], which no install writes (a process, wasm, docker, http or MCP install, a \
             chain, a tool without execution, or a missing backend)",
            "{label}"
        );
        // One field dropped from a real record: named.
        overwrite(
            &db.url,
            r#"{"image":"x","image_id":"sha256:ab","entrypoint":null,"user":"1:1"}"#,
        )
        .await;
        let err = store.version("dict", "1.0.0").await.unwrap_err().to_string();
        assert!(err.contains("missing field `repo_digests`"), "{label}: {err}");
        store.close().await;
    }
}
