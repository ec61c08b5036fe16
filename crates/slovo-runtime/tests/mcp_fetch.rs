//! The real `mcp-server-fetch` (PyPI) as a tool with a network grant: through the egress
//! proxy it reaches the granted test host, and nothing else. The test host lives in a network
//! namespace this test creates, at a TEST-NET-2 address (198.51.100.0/24) the proxy is told to
//! treat as public; nothing leaves this machine. The server is installed by
//! `scripts/ci-mcp-servers-setup.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "mcp_support/mod.rs"]
mod mcp_support;
#[path = "../../slovo-sandbox/tests/netns_support/mod.rs"]
mod netns_support;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use mcp_support::{actor, bundle, capability, installed_server, python_manifest};
use netns_support::{Outside, Scene};
use serde_json::{Value, json};
use slovo_core::execution::ExecutionStatus;
use slovo_core::permissions::Narrowing;
use slovo_egress::EgressProxy;
use slovo_runtime::{CallRequest, ImportSource, Runtime};
use slovo_sandbox::Backends;
use slovo_sandbox::mcp::McpBackend;
use slovo_sandbox::process::{ProcessBackend, ProcessConfig};

/// A runtime whose process sandbox reaches the world through `scene`'s proxy (which knows
/// `granted.test` and `other.test` as the test host, and `inside.test` as 127.0.0.1).
async fn runtime(dir: &std::path::Path, proxy: EgressProxy) -> Runtime {
    let data = dir.join("data");
    let mut process = ProcessBackend::new(ProcessConfig::new(data.join("sandbox"))).unwrap();
    assert_eq!(process.refusal(), None, "this host must support the full sandbox");
    process.set_egress(proxy);
    let process = Arc::new(process);
    let backends = Backends::new()
        .with(process.clone())
        .with(Arc::new(McpBackend::new(process)));
    let store = slovo_store::Store::open_sqlite(&dir.join("slovo.db"))
        .await
        .unwrap();
    Runtime::new(store, backends, data)
}

async fn fetch(rt: &Runtime, url: &str, raw: bool) -> (ExecutionStatus, String, Value) {
    let exec = rt
        .call(CallRequest {
            tool: "fetcher".into(),
            capability: "fetch".into(),
            arguments: json!({"url": url, "raw": raw, "max_length": 2000}),
            conversation_id: None,
            turn_id: None,
            actor: actor(),
        })
        .await
        .unwrap();
    let record = serde_json::to_value(rt.execution(&exec.id).await.unwrap()).unwrap();
    let text = format!(
        "{} {}",
        record["output"].as_str().unwrap_or_default(),
        record["error"].as_str().unwrap_or_default()
    );
    (exec.status, text, record)
}

#[tokio::test]
async fn fetch_server_reaches_the_granted_host_and_nothing_else() {
    let Some(server) = installed_server("fetch") else {
        return;
    };
    // Addresses 198.51.100.248–251: apart from the sandbox suites' test hosts.
    let Scene {
        outside,
        port,
        heads,
        host_tcp,
        proxy,
        ..
    } = Scene::new(Outside::new('f', 248, 1), "127.0.0.1", "198.51.100.248/30");
    let host_port = host_tcp.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let rt = runtime(dir.path(), proxy).await;

    let mut manifest = python_manifest(
        "fetcher",
        "mcp_server_fetch",
        // The server's own private-address check is switched off: what keeps the tool off
        // the host's services must be the proxy, outside the tool.
        &["--ignore-robots-txt", "--allow-private-ips"],
        vec![capability("fetch", json!({"type": "object"}))],
    );
    manifest["permissions"]["network_allow"] = json!([format!("granted.test:{port}")]);
    let b = bundle(dir.path(), Some(&server), &manifest);
    rt.import(ImportSource::Bundle(b), &actor()).await.unwrap();
    rt.approve("fetcher", &Narrowing::default(), &actor())
        .await
        .unwrap();

    // The granted host.
    let (status, text, record) = fetch(&rt, &format!("http://granted.test:{port}/hello"), true).await;
    assert_eq!(status, ExecutionStatus::Success, "{record:#}");
    assert!(text.contains("outside says /hello"), "{record:#}");
    let seen = heads.lock().unwrap().clone();
    assert!(
        seen.iter().any(|h| h.starts_with("GET /hello ")),
        "the request reached the test host: {seen:?}"
    );

    // Another name for the same host is not granted: refused by name, before resolution.
    let before = heads.lock().unwrap().len();
    let (status, text, record) = fetch(&rt, &format!("http://other.test:{port}/secret"), true).await;
    assert_ne!(status, ExecutionStatus::Success, "{record:#}");
    assert!(!text.contains("outside says"), "{record:#}");
    let denials = record["network_denials"].as_array().cloned().unwrap_or_default();
    assert!(
        denials.iter().any(|d| d["host"] == "other.test"),
        "the refusal is on the record: {record:#}"
    );
    assert_eq!(
        heads.lock().unwrap().len(),
        before,
        "nothing reached the test host"
    );

    // The host's own services: neither by name nor by address.
    for url in [
        format!("http://inside.test:{host_port}/"),
        format!("http://127.0.0.1:{host_port}/"),
    ] {
        let (status, _, record) = fetch(&rt, &url, true).await;
        assert_ne!(status, ExecutionStatus::Success, "{url}: {record:#}");
        assert!(
            record["network_denials"]
                .as_array()
                .is_some_and(|d| !d.is_empty()),
            "{url}: {record:#}"
        );
    }
    netns_support::nothing_arrived(&host_tcp);

    // The HTML simplifier may try to run `npm install` into the read-only bundle (the system's
    // node is on the server's path): that fails without network for the registry, and must
    // not sink the call.
    let (status, _, record) = fetch(&rt, &format!("http://granted.test:{port}/page"), false).await;
    assert!(
        matches!(status, ExecutionStatus::Success | ExecutionStatus::Failure),
        "the simplifier path ends as a tool answer, not a crash: {status:?} {record:#}"
    );
    drop(outside);
}
