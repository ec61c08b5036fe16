//! The HTTP backend against a real HTTP server on loopback.
#![cfg(feature = "http")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{any, get};
use serde_json::{Value, json};
use slovo_core::execution::{ExecutionStatus, NetworkPolicy, ResourceLimits, SandboxSpec};
use slovo_core::manifest::{ApiRequirements, Capability, Execution};
use slovo_core::secrets::Secrets;
use slovo_sandbox::Backend;
use slovo_sandbox::http::{HttpBackend, HttpConfig};

#[derive(Clone, Default)]
struct Hits(Arc<AtomicUsize>);

async fn echo(
    State(hits): State<Hits>,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: String,
) -> axum::Json<Value> {
    hits.0.fetch_add(1, Ordering::SeqCst);
    let h: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    axum::Json(json!({"id": id, "query": q, "headers": h, "body": body}))
}

async fn start() -> (u16, Hits) {
    let hits = Hits::default();
    let app = Router::new()
        .route("/items/{id}", any(echo))
        .route(
            "/away",
            get(|| async { Redirect::temporary("http://127.0.0.2:9/stolen") }),
        )
        .route("/hop", get(|| async { Redirect::temporary("/items/after-hop") }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route("/big", get(|| async { "x".repeat(200_000) }))
        .route(
            "/missing",
            get(|| async {
                (
                    StatusCode::NOT_FOUND,
                    axum::Json(json!({"error": "no such thing"})),
                )
                    .into_response()
            }),
        )
        .with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, hits)
}

fn spec(
    port: u16,
    endpoint: &str,
    method: &str,
    parameters: Value,
    args: Value,
    network: NetworkPolicy,
) -> SandboxSpec {
    SandboxSpec {
        execution_id: "e".into(),
        tool: "api".into(),
        version: "1.0.0".into(),
        capability: Capability {
            name: "op".into(),
            description: "d".into(),
            parameters,
            returns: None,
            endpoint: Some(endpoint.into()),
            method: Some(method.into()),
            examples: vec![],
            read_only: None,
            destructive: None,
        },
        execution: Execution::Http,
        api: Some(ApiRequirements {
            base_url: format!("http://localhost:{port}"),
            auth_type: Some("api_key".into()),
            auth_header: Some("X-Api-Key".into()),
        }),
        bundle_dir: None,
        state_dir: PathBuf::from("/nonexistent"),
        limits: ResourceLimits {
            memory_mb: 64,
            cpu_percent: 50,
            pids: 8,
            storage_mb: 0,
            timeout: Duration::from_secs(2),
        },
        network,
        request: json!({"capability": "op", "arguments": args}),
        secrets: Secrets::new([("api_key".to_string(), "k-123456".to_string())].into()),
        install_info: None,
    }
}

fn allow(port: u16) -> NetworkPolicy {
    NetworkPolicy::AllowList {
        hosts: vec![format!("localhost:{port}").parse().unwrap()],
    }
}

fn loopback_ok() -> HttpBackend {
    HttpBackend::new(HttpConfig {
        allow_private_addresses: true,
        max_response_bytes: 100_000,
        ..HttpConfig::default()
    })
}

/// An OpenAPI object body becomes one argument per field (`{"in": "body", "name": field}`);
/// the fields travel together as one JSON object, or one form.
#[tokio::test]
async fn body_fields_are_sent_as_one_object() {
    let (port, _hits) = start().await;
    let params = json!({
        "type": "object",
        "properties": {
            "id": {"type": "string", "x-slovo-in": {"in": "path", "name": "id"}},
            "on": {"type": "boolean", "x-slovo-in": {"in": "body", "name": "on"}},
            "level": {"type": "integer", "x-slovo-in": {"in": "body", "name": "brightness"}}
        },
        "x-slovo-body": {"content_type": "application/json"}
    });
    let out = loopback_ok()
        .run(&spec(
            port,
            "/items/{id}",
            "PUT",
            params.clone(),
            json!({"id": "kitchen", "on": true, "level": 40}),
            allow(port),
        ))
        .await;
    assert_eq!(out.status, ExecutionStatus::Success, "{out:?}");
    let got = &out.output.as_ref().unwrap()["body"];
    let sent: Value = serde_json::from_str(got["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent, json!({"on": true, "brightness": 40}));
    assert_eq!(got["headers"]["content-type"], "application/json");

    let mut form = params;
    form["x-slovo-body"]["content_type"] = json!("application/x-www-form-urlencoded");
    let out = loopback_ok()
        .run(&spec(
            port,
            "/items/{id}",
            "PUT",
            form,
            json!({"id": "hall", "on": false, "level": 5}),
            allow(port),
        ))
        .await;
    let got = &out.output.as_ref().unwrap()["body"];
    assert_eq!(got["body"], "on=false&brightness=5");
}

#[tokio::test]
async fn request_is_built_from_bindings_and_the_credential_injected() {
    let (port, hits) = start().await;
    let params = json!({
        "type": "object",
        "properties": {
            "id": {"type": "string", "x-slovo-in": {"in": "path", "name": "id"}},
            "tags": {"type": "array", "x-slovo-in": {"in": "query", "name": "tag"}},
            "trace": {"type": "string", "x-slovo-in": {"in": "header", "name": "X-Trace"}},
            "session": {"type": "string", "x-slovo-in": {"in": "cookie", "name": "sid"}},
            "body": {"type": "object", "x-slovo-in": {"in": "body"}}
        }
    });
    let args =
        json!({"id": "a/b c?", "tags": ["x", "y&z"], "trace": "t1", "session": "s9", "body": {"n": 1}});
    let out = loopback_ok()
        .run(&spec(port, "/items/{id}", "POST", params, args, allow(port)))
        .await;
    assert_eq!(out.status, ExecutionStatus::Success, "{out:?}");
    let got = &out.output.as_ref().unwrap()["body"];
    assert_eq!(
        got["id"], "a/b c?",
        "the path segment is escaped, not split: {got}"
    );
    assert_eq!(got["query"], json!([["tag", "x"], ["tag", "y&z"]]));
    assert_eq!(got["headers"]["x-trace"], "t1");
    assert_eq!(got["headers"]["cookie"], "sid=s9");
    assert_eq!(got["headers"]["x-api-key"], "k-123456");
    assert_eq!(got["body"], "{\"n\":1}");
    assert_eq!(out.output.as_ref().unwrap()["status"], 200);
    assert_eq!(hits.0.load(Ordering::SeqCst), 1);

    // Without bindings: template from the name, the rest as query for GET.
    let plain =
        json!({"type": "object", "properties": {"id": {"type": "string"}, "lat": {"type": "number"}}});
    let out = loopback_ok()
        .run(&spec(
            port,
            "/items/{id}",
            "GET",
            plain,
            json!({"id": "7", "lat": 45.7}),
            allow(port),
        ))
        .await;
    let got = &out.output.as_ref().unwrap()["body"];
    assert_eq!(got["id"], "7");
    assert_eq!(got["query"], json!([["lat", "45.7"]]));

    // A missing credential is a clear failure, and nothing is sent.
    let mut s = spec(
        port,
        "/items/1",
        "GET",
        json!({"type": "object"}),
        json!({}),
        allow(port),
    );
    s.secrets = Secrets::default();
    let before = hits.0.load(Ordering::SeqCst);
    let out = loopback_ok().run(&s).await;
    assert_eq!(out.status, ExecutionStatus::Failure);
    assert!(out.error.unwrap().contains("slovo secret set api api_key"));
    assert_eq!(hits.0.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn only_granted_public_hosts_are_reached() {
    let (port, hits) = start().await;
    let obj = json!({"type": "object"});
    let cases = [
        (NetworkPolicy::None, "no network grant"),
        (
            NetworkPolicy::AllowList {
                hosts: vec!["api.example.org".parse().unwrap()],
            },
            "not among the granted hosts",
        ),
        (
            NetworkPolicy::AllowList {
                hosts: vec![format!("localhost:{}", port + 1).parse().unwrap()],
            },
            "not among the granted hosts",
        ),
    ];
    for (network, why) in cases {
        let out = loopback_ok()
            .run(&spec(port, "/items/1", "GET", obj.clone(), json!({}), network))
            .await;
        assert_eq!(out.status, ExecutionStatus::Failure);
        assert!(out.error.as_deref().unwrap_or("").contains(why), "{out:?}");
    }
    // With the default configuration, a granted name that resolves to loopback is refused,
    // and so is a loopback IP literal, even with an any-host grant.
    let strict = HttpBackend::new(HttpConfig::default());
    let out = strict
        .run(&spec(
            port,
            "/items/1",
            "GET",
            obj.clone(),
            json!({}),
            allow(port),
        ))
        .await;
    assert!(
        out.error
            .as_deref()
            .unwrap_or("")
            .contains("not a public address"),
        "{out:?}"
    );
    let mut literal = spec(
        port,
        "/items/1",
        "GET",
        obj.clone(),
        json!({}),
        NetworkPolicy::Public,
    );
    literal.api.as_mut().unwrap().base_url = format!("http://127.0.0.1:{port}");
    let out = strict.run(&literal).await;
    assert!(
        out.error
            .as_deref()
            .unwrap_or("")
            .contains("127.0.0.1 is not a public address"),
        "{out:?}"
    );
    let mut metadata = literal.clone();
    metadata.api.as_mut().unwrap().base_url = "http://169.254.169.254".into();
    let out = strict.run(&metadata).await;
    assert!(
        out.error
            .as_deref()
            .unwrap_or("")
            .contains("not a public address"),
        "{out:?}"
    );
    assert_eq!(
        hits.0.load(Ordering::SeqCst),
        0,
        "no request may reach the server"
    );

    // A redirect to a host outside the grant is refused; one inside is followed.
    let out = loopback_ok()
        .run(&spec(port, "/away", "GET", obj.clone(), json!({}), allow(port)))
        .await;
    assert_eq!(out.status, ExecutionStatus::Failure);
    assert!(
        out.error
            .as_deref()
            .unwrap_or("")
            .contains("redirect to http://127.0.0.2:9/stolen refused"),
        "{out:?}"
    );
    let out = loopback_ok()
        .run(&spec(port, "/hop", "GET", obj, json!({}), allow(port)))
        .await;
    assert_eq!(out.status, ExecutionStatus::Success, "{out:?}");
    assert_eq!(out.output.unwrap()["body"]["id"], "after-hop");
}

#[tokio::test]
async fn timeouts_caps_and_error_statuses() {
    let (port, _) = start().await;
    let obj = json!({"type": "object"});
    let out = loopback_ok()
        .run(&spec(port, "/slow", "GET", obj.clone(), json!({}), allow(port)))
        .await;
    assert_eq!(out.status, ExecutionStatus::Timeout, "{out:?}");
    let out = loopback_ok()
        .run(&spec(port, "/big", "GET", obj.clone(), json!({}), allow(port)))
        .await;
    assert_eq!(out.status, ExecutionStatus::Failure);
    assert!(out.error.unwrap().contains("larger than 100000 bytes"));
    let out = loopback_ok()
        .run(&spec(port, "/missing", "GET", obj, json!({}), allow(port)))
        .await;
    assert_eq!(out.status, ExecutionStatus::Failure);
    assert_eq!(out.exit_code, Some(404));
    assert_eq!(out.output.unwrap()["body"], json!({"error": "no such thing"}));
}
