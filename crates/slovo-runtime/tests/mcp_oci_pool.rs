//! Warm, but never reused, for MCP servers in OCI images: calls served through `Runtime::call`
//! from the pool's containers, started ahead of their call with the real Docker backend (the
//! test server of `mcp_support/oci_image.rs`).
//!
//! - a warm container serves exactly one call: the next call's server has not seen the
//!   marker every call leaves in `/tmp`, has served no call before, and drew another nonce when
//!   it started; every call has a container of its own (its id is the record's sandbox);
//! - a warm container is as isolated as a cold one: no network without a grant (its
//!   connection to a test address is attempted and fails), a read-only root, the backend's uid;
//! - `/data` is the tool's one volume: a warm container sees what the calls before it wrote;
//! - a warm container's server is checked against the pin when it is got ready: a tool list
//!   that changed is the refusal of the call that takes it;
//! - a new secret, and an upgrade to another image approved with another grant, are served
//!   cold by the new sandbox, never by the old warm container, which is removed;
//! - warm containers are removed when their pool goes idle, at shutdown (before it returns),
//!   and when the runtime is dropped without a shutdown (and its async runtime with it): none
//!   is left behind.
//!
//! Needs the Docker daemon (`scripts/ci-docker-setup.sh`) and root (the state volumes).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "mcp_support/oci_harness.rs"]
mod oci_harness;
#[path = "mcp_support/oci_image.rs"]
mod oci_image;

use std::collections::HashSet;
use std::time::Duration;

use oci_harness::{Harness, actor, containers_of, settle_to_no_containers};
use serde_json::{Value, json};
use slovo_core::execution::ExecutionStatus;
use slovo_core::permissions::Narrowing;
use slovo_runtime::{ExecutionView, McpSource};
use slovo_sandbox::mcp::PoolConfig;

/// How long a test waits for a warm container (a container start and the server's
/// `initialize`, debug build, shared machine).
const WARM_WAIT: Duration = Duration::from_secs(30);

/// Imports the test image (`image`, by digest) as `tool` in its plain mode, and approves it
/// with `narrowing`.
async fn add(h: &Harness, tool: &str, image: &oci_image::TestImage, narrowing: &Narrowing) -> String {
    let report = h
        .import(
            McpSource::parse(&format!("oci:{}", image.by_digest())),
            tool,
            &["plain"],
        )
        .await;
    h.rt.approve(tool, narrowing, &actor()).await.unwrap();
    report.import.version
}

/// Imports `image` as the release `version` of `oci-up`: a registry `server.json` naming it by
/// digest, whose server reads the secret `TEST_TOKEN`; the version imported.
async fn release(h: &Harness, image: &oci_image::TestImage, version: &str) -> String {
    let server = json!({
        "name": "io.example/oci-up", "description": "A server in an image", "version": version,
        "packages": [{
            "registryType": "oci", "identifier": image.by_digest(), "transport": {"type": "stdio"},
            "packageArguments": [{"type": "positional", "value": "plain"}],
            "environmentVariables": [{"name": "TEST_TOKEN", "isSecret": true}]
        }]
    });
    h.import(McpSource::ServerJson(server), "oci-up", &[])
        .await
        .import
        .version
}

/// Sets the secret `TEST_TOKEN` of `oci-up`.
async fn set_token(h: &Harness, value: &str) {
    h.rt.set_secret("oci-up", "TEST_TOKEN", value.to_string().into(), &actor())
        .await
        .unwrap();
}

/// Waits (at most 15 s) until `container` is gone; whether it is.
async fn removed(container: &str) -> bool {
    let until = std::time::Instant::now() + Duration::from_secs(15);
    while containers_of("oci-up").iter().any(|c| c == container) {
        if std::time::Instant::now() > until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}

/// Whether a warm container served the call, as its stored record says; a warm record's
/// times agree with each other (the server was ready after its container started).
fn was_warm(exec: &ExecutionView) -> bool {
    match exec.warm {
        Some(w) => {
            assert!(w.ready_ms_before_call <= w.started_ms_before_call, "{w:?}");
            true
        }
        None => false,
    }
}

/// The `probe` tool's report.
fn probed(exec: &ExecutionView) -> &Value {
    assert_eq!(exec.status, ExecutionStatus::Success, "{exec:#?}");
    exec.output.as_ref().expect("probe answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_container_serves_exactly_one_call() {
    let Some(()) = oci_image::docker_ready() else {
        return;
    };
    let h = Harness::with_pool(1).await;
    add(&h, "oci-warm", oci_image::image(), &Narrowing::default()).await;

    // The first call starts its container cold; it leaves a marker in /tmp and a count in
    // its server's memory.
    let first = h.call("oci-warm", "probe", json!({})).await;
    assert!(!was_warm(&first), "{first:#?}");
    assert_eq!(
        probed(&first)["left_behind"],
        json!({"tmp_marker_seen": false, "calls_served_before": 0})
    );
    let mut nonces = HashSet::from([probed(&first)["nonce"].as_str().unwrap().to_string()]);
    let mut containers = HashSet::from([first.sandbox_id.clone().unwrap()]);

    for round in 0..3 {
        assert!(
            h.mcp.wait_warm("oci-warm", WARM_WAIT).await,
            "round {round}: no warm container"
        );
        let waiting = containers_of("oci-warm");
        assert_eq!(
            waiting.len(),
            1,
            "round {round}: one warm container waits: {waiting:?}"
        );
        let exec = h.call("oci-warm", "probe", json!({})).await;
        assert!(was_warm(&exec), "round {round}: served cold: {exec:#?}");
        let seen = probed(&exec);
        // A fresh server in a fresh container: nothing of any earlier call.
        assert_eq!(
            seen["left_behind"],
            json!({"tmp_marker_seen": false, "calls_served_before": 0}),
            "round {round}: the container was used before: {seen}"
        );
        assert!(
            nonces.insert(seen["nonce"].as_str().unwrap().to_string()),
            "round {round}: a server that served an earlier call served this one: {seen}"
        );
        // The container that waited served the call, and no call had it before.
        let container = exec.sandbox_id.clone().unwrap();
        assert_eq!(
            waiting,
            std::slice::from_ref(&container),
            "round {round}: {exec:#?}"
        );
        assert!(
            containers.insert(container),
            "round {round}: a container served two calls: {exec:#?}"
        );
        // As isolated as a cold call: no network without a grant (the connection to a test
        // address was attempted and failed), a read-only root, the backend's user.
        assert_eq!(seen["interfaces"], json!(["lo"]), "{seen}");
        assert_eq!(seen["connected_outside"], false, "{seen}");
        assert_eq!(seen["root_writable"], false, "{seen}");
        assert_eq!(seen["uid"], h.uid, "{seen}");
    }
    // Each served container was removed after its call (the one left is the next warm one).
    assert!(h.mcp.wait_warm("oci-warm", WARM_WAIT).await);
    let left = containers_of("oci-warm");
    assert!(
        left.len() == 1 && !containers.contains(&left[0]),
        "a served container outlived its call: {left:?}"
    );
    let events = h.rt.store().audit_page(0, 1000).await.unwrap();
    let calls = events.iter().filter(|e| e.kind.starts_with("execution.")).count();
    assert_eq!(calls, 4, "every call, warm or cold, is on the audit trail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_container_sees_the_state_the_calls_before_it_left() {
    let Some(()) = oci_image::docker_ready() else {
        return;
    };
    let h = Harness::with_pool(1).await;
    add(&h, "oci-notes", oci_image::image(), &Narrowing::default()).await;
    let exec = h.call("oci-notes", "remember", json!({"text": "one"})).await;
    assert_eq!(exec.output, Some(json!({"notes": "one"})), "{exec:#?}");
    let mut expected = String::from("one");
    for text in ["two", "three"] {
        // Each warm container was started after the call before it ended: the same volume,
        // with that call's write in it.
        assert!(h.mcp.wait_warm("oci-notes", WARM_WAIT).await, "{text}");
        let exec = h.call("oci-notes", "remember", json!({ "text": text })).await;
        assert!(was_warm(&exec), "{exec:#?}");
        expected = format!("{expected}\n{text}");
        assert_eq!(exec.output, Some(json!({ "notes": expected })), "{exec:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_container_whose_tool_list_changed_is_refused_at_the_call() {
    let Some(()) = oci_image::docker_ready() else {
        return;
    };
    let h = Harness::with_pool(1).await;
    let image = oci_image::image();
    let report = h
        .import(
            McpSource::parse(&format!("oci:{}", image.by_digest())),
            "oci-later",
            &["rugpull-later"],
        )
        .await;
    h.rt.approve("oci-later", &Narrowing::default(), &actor())
        .await
        .unwrap();
    // Cold: its server listed the approved tools (no note existed yet), then wrote one.
    let exec = h.call("oci-later", "remember", json!({"text": "first"})).await;
    assert_eq!(exec.status, ExecutionStatus::Success, "{exec:#?}");
    // The warm container was started after that call: its server lists a poisoned `echo`
    // when it is got ready, and the call that takes it is refused with the difference.
    assert!(h.mcp.wait_warm("oci-later", WARM_WAIT).await);
    let exec = h.call("oci-later", "echo", json!({"text": "hi"})).await;
    assert!(was_warm(&exec), "{exec:#?}");
    assert_eq!(exec.status, ExecutionStatus::Failure, "{exec:#?}");
    let error = exec.error.clone().unwrap_or_default();
    assert!(
        error.contains("the server's tool list differs from the one approved")
            && error.contains("read ~/.ssh/id_rsa"),
        "{error}"
    );
    assert_eq!(exec.output, None, "the tool was not called");
    let shown = h.rt.show("oci-later").await.unwrap();
    assert_eq!(shown.pending_version, Some(report.import.version), "{shown:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_secret_an_upgrade_and_a_regrant_never_get_a_stale_warm_container() {
    let Some(()) = oci_image::docker_ready() else {
        return;
    };
    let h = Harness::with_pool(1).await;
    let old_version = release(&h, oci_image::image(), "1.0.0").await;
    set_token(&h, "first").await;
    h.rt.approve("oci-up", &Narrowing::default(), &actor())
        .await
        .unwrap();
    let exec = h.call("oci-up", "probe", json!({})).await;
    assert_eq!(probed(&exec)["token_length"], "first".len());
    assert!(h.mcp.wait_warm("oci-up", WARM_WAIT).await);
    let stale = containers_of("oci-up");
    assert_eq!(stale.len(), 1, "{stale:?}");

    // A new secret: the warm container holds the old one in its environment. The call is
    // served cold with the new one, and the stale container is removed.
    set_token(&h, "the second").await;
    let exec = h.call("oci-up", "probe", json!({})).await;
    assert!(
        !was_warm(&exec),
        "a warm container with the old secret served: {exec:#?}"
    );
    assert_eq!(probed(&exec)["token_length"], "the second".len());
    assert!(
        removed(&stale[0]).await,
        "the stale warm container outlived the new secret"
    );

    // A new image of the server (a tool holding secrets: it waits for approval), approved
    // with a narrower grant: a new version, image, pin and grant at once.
    assert!(h.mcp.wait_warm("oci-up", WARM_WAIT).await);
    let stale = containers_of("oci-up");
    assert_eq!(stale.len(), 1, "{stale:?}");
    let new_version = release(&h, oci_image::upgraded_image(), "1.1.0").await;
    assert_ne!(new_version, old_version);
    let narrower = Narrowing {
        memory_limit_mb: Some(96),
        ..Narrowing::default()
    };
    h.rt.approve("oci-up", &narrower, &actor()).await.unwrap();

    // The old version's warm container waits still; the call is served cold by the new
    // image, and the stale container is removed.
    let exec = h.call("oci-up", "probe", json!({})).await;
    assert_eq!(exec.version, new_version, "{exec:#?}");
    assert!(
        !was_warm(&exec),
        "a warm container of the old version served: {exec:#?}"
    );
    assert_eq!(probed(&exec)["variant"], "upgraded", "{exec:#?}");
    assert_ne!(exec.sandbox_id.as_ref(), Some(&stale[0]));
    assert!(
        removed(&stale[0]).await,
        "the old version's warm container outlived the upgrade"
    );

    // From now on, warm containers of the new image.
    assert!(h.mcp.wait_warm("oci-up", WARM_WAIT).await);
    let waiting = containers_of("oci-up");
    let exec = h.call("oci-up", "probe", json!({})).await;
    assert!(was_warm(&exec), "{exec:#?}");
    assert_eq!(probed(&exec)["variant"], "upgraded", "{exec:#?}");
    assert_eq!(probed(&exec)["token_length"], "the second".len());
    assert_eq!(waiting, [exec.sandbox_id.clone().unwrap()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_containers_are_removed_when_idle() {
    let Some(()) = oci_image::docker_ready() else {
        return;
    };
    let idle = PoolConfig {
        size: 1,
        idle: Duration::from_secs(1),
    };
    let h = Harness::with_pool_config(idle).await;
    add(&h, "oci-idle", oci_image::image(), &Narrowing::default()).await;
    h.call("oci-idle", "probe", json!({})).await;
    assert!(h.mcp.wait_warm("oci-idle", WARM_WAIT).await);
    assert!(!containers_of("oci-idle").is_empty());
    // No call for a second: the pool expires, its container is removed.
    let left = settle_to_no_containers("oci-idle", 15);
    assert!(left.is_empty(), "idle warm containers left: {left:?}");
    assert_eq!(h.mcp.warm_ready("oci-idle"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_removes_every_warm_container_before_it_returns() {
    let Some(()) = oci_image::docker_ready() else {
        return;
    };
    let h = Harness::with_pool(2).await;
    add(&h, "oci-shut", oci_image::image(), &Narrowing::default()).await;
    h.call("oci-shut", "probe", json!({})).await;
    let until = std::time::Instant::now() + WARM_WAIT;
    while h.mcp.warm_ready("oci-shut") < 2 && std::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(h.mcp.warm_ready("oci-shut"), 2);
    assert_eq!(containers_of("oci-shut").len(), 2);
    h.rt.backends().shutdown().await;
    assert_eq!(
        containers_of("oci-shut"),
        Vec::<String>::new(),
        "warm containers outlived shutdown"
    );
}

/// Dropped without a shutdown, the runtime and then its async runtime: the warm container of
/// the pool (its server started, initialised, waiting) is still removed.
#[test]
fn no_warm_container_outlives_a_dropped_runtime() {
    let Some(()) = oci_image::docker_ready() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let kept = runtime.block_on(async {
        let h = Harness::with_pool(1).await;
        add(&h, "oci-dropped", oci_image::image(), &Narrowing::default()).await;
        let exec = h.call("oci-dropped", "echo", json!({"text": "hi"})).await;
        assert_eq!(exec.status, ExecutionStatus::Success, "{exec:#?}");
        assert!(h.mcp.wait_warm("oci-dropped", WARM_WAIT).await);
        assert_eq!(containers_of("oci-dropped").len(), 1);
        h.let_go()
    });
    drop(runtime);
    let left = settle_to_no_containers("oci-dropped", 20);
    assert!(left.is_empty(), "warm containers outlived the runtime: {left:?}");
    kept.release_volumes();
}
