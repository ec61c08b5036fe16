//! The embeddings client against a loopback server that speaks the `/v1/embeddings` protocol.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use slovo_llm::{EmbeddingsClient, EmbeddingsError};

/// One request as the server saw it: the Authorization header and the body.
type Request = (Option<String>, Value);

#[derive(Clone, Default)]
struct Seen {
    requests: Arc<Mutex<Vec<Request>>>,
}

/// Answers each input with [its length, its index], in reverse order (the protocol numbers the
/// items, so order on the wire must not matter); an input "fail" makes it answer 500 and
/// "short" makes it leave one vector out.
async fn embeddings(
    State(s): State<Seen>,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> (StatusCode, axum::Json<Value>) {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    s.requests.lock().unwrap().push((auth, body.0.clone()));
    let inputs: Vec<String> = serde_json::from_value(body.0["input"].clone()).unwrap();
    if inputs.iter().any(|i| i == "fail") {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error": "boom"})),
        );
    }
    let mut data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": [t.len() as f32, i as f32]}))
        .collect();
    if inputs.iter().any(|i| i == "short") {
        data.pop();
    }
    data.reverse();
    (
        StatusCode::OK,
        axum::Json(json!({"object": "list", "data": data, "model": body.0["model"]})),
    )
}

async fn server() -> (String, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .route("/v1/embeddings", post(embeddings))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://127.0.0.1:{port}/v1"), seen)
}

#[tokio::test]
async fn vectors_come_back_in_the_order_of_the_texts_in_batches() {
    let (url, seen) = server().await;
    let client = EmbeddingsClient::new(&url, "mini", Some("k3y".into()), Duration::from_secs(5)).unwrap();
    let texts: Vec<String> = (0..70).map(|i| "x".repeat(i + 1)).collect();
    let vectors = client.embed(&texts).await.unwrap();
    assert_eq!(vectors.len(), 70);
    for (i, v) in vectors.iter().enumerate() {
        assert_eq!(v[0], (i + 1) as f32, "vector {i} is not its text's");
    }
    let requests = seen.requests.lock().unwrap();
    assert_eq!(requests.len(), 2, "70 texts go in two batches");
    assert_eq!(requests[0].0.as_deref(), Some("Bearer k3y"));
    assert_eq!(requests[0].1["model"], "mini");
    assert!(client.model_id().starts_with("mini@http://127.0.0.1:"));
}

#[tokio::test]
async fn errors_and_missing_vectors_are_reported_not_guessed() {
    let (url, _) = server().await;
    let client = EmbeddingsClient::new(&url, "mini", None, Duration::from_secs(5)).unwrap();
    let err = client.embed(&["a".into(), "fail".into()]).await.unwrap_err();
    assert!(matches!(err, EmbeddingsError::Request { .. }), "{err}");
    assert!(err.to_string().contains("500"), "{err}");
    let err = client.embed(&["a".into(), "short".into()]).await.unwrap_err();
    assert!(matches!(err, EmbeddingsError::Malformed { .. }), "{err}");
    // Nothing listens on this port (bound, then dropped).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = EmbeddingsClient::new(
        &format!("http://127.0.0.1:{port}/v1"),
        "mini",
        None,
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(matches!(
        client.embed(&["a".into()]).await.unwrap_err(),
        EmbeddingsError::Request { .. }
    ));
}
