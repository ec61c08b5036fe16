//! Reading the audit trail over REST when several instances share PostgreSQL, each writing its
//! calls' results to a chain of its own: `GET /v1/audit` lists and pages every chain, and
//! `/health` counts every chain's events (`docs/audit.md`, "Reading every chain").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde_json::{Value, json};
use slovo_core::access::Role;
use slovo_core::execution::{ExecutionStatus, Outcome, SandboxSpec};
use slovo_core::install::{DockerDeferred, DockerFacts, InstallFacts};
use slovo_core::permissions::Narrowing;
use slovo_runtime::{Actor, CallRequest, ImportSource, Runtime};
use slovo_sandbox::{Backend, BackendError, Backends, InstallRequest};
use slovo_server::{AppState, ServerConfig};
use slovo_store::Store;
use slovo_test_support::{fresh_postgres_url, test_dbs};

/// Echoes its arguments; nothing runs.
struct Echo;

#[async_trait]
impl Backend for Echo {
    fn kind(&self) -> &'static str {
        "docker"
    }
    async fn install(&self, _: &InstallRequest) -> Result<InstallFacts, BackendError> {
        Ok(InstallFacts::Docker(DockerFacts::Deferred(DockerDeferred {
            image: "test".into(),
            entrypoint: None,
            reason: "a test backend pins no image".into(),
        })))
    }
    async fn run(&self, spec: &SandboxSpec) -> Outcome {
        Outcome {
            status: ExecutionStatus::Success,
            output: Some(spec.request["arguments"].clone()),
            exit_code: Some(0),
            ..Outcome::default()
        }
    }
}

const MANIFEST: &str = r#"{
  "name": "echo", "version": "1.0.0", "description": "Echoes",
  "capabilities": [{"name": "say", "description": "Say",
    "parameters": {"type": "object", "properties": {"text": {"type": "string"}},
                   "additionalProperties": false}}],
  "execution": {"type": "docker", "image": "echo:1"}
}"#;

async fn runtime(url: &str, data: std::path::PathBuf) -> Runtime {
    Runtime::new(
        Store::connect(url).await.unwrap(),
        Backends::new().with(Arc::new(Echo)),
        data,
    )
}

/// Serves `rt` on a loopback port; the base URL and a reader token.
async fn serve(rt: Arc<Runtime>) -> (String, String) {
    let reader = rt
        .create_token(Role::Reader, None, &Actor::cli())
        .await
        .unwrap()
        .token;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState::new(rt, ServerConfig::default());
    tokio::spawn(slovo_server::serve(listener, state, std::future::pending()));
    (base, reader)
}

async fn get(base: &str, token: &str, path: &str) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

async fn call(rt: &Runtime, text: &str) {
    rt.call(CallRequest {
        tool: "echo".into(),
        capability: "say".into(),
        arguments: json!({"text": text}),
        conversation_id: None,
        turn_id: None,
        actor: Actor("test".into()),
    })
    .await
    .unwrap();
}

/// Every page of `GET /v1/audit?{filter}`, `limit` at a time, following `next_cursor`.
async fn all_pages(base: &str, token: &str, filter: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/audit?limit={limit}&{filter}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&before={c}"));
        }
        let (status, body) = get(base, token, &path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let events = body["events"].as_array().unwrap();
        assert!(events.len() <= limit);
        out.extend(events.iter().cloned());
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

#[tokio::test]
async fn two_instances_chains_are_listed_paged_and_counted_together() {
    slovo_sandbox::http::ensure_tls_provider();
    let Some(url) = fresh_postgres_url().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let serving = Arc::new(runtime(&url, dir.path().join("a")).await);
    serving.register_instance().await.unwrap();
    let other = runtime(&url, dir.path().join("b")).await;
    other.register_instance().await.unwrap();
    let (mine, theirs) = (serving.store().call_chain(), other.store().call_chain());
    assert_ne!(mine, theirs);
    serving
        .import(
            ImportSource::Manifest {
                name: "echo.json".into(),
                bytes: MANIFEST.as_bytes().to_vec(),
            },
            &Actor::cli(),
        )
        .await
        .unwrap();
    serving
        .approve("echo", &Narrowing::default(), &Actor::cli())
        .await
        .unwrap();
    for k in 0..3 {
        call(&serving, &format!("here {k}")).await;
        call(&other, &format!("there {k}")).await;
    }
    let (base, reader) = serve(serving.clone()).await;

    // The results of both instances' calls, each naming its chain, paged two at a time.
    let results = all_pages(&base, &reader, "kind=execution.finished", 2).await;
    let chains: Vec<i64> = results.iter().map(|e| e["chain"].as_i64().unwrap()).collect();
    assert_eq!(chains.len(), 6, "{results:?}");
    assert_eq!(chains.iter().filter(|c| **c == mine).count(), 3);
    assert_eq!(chains.iter().filter(|c| **c == theirs).count(), 3);
    let keys = |events: &[Value]| -> Vec<(i64, i64, i64)> {
        events
            .iter()
            .map(|e| {
                (
                    e["at_ms"].as_i64().unwrap(),
                    e["chain"].as_i64().unwrap(),
                    e["seq"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    let k = keys(&results);
    assert!(
        k.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats: {k:?}"
    );

    // Everything, three at a time, is every chain's events once: /health counts as many. The
    // server's checkpoint timer may anchor the chains meanwhile (an event on chain 1), so
    // the count is compared with a total that did not move while it was read.
    let (everything, health) = loop {
        let before = serving.audit_event_total().await.unwrap();
        let everything = all_pages(&base, &reader, "", 3).await;
        let (_, health) = get(&base, &reader, "/health").await;
        if serving.audit_event_total().await.unwrap() == before {
            assert_eq!(everything.len() as i64, before);
            break (everything, health);
        }
    };
    assert_eq!(health["audit_events"], json!(everything.len()));
    let distinct: BTreeSet<_> = keys(&everything).into_iter().collect();
    assert_eq!(distinct.len(), everything.len());
    let chain1 = serving.store().audit_head().await.unwrap().0;
    assert!(everything.len() as i64 > chain1, "more than chain 1's events");

    // A tool and chain filter, and a cursor that is not one.
    let theirs_only = all_pages(&base, &reader, &format!("tool=echo&chain={theirs}"), 50).await;
    assert_eq!(theirs_only.len(), 3);
    assert!(
        theirs_only
            .iter()
            .all(|e| e["chain"] == json!(theirs) && e["tool"] == "echo")
    );
    let (status, body) = get(&base, &reader, "/v1/audit?before=12.x.3").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_query");
    let (status, _) = get(&base, &reader, "/v1/audit?limit=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn on_sqlite_every_event_is_chain_1s() {
    let db = test_dbs().await.into_iter().next().unwrap();
    assert_eq!(db.label, "sqlite");
    let rt = Arc::new(runtime(&db.url, db.dir.path().join("data")).await);
    rt.register_instance().await.unwrap();
    let (base, reader) = serve(rt.clone()).await;
    let events = all_pages(&base, &reader, "", 2).await;
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| e["chain"] == json!(1)));
    let (_, health) = get(&base, &reader, "/health").await;
    assert_eq!(
        health["audit_events"],
        json!(rt.store().audit_head().await.unwrap().0)
    );
    assert_eq!(health["audit_events"], json!(events.len()));
}
