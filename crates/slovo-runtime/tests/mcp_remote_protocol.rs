//! Protocol versions and cancellation with remote MCP servers (`transport: streamable-http`),
//! through `Runtime::import_mcp` and `Runtime::call`, against servers on loopback:
//! - a server of the stateless 2026-07-28 revision alone, served by the `rmcp` SDK (the one
//!   behind Slovo's own MCP endpoint) in each of its HTTP modes: imported, approved and called.
//!   The SDK refuses any request whose revision headers, standard headers or `_meta` are
//!   missing or wrong, and the test records what every request carried;
//! - a call that meets its timeout: a handshake-era server (2025-11-25, written here) receives
//!   `notifications/cancelled` naming the call's request, then the DELETE of its session; the
//!   stateless server sees the call's request cancelled (its response stream closed) and
//!   receives no notification, as that revision says.
//!
//! Every test server refuses a request without its credential, so every request of a
//! conversation, the cancellation and the DELETE included, is shown to carry it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod mcp_support;

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use mcp_support::{Harness, actor, process_sandbox_runs};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult,
    NumberOrString, PaginatedRequestParams, ProtocolVersion, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};
use slovo_core::execution::ExecutionStatus;
use slovo_core::permissions::Narrowing;
use slovo_runtime::{ExecutionView, McpImport, McpSource};

/// The credential the test servers expect on every request.
const CREDENTIAL: &str = "Bearer s3cret-token";

/// The grant's timeout for the calls that stall.
const TIMEOUT_S: u64 = 2;

/// One HTTP request as a test server received it.
#[derive(Debug, Clone)]
struct Received {
    http_method: String,
    /// The JSON-RPC method of the body, if it has one.
    method: Option<String>,
    /// The body (null when it is not JSON, as for a DELETE).
    body: Value,
    headers: HeaderMap,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// What a test server saw.
#[derive(Clone, Default)]
struct Log {
    requests: Arc<Mutex<Vec<Received>>>,
    /// The request ids of the `stall` calls the server started.
    stalled: Arc<Mutex<Vec<i64>>>,
    /// The request ids of the `stall` calls the server saw cancelled.
    cancelled: Arc<Mutex<Vec<i64>>>,
}

impl Log {
    fn requests_since(&self, start: usize) -> Vec<Received> {
        self.requests.lock().unwrap()[start..].to_vec()
    }

    fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    /// The cancelled `stall` requests, once the server saw one (within `within`).
    async fn cancelled_within(&self, within: Duration) -> Vec<i64> {
        let until = Instant::now() + within;
        while Instant::now() < until && self.cancelled.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.cancelled.lock().unwrap().clone()
    }
}

/// Records every request; refuses one without the credential (401), as a server that serves
/// its customers alone.
async fn record(State(log): State<Log>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let received = Received {
        http_method: parts.method.to_string(),
        method: body.get("method").and_then(Value::as_str).map(str::to_string),
        body,
        headers: parts.headers.clone(),
    };
    log.requests.lock().unwrap().push(received);
    if parts.headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(CREDENTIAL) {
        return (StatusCode::UNAUTHORIZED, "for customers only").into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// Serves `app` (behind [`record`]) on a loopback port; its `/mcp` URL.
async fn serve(app: Router, log: &Log) -> String {
    let app = app.layer(middleware::from_fn_with_state(log.clone(), record));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// The tools both test servers list: `greet` (its `region` repeated in a header, in the
/// stateless revision) and `stall`, which answers only after 30 s.
fn tool_list() -> Vec<Tool> {
    let greet = json!({
        "type": "object",
        "properties": {"region": {"type": "string", "x-mcp-header": "Region"}},
        "required": ["region"],
    });
    let stall = json!({"type": "object"});
    vec![
        Tool::new("greet", "Greets a region", greet.as_object().cloned().unwrap()),
        Tool::new("stall", "Answers after 30 s", stall.as_object().cloned().unwrap()),
    ]
}

/// A server of the stateless 2026-07-28 revision alone, with the `rmcp` SDK.
#[derive(Clone)]
struct StatelessServer {
    log: Log,
}

impl ServerHandler for StatelessServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("stateless-remote", "1.0.0"))
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Owned(vec![ProtocolVersion::V_2026_07_28])
    }

    // Lets the SDK check the `Mcp-Param-*` headers of a call against the tool's schema.
    fn get_tool(&self, name: &str) -> Option<Tool> {
        tool_list().into_iter().find(|t| t.name == name)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tool_list()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let &NumberOrString::Number(id) = &context.id else {
            return Err(ErrorData::invalid_params("this server expects numeric ids", None));
        };
        match request.name.as_ref() {
            "greet" => {
                let arguments = request.arguments.unwrap_or_default();
                let region = arguments.get("region").and_then(Value::as_str).unwrap_or("?");
                Ok(CallToolResult::success(vec![ContentBlock::text(format!("Grüezi, {region}"))]).into())
            }
            "stall" => {
                self.log.stalled.lock().unwrap().push(id);
                tokio::select! {
                    _ = context.ct.cancelled() => {
                        self.log.cancelled.lock().unwrap().push(id);
                        Err(ErrorData::internal_error("cancelled", None))
                    }
                    _ = tokio::time::sleep(Duration::from_secs(30)) => {
                        Ok(CallToolResult::success(vec![ContentBlock::text("too late")]).into())
                    }
                }
            }
            other => Err(ErrorData::invalid_params(format!("no tool {other}"), None)),
        }
    }
}

/// The SDK's HTTP modes a stateless server may run in.
#[derive(Debug, Clone, Copy)]
struct Mode {
    /// Sessions for the handshake revisions (the SDK's default): `initialize` reaches the
    /// session layer before it is refused.
    legacy_session_mode: bool,
    /// Answers as one JSON body instead of an event stream.
    json_response: bool,
}

const MODES: [Mode; 3] = [
    Mode {
        legacy_session_mode: true,
        json_response: false,
    },
    Mode {
        legacy_session_mode: false,
        json_response: false,
    },
    Mode {
        legacy_session_mode: false,
        json_response: true,
    },
];

async fn start_stateless(mode: Mode) -> (String, Log) {
    let log = Log::default();
    let handler = StatelessServer { log: log.clone() };
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(mode.legacy_session_mode)
        .with_json_response(mode.json_response);
    let service = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let url = serve(Router::new().route_service("/mcp", service), &log).await;
    (url, log)
}

/// A handshake-era server (2025-11-25, JSON answers, the session `session-9`).
async fn handshake_answer(State(log): State<Log>, body: String) -> Response {
    let message: Value = serde_json::from_str(&body).unwrap();
    let id = message["id"].clone();
    let result = |result: Value| axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": result}));
    match message["method"].as_str().unwrap_or("") {
        "initialize" => (
            [("mcp-session-id", "session-9")],
            result(json!({
                "protocolVersion": "2025-11-25",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "handshake-remote", "version": "1.0.0"},
            })),
        )
            .into_response(),
        "tools/list" => result(json!({"tools": tool_list()})).into_response(),
        "tools/call" => {
            log.stalled.lock().unwrap().push(message["id"].as_i64().unwrap());
            tokio::time::sleep(Duration::from_secs(30)).await;
            result(json!({"content": [{"type": "text", "text": "too late"}]})).into_response()
        }
        // Notifications.
        _ => StatusCode::ACCEPTED.into_response(),
    }
}

async fn start_handshake() -> (String, Log) {
    let log = Log::default();
    let app = Router::new()
        .route(
            "/mcp",
            post(handshake_answer).delete(|| async { StatusCode::NO_CONTENT }),
        )
        .with_state(log.clone());
    let url = serve(app, &log).await;
    (url, log)
}

/// Imports the server at `url` from a `server.json` remote whose `Authorization` header is a
/// secret (given at import) and approves it, with `timeout_s` if given; the import's `server`.
async fn import_and_approve(h: &Harness, name: &str, url: &str, timeout_s: Option<u64>) -> Value {
    let server_json = json!({
        "name": format!("io.example/{name}"),
        "description": "A remote MCP server for the protocol tests",
        "version": "1.0.0",
        "remotes": [{
            "type": "streamable-http",
            "url": url,
            "headers": [{"name": "Authorization", "isSecret": true, "isRequired": true}]
        }]
    });
    let path = h.dir.path().join(format!("{name}.json"));
    std::fs::write(&path, server_json.to_string()).unwrap();
    let secrets = [("Authorization".to_string(), CREDENTIAL.to_string())].into();
    let import = McpImport {
        source: McpSource::Path(path),
        name: Some(name.into()),
        env: Default::default(),
        args: Vec::new(),
        secrets: slovo_core::secrets::Secrets::new(secrets),
    };
    let report = h.rt.import_mcp(&import, &actor()).await.unwrap();
    let names: Vec<&str> = report.tools.iter().map(|t| t.tool.as_str()).collect();
    assert_eq!(names, ["greet", "stall"], "{report:#?}");
    let narrowing = Narrowing {
        timeout_s,
        ..Narrowing::default()
    };
    h.rt.approve(name, &narrowing, &actor()).await.unwrap();
    report.server
}

#[tokio::test]
async fn a_remote_server_of_the_stateless_revision_alone_is_imported_approved_and_called() {
    if !process_sandbox_runs() {
        return;
    }
    for mode in MODES {
        let (url, log) = start_stateless(mode).await;
        let h = Harness::with_loopback_remotes().await;
        let server = import_and_approve(&h, "stateless", &url, None).await;
        // The import learned the server with `server/discover`.
        assert_eq!(server["protocol_version"], "2026-07-28", "{mode:?}: {server:#}");
        assert_eq!(
            server["server_info"]["name"], "stateless-remote",
            "{mode:?}: {server:#}"
        );

        let start = log.count();
        let call = h.call("stateless", "greet", json!({"region": "Zürich"})).await;
        assert_eq!(call.status, ExecutionStatus::Success, "{mode:?}: {call:#?}");
        assert_eq!(call.output, Some(json!("Grüezi, Zürich")), "{mode:?}");

        // The call: the handshake refused, then the stateless revision alone.
        let requests = log.requests_since(start);
        let methods: Vec<(&str, Option<&str>)> = requests
            .iter()
            .map(|r| (r.http_method.as_str(), r.method.as_deref()))
            .collect();
        assert_eq!(
            methods,
            [
                ("POST", Some("initialize")),
                ("POST", Some("server/discover")),
                ("POST", Some("tools/list")),
                ("POST", Some("tools/call")),
            ],
            "{mode:?}: no notifications/initialized, no DELETE"
        );
        for r in &requests[1..] {
            let what = format!("{mode:?}: {:?}", r.method);
            assert_eq!(r.header("mcp-session-id"), None, "{what}");
            assert_eq!(r.header("mcp-protocol-version"), Some("2026-07-28"), "{what}");
            assert_eq!(r.header("mcp-method"), r.method.as_deref(), "{what}");
            let meta = &r.body["params"]["_meta"];
            assert_eq!(
                meta["io.modelcontextprotocol/protocolVersion"], "2026-07-28",
                "{what}"
            );
            assert_eq!(
                meta["io.modelcontextprotocol/clientInfo"]["name"], "slovo-tools",
                "{what}"
            );
        }
        let called = &requests[3];
        assert_eq!(called.header("mcp-name"), Some("greet"), "{mode:?}");
        // Not plain ASCII: wrapped, as the revision says.
        assert_eq!(
            called.header("mcp-param-region"),
            Some("=?base64?WsO8cmljaA==?="),
            "{mode:?}"
        );
    }
}

#[tokio::test]
async fn a_stateless_call_that_times_out_closes_its_request_stream_and_sends_nothing_else() {
    if !process_sandbox_runs() {
        return;
    }
    let (url, log) = start_stateless(MODES[0]).await;
    let h = Harness::with_loopback_remotes().await;
    import_and_approve(&h, "stateless", &url, Some(TIMEOUT_S)).await;

    let (call, requests, _, id) = stall_until_timeout(&h, "stateless", &log).await;

    // The server saw the call's own request cancelled: the stream closed by the client.
    assert_eq!(log.cancelled_within(Duration::from_secs(3)).await, [id]);
    let notes = call.stderr.unwrap_or_default();
    assert!(
        notes.contains(&format!(
            "[mcp] closed the response stream of request {id} (the stateless revision's cancellation)"
        )),
        "{notes}"
    );
    // Nothing follows the call in this revision: no notification, no DELETE.
    let last = requests.last().unwrap();
    assert_eq!(last.method.as_deref(), Some("tools/call"), "{requests:#?}");
}

/// Calls `tool`'s `stall` until the grant's timeout ends it (within 1.5 s of it), and returns
/// the record, the requests the server logged meanwhile, the position of the `tools/call` among
/// them and its request id, which the server saw stall.
async fn stall_until_timeout(
    h: &Harness,
    tool: &str,
    log: &Log,
) -> (ExecutionView, Vec<Received>, usize, i64) {
    let start = log.count();
    let began = Instant::now();
    let call = h.call(tool, "stall", json!({})).await;
    let took = began.elapsed();
    assert_eq!(call.status, ExecutionStatus::Timeout, "{call:#?}");
    assert!(took < Duration::from_millis(TIMEOUT_S * 1000 + 1500), "{took:?}");
    let requests = log.requests_since(start);
    let called = requests
        .iter()
        .position(|r| r.method.as_deref() == Some("tools/call"))
        .unwrap();
    let id = requests[called].body["id"].as_i64().unwrap();
    assert_eq!(*log.stalled.lock().unwrap(), [id]);
    (call, requests, called, id)
}

#[tokio::test]
async fn a_handshake_call_that_times_out_sends_notifications_cancelled_then_ends_its_session() {
    if !process_sandbox_runs() {
        return;
    }
    let (url, log) = start_handshake().await;
    let h = Harness::with_loopback_remotes().await;
    let server = import_and_approve(&h, "handshake", &url, Some(TIMEOUT_S)).await;
    assert_eq!(server["protocol_version"], "2025-11-25", "{server:#}");

    let (call, requests, called, id) = stall_until_timeout(&h, "handshake", &log).await;
    // After the call: the notification naming its request, in the session, then the DELETE.
    let after: Vec<&Received> = requests[called + 1..].iter().collect();
    assert_eq!(after.len(), 2, "{after:#?}");
    let (cancel, delete) = (after[0], after[1]);
    assert_eq!(
        cancel.method.as_deref(),
        Some("notifications/cancelled"),
        "{cancel:#?}"
    );
    assert_eq!(cancel.body["params"]["requestId"], id, "{cancel:#?}");
    assert_eq!(cancel.header("mcp-session-id"), Some("session-9"));
    assert_eq!(cancel.header("mcp-protocol-version"), Some("2025-11-25"));
    assert_eq!(delete.http_method, "DELETE", "{delete:#?}");
    assert_eq!(delete.header("mcp-session-id"), Some("session-9"));
    let notes = call.stderr.unwrap_or_default();
    assert!(
        notes.contains(&format!("[mcp] sent notifications/cancelled for request {id}")),
        "{notes}"
    );
}
