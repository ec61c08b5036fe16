//! What Slovo's MCP endpoint does with a call its client gives up on, in both protocol eras: a
//! 2025-11-25 session's `notifications/cancelled` naming the call, and a 2026-07-28 client
//! closing the call's response stream (that revision's cancellation). The SDK (`rmcp`) marks
//! the request cancelled and, in a session, drops its answer; the call itself is not stopped:
//! it runs to its end under its grant and is recorded with what it did. Raw HTTP, so that the
//! messages are exactly the revisions' own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde_json::{Value, json};
use slovo_core::access::Role;
use slovo_core::execution::{ExecutionStatus, Outcome, SandboxSpec};
use slovo_core::install::{DockerDeferred, DockerFacts, InstallFacts};
use slovo_core::permissions::Narrowing;
use slovo_runtime::{Actor, ExecutionFilter, ExecutionView, ImportSource, Runtime};
use slovo_sandbox::{Backend, BackendError, Backends, InstallRequest};
use slovo_server::{AppState, ServerConfig};
use slovo_test_support::test_dbs;

/// How long a call sleeps: long against the moment its client gives up.
const NAP_MS: u64 = 800;

/// Runs nothing: sleeps `arguments.ms`, then answers with the arguments.
struct SleepBackend;

#[async_trait]
impl Backend for SleepBackend {
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
        let args = spec.request["arguments"].clone();
        tokio::time::sleep(Duration::from_millis(args["ms"].as_u64().unwrap_or(0))).await;
        Outcome {
            status: ExecutionStatus::Success,
            output: Some(args),
            exit_code: Some(0),
            ..Outcome::default()
        }
    }
}

const SLEEPER: &str = r#"{
  "name": "sleeper", "version": "1.0.0", "description": "Sleeps",
  "capabilities": [{"name": "nap", "description": "Sleeps a while",
    "parameters": {"type": "object", "properties": {"ms": {"type": "integer"}}, "required": ["ms"]}}],
  "execution": {"type": "docker", "image": "sleeper:1"}
}"#;

/// A POST of `message` to the endpoint as an MCP client sends it, with `headers` besides.
async fn post(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    headers: &[(&str, &str)],
    message: &Value,
) -> reqwest::Response {
    let mut request = http
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(message);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// The executions recorded, once there are `n` of them (within 5 s).
async fn recorded(runtime: &Runtime, n: usize) -> Vec<ExecutionView> {
    for _ in 0..100 {
        let executions = runtime.executions(&ExecutionFilter::default()).await.unwrap();
        if executions.len() >= n && executions.iter().all(|e| e.status != ExecutionStatus::Running) {
            return executions;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{n} finished executions were not recorded within 5 s");
}

#[tokio::test]
async fn a_call_its_client_cancels_runs_to_its_end_and_is_recorded() {
    // reqwest is built with `rustls-no-provider` (the sandbox's HTTP backend): pick one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    for db in test_dbs().await {
        let label = db.label;
        let runtime = Arc::new(Runtime::new(
            db.store().await,
            Backends::new().with(Arc::new(SleepBackend)),
            db.dir.path().join("data"),
        ));
        let test = Actor("test".into());
        let manifest = ImportSource::Manifest {
            name: "sleeper.json".into(),
            bytes: SLEEPER.as_bytes().to_vec(),
        };
        let report = runtime.import(manifest, &test).await.unwrap();
        runtime
            .approve(&report.tool, &Narrowing::default(), &test)
            .await
            .unwrap();
        let agent = runtime.create_token(Role::Agent, None, &test).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        let state = AppState::new(runtime.clone(), ServerConfig::default());
        tokio::spawn(slovo_server::serve(listener, state, std::future::pending()));
        let http = reqwest::Client::new();
        let token = agent.token.as_str();

        // 2025-11-25: a session, the call, then `notifications/cancelled` naming it.
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
        let answer = post(&http, &url, token, &[], &init).await;
        let session = answer.headers()["mcp-session-id"].to_str().unwrap().to_string();
        answer.text().await.unwrap();
        let in_session = [
            ("mcp-session-id", session.as_str()),
            ("mcp-protocol-version", "2025-11-25"),
        ];
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let answer = post(&http, &url, token, &in_session, &initialized).await;
        assert_eq!(answer.status(), StatusCode::ACCEPTED, "{label}");
        let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "sleeper__nap", "arguments": {"ms": NAP_MS}}});
        let stream = post(&http, &url, token, &in_session, &call).await;
        assert_eq!(stream.status(), StatusCode::OK, "{label}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": 2, "reason": "the user gave up"}});
        let answer = post(&http, &url, token, &in_session, &cancel).await;
        assert_eq!(answer.status(), StatusCode::ACCEPTED, "{label}");
        // The call still runs to its end and is recorded as it went.
        let executions = recorded(&runtime, 1).await;
        assert_eq!(executions[0].status, ExecutionStatus::Success, "{label}");
        assert_eq!(executions[0].output, Some(json!({"ms": NAP_MS})), "{label}");
        // Its answer is dropped: the request's stream carries no response.
        let mut stream = stream;
        let mut seen = Vec::new();
        while let Ok(Ok(Some(chunk))) = tokio::time::timeout(Duration::from_millis(500), stream.chunk()).await
        {
            seen.extend_from_slice(&chunk);
        }
        let seen = String::from_utf8_lossy(&seen);
        assert!(!seen.contains("\"result\""), "{label}: {seen}");

        // 2026-07-28: the call with the revision's context and headers; the client closes the
        // stream (drops the request) before the answer.
        let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "sleeper__nap", "arguments": {"ms": NAP_MS},
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {},
        }}});
        let stateless = [
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "sleeper__nap"),
        ];
        let gave_up = tokio::time::timeout(
            Duration::from_millis(200),
            post(&http, &url, token, &stateless, &call),
        )
        .await;
        assert!(gave_up.is_err(), "{label}: answered before the client gave up");
        let executions = recorded(&runtime, 2).await;
        assert!(
            executions
                .iter()
                .all(|e| e.status == ExecutionStatus::Success && e.output == Some(json!({"ms": NAP_MS}))),
            "{label}: {executions:#?}"
        );
        drop(db.dir);
    }
}
