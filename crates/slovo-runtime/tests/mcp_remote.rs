//! Remote MCP servers (`transport: streamable-http`) through `Runtime::import_mcp` and
//! `Runtime::call`: the real `everything` reference server in its streamable-HTTP mode on
//! loopback (event-stream answers, sessions, progress), and a small server written here
//! (JSON answers) for the credential, the grant and redirects.
//!
//! Loopback is not a public address: these runtimes allow every address through the HTTP
//! configuration's switch (`http.allow_private`), except the one that proves the refusal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod mcp_support;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use mcp_support::{Harness, actor, installed_server};
use serde_json::{Value, json};
use slovo_core::execution::ExecutionStatus;
use slovo_core::permissions::Narrowing;
use slovo_runtime::{McpImport, McpSource};

/// The `everything` server listening for streamable HTTP on a loopback port; killed on drop.
struct Everything {
    child: Child,
    port: u16,
}

impl Drop for Everything {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

async fn start_everything(bundle: &std::path::Path) -> Everything {
    let port = free_port();
    let script = bundle.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    let child = Command::new("/usr/bin/node")
        .arg(&script)
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Everything { child, port };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the everything server did not listen on port {port}");
}

fn server_json(port: u16) -> Value {
    json!({
        "name": "io.github.modelcontextprotocol/server-everything",
        "description": "Exercises the protocol, at its streamable-HTTP endpoint",
        "version": "2026.8.31",
        "remotes": [{
            "type": "streamable-http",
            "url": format!("http://127.0.0.1:{port}/mcp"),
            "headers": [
                {"name": "X-Client", "value": "slovo-test"},
                {"name": "X-Api-Key", "isSecret": true, "description": "not checked by this server"}
            ]
        }]
    })
}

fn import_request(path: &std::path::Path) -> McpImport {
    McpImport {
        source: McpSource::Path(path.to_path_buf()),
        name: Some("everything".into()),
        env: Default::default(),
        args: Vec::new(),
        secrets: Default::default(),
    }
}

#[tokio::test]
async fn everything_over_streamable_http_is_imported_from_remotes_approved_and_called() {
    let Some(bundle) = installed_server("everything") else {
        return;
    };
    let server = start_everything(&bundle).await;
    let h = Harness::with_loopback_remotes().await;
    let path = h.dir.path().join("server.json");
    std::fs::write(&path, server_json(server.port).to_string()).unwrap();

    let report = h.rt.import_mcp(&import_request(&path), &actor()).await.unwrap();
    assert_eq!(report.import.tool, "everything");
    assert_eq!(report.secrets, ["X-Api-Key"]);
    let names: Vec<&str> = report.tools.iter().map(|t| t.tool.as_str()).collect();
    assert!(
        names.contains(&"echo") && names.contains(&"get-structured-content"),
        "{names:?}"
    );
    let shown = h.rt.show("everything").await.unwrap();
    let execution = &shown.manifest["execution"];
    assert_eq!(execution["transport"], "streamable-http");
    assert_eq!(execution["url"], format!("http://127.0.0.1:{}/mcp", server.port));
    assert_eq!(execution["headers"]["X-Client"], "slovo-test");
    assert_eq!(execution["secret_headers"]["X-Api-Key"], "X-Api-Key");
    assert_eq!(
        shown.manifest["permissions"]["network_allow"],
        json!([format!("127.0.0.1:{}", server.port)])
    );

    h.rt.approve("everything", &Narrowing::default(), &actor())
        .await
        .unwrap();
    // The secret header is the person's to set; without it nothing is sent.
    let refused = h.call("everything", "echo", json!({"message": "hi"})).await;
    assert_eq!(refused.status, ExecutionStatus::Failure);
    assert!(refused.error.unwrap().contains("\"X-Api-Key\""));
    h.rt.set_secret(
        "everything",
        "X-Api-Key",
        zeroize::Zeroizing::new("key-123".into()),
        &actor(),
    )
    .await
    .unwrap();

    let echo = h
        .call("everything", "echo", json!({"message": "over http"}))
        .await;
    assert_eq!(echo.status, ExecutionStatus::Success, "{echo:#?}");
    assert_eq!(echo.output, Some(json!("Echo: over http")));
    let weather = h
        .call(
            "everything",
            "get-structured-content",
            json!({"location": "Chicago"}),
        )
        .await;
    assert_eq!(weather.status, ExecutionStatus::Success, "{weather:#?}");
    assert!(weather.output.unwrap()["temperature"].is_number());
    // Progress arrives on the call's event stream and is kept on the record.
    let long = h
        .call(
            "everything",
            "trigger-long-running-operation",
            json!({"duration": 0.2, "steps": 2}),
        )
        .await;
    assert_eq!(long.status, ExecutionStatus::Success, "{long:#?}");
    let notes = long.stderr.unwrap_or_default();
    assert!(notes.contains("[mcp] progress:"), "{notes}");
}

#[tokio::test]
async fn loopback_is_not_public_without_the_switch() {
    let Some(bundle) = installed_server("everything") else {
        return;
    };
    let server = start_everything(&bundle).await;
    let h = Harness::new().await;
    let path = h.dir.path().join("server.json");
    std::fs::write(&path, server_json(server.port).to_string()).unwrap();
    let e =
        h.rt.import_mcp(&import_request(&path), &actor())
            .await
            .unwrap_err()
            .to_string();
    assert!(e.contains("127.0.0.1 is not a public address"), "{e}");
    assert!(h.rt.show("everything").await.is_err(), "nothing is proposed");
}

/// A streamable-HTTP MCP server answering in JSON, recording the headers of every
/// `tools/call`, redirecting every request once told to, and (when `guarded`) refusing
/// `tools/list` without its credential, as a server that lists its tools to its customers only.
#[derive(Clone, Default)]
struct Remote {
    hits: Arc<AtomicUsize>,
    calls: Arc<Mutex<Vec<HeaderMap>>>,
    redirect: Arc<Mutex<Option<String>>>,
    guarded: Arc<AtomicBool>,
    /// The `tools/list` requests refused for want of the credential.
    refused_lists: Arc<AtomicUsize>,
}

/// The credential the test servers expect.
const CREDENTIAL: &str = "Bearer s3cret-token";

async fn answer(State(remote): State<Remote>, headers: HeaderMap, body: String) -> Response {
    remote.hits.fetch_add(1, Ordering::SeqCst);
    if let Some(to) = remote.redirect.lock().unwrap().clone() {
        return Redirect::temporary(&to).into_response();
    }
    let message: Value = serde_json::from_str(&body).unwrap();
    let credential = headers.get("authorization").and_then(|v| v.to_str().ok());
    if remote.guarded.load(Ordering::SeqCst)
        && message["method"] == "tools/list"
        && credential != Some(CREDENTIAL)
    {
        remote.refused_lists.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::UNAUTHORIZED, "the tool list is for customers").into_response();
    }
    let id = message["id"].clone();
    let result = |result: Value| axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": result}));
    match message["method"].as_str().unwrap_or("") {
        "initialize" => (
            [("mcp-session-id", "session-7")],
            result(json!({
                "protocolVersion": "2025-11-25",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "remote-test", "version": "1.0.0"},
            })),
        )
            .into_response(),
        "tools/list" => result(json!({"tools": [{
            "name": "whoami",
            "description": "Says whether the request carried the credential",
            "inputSchema": {"type": "object"},
        }]}))
        .into_response(),
        "tools/call" => {
            remote.calls.lock().unwrap().push(headers.clone());
            let ok = credential == Some(CREDENTIAL);
            result(json!({
                "content": [{"type": "text", "text": if ok { "credential: ok" } else { "credential: missing" }}],
                "isError": !ok,
            }))
            .into_response()
        }
        // Notifications and responses.
        _ => StatusCode::ACCEPTED.into_response(),
    }
}

async fn start_remote(ip: &str) -> (u16, Remote) {
    let remote = Remote::default();
    let app = Router::new()
        .route("/mcp", post(answer).delete(|| async { StatusCode::NO_CONTENT }))
        .with_state(remote.clone());
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, remote)
}

fn remote_manifest(name: &str, url: &str, granted: &str) -> Value {
    json!({
        "name": name,
        "version": "1.0.0",
        "description": "A remote MCP server",
        "capabilities": [{"name": "whoami", "description": "Who am I", "parameters": {"type": "object"}}],
        "permissions": {"network_allow": [granted], "timeout_s": 5},
        "execution": {
            "type": "mcp", "transport": "streamable-http", "url": url,
            "secret_headers": {"Authorization": "token"},
        },
    })
}

#[tokio::test]
async fn the_credential_goes_to_the_granted_host_and_a_redirect_elsewhere_is_refused() {
    if installed_server("everything").is_none() {
        return; // the harness needs the process sandbox all the same
    }
    let (port_a, host_a) = start_remote("127.0.0.1").await;
    let (port_b, host_b) = start_remote("127.0.0.2").await;
    let granted = format!("127.0.0.1:{port_a}");
    let h = Harness::with_loopback_remotes().await;
    h.add(
        None,
        &remote_manifest("remote-a", &format!("http://{granted}/mcp"), &granted),
    )
    .await;
    h.rt.set_secret(
        "remote-a",
        "token",
        zeroize::Zeroizing::new("Bearer s3cret-token".into()),
        &actor(),
    )
    .await
    .unwrap();

    let call = h.call("remote-a", "whoami", json!({})).await;
    assert_eq!(call.status, ExecutionStatus::Success, "{call:#?}");
    assert_eq!(call.output, Some(json!("credential: ok")));
    let seen = host_a.calls.lock().unwrap().last().cloned().unwrap();
    assert_eq!(seen["mcp-session-id"], "session-7");
    assert_eq!(seen["mcp-protocol-version"], "2025-11-25");
    assert!(seen["accept"].to_str().unwrap().contains("text/event-stream"));

    // Host A now sends every request on to host B, which the grant does not name.
    *host_a.redirect.lock().unwrap() = Some(format!("http://127.0.0.2:{port_b}/mcp"));
    let redirected = h.call("remote-a", "whoami", json!({})).await;
    assert_eq!(redirected.status, ExecutionStatus::Failure);
    let error = redirected.error.unwrap();
    assert!(
        error.contains(&format!("redirect to http://127.0.0.2:{port_b}/mcp refused"))
            && error.contains("not among the granted hosts"),
        "{error}"
    );
    assert_eq!(host_b.hits.load(Ordering::SeqCst), 0, "host B was never reached");

    // A tool whose endpoint is on host B with a grant for host A alone: refused before
    // anything is sent (its install read the tool list from B itself).
    h.add(
        None,
        &remote_manifest("remote-b", &format!("http://127.0.0.2:{port_b}/mcp"), &granted),
    )
    .await;
    h.rt.set_secret(
        "remote-b",
        "token",
        zeroize::Zeroizing::new("Bearer s3cret-token".into()),
        &actor(),
    )
    .await
    .unwrap();
    let before = host_b.hits.load(Ordering::SeqCst);
    let refused = h.call("remote-b", "whoami", json!({})).await;
    assert_eq!(refused.status, ExecutionStatus::Failure);
    let error = refused.error.unwrap();
    assert!(error.contains("not among the granted hosts"), "{error}");
    assert_eq!(
        host_b.hits.load(Ordering::SeqCst),
        before,
        "nothing was sent to host B"
    );
}

/// A `server.json` for the test server at `url`, whose `Authorization` header is a secret.
fn guarded_server_json(url: &str) -> Value {
    json!({
        "name": "io.example/guarded",
        "description": "Lists its tools to its customers only",
        "version": "1.0.0",
        "remotes": [{
            "type": "streamable-http",
            "url": url,
            "headers": [{"name": "Authorization", "isSecret": true, "isRequired": true}]
        }]
    })
}

fn guarded_import(path: &std::path::Path, secrets: &[(&str, &str)]) -> McpImport {
    let values = secrets
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    McpImport {
        secrets: slovo_core::secrets::Secrets::new(values),
        name: Some("guarded".into()),
        ..import_request(path)
    }
}

#[tokio::test]
async fn a_server_that_lists_its_tools_only_with_its_credential_takes_it_at_import() {
    if installed_server("everything").is_none() {
        return; // the harness needs the process sandbox all the same
    }
    let (port, server) = start_remote("127.0.0.1").await;
    server.guarded.store(true, Ordering::SeqCst);
    let h = Harness::with_loopback_remotes().await;
    let path = h.dir.path().join("server.json");
    let url = format!("http://127.0.0.1:{port}/mcp");
    std::fs::write(&path, guarded_server_json(&url).to_string()).unwrap();

    // Without the credential the server will not list its tools: nothing can be proposed.
    let e =
        h.rt.import_mcp(&guarded_import(&path, &[]), &actor())
            .await
            .unwrap_err();
    assert!(e.to_string().contains("401"), "{e}");
    assert_eq!(server.refused_lists.load(Ordering::SeqCst), 1);
    // A secret the server does not declare is refused before anything is sent.
    let hits = server.hits.load(Ordering::SeqCst);
    let e =
        h.rt.import_mcp(&guarded_import(&path, &[("token", CREDENTIAL)]), &actor())
            .await
            .unwrap_err();
    assert!(
        e.to_string().contains("\"token\" is not one of the server's"),
        "{e}"
    );
    assert_eq!(server.hits.load(Ordering::SeqCst), hits, "nothing was sent");
    // A wrong credential: refused by the server, and neither the tool nor the secret stored.
    let e =
        h.rt.import_mcp(
            &guarded_import(&path, &[("Authorization", "Bearer wrong")]),
            &actor(),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("401"), "{e}");
    assert!(h.rt.show("guarded").await.is_err(), "nothing is proposed");
    assert!(
        h.rt.secret_names("guarded").await.unwrap().is_empty(),
        "no secret is stored"
    );

    // With it: listed, proposed, and the secret stored with the proposal.
    let report =
        h.rt.import_mcp(&guarded_import(&path, &[("Authorization", CREDENTIAL)]), &actor())
            .await
            .unwrap();
    let names: Vec<&str> = report.tools.iter().map(|t| t.tool.as_str()).collect();
    assert_eq!(names, ["whoami"]);
    assert_eq!(report.secrets, ["Authorization"]);
    assert_eq!(h.rt.secret_names("guarded").await.unwrap(), ["Authorization"]);
    let refused = server.refused_lists.load(Ordering::SeqCst);

    // Approval lists the tools again, with the stored secret; then calls carry it.
    h.rt.approve("guarded", &Narrowing::default(), &actor())
        .await
        .unwrap();
    assert_eq!(
        server.refused_lists.load(Ordering::SeqCst),
        refused,
        "approval's listing carried the credential"
    );
    let call = h.call("guarded", "whoami", json!({})).await;
    assert_eq!(call.status, ExecutionStatus::Success, "{call:#?}");
    assert_eq!(call.output, Some(json!("credential: ok")));
}
