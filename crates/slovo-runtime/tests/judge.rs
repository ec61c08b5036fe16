//! The LLM judge in `resolve`: a borderline gap decision of the gap model goes to a loopback
//! server speaking the chat-completions protocol, whose verdict is taken, recorded in the
//! answer and bounded in time; a slow or malformed judge leaves the offline decision; a clear
//! decision, or a runtime without a judge, never asks. The embedder is a loopback `/embeddings`
//! server whose vectors set the request's similarity to the restaurant capability exactly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};
use slovo_discovery::{GapEvidence, GapModel};
use slovo_runtime::{Actor, DecidedBy, Embedder, ImportSource, JudgeSettings, Runtime, RuntimeSettings};
use slovo_sandbox::Backends;
use slovo_test_support::test_dbs;

const TOOL: &str = r#"
name: tables
version: "1.0.0"
description: Restaurant bookings.
capabilities:
  - name: reserve
    description: Restaurant reservations for a party at a given time
    parameters: {type: object, properties: {people: {type: integer}}}
  - name: menus
    description: Menus of a restaurant
    parameters: {type: object, properties: {restaurant: {type: string}}}
permissions: {internet_access: true}
api_requirements: {base_url: "https://tables.example.net"}
"#;

/// Shares no content word with the tool, so the gap model sees its similarity alone.
const REQUEST: &str = "somewhere nice for dinner tonight";
/// Words the restaurant capability holds, four of them (the committed gap model doubts requests
/// of three content words or fewer): a clear decision.
const CLEAR_REQUEST: &str = "restaurant reservations for a party at a given time";

const DIM: usize = 8;

fn unit(i: usize) -> Vec<f32> {
    let mut v = vec![0.0; DIM];
    v[i] = 1.0;
    v
}

/// Vectors by text: the reservation capability is axis 0, the menus axis 1, requests what the
/// test sets.
#[derive(Clone, Default)]
struct Embeddings {
    requests: Arc<Mutex<HashMap<String, Vec<f32>>>>,
}

async fn embeddings(State(s): State<Embeddings>, body: axum::Json<Value>) -> axum::Json<Value> {
    let inputs: Vec<String> = serde_json::from_value(body.0["input"].clone()).unwrap();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let v = if t.starts_with("reserve") {
                unit(0)
            } else if t.starts_with("menus") {
                unit(1)
            } else {
                s.requests
                    .lock()
                    .unwrap()
                    .get(t)
                    .cloned()
                    .unwrap_or_else(|| unit(7))
            };
            json!({"index": i, "embedding": v})
        })
        .collect();
    axum::Json(json!({"data": data}))
}

/// A chat-completions server with one scripted answer, a delay, and what it was asked.
#[derive(Clone)]
struct Judge {
    answer: Arc<Mutex<String>>,
    delay: Arc<Mutex<Duration>>,
    asked: Arc<Mutex<Vec<Value>>>,
}

async fn completions(State(j): State<Judge>, body: axum::Json<Value>) -> axum::Json<Value> {
    j.asked.lock().unwrap().push(body.0);
    let delay = *j.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let content = j.answer.lock().unwrap().clone();
    axum::Json(json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}))
}

async fn servers() -> (String, Embeddings, Judge) {
    let e = Embeddings::default();
    let j = Judge {
        answer: Arc::default(),
        delay: Arc::default(),
        asked: Arc::default(),
    };
    let app = Router::new()
        .route("/v1/embeddings", post(embeddings))
        .with_state(e.clone())
        .merge(
            Router::new()
                .route("/v1/chat/completions", post(completions))
                .with_state(j.clone()),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://127.0.0.1:{port}/v1"), e, j)
}

fn settings(url: &str, judge: Option<Duration>) -> RuntimeSettings {
    let client = slovo_llm::EmbeddingsClient::new(url, "axes", None, Duration::from_secs(5)).unwrap();
    RuntimeSettings {
        embedder: Some(Arc::new(Embedder::remote(client))),
        gap_judge: judge.map(|deadline| JudgeSettings {
            base_url: url.to_string(),
            model: "judge-model".into(),
            deadline,
        }),
        ..RuntimeSettings::default()
    }
}

/// The similarity at which the committed gap model is least sure about [`REQUEST`] against the
/// reservation capability (no shared word; one parameter, none required).
fn borderline_similarity(served: bool) -> f32 {
    let words = slovo_discovery::text::query_terms(REQUEST).len();
    let chance = |similarity: f32| {
        GapModel::default().p_served(&GapEvidence {
            similarity,
            normalized: 0.0,
            coverage: 0.0,
            query_words: words,
            required_parameters: 0,
            parameters: 1,
        })
    };
    // The lowest similarity whose chance crosses one half, then a step to the wanted side.
    let crossing = (0..1000)
        .map(|i| i as f32 / 1000.0)
        .find(|&s| chance(s) >= 0.5)
        .expect("the gap model accepts some similarity");
    if served { crossing + 0.01 } else { crossing - 0.01 }
}

/// A request vector at `similarity` to the reservation capability (axis 0) and none to the menus.
fn at_similarity(similarity: f32) -> Vec<f32> {
    let mut v = unit(0);
    v[0] = similarity;
    v[6] = (1.0 - similarity * similarity).sqrt();
    v
}

async fn runtime(db: &slovo_test_support::TestDb, url: &str, judge: Option<Duration>) -> Runtime {
    let rt =
        Runtime::new(db.store().await, Backends::new(), db.dir.path()).with_settings(settings(url, judge));
    rt.import(
        ImportSource::Manifest {
            name: "tables.yaml".into(),
            bytes: TOOL.as_bytes().to_vec(),
        },
        &Actor("test".into()),
    )
    .await
    .unwrap();
    rt
}

#[tokio::test]
async fn a_borderline_decision_goes_to_the_judge_and_its_verdict_is_taken_and_recorded() {
    for db in test_dbs().await {
        let (url, embed, judge) = servers().await;
        let actor = Actor("test".into());
        embed
            .requests
            .lock()
            .unwrap()
            .insert(REQUEST.into(), at_similarity(borderline_similarity(false)));
        embed
            .requests
            .lock()
            .unwrap()
            .insert(CLEAR_REQUEST.into(), at_similarity(0.6));

        // Without a judge: the gap model's decision, a gap just below one half.
        let offline = runtime(&db, &url, None).await;
        let r = offline.resolve(REQUEST, 5, &actor).await.unwrap();
        assert!(r.resolution.gap, "{r:?}");
        let chance = r.decision.served_chance.unwrap();
        assert!((0.3..0.5).contains(&chance), "borderline: {chance}");
        assert_eq!(r.decision.by, DecidedBy::Model);
        assert!(r.decision.judgement.is_none() && r.decision.judge_error.is_none());
        assert!(
            judge.asked.lock().unwrap().is_empty(),
            "no judge configured, none asked"
        );
        offline.shutdown().await;

        // With a judge that says the reservation capability serves it: answered, not a gap.
        *judge.answer.lock().unwrap() =
            r#"{"served": true, "capability": "tables.reserve", "reason": "Dinner means a table."}"#.into();
        let rt = runtime(&db, &url, Some(Duration::from_secs(10))).await;
        let r = rt.resolve(REQUEST, 5, &actor).await.unwrap();
        assert!(!r.resolution.gap, "{r:?}");
        assert!(r.discovery.is_none());
        assert_eq!(r.resolution.candidates[0].capability, "reserve");
        assert!(r.resolution.candidates[0].confident);
        assert_eq!(r.decision.by, DecidedBy::Judge);
        assert!(
            r.decision.offline_gap,
            "the offline decision is kept beside the verdict"
        );
        let verdict = r.decision.judgement.as_ref().unwrap();
        assert_eq!(
            (verdict.model.as_str(), verdict.reason.as_str()),
            ("judge-model", "Dinner means a table.")
        );
        // The judge saw the request and the candidates by their full names.
        let asked = judge.asked.lock().unwrap()[0].clone();
        let shown: Value = serde_json::from_str(asked["messages"][1]["content"].as_str().unwrap()).unwrap();
        assert_eq!(shown["request"], REQUEST);
        let names: Vec<&str> = shown["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["tables.reserve", "tables.menus"]);
        // The answer shows how it was decided.
        let answer = serde_json::to_value(&r).unwrap();
        assert_eq!(answer["decision"]["by"], "judge");
        assert_eq!(answer["decision"]["judgement"]["capability"], "tables.reserve");

        // A clear decision is never sent to the judge.
        judge.asked.lock().unwrap().clear();
        let r = rt.resolve(CLEAR_REQUEST, 5, &actor).await.unwrap();
        let chance = r.decision.served_chance.unwrap();
        assert!(!slovo_runtime::is_borderline(chance), "clear: {chance}");
        assert_eq!(r.decision.by, DecidedBy::Model, "{r:?}");
        assert!(judge.asked.lock().unwrap().is_empty(), "{r:?}");
        rt.shutdown().await;
    }
}

#[tokio::test]
async fn a_judge_that_finds_no_candidate_serving_makes_a_gap_and_opens_a_request() {
    for db in test_dbs().await {
        let (url, embed, judge) = servers().await;
        let actor = Actor("test".into());
        embed
            .requests
            .lock()
            .unwrap()
            .insert(REQUEST.into(), at_similarity(borderline_similarity(true)));
        *judge.answer.lock().unwrap() =
            r#"{"served": false, "capability": null, "reason": "Booking is not finding a place."}"#.into();
        let rt = runtime(&db, &url, Some(Duration::from_secs(10))).await;
        let r = rt.resolve(REQUEST, 5, &actor).await.unwrap();
        assert!(!r.decision.offline_gap, "the gap model accepts it: {r:?}");
        assert!(r.resolution.gap);
        assert!(r.resolution.candidates.iter().all(|c| !c.confident));
        assert!(
            r.resolution
                .gap_reason
                .as_deref()
                .unwrap()
                .contains("Booking is not finding a place."),
            "{r:?}"
        );
        assert!(r.discovery.as_ref().is_some_and(|d| d.created), "{r:?}");
        assert_eq!(r.decision.by, DecidedBy::Judge);
        rt.shutdown().await;
    }
}

#[tokio::test]
async fn a_slow_or_malformed_judge_leaves_the_offline_decision() {
    for db in test_dbs().await {
        let (url, embed, judge) = servers().await;
        let actor = Actor("test".into());
        embed
            .requests
            .lock()
            .unwrap()
            .insert(REQUEST.into(), at_similarity(borderline_similarity(true)));

        // Malformed: not the schema (every attempt), so the gap model's "served" stands.
        *judge.answer.lock().unwrap() = r#"{"served": "yes"}"#.into();
        let rt = runtime(&db, &url, Some(Duration::from_secs(10))).await;
        let r = rt.resolve(REQUEST, 5, &actor).await.unwrap();
        assert!(!r.resolution.gap, "{r:?}");
        assert_eq!(r.decision.by, DecidedBy::Model);
        assert!(r.decision.judgement.is_none());
        let why = r.decision.judge_error.clone().unwrap();
        assert!(why.contains("does not match the schema"), "{why}");
        assert_eq!(judge.asked.lock().unwrap().len(), 3, "retried up to the attempts");
        rt.shutdown().await;

        // Slow: a verdict that would overturn it comes after the deadline and is not waited for.
        *judge.answer.lock().unwrap() = r#"{"served": false, "capability": null, "reason": "late"}"#.into();
        *judge.delay.lock().unwrap() = Duration::from_secs(5);
        let rt = runtime(&db, &url, Some(Duration::from_millis(300))).await;
        let started = Instant::now();
        let r = rt.resolve(REQUEST, 5, &actor).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert!(!r.resolution.gap, "{r:?}");
        assert!(r.discovery.is_none());
        assert_eq!(r.decision.by, DecidedBy::Model);
        let why = r.decision.judge_error.clone().unwrap();
        assert!(why.contains("no answer within 300 ms"), "{why}");
        rt.shutdown().await;
    }
}
