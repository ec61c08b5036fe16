//! The provider path against a local server that speaks the chat-completions protocol.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};
use slovo_llm::{ChatAnalyzer, LlmConfig, LlmError};

/// One request as the server saw it: the Authorization header and the body.
type Seen = (Option<String>, Value);

#[derive(Clone)]
struct Script {
    answers: Arc<Mutex<Vec<String>>>,
    requests: Arc<Mutex<Vec<Seen>>>,
}

async fn completions(
    State(s): State<Script>,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> axum::Json<Value> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    s.requests.lock().unwrap().push((auth, body.0));
    let mut answers = s.answers.lock().unwrap();
    let content = if answers.len() > 1 {
        answers.remove(0)
    } else {
        answers[0].clone()
    };
    axum::Json(
        json!({"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}),
    )
}

async fn server(answers: Vec<&str>) -> (String, Script) {
    let s = Script {
        answers: Arc::new(Mutex::new(answers.into_iter().map(str::to_string).collect())),
        requests: Arc::default(),
    };
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(s.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://127.0.0.1:{port}/v1"), s)
}

fn manifest() -> slovo_core::Manifest {
    let text = r#"{"name": "weather", "version": "1.0.0", "description": "Weather",
      "capabilities": [
        {"name": "get_forecast", "description": "GET /forecast", "method": "GET", "endpoint": "/forecast",
         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
        {"name": "delete_station", "description": "DELETE /stations/{id}", "method": "DELETE", "endpoint": "/stations/{id}",
         "parameters": {"type": "object", "properties": {"id": {"type": "string"}}}}],
      "api_requirements": {"base_url": "https://weather.example.org"}}"#;
    slovo_core::parse_manifest("m.json", text.as_bytes()).unwrap()
}

const GOOD: &str = r#"{"capabilities": [
  {"name": "delete_station", "description": "Deletes a weather station for good.", "examples": ["remove station 12"], "risk_note": "Irreversible."},
  {"name": "get_forecast", "description": "Gets the forecast for a city.", "examples": ["weather in Lyon tomorrow", "will it rain in Paris"]}
]}"#;

#[tokio::test]
async fn invalid_answers_are_retried_and_a_valid_one_is_used() {
    let invented = r#"{"capabilities": [{"name": "launch_rocket", "description": "Launches a rocket now.", "examples": ["go"]}]}"#;
    let (url, script) = server(vec!["Sure! Here is the JSON you asked for.", invented, GOOD]).await;
    let analyzer = ChatAnalyzer::new(LlmConfig::new(url, "tiny-model", Some("llm-key-123".into()))).unwrap();
    let analysis = analyzer.analyze(&manifest()).await.unwrap();
    let names: Vec<_> = analysis.capabilities.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["get_forecast", "delete_station"], "in manifest order");
    assert_eq!(
        analysis.capabilities[0].examples,
        vec!["weather in Lyon tomorrow", "will it rain in Paris"]
    );
    assert_eq!(
        analysis.capabilities[1].risk_note.as_deref(),
        Some("Irreversible.")
    );
    let requests = script.requests.lock().unwrap();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].0.as_deref(), Some("Bearer llm-key-123"));
    assert_eq!(requests[0].1["model"], "tiny-model");
    assert_eq!(requests[0].1["response_format"]["type"], "json_object");
    assert!(
        requests[0].1["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("delete_station")
    );
}

#[tokio::test]
async fn answers_that_never_fit_are_discarded_with_reasons() {
    let missing_one = r#"{"capabilities": [{"name": "get_forecast", "description": "Gets the forecast for a city.", "examples": ["weather"]}]}"#;
    let too_short = r#"{"capabilities": [{"name": "get_forecast", "description": "x", "examples": []}]}"#;
    let (url, _) = server(vec![missing_one, too_short, "[]"]).await;
    let analyzer = ChatAnalyzer::new(LlmConfig::new(url, "m", None)).unwrap();
    match analyzer.analyze(&manifest()).await {
        Err(LlmError::Discarded(reasons)) => {
            assert_eq!(reasons.len(), 3, "{reasons:?}");
            assert!(
                reasons[0].contains("leaves out the capability delete_station"),
                "{reasons:?}"
            );
            assert!(reasons[1].contains("does not match the schema"), "{reasons:?}");
            assert!(reasons[2].contains("does not match the schema"), "{reasons:?}");
        }
        other => panic!("expected the answer to be discarded, got {other:?}"),
    }
    // An unreachable endpoint is a discarded analysis too, not a crash.
    let analyzer = ChatAnalyzer::new(LlmConfig {
        max_attempts: 1,
        ..LlmConfig::new("http://127.0.0.1:9/v1", "m", None)
    })
    .unwrap();
    assert!(matches!(
        analyzer.analyze(&manifest()).await,
        Err(LlmError::Discarded(_))
    ));
}
