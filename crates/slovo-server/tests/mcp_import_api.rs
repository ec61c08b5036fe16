//! `POST /v1/mcp-servers/import` against a real runtime: the memory server fetched offline
//! from the npm cache `scripts/ci-mcp-servers-setup.sh` fills, its tools read in the process
//! sandbox; a range or a tag refused with a 422 naming the problem; authentication and the
//! admin role required. Without the cache (or the sandbox) the test skips, or fails under CI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};
use slovo_core::access::Role;
use slovo_runtime::{Actor, McpPackages, Runtime, RuntimeSettings};
use slovo_sandbox::Backends;
use slovo_sandbox::mcp::McpBackend;
use slovo_sandbox::process::{ProcessBackend, ProcessConfig};
use slovo_server::{AppState, ServerConfig};

/// The caches of the setup script, or why the test cannot run.
fn package_caches() -> Result<PathBuf, String> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/root/.cache"));
    let root = cache.join("slovo-test/mcp");
    if root.join("bundles/memory/.ready").is_file() {
        Ok(root)
    } else {
        Err(format!(
            "the MCP package caches are not at {}: run scripts/ci-mcp-servers-setup.sh",
            root.display()
        ))
    }
}

fn skip_or_fail(reason: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{reason}");
    }
    eprintln!("skipped: {reason}");
}

async fn post(base: &str, body: &Value, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/v1/mcp-servers/import"))
        .json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test]
async fn importing_an_mcp_server_over_rest() {
    slovo_sandbox::http::ensure_tls_provider();
    let root = match package_caches() {
        Ok(root) => root,
        Err(reason) => return skip_or_fail(&reason),
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let process = Arc::new(ProcessBackend::new(ProcessConfig::new(data.join("sandbox"))).unwrap());
    if let Some(refusal) = process.refusal() {
        return skip_or_fail(&format!(
            "the process sandbox cannot run MCP servers here: {refusal}"
        ));
    }
    let backends = Backends::new()
        .with(process.clone())
        .with(Arc::new(McpBackend::new(process)));
    let store = slovo_store::Store::open_sqlite(&dir.path().join("slovo.db"))
        .await
        .unwrap();
    let settings = RuntimeSettings {
        mcp_packages: McpPackages {
            npm_cache: Some(root.join("npm-cache")),
            pip_find_links: Some(root.join("wheelhouse")),
            ..McpPackages::default()
        },
        ..RuntimeSettings::default()
    };
    let runtime = Arc::new(Runtime::new(store, backends, data).with_settings(settings));
    let cli = Actor("test".into());
    let admin = runtime.create_token(Role::Admin, None, &cli).await.unwrap().token;
    let agent = runtime.create_token(Role::Agent, None, &cli).await.unwrap().token;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(slovo_server::serve(
        listener,
        AppState::new(runtime.clone(), ServerConfig::default()),
        std::future::pending(),
    ));
    let memory = json!({
        "source": "npm:@modelcontextprotocol/server-memory@2026.8.31",
        "env": {"MEMORY_FILE_PATH": "/data/memory.jsonl"},
    });

    // Authentication, then the admin role.
    let (st, body) = post(&base, &memory, None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
    let (st, body) = post(&base, &memory, Some(&agent)).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");

    // A range or a tag lets the registry decide later what runs: refused, naming why.
    for (spec, says) in [
        (
            "npm:@modelcontextprotocol/server-memory@^2026.8.0",
            "must be exact",
        ),
        ("npm:@modelcontextprotocol/server-memory@latest", "must be exact"),
        (
            "npm:@modelcontextprotocol/server-memory",
            "name the exact version",
        ),
        ("pypi:mcp-server-time>=2026", "ranges (>=, ~=, !=) are refused"),
        ("oci:ghcr.io/acme/weather-mcp:1.2.0", "names no digest"),
    ] {
        let (st, body) = post(&base, &json!({"source": spec}), Some(&admin)).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{spec}: {body}");
        assert_eq!(body["error"]["code"], "mcp_import_failed", "{spec}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{spec}: {message}");
    }
    // Secrets given with the import reach the runtime: one the server does not declare (a
    // remote server's secret header, a package server's secret variable) is refused before
    // anything is sent or fetched.
    let remote = json!({"server_json": {
        "name": "io.example/guarded",
        "remotes": [{"type": "streamable-http", "url": "https://mcp.example.org/mcp",
                     "headers": [{"name": "Authorization", "isSecret": true}]}]},
        "secrets": {"token": "Bearer x"}});
    let (st, body) = post(&base, &remote, Some(&admin)).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("\"token\" is not one of the server's (its secret headers: Authorization)"),
        "{message}"
    );
    assert!(
        !message.contains("Bearer x"),
        "the value is never echoed: {message}"
    );
    let mut with_secret = memory.clone();
    with_secret["secrets"] = json!({"API_KEY": "k"});
    let (st, body) = post(&base, &with_secret, Some(&admin)).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"API_KEY\" is not one of the server's (its secret environment variables: none)"),
        "{body}"
    );
    // A path on the server's host is not a remote client's to name.
    let (st, body) = post(&base, &json!({"source": "/etc/passwd"}), Some(&admin)).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert!(runtime.store().tool("server-memory").await.unwrap().is_none());

    let (st, body) = post(&base, &memory, Some(&admin)).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert_eq!(body["import"]["tool"], "server-memory");
    assert_eq!(body["import"]["status"], "pending_approval");
    assert_eq!(
        body["package"],
        "npm:@modelcontextprotocol/server-memory@2026.8.31"
    );
    assert!(
        body["integrity"]["integrity"]
            .as_str()
            .unwrap()
            .starts_with("sha512-"),
        "{body}"
    );
    let tools: Vec<&str> = body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tool"].as_str().unwrap())
        .collect();
    assert!(
        tools.contains(&"create_entities") && tools.contains(&"read_graph"),
        "{tools:?}"
    );
    let tool = runtime.store().tool("server-memory").await.unwrap().unwrap();
    assert_eq!(tool.status.to_string(), "pending_approval");
    runtime.verify_audit().await.unwrap();
}
