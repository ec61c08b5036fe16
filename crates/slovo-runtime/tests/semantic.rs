//! Ranking by meaning in `resolve`, against SQLite and PostgreSQL: capability vectors are
//! cached in the store by (model, text hash), so a restarted runtime embeds only the request;
//! an embedder that fails leaves `resolve` lexical instead of failing it. The embedder is a
//! loopback server speaking the OpenAI `/v1/embeddings` protocol (bag-of-words vectors), so
//! these tests need no model files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};
use slovo_runtime::{Actor, Embedder, ImportSource, Runtime, RuntimeSettings};
use slovo_sandbox::Backends;
use slovo_test_support::test_dbs;

const TOOLS: [&str; 2] = [
    r#"
name: air-quality
version: "0.3.1"
description: Reads current air quality for a place.
capabilities:
  - name: current_air_quality
    description: Current air-quality index and main pollutant for a location
    parameters: {type: object, properties: {city: {type: string}}}
  - name: pollen_forecast
    description: Pollen forecast for the next days
    parameters: {type: object, properties: {days: {type: integer}}}
permissions: {internet_access: true}
api_requirements: {base_url: "https://air.example.net"}
"#,
    r#"
name: tables
version: "1.0.0"
description: Restaurant bookings.
capabilities:
  - name: reserve
    description: Restaurant reservations for a party at a given time
    parameters: {type: object, properties: {people: {type: integer}}}
permissions: {internet_access: true}
api_requirements: {base_url: "https://tables.example.net"}
"#,
];

/// Every text the server was asked to embed, and whether it should fail.
#[derive(Clone, Default)]
struct Server {
    inputs: Arc<Mutex<Vec<String>>>,
    failing: Arc<AtomicBool>,
}

/// A 64-dimensional bag of words; "book a table" is made to share a word with "restaurant",
/// so meaning-based ranking finds what words alone do not.
fn vector(text: &str) -> Vec<f32> {
    let mut v = vec![0.0f32; 64];
    for w in text
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let w = if w == "table" { "restaurant" } else { w };
        let h = w
            .bytes()
            .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        v[(h % 64) as usize] += 1.0;
    }
    v
}

async fn embeddings(State(s): State<Server>, body: axum::Json<Value>) -> (StatusCode, axum::Json<Value>) {
    if s.failing.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({})));
    }
    let inputs: Vec<String> = serde_json::from_value(body.0["input"].clone()).unwrap();
    s.inputs.lock().unwrap().extend(inputs.iter().cloned());
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"index": i, "embedding": vector(t)}))
        .collect();
    (StatusCode::OK, axum::Json(json!({"data": data})))
}

async fn server() -> (String, Server) {
    let s = Server::default();
    let app = Router::new()
        .route("/v1/embeddings", post(embeddings))
        .with_state(s.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://127.0.0.1:{port}/v1"), s)
}

fn settings(url: &str) -> RuntimeSettings {
    let client = slovo_llm::EmbeddingsClient::new(url, "bow", None, Duration::from_secs(5)).unwrap();
    RuntimeSettings {
        embedder: Some(Arc::new(Embedder::remote(client))),
        ..RuntimeSettings::default()
    }
}

#[tokio::test]
async fn vectors_are_cached_in_the_store_and_a_restart_embeds_only_the_request() {
    for db in test_dbs().await {
        let label = db.label;
        let (url, server) = server().await;
        let actor = Actor("test".into());
        let rt = Runtime::new(db.store().await, Backends::new(), db.dir.path()).with_settings(settings(&url));
        for (i, manifest) in TOOLS.iter().enumerate() {
            rt.import(
                ImportSource::Manifest {
                    name: format!("t{i}.yaml"),
                    bytes: manifest.as_bytes().to_vec(),
                },
                &actor,
            )
            .await
            .unwrap();
        }
        let r = rt.resolve("book a table for two", 5, &actor).await.unwrap();
        let top = &r.resolution.candidates[0];
        assert_eq!(top.capability, "reserve", "{label}: {r:?}");
        assert!(
            top.similarity.is_some_and(|s| s > 0.0),
            "{label}: ranked by meaning: {top:?}"
        );
        // Three capabilities and the request.
        assert_eq!(server.inputs.lock().unwrap().len(), 4, "{label}");
        rt.shutdown().await;

        // A new runtime over the same database: the capabilities' vectors come from the store.
        server.inputs.lock().unwrap().clear();
        let rt = Runtime::new(db.store().await, Backends::new(), db.dir.path()).with_settings(settings(&url));
        let r = rt.resolve("air quality in Lyon", 5, &actor).await.unwrap();
        assert_eq!(
            r.resolution.candidates[0].capability, "current_air_quality",
            "{label}"
        );
        assert_eq!(
            *server.inputs.lock().unwrap(),
            vec!["air quality in Lyon".to_string()],
            "{label}: only the request is embedded after a restart"
        );

        // The embedder fails: resolve still answers, lexically.
        server.failing.store(true, Ordering::SeqCst);
        let r = rt.resolve("air quality in Lyon", 5, &actor).await.unwrap();
        let top = &r.resolution.candidates[0];
        assert_eq!(top.capability, "current_air_quality", "{label}");
        assert!(
            top.similarity.is_none(),
            "{label}: lexical when the embedder fails: {top:?}"
        );
        rt.shutdown().await;
    }
}

/// The discovery worker ranks its catalogue by meaning when an embedder is configured: "a table
/// for two tonight" shares no word with the restaurant tool, so the lexical worker fails
/// the request and the worker with vectors proposes the restaurant tool. The catalogue's
/// vectors are cached in the store like those of installed tools.
#[tokio::test]
async fn the_discovery_worker_ranks_by_meaning_when_a_model_is_configured() {
    for db in test_dbs().await {
        let label = db.label;
        let sources_dir = tempfile::tempdir().unwrap();
        std::fs::write(sources_dir.path().join("tables.yaml"), TOOLS[1]).unwrap();
        std::fs::write(sources_dir.path().join("air.yaml"), TOOLS[0]).unwrap();
        let sources = slovo_runtime::SourceConfig {
            manifest_dirs: vec![sources_dir.path().to_path_buf()],
            ..slovo_runtime::SourceConfig::default()
        };
        let actor = Actor("test".into());

        // Without a model: words only, and no word is shared.
        let lexical = Runtime::new(db.store().await, Backends::new(), db.dir.path());
        let (request, _) = lexical
            .request_discovery("a table for two tonight", &actor)
            .await
            .unwrap();
        let run = lexical.run_discovery_once(&sources, &actor).await.unwrap();
        assert_eq!(run.processed.len(), 1, "{label}");
        assert_eq!(
            run.processed[0].status,
            slovo_store::DiscoveryStatus::Failed,
            "{label}: {:?}",
            run.processed[0]
        );
        lexical.reject_request(&request.id, &actor).await.unwrap();
        lexical.shutdown().await;

        let (url, server) = server().await;
        let rt = Runtime::new(db.store().await, Backends::new(), db.dir.path()).with_settings(settings(&url));
        rt.request_discovery("a table for two tonight", &actor)
            .await
            .unwrap();
        let run = rt.run_discovery_once(&sources, &actor).await.unwrap();
        let row = &run.processed[0];
        assert_eq!(
            row.status,
            slovo_store::DiscoveryStatus::Found,
            "{label}: {row:?}"
        );
        assert_eq!(row.proposal_tool.as_deref(), Some("tables"), "{label}");
        let chosen = &row.result.as_ref().unwrap()["chosen"];
        assert_eq!(chosen["capability"], "reserve", "{label}");
        assert!(
            chosen["similarity"].as_f64().is_some_and(|s| s > 0.3),
            "{label}: {chosen}"
        );
        // Three catalogue capabilities and the request.
        assert_eq!(server.inputs.lock().unwrap().len(), 4, "{label}");
        rt.shutdown().await;
    }
}
