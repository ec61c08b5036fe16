//! The MCP server with a real MCP client (rmcp), over streamable HTTP on a real listener and
//! over an in-process stdio pipe, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientConfig, ErrorCode, MetaObject, ProtocolVersion,
    RequestMetaObject, ServerNotification, SubscriptionFilter, Tool,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, RoleClient, ServiceError, ServiceExt};
use serde_json::{Value, json};
use slovo_core::access::Role;
use slovo_core::execution::{ExecutionStatus, Outcome, SandboxSpec};
use slovo_core::install::{DockerDeferred, DockerFacts, InstallFacts};
use slovo_core::permissions::Narrowing;
use slovo_runtime::{Actor, ImportSource, Runtime};
use slovo_sandbox::{Backend, BackendError, Backends, InstallRequest};
use slovo_server::{AppState, ServerConfig};
use slovo_test_support::test_dbs;
use tokio::sync::mpsc;

/// Runs nothing: echoes the arguments, or fails when `arguments.fail` is true.
struct EchoBackend;

#[async_trait]
impl Backend for EchoBackend {
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
        if args["fail"] == json!(true) {
            return Outcome {
                status: ExecutionStatus::Failure,
                stderr: "bad things happened".into(),
                error: Some("boom".into()),
                exit_code: Some(1),
                ..Outcome::default()
            };
        }
        Outcome {
            status: ExecutionStatus::Success,
            output: Some(args),
            exit_code: Some(0),
            ..Outcome::default()
        }
    }
}

const ECHO: &str = r#"{
  "name": "echo", "version": "1.0.0", "description": "Echoes what it is told",
  "capabilities": [
    {"name": "say", "description": "Say something back", "read_only": true,
     "parameters": {"type": "object", "properties": {"text": {"type": "string"}, "fail": {"type": "boolean"}},
                    "required": ["text"], "additionalProperties": false}},
    {"name": "forget", "description": "Forget everything", "method": "DELETE",
     "parameters": {"type": "object"}},
    {"name": "plain", "description": "No hints", "parameters": {"type": "object"}}
  ],
  "execution": {"type": "docker", "image": "echo:1"}
}"#;

fn long_manifest() -> String {
    let tool = format!("l{}", "o".repeat(61)); // 62 characters
    let cap = format!("c{}", "a".repeat(50));
    json!({
        "name": tool, "version": "1.0.0", "description": "A tool with a long name",
        "capabilities": [{"name": cap, "description": "Long", "parameters": {"type": "object"}}],
        "execution": {"type": "docker", "image": "long:1"}
    })
    .to_string()
}

fn manifest_named(name: &str) -> String {
    ECHO.replacen("\"echo\"", &format!("\"{name}\""), 1)
}

struct Server {
    label: &'static str,
    url: String,
    db_url: String,
    agent: String,
    agent_id: String,
    reader: String,
    admin: String,
    runtime: Arc<Runtime>,
    dir: tempfile::TempDir,
}

async fn servers() -> Vec<Server> {
    // reqwest is built with `rustls-no-provider` (the sandbox's HTTP backend): pick one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut out = Vec::new();
    for db in test_dbs().await {
        let runtime = Arc::new(Runtime::new(
            db.store().await,
            Backends::new().with(Arc::new(EchoBackend)),
            db.dir.path().join("data"),
        ));
        let test = Actor("test".into());
        let agent = runtime
            .create_token(Role::Agent, Some("assistant".into()), &test)
            .await
            .unwrap();
        let reader = runtime.create_token(Role::Reader, None, &test).await.unwrap();
        let admin = runtime.create_token(Role::Admin, None, &test).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = AppState::new(runtime.clone(), ServerConfig::default());
        tokio::spawn(slovo_server::serve(listener, state, std::future::pending()));
        out.push(Server {
            label: db.label,
            url: format!("http://{addr}/mcp"),
            db_url: db.url.clone(),
            agent: agent.token,
            agent_id: agent.record.id,
            reader: reader.token,
            admin: admin.token,
            runtime,
            dir: db.dir,
        });
    }
    out
}

async fn import_and_approve(runtime: &Runtime, manifest: &str) {
    let report = runtime
        .import(
            ImportSource::Manifest {
                name: "test.json".into(),
                bytes: manifest.as_bytes().to_vec(),
            },
            &Actor("test".into()),
        )
        .await
        .unwrap();
    runtime
        .approve(&report.tool, &Narrowing::default(), &Actor("test".into()))
        .await
        .unwrap();
}

/// Counts `notifications/tools/list_changed` received outside a subscription.
#[derive(Clone)]
struct Recorder {
    changed: mpsc::UnboundedSender<()>,
}

impl ClientHandler for Recorder {
    async fn on_tool_list_changed(&self, _: NotificationContext<RoleClient>) {
        let _ = self.changed.send(());
    }
}

fn transport(url: &str, token: &str) -> StreamableHttpClientTransport<reqwest::Client> {
    StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url.to_string()).auth_header(token.to_string()),
    )
}

/// A legacy (initialize) client that reports list changes on the returned channel.
async fn legacy_client(
    url: &str,
    token: &str,
) -> (RunningService<RoleClient, Recorder>, mpsc::UnboundedReceiver<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let client = Recorder { changed: tx }
        .serve(transport(url, token))
        .await
        .unwrap();
    (client, rx)
}

fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn execution_id(r: &CallToolResult) -> String {
    r.meta.as_ref().unwrap()["slovo/execution_id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn find<'a>(tools: &'a [Tool], name: &str) -> &'a Tool {
    tools.iter().find(|t| t.name == name).unwrap_or_else(|| {
        panic!(
            "no tool {name} in {:?}",
            tools.iter().map(|t| &t.name).collect::<Vec<_>>()
        )
    })
}

/// The name of the one tool listed when no capability is active (the built-in resolve tool).
fn only_builtin(tools: &[Tool]) -> String {
    assert_eq!(
        tools.len(),
        1,
        "{:?}",
        tools.iter().map(|t| &t.name).collect::<Vec<_>>()
    );
    tools[0].name.to_string()
}

fn call(name: &str, args: Value) -> CallToolRequestParams {
    CallToolRequestParams::new(name.to_string()).with_arguments(args.as_object().unwrap().clone())
}

/// `tools/list` shapes and names; a call that succeeds, one whose tool fails, one with
/// invalid arguments, one to an unknown tool; and who may connect.
#[tokio::test]
async fn tools_are_listed_and_called_through_the_call_path() {
    for s in servers().await {
        let label = s.label;
        import_and_approve(&s.runtime, ECHO).await;
        import_and_approve(&s.runtime, &long_manifest()).await;
        // Imported but not approved: not listed.
        s.runtime
            .import(
                ImportSource::Manifest {
                    name: "pending.json".into(),
                    bytes: manifest_named("pending").into_bytes(),
                },
                &Actor("test".into()),
            )
            .await
            .unwrap();

        let (client, _) = legacy_client(&s.url, &s.agent).await;
        let info = client.peer_info().unwrap();
        let tools_cap = info.capabilities.tools.clone().unwrap();
        assert_eq!(tools_cap.list_changed, Some(true), "{label}");

        let tools = client.list_all_tools().await.unwrap();
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        // Three capabilities of echo, one of the long tool, and the built-in resolve tool.
        assert_eq!(names.len(), 5, "{label}: {names:?}");
        for n in &names {
            assert!(n.len() <= 64, "{n}");
            assert!(
                n.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)),
                "{n}"
            );
            assert!(!n.starts_with("pending"), "{n}");
        }
        let say = find(&tools, "echo__say");
        assert!(
            say.description
                .as_deref()
                .unwrap()
                .starts_with("Say something back")
        );
        assert!(
            say.description
                .as_deref()
                .unwrap()
                .contains("Echoes what it is told")
        );
        assert_eq!(
            Value::Object((*say.input_schema).clone()),
            json!({"type": "object", "properties": {"text": {"type": "string"}, "fail": {"type": "boolean"}},
                   "required": ["text"], "additionalProperties": false})
        );
        let a = say.annotations.clone().unwrap();
        assert_eq!((a.read_only_hint, a.destructive_hint), (Some(true), None));
        assert_eq!(a.title.as_deref(), Some("say (echo)"));
        let a = find(&tools, "echo__forget").annotations.clone().unwrap();
        assert_eq!((a.read_only_hint, a.destructive_hint), (None, Some(true)));
        let a = find(&tools, "echo__plain").annotations.clone().unwrap();
        assert_eq!((a.read_only_hint, a.destructive_hint), (None, None));
        let long = tools.iter().find(|t| t.name.starts_with("looo")).unwrap();
        assert_eq!(long.name.len(), 64, "{}", long.name);
        // The shortened name still reaches its capability.
        let r = client.call_tool(call(&long.name, json!({"k": 1}))).await.unwrap();
        assert_eq!(r.is_error, Some(false), "{r:?}");
        let e = s.runtime.execution(&execution_id(&r)).await.unwrap();
        assert_eq!((e.tool.len(), e.capability.len()), (62, 51));

        // Success: text and structured content, recorded as mcp:<token id> with the _meta ids.
        let mut params = call("echo__say", json!({"text": "hi"}));
        params.meta = Some(RequestMetaObject::from(MetaObject::from(
            json!({"conversation_id": "conv-1", "turn_id": "turn-7"})
                .as_object()
                .unwrap()
                .clone(),
        )));
        let r = client.call_tool(params).await.unwrap();
        assert_eq!(r.is_error, Some(false), "{label}: {r:?}");
        assert_eq!(r.structured_content, Some(json!({"text": "hi"})));
        assert!(text(&r).contains("\"hi\""), "{}", text(&r));
        let e = s.runtime.execution(&execution_id(&r)).await.unwrap();
        assert_eq!(e.status, ExecutionStatus::Success);
        assert_eq!(e.actor, format!("mcp:{}", s.agent_id));
        assert_eq!(e.conversation_id.as_deref(), Some("conv-1"));
        assert_eq!(e.turn_id.as_deref(), Some("turn-7"));

        // The tool fails: an isError result with the error and stderr, and a recorded failure.
        let r = client
            .call_tool(call("echo__say", json!({"text": "x", "fail": true})))
            .await
            .unwrap();
        assert_eq!(r.is_error, Some(true), "{r:?}");
        let t = text(&r);
        assert!(
            t.contains("failure") && t.contains("boom") && t.contains("bad things happened"),
            "{t}"
        );
        let e = s.runtime.execution(&execution_id(&r)).await.unwrap();
        assert_eq!(e.status, ExecutionStatus::Failure);

        // Invalid arguments: an isError result naming the problem, and nothing recorded.
        let before = s.runtime.store().count_executions().await.unwrap();
        let r = client
            .call_tool(call("echo__say", json!({"text": 5})))
            .await
            .unwrap();
        assert_eq!(r.is_error, Some(true), "{r:?}");
        assert!(text(&r).contains("invalid arguments"), "{}", text(&r));
        assert!(r.meta.is_none());
        assert_eq!(s.runtime.store().count_executions().await.unwrap(), before);

        // A disabled tool: still an isError result (the model's list is stale), nothing recorded.
        s.runtime.disable("echo", &Actor("test".into())).await.unwrap();
        let r = client
            .call_tool(call("echo__say", json!({"text": "hi"})))
            .await
            .unwrap();
        assert_eq!(r.is_error, Some(true), "{r:?}");
        assert!(text(&r).contains("disabled"), "{}", text(&r));
        let listed = client.list_all_tools().await.unwrap();
        assert!(!listed.iter().any(|t| t.name.starts_with("echo")), "{label}");
        assert_eq!(s.runtime.store().count_executions().await.unwrap(), before);

        // An unknown name: a protocol error (invalid params).
        match client.call_tool(call("nope__nothing", json!({}))).await {
            Err(ServiceError::McpError(e)) => {
                assert_eq!(e.code, ErrorCode::INVALID_PARAMS);
                assert!(e.message.contains("unknown tool"), "{}", e.message);
            }
            other => panic!("{label}: {other:?}"),
        }
        client.cancel().await.unwrap();

        // Admin includes agent.
        let (admin, _) = legacy_client(&s.url, &s.admin).await;
        admin.list_all_tools().await.unwrap();
        admin.cancel().await.unwrap();

        // No token, a bogus token: 401; a reader token: 403; in the REST API's error shape.
        let http = reqwest::Client::new();
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
        for (token, status, code) in [
            (None, StatusCode::UNAUTHORIZED, "unauthorized"),
            (
                Some("slv_0000000000000000_bogus"),
                StatusCode::UNAUTHORIZED,
                "unauthorized",
            ),
            (Some(s.reader.as_str()), StatusCode::FORBIDDEN, "forbidden"),
        ] {
            let mut req = http
                .post(&s.url)
                .header("accept", "application/json, text/event-stream")
                .json(&init);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), status, "{label} {token:?}");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["code"], code, "{body}");
        }
        let resp = http
            .post(&s.url)
            .bearer_auth(&s.agent)
            .header("accept", "application/json, text/event-stream")
            .json(&init)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{label}");
        drop(s.dir);
    }
}

async fn next_change(rx: &mut mpsc::UnboundedReceiver<()>, what: &str) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no tools/list_changed after {what}"))
        .unwrap();
}

/// `notifications/tools/list_changed` reaches a legacy session and a 2026-07-28 subscription
/// when a tool is approved here, and when it is disabled by another runtime on the same
/// database (as the CLI would); an import waiting for approval sends nothing.
#[tokio::test]
async fn list_changed_is_sent_when_the_tool_list_changes() {
    for s in servers().await {
        let label = s.label;
        let (legacy, mut legacy_rx) = legacy_client(&s.url, &s.agent).await;
        assert_eq!(
            only_builtin(&legacy.list_all_tools().await.unwrap()),
            "slovo_resolve"
        );

        let modern = ClientConfig::default()
            .serve_with_lifecycle(
                transport(&s.url, &s.agent),
                ClientLifecycleMode::Discover {
                    preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                },
            )
            .await
            .unwrap();
        let mut subscription = modern
            .listen(SubscriptionFilter::builder().tools_list_changed().build())
            .await
            .unwrap();
        let (modern_tx, mut modern_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(n)) = subscription.next().await {
                if matches!(n, ServerNotification::ToolListChangedNotification(_)) {
                    let _ = modern_tx.send(());
                }
            }
        });
        // Let both sessions subscribe (the legacy one does so after `initialized`).
        tokio::time::sleep(Duration::from_millis(700)).await;

        import_and_approve(&s.runtime, ECHO).await;
        next_change(&mut legacy_rx, "approve (legacy)").await;
        next_change(&mut modern_rx, "approve (2026-07-28)").await;
        let tools = legacy.list_all_tools().await.unwrap();
        assert_eq!(tools.len(), 4, "{label}");
        assert_eq!(modern.list_all_tools().await.unwrap().len(), 4, "{label}");

        // A new tool waiting for approval changes nothing that is listed.
        s.runtime
            .import(
                ImportSource::Manifest {
                    name: "pending.json".into(),
                    bytes: manifest_named("pending").into_bytes(),
                },
                &Actor("test".into()),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            legacy_rx.try_recv().is_err(),
            "{label}: notified for a pending import"
        );

        // Another process on the same database disables the tool.
        let other = Runtime::new(
            slovo_store::Store::connect(&s.db_url).await.unwrap(),
            Backends::new(),
            s.dir.path().join("data"),
        );
        other.disable("echo", &Actor("cli:someone".into())).await.unwrap();
        next_change(&mut legacy_rx, "disable by another runtime (legacy)").await;
        next_change(&mut modern_rx, "disable by another runtime (2026-07-28)").await;
        assert_eq!(
            only_builtin(&legacy.list_all_tools().await.unwrap()),
            "slovo_resolve"
        );
        assert_eq!(
            only_builtin(&modern.list_all_tools().await.unwrap()),
            "slovo_resolve"
        );
        other.store().close().await;

        legacy.cancel().await.unwrap();
        modern.cancel().await.unwrap();
    }
}

/// The stdio door: the same handler over a byte stream, calls recorded as `mcp:stdio`.
#[tokio::test]
async fn stdio_door_records_calls_as_mcp_stdio() {
    for s in servers().await {
        import_and_approve(&s.runtime, ECHO).await;
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        let handler = slovo_server::mcp::SlovoMcp::stdio(s.runtime.clone());
        let server = tokio::spawn(async move {
            let running = handler.serve(server_io).await.unwrap();
            running.waiting().await.unwrap();
        });
        let client = ClientConfig::default().serve(client_io).await.unwrap();
        assert_eq!(client.list_all_tools().await.unwrap().len(), 4, "{}", s.label);
        let r = client
            .call_tool(call("echo__say", json!({"text": "over stdio"})))
            .await
            .unwrap();
        assert_eq!(r.is_error, Some(false));
        let e = s.runtime.execution(&execution_id(&r)).await.unwrap();
        assert_eq!(e.actor, "mcp:stdio");
        client.cancel().await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap();
    }
}

const AIR: &str = r#"{
  "name": "air-quality", "version": "1.0.0", "description": "Air quality for a place",
  "capabilities": [{"name": "current_air_quality", "description": "Current air-quality index for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}},
                   "required": ["city"]}}]
}"#;

/// The built-in `slovo_resolve` tool: listed with its input schema, answers like
/// `GET /v1/resolve` (same JSON as structured content and text), a gap opens one discovery
/// request (recorded as the MCP caller) and asking again reuses it; bad arguments are isError.
#[tokio::test]
async fn resolve_is_a_builtin_tool() {
    for s in servers().await {
        let label = s.label;
        import_and_approve(&s.runtime, ECHO).await;
        // Proposed (waiting for approval): a resolve candidate, not a listed MCP tool.
        s.runtime
            .import(
                ImportSource::Manifest {
                    name: "air.json".into(),
                    bytes: AIR.as_bytes().to_vec(),
                },
                &Actor("test".into()),
            )
            .await
            .unwrap();
        let (client, _) = legacy_client(&s.url, &s.agent).await;
        let tools = client.list_all_tools().await.unwrap();
        assert_eq!(tools.len(), 4, "{label}");
        let resolve = find(&tools, "slovo_resolve");
        let schema = Value::Object((*resolve.input_schema).clone());
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["required"], json!(["query"]));
        assert_eq!(schema["properties"]["query"]["type"], "string");
        assert_eq!(schema["properties"]["limit"]["type"], "integer");
        assert!(resolve.description.as_deref().unwrap().contains("gap"));

        // A servable request: the ranked capability with its filled argument.
        let r = client
            .call_tool(call(
                "slovo_resolve",
                json!({"query": "what's the air quality in Lyon"}),
            ))
            .await
            .unwrap();
        assert_eq!(r.is_error, Some(false), "{label}: {r:?}");
        let body = r.structured_content.clone().unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text(&r)).unwrap(), body);
        assert_eq!(body["gap"], false, "{label}: {body}");
        let top = &body["candidates"][0];
        assert_eq!(
            (&top["tool"], &top["capability"], &top["status"]),
            (
                &json!("air-quality"),
                &json!("current_air_quality"),
                &json!("pending_approval")
            ),
            "{label}: {body}"
        );
        assert_eq!(top["arguments"]["city"], "Lyon");
        assert!(top["score"].as_f64().unwrap() > 0.0);
        assert!(body["discovery"].is_null());
        // The same JSON as REST gives (REST serialises the runtime's answer with `to_value`),
        // parsed the same way.
        let direct = s
            .runtime
            .resolve("what's the air quality in Lyon", 5, &Actor("test".into()))
            .await
            .unwrap();
        let direct = serde_json::to_value(&direct).unwrap().to_string();
        let direct: Value = serde_json::from_str(&direct).unwrap();
        assert_eq!(direct, body, "{label}");

        // A gap: a new discovery request, recorded as the MCP caller; asking again reuses it.
        let before = s.runtime.discovery_requests().await.unwrap().len();
        let r = client
            .call_tool(call(
                "slovo_resolve",
                json!({"query": "order a large pepperoni pizza", "limit": 3}),
            ))
            .await
            .unwrap();
        assert_eq!(r.is_error, Some(false), "{label}: {r:?}");
        let gap = r.structured_content.clone().unwrap();
        assert_eq!(gap["gap"], true, "{label}: {gap}");
        assert!(gap["gap_reason"].is_string(), "{gap}");
        assert!(gap["candidates"].as_array().unwrap().len() <= 3);
        assert_eq!(gap["discovery"]["created"], true, "{gap}");
        assert_eq!(gap["discovery"]["status"], "pending", "{gap}");
        let id = gap["discovery"]["id"].as_str().unwrap().to_string();
        let row = s.runtime.discovery_request(&id).await.unwrap();
        assert_eq!(row.description, "order a large pepperoni pizza");
        let requested = s
            .runtime
            .store()
            .audit_page(0, 1000)
            .await
            .unwrap()
            .into_iter()
            .find(|e| e.kind == "discovery.requested")
            .unwrap();
        assert_eq!(requested.actor, format!("mcp:{}", s.agent_id), "{label}");
        let r = client
            .call_tool(call(
                "slovo_resolve",
                json!({"query": "order a large pepperoni pizza"}),
            ))
            .await
            .unwrap();
        let again = r.structured_content.clone().unwrap();
        assert_eq!(again["gap"], true);
        assert_eq!(
            (&again["discovery"]["id"], &again["discovery"]["created"]),
            (&json!(id), &json!(false)),
            "{label}: {again}"
        );
        assert_eq!(s.runtime.discovery_requests().await.unwrap().len(), before + 1);

        // Invalid arguments: isError with the reason, nothing opened.
        for bad in [
            json!({}),
            json!({"query": "  "}),
            json!({"query": "pizza", "limit": 0}),
            json!({"query": "pizza", "limit": 101}),
            json!({"query": "pizza", "extra": 1}),
        ] {
            let r = client
                .call_tool(call("slovo_resolve", bad.clone()))
                .await
                .unwrap();
            assert_eq!(r.is_error, Some(true), "{label}: {bad} {r:?}");
            assert!(text(&r).contains("invalid arguments"), "{}", text(&r));
        }
        assert_eq!(s.runtime.discovery_requests().await.unwrap().len(), before + 1);
        s.runtime.verify_audit().await.unwrap();
        client.cancel().await.unwrap();
    }
}

/// A chain is a capability like any other over MCP: listed with the hints derived from its
/// steps, and called through the call path, its steps recorded as children of its execution.
#[tokio::test]
async fn chains_are_listed_with_derived_hints_and_called() {
    for s in servers().await {
        let label = s.label;
        import_and_approve(&s.runtime, ECHO).await;
        let chain = json!({
            "name": "twice", "version": "1.0.0", "description": "Says it twice",
            "capabilities": [{"name": "run", "description": "Say it twice",
                              "parameters": {"type": "object", "properties": {"text": {"type": "string"}}}}],
            "execution": {"type": "chain", "steps": [
                {"id": "one", "call": "echo.say", "with": {"text": "$.input.text"}},
                {"id": "two", "call": "echo.say", "with": {"text": "$.steps.one.output.text"}}
            ], "result": {"said": "$.steps.two.output.text"}}
        });
        import_and_approve(&s.runtime, &chain.to_string()).await;
        let (client, _) = legacy_client(&s.url, &s.agent).await;
        let tools = client.list_all_tools().await.unwrap();
        let twice = find(&tools, "twice__run");
        let hints = twice.annotations.clone().unwrap();
        // Both steps call a read-only capability: so is the chain.
        assert_eq!(hints.read_only_hint, Some(true), "{label}");
        assert_eq!(hints.destructive_hint, Some(false), "{label}");

        let result = client
            .call_tool(call("twice__run", json!({"text": "hi"})))
            .await
            .unwrap();
        assert_eq!(result.is_error, Some(false), "{label}: {}", text(&result));
        assert_eq!(result.structured_content, Some(json!({"said": "hi"})), "{label}");
        let id = execution_id(&result);
        let steps = s.runtime.store().child_executions(&id).await.unwrap();
        assert_eq!(steps.len(), 2, "{label}");
        assert!(
            steps
                .iter()
                .all(|e| e.tool == "echo" && e.actor == format!("mcp:{}", s.agent_id)),
            "{label}"
        );
        client.cancel().await.unwrap();
    }
}

/// Protocol negotiation at Slovo's MCP endpoint: `initialize` gets the version asked for when
/// the server speaks it, otherwise the newest one that has a handshake (2025-11-25, also for a
/// client asking for the stateless 2026-07-28 through `initialize`); a stateless client gets
/// 2026-07-28 through `server/discover`; one that offers only versions the server does not
/// speak is refused.
#[tokio::test]
async fn protocol_versions_are_negotiated() {
    for s in servers().await {
        let label = s.label;
        let http = reqwest::Client::new();
        for (asked, answered) in [
            ("2025-11-25", "2025-11-25"),
            ("2025-06-18", "2025-06-18"),
            ("2025-03-26", "2025-03-26"),
            ("2026-07-28", "2025-11-25"),
            ("2099-12-31", "2025-11-25"),
        ] {
            let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": asked, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
            let resp = http
                .post(&s.url)
                .bearer_auth(&s.agent)
                .header("accept", "application/json, text/event-stream")
                .json(&init)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{label} {asked}");
            let body = resp.text().await.unwrap();
            // A JSON body, or server-sent events whose data is the answer.
            let answer: Value = serde_json::from_str(&body).unwrap_or_else(|_| {
                body.lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
                    .find(|v| v.get("id").is_some())
                    .unwrap_or_else(|| panic!("{label} {asked}: no answer in {body}"))
            });
            assert_eq!(
                answer["result"]["protocolVersion"], answered,
                "{label} {asked}: {answer}"
            );
        }

        let modern = ClientConfig::default()
            .serve_with_lifecycle(
                transport(&s.url, &s.agent),
                ClientLifecycleMode::Discover {
                    preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                },
            )
            .await
            .unwrap();
        assert_eq!(
            only_builtin(&modern.list_all_tools().await.unwrap()),
            "slovo_resolve",
            "{label}"
        );
        modern.cancel().await.unwrap();

        let unknown: ProtocolVersion = serde_json::from_value(json!("2099-12-31")).unwrap();
        let refused = ClientConfig::default()
            .serve_with_lifecycle(
                transport(&s.url, &s.agent),
                ClientLifecycleMode::Discover {
                    preferred_versions: vec![unknown],
                },
            )
            .await;
        assert!(
            refused.is_err(),
            "{label}: a version the server does not speak was accepted"
        );
        drop(s.dir);
    }
}
