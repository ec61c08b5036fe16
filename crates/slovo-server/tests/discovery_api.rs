//! Resolve and discovery requests over REST (issue 8), on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use slovo_core::access::Role;
use slovo_runtime::{Actor, ImportSource, Runtime};
use slovo_sandbox::Backends;
use slovo_server::{AppState, ServerConfig};
use slovo_test_support::test_dbs;

const MANIFEST: &str = r#"{
  "name": "air-quality", "version": "1.0.0", "description": "Air quality for a place",
  "capabilities": [{"name": "current_air_quality", "description": "Current air-quality index for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}},
                   "required": ["city"]}}]
}"#;

async fn call(base: &str, method: Method, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().request(method, format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test]
async fn resolve_and_discovery_over_rest() {
    slovo_sandbox::http::ensure_tls_provider();
    for db in test_dbs().await {
        let label = db.label;
        let runtime = Arc::new(Runtime::new(
            db.store().await,
            Backends::new(),
            db.dir.path().join("data"),
        ));
        let cli = Actor("test".into());
        runtime
            .import(
                ImportSource::Manifest {
                    name: "air.json".into(),
                    bytes: MANIFEST.as_bytes().to_vec(),
                },
                &cli,
            )
            .await
            .unwrap();
        let admin = runtime.create_token(Role::Admin, None, &cli).await.unwrap().token;
        let agent = runtime.create_token(Role::Agent, None, &cli).await.unwrap().token;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(slovo_server::serve(
            listener,
            AppState::new(runtime.clone(), ServerConfig::default()),
            std::future::pending(),
        ));

        let (st, body) = call(
            &base,
            Method::GET,
            "/v1/resolve?q=air+quality+in+Lyon",
            Some(&agent),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{label}: {body}");
        assert_eq!(body["gap"], false, "{label}: {body}");
        assert_eq!(body["candidates"][0]["capability"], "current_air_quality");
        assert_eq!(body["candidates"][0]["arguments"]["city"], "Lyon");

        let (st, body) = call(&base, Method::GET, "/v1/resolve?q=order+a+pizza", Some(&agent)).await;
        assert_eq!(st, StatusCode::OK, "{label}: {body}");
        assert_eq!(body["gap"], true);
        assert_eq!(body["discovery"]["created"], true);
        let id = body["discovery"]["id"].as_str().unwrap().to_string();

        let (st, _) = call(&base, Method::GET, "/v1/resolve?q=pizza", None).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{label}");
        let (st, _) = call(&base, Method::GET, "/v1/resolve?q=", Some(&agent)).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{label}");
        let (st, _) = call(&base, Method::GET, "/v1/discovery", Some(&agent)).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{label}");

        let (st, body) = call(&base, Method::GET, "/v1/discovery", Some(&admin)).await;
        assert_eq!(st, StatusCode::OK, "{label}: {body}");
        assert_eq!(body["requests"].as_array().unwrap().len(), 1);
        assert_eq!(body["requests"][0]["status"], "pending");

        let (st, body) = call(
            &base,
            Method::POST,
            &format!("/v1/discovery/{id}/reject"),
            Some(&admin),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{label}: {body}");
        assert_eq!(body["status"], "rejected");
        let (st, _) = call(&base, Method::POST, "/v1/discovery/nope/reject", Some(&admin)).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{label}");
        runtime.verify_audit().await.unwrap();
    }
}
