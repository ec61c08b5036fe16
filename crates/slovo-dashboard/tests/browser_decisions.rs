//! The dashboard in a real headless Chromium: where a proposal came from, the secrets an
//! upgrade newly needs, an analysis's notes (inert), a refused approval that keeps the person's
//! entries, and the Activity page's time range (in the browser's zone) and paging.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use fantoccini::Locator;
use fantoccini::actions::InputSource;
use serde_json::{Value, json};
use slovo_core::lifecycle::ToolStatus;
use slovo_core::permissions::Narrowing;
use slovo_runtime::openapi::{IngestOptions, Source};
use slovo_runtime::{Actor, CallRequest};
use support::{Browser, ONE_BROWSER, Server, browser_available, manifest};

const WAIT: Duration = Duration::from_secs(10);

/// An OpenAPI document with a read and a write, the write behind a bearer scheme.
const OPENAPI: &str = r#"{
  "openapi": "3.0.3",
  "info": {"title": "Parcels", "version": "1.0.0"},
  "servers": [{"url": "https://parcels.example.org"}],
  "components": {"securitySchemes": {"parcel_auth": {"type": "http", "scheme": "bearer"}}},
  "paths": {
    "/parcels/{id}": {"get": {"operationId": "getParcel", "summary": "Where a parcel is",
        "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "ok"}}}},
    "/parcels": {"post": {"operationId": "sendParcel", "summary": "Send a parcel",
        "security": [{"parcel_auth": []}],
        "requestBody": {"content": {"application/json": {"schema": {"type": "object",
            "properties": {"to": {"type": "string"}}}}}},
        "responses": {"200": {"description": "ok"}}}}
  }
}"#;

/// A chat-completions endpoint on loopback that answers every request with `answer`.
async fn fake_llm(answer: String) -> (String, Arc<Mutex<usize>>) {
    let asked = Arc::new(Mutex::new(0usize));
    let app = Router::new()
        .route(
            "/v1/chat/completions",
            post(
                |State((answer, asked)): State<(String, Arc<Mutex<usize>>)>, _body: Bytes| async move {
                    *asked.lock().unwrap() += 1;
                    let body = json!({"id": "x", "object": "chat.completion",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}]});
                    ([("content-type", "application/json")], body.to_string())
                },
            ),
        )
        .with_state((answer, asked.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://127.0.0.1:{port}/v1"), asked)
}

/// An HTTP tool `name` at `version`; with `auth`, calls carry a bearer token.
fn http_manifest(name: &str, version: &str, auth: bool) -> String {
    let mut api = json!({"base_url": "https://api.example.org"});
    if auth {
        api["auth_type"] = json!("bearer");
    }
    json!({
        "name": name, "version": version, "description": "Reads the news",
        "capabilities": [{"name": "headlines", "description": "Today's headlines",
            "endpoint": "/headlines", "method": "GET",
            "parameters": {"type": "object", "properties": {}}}],
        "permissions": {"network_allow": ["api.example.org"]},
        "execution": {"type": "http"},
        "api_requirements": api
    })
    .to_string()
}

#[tokio::test]
async fn a_proposal_says_where_it_came_from_what_secrets_it_newly_needs_and_what_the_analysis_noted() {
    if !browser_available() {
        return;
    }
    let _one = ONE_BROWSER.lock().await;
    let server = Server::start().await;

    // An OpenAPI document from a URL, analysed by an LLM whose note carries markup.
    let ingested = slovo_runtime::openapi::ingest(
        &Source::from_bytes("https://parcels.example.org/openapi.json", OPENAPI),
        &IngestOptions::default(),
    )
    .unwrap();
    let capabilities: Vec<Value> = ingested.manifests[0]
        .capabilities
        .iter()
        .map(|c| {
            let note = (c.method.as_deref() == Some("POST"))
                .then_some("Sends parcels <img src=x onerror=\"window.__pwned = 1\"> and costs money.");
            json!({"name": c.name, "description": format!("{} (analysed)", c.name),
                   "examples": ["send a parcel to Brno"], "risk_note": note})
        })
        .collect();
    let (llm_url, asked) = fake_llm(json!({ "capabilities": capabilities }).to_string()).await;
    let analyzer =
        slovo_llm::ChatAnalyzer::new(slovo_llm::LlmConfig::new(llm_url, "tiny-model", None)).unwrap();
    let imported = server
        .runtime
        .import_openapi(
            &Source::from_bytes("https://parcels.example.org/openapi.json", OPENAPI),
            &IngestOptions::default(),
            Some((&analyzer, "tiny-model")),
            &Actor::cli(),
        )
        .await
        .unwrap();
    assert_eq!(imported.analysis, "llm:tiny-model");
    assert!(*asked.lock().unwrap() >= 1, "the LLM was asked");
    let parcels = imported.imports[0].tool.clone();

    // An upgrade that starts sending a bearer token: a new secret.
    server.import(&http_manifest("news", "1.0.0", false)).await;
    server
        .runtime
        .approve("news", &Narrowing::default(), &Actor::cli())
        .await
        .unwrap();
    server.import(&http_manifest("news", "1.1.0", true)).await;

    let b = Browser::start(1280, 900).await;
    b.sign_in(&server).await;
    b.goto(&format!("{}/inbox", server.base)).await;
    let inbox = b.text("#inbox").await;
    assert!(
        inbox.contains("From an OpenAPI document at a URL: https://parcels.example.org/openapi.json"),
        "{inbox}"
    );
    assert!(inbox.contains("From a file: test.json"), "{inbox}");

    b.goto(&format!("{}/proposals/{parcels}", server.base)).await;
    assert!(
        b.text("#origin")
            .await
            .contains("an OpenAPI document at a URL: https://parcels.example.org/openapi.json")
    );
    let notes = b.text("#analysis").await;
    assert!(notes.contains("the LLM analysis (tiny-model)"), "{notes}");
    assert!(notes.contains("not verified"), "{notes}");
    assert!(
        notes.contains("Sends parcels <img src=x onerror=\"window.__pwned = 1\"> and costs money."),
        "the note is shown as text: {notes}"
    );
    assert_eq!(
        b.eval("return document.querySelectorAll('#analysis img').length;")
            .await,
        json!(0),
        "no element was made from the note"
    );
    assert_eq!(b.eval("return typeof window.__pwned;").await, json!("undefined"));
    assert!(
        b.text("#secrets-needed").await.contains("parcel_auth"),
        "a new tool's unset secret is named"
    );
    b.screenshot("proposal-origin-notes").await;

    b.goto(&format!("{}/proposals/news", server.base)).await;
    let diff = b.text("#diff").await;
    assert!(
        diff.contains("New secret needed: token (not set yet: slovo secret set news token)"),
        "{diff}"
    );
    assert!(diff.contains("Changed: api_requirements.auth_type"), "{diff}");
}

#[tokio::test]
async fn a_refused_approval_shows_the_form_again_with_the_entries_and_the_reason_by_the_field() {
    if !browser_available() {
        return;
    }
    let _one = ONE_BROWSER.lock().await;
    let server = Server::start().await;
    server
        .import(&manifest(
            "maps",
            "1.0.0",
            "Maps",
            &["api.example.org", "tiles.example.org"],
            256,
        ))
        .await;
    let b = Browser::start(1280, 900).await;
    b.sign_in(&server).await;
    b.goto(&format!("{}/proposals/maps", server.base)).await;

    // Keyboard: Tab reaches the skip link first, then every control of the decision.
    let mut reached = Vec::new();
    for _ in 0..60 {
        let tab = fantoccini::actions::KeyActions::new("keyboard".into())
            .then(fantoccini::actions::KeyAction::Down { value: '\u{E004}' })
            .then(fantoccini::actions::KeyAction::Up { value: '\u{E004}' });
        b.client.perform_actions(tab).await.unwrap();
        let focused = b
            .eval("var e = document.activeElement; return e.id || e.getAttribute('value') || e.textContent.trim();")
            .await;
        reached.push(focused.as_str().unwrap_or_default().to_string());
    }
    assert_eq!(reached[0], "Skip to content", "{reached:?}");
    for control in [
        "host-0",
        "host-1",
        "no_network",
        "memory_limit_mb",
        "cpu_limit_percent",
        "timeout_s",
        "pids_limit",
        "storage_quota_mb",
        "no_storage",
        "expires_local",
        "as_requested",
        "narrowed",
        "reason",
    ] {
        assert!(
            reached.iter().any(|r| r == control),
            "{control} is not reachable by Tab: {reached:?}"
        );
    }

    // The browser would stop a value over `max`; the page may be out of date, or a browser
    // may not check: the runtime is what refuses it.
    b.eval("document.getElementById('memory_limit_mb').removeAttribute('max'); return null;")
        .await;
    b.click("#host-1").await;
    let memory = b.client.find(Locator::Css("#memory_limit_mb")).await.unwrap();
    memory.clear().await.unwrap();
    memory.send_keys("4096").await.unwrap();
    let timeout = b.client.find(Locator::Css("#timeout_s")).await.unwrap();
    timeout.clear().await.unwrap();
    timeout.send_keys("5").await.unwrap();
    b.click("button[value=narrowed]").await;

    assert!(b.wait_for_text("#approve-error", "Not approved", WAIT).await);
    assert!(
        b.text("h1").await.contains("Proposal: maps"),
        "the proposal page again"
    );
    let by_field = b.text("#error-memory_limit_mb").await;
    assert!(
        by_field.contains("cannot grant memory_limit_mb = 4096: the tool requested only 256"),
        "{by_field}"
    );
    assert_eq!(
        b.eval("return document.getElementById('memory_limit_mb').getAttribute('aria-describedby');")
            .await,
        json!("error-memory_limit_mb"),
        "the message is tied to its field"
    );
    // The person's entries are kept.
    let value = |id: &str| format!("return document.getElementById('{id}').value;");
    let checked = |id: &str| format!("return document.getElementById('{id}').checked;");
    assert_eq!(b.eval(&value("memory_limit_mb")).await, json!("4096"));
    assert_eq!(b.eval(&value("timeout_s")).await, json!("5"));
    assert_eq!(b.eval(&checked("host-0")).await, json!(true));
    assert_eq!(
        b.eval(&checked("host-1")).await,
        json!(false),
        "the dropped host stays dropped"
    );
    b.screenshot("approve-refused").await;

    // Nothing was approved.
    let view = server.runtime.show("maps").await.unwrap();
    assert_eq!(view.status, ToolStatus::PendingApproval);
    assert!(server.audit_events("tool.approved").await.is_empty());

    // Corrected, it goes through with the rest of the entries as they were.
    let memory = b.client.find(Locator::Css("#memory_limit_mb")).await.unwrap();
    memory.clear().await.unwrap();
    memory.send_keys("128").await.unwrap();
    b.click("button[value=narrowed]").await;
    assert!(b.wait_for_text("#granted-memory", "128 MB", WAIT).await);
    let grant = server
        .runtime
        .show("maps")
        .await
        .unwrap()
        .granted
        .expect("a grant");
    assert_eq!(grant.memory_limit_mb, 128);
    assert_eq!(grant.timeout_s, 5);
    let hosts: Vec<String> = grant.network_allow.iter().map(|h| h.to_string()).collect();
    assert_eq!(hosts, ["api.example.org"]);
}

/// `at_ms` as the `datetime-local` value a browser in UTC+05:30 shows.
fn kolkata_local(at_ms: i64) -> String {
    let at = chrono::DateTime::from_timestamp_millis(at_ms).unwrap() + chrono::Duration::minutes(5 * 60 + 30);
    at.format("%Y-%m-%dT%H:%M").to_string()
}

async fn set_datetime(b: &Browser, id: &str, value: &str) {
    // Typing into a datetime-local field depends on the locale's field order; setting the
    // value is what a person's picking amounts to.
    b.eval(&format!(
        "document.getElementById('{id}').value = '{value}'; return null;"
    ))
    .await;
}

#[tokio::test]
async fn activity_filters_by_a_time_range_in_the_browsers_zone_and_pages_past_the_newest_hundred() {
    if !browser_available() {
        return;
    }
    let _one = ONE_BROWSER.lock().await;
    let server = Server::start().await;
    server.import(&manifest("echo", "1.0.0", "Echo", &[], 64)).await;
    server
        .runtime
        .approve("echo", &Narrowing::default(), &Actor::cli())
        .await
        .unwrap();
    for i in 0..105 {
        server
            .runtime
            .call(CallRequest {
                tool: "echo".into(),
                capability: "lookup".into(),
                arguments: json!({"query": format!("call {i}")}),
                conversation_id: None,
                turn_id: None,
                actor: Actor("token:agent:test".into()),
            })
            .await
            .unwrap();
    }
    let listed = server
        .runtime
        .executions(&slovo_runtime::ExecutionFilter {
            limit: 200,
            ..Default::default()
        })
        .await
        .unwrap();
    let newest = listed[0].started_at;
    let oldest = listed[listed.len() - 1].started_at;

    let b = Browser::start_in_zone(1280, 900, "Asia/Kolkata").await;
    b.sign_in(&server).await;
    assert_eq!(
        b.eval("return new Date().getTimezoneOffset();").await,
        json!(-330),
        "the browser is in UTC+05:30"
    );
    b.goto(&format!("{}/activity", server.base)).await;
    let rows = "return document.querySelectorAll('#activity tbody tr').length;";
    assert_eq!(b.eval(rows).await, json!(100), "a page holds the newest 100");
    b.click("#older").await;
    assert!(b.wait_for_text("p.hint", "Older calls", WAIT).await);
    assert_eq!(b.eval(rows).await, json!(5), "the next page holds the rest");
    assert!(b.text("#activity").await.contains("lookup"));
    assert!(
        b.client.find(Locator::Css("#older")).await.is_err(),
        "no page after the last"
    );

    // A range ending a minute before the calls (in the browser's zone) holds none of them.
    b.goto(&format!("{}/activity", server.base)).await;
    set_datetime(&b, "f-to", &kolkata_local(oldest - 120_000)).await;
    b.click("form.filters button").await;
    assert!(b.wait_for_text("#activity", "No calls match", WAIT).await);

    // The minute of the calls, written in the browser's zone, holds them.
    b.goto(&format!("{}/activity", server.base)).await;
    set_datetime(&b, "f-from", &kolkata_local(newest - 60_000)).await;
    set_datetime(&b, "f-to", &kolkata_local(newest)).await;
    b.click("form.filters button").await;
    assert!(b.wait_for_text("#activity", "lookup", WAIT).await);
    let url = b.client.current_url().await.unwrap();
    assert!(url.as_str().contains("from_tz_offset_minutes=-330"), "{url}");
    assert!(url.as_str().contains("to_tz_offset_minutes=-330"), "{url}");
    assert!(b.eval(rows).await.as_u64().unwrap() >= 1);

    // From a minute after the calls: none.
    b.goto(&format!("{}/activity", server.base)).await;
    set_datetime(&b, "f-from", &kolkata_local(newest + 60_000)).await;
    b.click("form.filters button").await;
    assert!(b.wait_for_text("#activity", "No calls match", WAIT).await);
}
