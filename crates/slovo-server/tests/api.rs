//! The REST API over a real listener, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use slovo_core::access::Role;
use slovo_core::execution::{ExecutionStatus, Outcome, SandboxSpec};
use slovo_core::install::{DockerDeferred, DockerFacts, InstallFacts};
use slovo_runtime::{Actor, Runtime};
use slovo_sandbox::{Backend, BackendError, Backends, InstallRequest};
use slovo_server::{AppState, ServerConfig};
use slovo_test_support::test_dbs;

/// Runs nothing: sleeps for `arguments.sleep_ms` and echoes the arguments.
struct SleepyBackend;

#[async_trait]
impl Backend for SleepyBackend {
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
        if let Some(ms) = spec.request["arguments"]["sleep_ms"].as_u64() {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
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
    "parameters": {"type": "object", "properties": {"text": {"type": "string"}, "sleep_ms": {"type": "integer"}},
                   "additionalProperties": false}}],
  "execution": {"type": "docker", "image": "echo:1"}
}"#;

struct Server {
    label: &'static str,
    base: String,
    http: reqwest::Client,
    admin: String,
    agent: String,
    reader: String,
    runtime: Arc<Runtime>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

async fn servers(config: ServerConfig) -> Vec<Server> {
    slovo_sandbox::http::ensure_tls_provider();
    let mut out = Vec::new();
    for db in test_dbs().await {
        let store = db.store().await;
        let runtime = Arc::new(Runtime::new(
            store,
            Backends::new().with(Arc::new(SleepyBackend)),
            db.dir.path().join("data"),
        ));
        let cli = Actor("test".into());
        let admin = runtime.create_token(Role::Admin, None, &cli).await.unwrap().token;
        let agent = runtime
            .create_token(Role::Agent, Some("assistant".into()), &cli)
            .await
            .unwrap()
            .token;
        let reader = runtime
            .create_token(Role::Reader, None, &cli)
            .await
            .unwrap()
            .token;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = AppState::new(runtime.clone(), config.clone());
        tokio::spawn(slovo_server::serve(listener, state, std::future::pending()));
        out.push(Server {
            label: db.label,
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            admin,
            agent,
            reader,
            runtime,
            _dir: db.dir,
        });
    }
    out
}

async fn import_and_approve(s: &Server) {
    let resp = s
        .http
        .post(format!("{}/v1/tools", s.base))
        .bearer_auth(&s.admin)
        .header("content-type", "application/json")
        .body(MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::CREATED,
        "{}",
        resp.text().await.unwrap()
    );
    let (st, body) = s
        .request(
            Method::POST,
            "/v1/tools/echo/approve",
            Some(&s.admin),
            Some(json!({"memory_limit_mb": 64})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
}

/// Every endpoint: no token → 401, a role that may not → 403, a role that may → neither.
#[tokio::test]
async fn every_endpoint_checks_token_and_role() {
    for s in servers(ServerConfig::default()).await {
        import_and_approve(&s).await;
        let call = json!({"tool": "echo", "capability": "say", "arguments": {"text": "hi"}});
        let endpoints: Vec<(Method, &str, Option<Value>, &[Role])> = vec![
            (Method::GET, "/metrics", None, &[Role::Reader]),
            (Method::GET, "/v1/tools", None, &[Role::Agent, Role::Reader]),
            (Method::POST, "/v1/tools", Some(json!({})), &[]),
            (Method::GET, "/v1/tools/echo", None, &[Role::Agent, Role::Reader]),
            (Method::POST, "/v1/tools/echo/approve", Some(json!({})), &[]),
            (Method::POST, "/v1/tools/echo/disable", None, &[]),
            (Method::POST, "/v1/tools/echo/enable", None, &[]),
            (Method::POST, "/v1/tools/echo/reinstall", None, &[]),
            (Method::POST, "/v1/tools/nothing/revoke", Some(json!({})), &[]),
            (Method::GET, "/v1/tools/echo/secrets", None, &[]),
            (
                Method::PUT,
                "/v1/tools/echo/secrets/api_key",
                Some(json!({"value": "s3cret-value"})),
                &[],
            ),
            (Method::DELETE, "/v1/tools/echo/secrets/none", None, &[]),
            (Method::POST, "/v1/calls", Some(call.clone()), &[Role::Agent]),
            (
                Method::POST,
                "/v1/openapi/import",
                Some(json!({"document": "openapi: 3.0.0"})),
                &[],
            ),
            (Method::GET, "/v1/executions", None, &[Role::Reader]),
            (Method::GET, "/v1/executions/none", None, &[Role::Reader]),
            (Method::GET, "/v1/audit/verify", None, &[Role::Reader]),
            (Method::GET, "/v1/tokens", None, &[]),
            (Method::POST, "/v1/tokens", Some(json!({"role": "reader"})), &[]),
            (Method::DELETE, "/v1/tokens/0000000000000000", None, &[]),
        ];
        for (method, path, body, allowed) in endpoints {
            let (st, b) = s.request(method.clone(), path, None, body.clone()).await;
            assert_eq!(
                st,
                StatusCode::UNAUTHORIZED,
                "{} {method} {path} without token: {b}",
                s.label
            );
            assert_eq!(b["error"]["code"], "unauthorized");
            let (st, _) = s
                .request(
                    method.clone(),
                    path,
                    Some("slv_0000000000000000_bogus"),
                    body.clone(),
                )
                .await;
            assert_eq!(st, StatusCode::UNAUTHORIZED, "{method} {path} with a bogus token");
            for (role, token) in [
                (Role::Agent, &s.agent),
                (Role::Reader, &s.reader),
                (Role::Admin, &s.admin),
            ] {
                let (st, b) = s.request(method.clone(), path, Some(token), body.clone()).await;
                let may = role == Role::Admin || allowed.contains(&role);
                if may {
                    assert!(
                        st != StatusCode::UNAUTHORIZED && st != StatusCode::FORBIDDEN,
                        "{role} {method} {path}: {st} {b}"
                    );
                    assert!(!st.is_server_error(), "{role} {method} {path}: {st} {b}");
                } else {
                    assert_eq!(st, StatusCode::FORBIDDEN, "{role} {method} {path}: {b}");
                    assert_eq!(b["error"]["code"], "forbidden");
                }
            }
        }
        // Public endpoints.
        let (st, _) = s.request(Method::GET, "/health", None, None).await;
        assert_eq!(st, StatusCode::OK);
        let (st, doc) = s.request(Method::GET, "/openapi.json", None, None).await;
        assert_eq!(st, StatusCode::OK);
        assert!(doc["paths"]["/v1/calls"]["post"].is_object(), "{doc}");
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
        // A revoked token stops working.
        let (_, created) = s
            .request(
                Method::POST,
                "/v1/tokens",
                Some(&s.admin),
                Some(json!({"role": "agent"})),
            )
            .await;
        let token = created["token"].as_str().unwrap().to_string();
        let (st, _) = s.request(Method::GET, "/v1/tools", Some(&token), None).await;
        assert_eq!(st, StatusCode::OK);
        let id = created["record"]["id"].as_str().unwrap();
        let (st, _) = s
            .request(Method::DELETE, &format!("/v1/tokens/{id}"), Some(&s.admin), None)
            .await;
        assert_eq!(st, StatusCode::NO_CONTENT);
        let (st, _) = s.request(Method::GET, "/v1/tools", Some(&token), None).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
        // Token listings never carry secrets or hashes.
        let (_, tokens) = s.request(Method::GET, "/v1/tokens", Some(&s.admin), None).await;
        assert!(!tokens.to_string().contains("token_hash"), "{tokens}");
    }
}

#[tokio::test]
async fn calls_are_recorded_and_bad_requests_get_stable_codes() {
    for s in servers(ServerConfig {
        max_body_bytes: 64 * 1024,
        ..ServerConfig::default()
    })
    .await
    {
        import_and_approve(&s).await;
        let (st, exec) = s
            .request(
                Method::POST,
                "/v1/calls",
                Some(&s.agent),
                Some(json!({"tool": "echo", "capability": "say",
                "arguments": {"text": "hi"}, "conversation_id": "c", "turn_id": "t"})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{}: {exec}", s.label);
        assert_eq!(exec["status"], "success");
        assert_eq!(exec["output"], json!({"text": "hi"}));
        assert!(exec["actor"].as_str().unwrap().starts_with("token:agent:"));

        let raw = |body: &'static str| {
            s.http
                .post(format!("{}/v1/calls", s.base))
                .bearer_auth(&s.agent)
                .header("content-type", "application/json")
                .body(body)
                .send()
        };
        let cases: Vec<(reqwest::Response, StatusCode, &str)> = vec![
            (raw("{not json").await.unwrap(), StatusCode::BAD_REQUEST, "invalid_json"),
            (raw("{\"tool\": 5}").await.unwrap(), StatusCode::BAD_REQUEST, "invalid_json"),
            (raw("{\"tool\": \"echo\", \"capability\": \"say\", \"extra\": 1}").await.unwrap(), StatusCode::BAD_REQUEST, "invalid_json"),
            (
                s.http.post(format!("{}/v1/calls", s.base)).bearer_auth(&s.agent).header("content-type", "application/json")
                    .body(format!("{{\"tool\": \"echo\", \"capability\": \"say\", \"arguments\": {{\"text\": \"{}\"}}}}", "x".repeat(100_000)))
                    .send().await.unwrap(),
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
            ),
            (raw("{\"tool\": \"nope\", \"capability\": \"say\"}").await.unwrap(), StatusCode::NOT_FOUND, "not_found"),
            (raw("{\"tool\": \"echo\", \"capability\": \"shout\"}").await.unwrap(), StatusCode::NOT_FOUND, "not_found"),
            (raw("{\"tool\": \"echo\", \"capability\": \"say\", \"arguments\": {\"text\": 1}}").await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_arguments"),
            (
                s.http.post(format!("{}/v1/tools", s.base)).bearer_auth(&s.admin).body("name: [").send().await.unwrap(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_manifest",
            ),
            (
                s.http.post(format!("{}/v1/tools/echo/approve", s.base)).bearer_auth(&s.admin).json(&json!({"memory_limit_mb": 1})).send().await.unwrap(),
                StatusCode::CONFLICT,
                "conflict",
            ),
            (
                s.http.post(format!("{}/v1/openapi/import", s.base)).bearer_auth(&s.admin).json(&json!({"document": "{\"x\": 1}"})).send().await.unwrap(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_openapi",
            ),
            (
                s.http.post(format!("{}/v1/openapi/import", s.base)).bearer_auth(&s.admin).json(&json!({"url": "http://127.0.0.1:9/x.json"})).send().await.unwrap(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "fetch_failed",
            ),
            (
                s.http.get(format!("{}/v1/executions?limit=0", s.base)).bearer_auth(&s.reader).send().await.unwrap(),
                StatusCode::BAD_REQUEST,
                "invalid_query",
            ),
            (
                s.http.get(format!("{}/v1/nothing", s.base)).send().await.unwrap(),
                StatusCode::NOT_FOUND,
                "not_found",
            ),
        ];
        for (resp, status, code) in cases {
            let got = resp.status();
            let body: Value = resp.json().await.unwrap();
            assert_eq!(got, status, "{}: {body}", s.label);
            assert_eq!(body["error"]["code"], code, "{body}");
            assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        }

        // The record: list with paging, show, verify.
        for i in 0..3 {
            s.request(
                Method::POST,
                "/v1/calls",
                Some(&s.agent),
                Some(json!({"tool": "echo", "capability": "say", "arguments": {"text": format!("{i}")}})),
            )
            .await;
        }
        let (_, page1) = s
            .request(
                Method::GET,
                "/v1/executions?tool=echo&limit=2",
                Some(&s.reader),
                None,
            )
            .await;
        assert_eq!(page1["executions"].as_array().unwrap().len(), 2);
        // Started cold (no MCP pool here): `warm` is on the record, as null.
        assert!(
            page1["executions"][0].get("warm").is_some_and(Value::is_null),
            "{page1}"
        );
        let cursor = page1["next_cursor"].as_str().unwrap();
        let (_, page2) = s
            .request(
                Method::GET,
                &format!("/v1/executions?tool=echo&limit=2&before={cursor}"),
                Some(&s.reader),
                None,
            )
            .await;
        assert_eq!(page2["executions"].as_array().unwrap().len(), 2);
        assert_ne!(page1["executions"][0]["id"], page2["executions"][0]["id"]);
        let (st, v) = s
            .request(Method::GET, "/v1/audit/verify", Some(&s.reader), None)
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let (_, m) = s.request(Method::GET, "/metrics", Some(&s.reader), None).await;
        let text = m.as_str().unwrap();
        assert!(text.contains("slovo_calls_total{status=\"success\"} 4"), "{text}");
        assert!(text.contains("slovo_calls_total{status=\"refused\"}"), "{text}");
    }
}

#[tokio::test]
async fn overload_is_answered_with_503_and_retry_after() {
    for s in servers(ServerConfig {
        max_concurrent_calls: 1,
        max_queued_calls: 1,
        ..ServerConfig::default()
    })
    .await
    {
        import_and_approve(&s).await;
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let http = s.http.clone();
            let url = format!("{}/v1/calls", s.base);
            let token = s.agent.clone();
            tasks.push(tokio::spawn(async move {
                let r = http
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({"tool": "echo", "capability": "say", "arguments": {"sleep_ms": 300}}))
                    .send()
                    .await
                    .unwrap();
                (
                    r.status(),
                    r.headers()
                        .get("retry-after")
                        .map(|v| v.to_str().unwrap().to_string()),
                )
            }));
        }
        let mut ok = 0;
        let mut rejected = 0;
        for t in tasks {
            let (status, retry) = t.await.unwrap();
            if status == StatusCode::OK {
                ok += 1;
            } else {
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{}", s.label);
                assert_eq!(retry.as_deref(), Some("1"));
                rejected += 1;
            }
        }
        assert!(ok >= 2 && rejected >= 1, "ok {ok}, rejected {rejected}");
        // Every answered call is on record; rejected ones are not.
        let execs = s
            .runtime
            .executions(&slovo_runtime::ExecutionFilter {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(execs.len(), ok);
        // Every chain: on PostgreSQL results go to the instance's own chain.
        let events = s
            .runtime
            .store()
            .audit_events_in_display_order(1000)
            .await
            .unwrap();
        assert_eq!(
            events.iter().filter(|e| e.kind == "execution.finished").count(),
            ok
        );
    }
}
