//! The gap judge against a local server that speaks the chat-completions protocol (loopback
//! only): schema-checked verdicts, retries, the deadline, and what it records.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};
use slovo_llm::{GapJudge, JudgeCandidate, LlmConfig, LlmError};

#[derive(Clone)]
struct Script {
    answers: Arc<Mutex<Vec<String>>>,
    delay: Duration,
    requests: Arc<Mutex<Vec<Value>>>,
}

async fn completions(State(s): State<Script>, body: axum::Json<Value>) -> axum::Json<Value> {
    s.requests.lock().unwrap().push(body.0);
    tokio::time::sleep(s.delay).await;
    let content = {
        let mut answers = s.answers.lock().unwrap();
        if answers.len() > 1 {
            answers.remove(0)
        } else {
            answers[0].clone()
        }
    };
    axum::Json(json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}))
}

async fn server(answers: Vec<&str>, delay: Duration) -> (String, Script) {
    let s = Script {
        answers: Arc::new(Mutex::new(answers.into_iter().map(str::to_string).collect())),
        delay,
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

fn candidates() -> Vec<JudgeCandidate> {
    vec![
        JudgeCandidate {
            name: "Restaurants_2.ReserveRestaurant".into(),
            description: "Make a table reservation at a restaurant".into(),
        },
        JudgeCandidate {
            name: "Restaurants_2.FindRestaurants".into(),
            description: "Find restaurants by location and cuisine".into(),
        },
    ]
}

fn judge(url: String, deadline: Duration) -> GapJudge {
    GapJudge::new(LlmConfig::new(url, "judge-model", None), deadline).unwrap()
}

#[tokio::test]
async fn a_verdict_naming_a_shown_candidate_is_taken_and_recorded() {
    let served =
        r#"{"served": true, "capability": "Restaurants_2.ReserveRestaurant", "reason": "It books tables."}"#;
    let (url, script) = server(vec![served], Duration::ZERO).await;
    let j = judge(url, Duration::from_secs(10))
        .judge("a table for two at Nopa tonight", &candidates())
        .await
        .unwrap();
    assert!(j.served);
    assert_eq!(j.capability.as_deref(), Some("Restaurants_2.ReserveRestaurant"));
    assert_eq!(
        (j.model.as_str(), j.attempts, j.reason.as_str()),
        ("judge-model", 1, "It books tables.")
    );
    // The model saw the request and the candidates, and was asked for JSON.
    let seen = script.requests.lock().unwrap()[0].clone();
    assert_eq!(seen["response_format"]["type"], "json_object");
    let user: Value = serde_json::from_str(seen["messages"][1]["content"].as_str().unwrap()).unwrap();
    assert_eq!(user["request"], "a table for two at Nopa tonight");
    assert_eq!(user["candidates"][1]["name"], "Restaurants_2.FindRestaurants");
}

#[tokio::test]
async fn invented_or_malformed_verdicts_are_retried_then_a_gap_verdict_is_taken() {
    let invented = r#"{"served": true, "capability": "Flights.Book", "reason": "close enough"}"#;
    let unnamed = r#"{"served": true, "capability": null, "reason": "something fits"}"#;
    let extra = r#"{"served": false, "capability": null, "reason": "x", "confidence": 0.9}"#;
    let gap = r#"{"served": false, "capability": "Restaurants_2.FindRestaurants", "reason": "Nothing here orders food."}"#;
    let (url, script) = server(vec!["Sure!", invented, unnamed, extra, gap], Duration::ZERO).await;
    let mut config = LlmConfig::new(url, "judge-model", None);
    config.max_attempts = 5;
    let j = GapJudge::new(config, Duration::from_secs(10))
        .unwrap()
        .judge("order a pizza", &candidates())
        .await
        .unwrap();
    assert_eq!(j.attempts, 5);
    assert!(!j.served);
    assert_eq!(j.capability, None, "a gap verdict names no capability");
    assert_eq!(script.requests.lock().unwrap().len(), 5);
}

#[tokio::test]
async fn every_failure_is_reported_with_its_reason() {
    let invented = r#"{"served": true, "capability": "Flights.Book", "reason": "close enough"}"#;
    let (url, _) = server(vec!["not json", invented, r#"{"served": "yes"}"#], Duration::ZERO).await;
    let err = judge(url, Duration::from_secs(10))
        .judge("order a pizza", &candidates())
        .await
        .unwrap_err();
    let LlmError::Discarded(reasons) = err else {
        panic!("{err}")
    };
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].contains("not JSON"), "{reasons:?}");
    assert!(reasons[1].contains("not shown: Flights.Book"), "{reasons:?}");
    assert!(reasons[2].contains("schema"), "{reasons:?}");
}

#[tokio::test]
async fn a_slow_judge_is_cut_off_at_the_deadline() {
    let served = r#"{"served": true, "capability": "Restaurants_2.ReserveRestaurant", "reason": "ok"}"#;
    let (url, _) = server(vec![served], Duration::from_secs(5)).await;
    let started = std::time::Instant::now();
    let err = judge(url, Duration::from_millis(300))
        .judge("a table for two", &candidates())
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert!(err.to_string().contains("no answer within 300 ms"), "{err}");
}
