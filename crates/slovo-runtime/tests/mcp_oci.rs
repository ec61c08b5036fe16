//! MCP servers that come as OCI images, through `Runtime::import_mcp` and `Runtime::call`
//! with the real Docker backend: a server built into a local image (`mcp_support/oci_image.rs`)
//! is imported by its digest (a tag alone is refused), from `oci:` and from a `server.json`
//! OCI package, approved and called in a fresh container per call; its `/data` persists
//! across calls; it has no network and a read-only root; a server that never answers meets
//! the call's timeout; a tool list that changes after approval is refused at the call; a
//! server that lists its tools only with its API key takes it at import, in its container's
//! environment. Needs the Docker daemon (`scripts/ci-docker-setup.sh`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "mcp_support/oci_harness.rs"]
mod oci_harness;
#[path = "mcp_support/oci_image.rs"]
mod oci_image;

use oci_harness::{Harness, actor};
use serde_json::json;
use slovo_core::execution::ExecutionStatus;
use slovo_core::permissions::Narrowing;
use slovo_runtime::{McpImport, McpSource};

/// The containers of `tool` left, as one string (empty: none).
fn containers_of(tool: &str) -> String {
    oci_harness::containers_of(tool).join(" ")
}

#[tokio::test]
async fn an_image_is_imported_by_digest_approved_and_called_in_a_fresh_container() {
    let Some(()) = oci_image::docker_ready() else {
        return;
    };
    let image = oci_image::image();
    let h = Harness::new().await;

    // A tag names no version: refused, saying why and how to find the digest.
    let request = McpImport {
        source: McpSource::parse(&format!("oci:{}", image.tagged)),
        name: None,
        env: Default::default(),
        args: Vec::new(),
        secrets: Default::default(),
    };
    let e = h.rt.import_mcp(&request, &actor()).await.unwrap_err().to_string();
    assert!(
        e.contains("names no digest")
            && e.contains("a tag can be moved")
            && e.contains("docker image inspect"),
        "{e}"
    );
    assert!(h.rt.list().await.unwrap().is_empty(), "nothing is stored");

    let report = h
        .import(
            McpSource::parse(&format!("oci:{}", image.by_digest())),
            "oci-echo",
            &["plain"],
        )
        .await;
    assert_eq!(
        report.package.as_deref(),
        Some(format!("oci:{}", image.by_digest()).as_str())
    );
    assert_eq!(report.integrity["image_id"], image.id.as_str(), "{report:#?}");
    assert_eq!(report.integrity["digest"], image.id.as_str());
    let capabilities: Vec<&str> = report.tools.iter().map(|t| t.capability.as_str()).collect();
    assert_eq!(capabilities, ["echo", "remember", "probe", "stall"]);
    assert_eq!(report.server["server_info"]["name"], "oci-test");
    assert!(
        report
            .import
            .version
            .ends_with(&format!("+sha256.{}", &image.id[7..19])),
        "{report:#?}"
    );

    h.rt.approve("oci-echo", &Narrowing::default(), &actor())
        .await
        .unwrap();
    let exec = h
        .call("oci-echo", "echo", json!({"text": "from a container"}))
        .await;
    assert_eq!(exec.status, ExecutionStatus::Success, "{exec:#?}");
    assert_eq!(exec.output, Some(json!("from a container")));
    // The container's id is the sandbox's, and the container is gone after the call.
    assert_eq!(exec.sandbox_id.as_deref().map(str::len), Some(64), "{exec:#?}");
    assert_eq!(containers_of("oci-echo"), "");

    // `/data` is the tool's state, kept across calls (each in a fresh container).
    let first = h.call("oci-echo", "remember", json!({"text": "one"})).await;
    assert_eq!(first.status, ExecutionStatus::Success, "{first:#?}");
    let second = h.call("oci-echo", "remember", json!({"text": "two"})).await;
    assert_eq!(second.output, Some(json!({"notes": "one\ntwo"})), "{second:#?}");
    assert_ne!(first.sandbox_id, second.sandbox_id);

    // No network without a grant (the connection is attempted), a read-only root (even where
    // the image's own permissions would let anyone write), the backend's unprivileged user.
    let probe = h.call("oci-echo", "probe", json!({})).await;
    assert_eq!(probe.status, ExecutionStatus::Success, "{probe:#?}");
    let seen = probe.output.unwrap();
    assert_eq!(seen["interfaces"], json!(["lo"]), "{seen}");
    assert_eq!(seen["connected_outside"], false, "{seen}");
    assert_eq!(seen["root_writable"], false, "{seen}");
    assert_eq!(seen["uid"], h.uid, "{seen}");

    // The same image from a registry `server.json` OCI package, its argument from
    // `packageArguments`.
    let server = json!({
        "name": "io.example/oci-echo", "description": "An echo server in an image", "version": "1.2.0",
        "packages": [{
            "registryType": "oci", "identifier": image.by_digest(), "transport": {"type": "stdio"},
            "packageArguments": [{"type": "positional", "value": "plain"}]
        }]
    });
    let report = h.import(McpSource::ServerJson(server), "oci-registry", &[]).await;
    assert!(report.import.version.starts_with("1.2.0+sha256."), "{report:#?}");
    h.rt.approve("oci-registry", &Narrowing::default(), &actor())
        .await
        .unwrap();
    let exec = h.call("oci-registry", "echo", json!({"text": "registry"})).await;
    assert_eq!(exec.output, Some(json!("registry")), "{exec:#?}");
}

#[tokio::test]
async fn a_server_whose_tool_list_changes_after_approval_is_refused_at_the_call() {
    let Some(()) = oci_image::docker_ready() else {
        return;
    };
    let image = oci_image::image();
    let h = Harness::new().await;
    let report = h
        .import(
            McpSource::parse(&format!("oci:{}", image.by_digest())),
            "oci-rugpull",
            &["rugpull"],
        )
        .await;
    // Installed with no state: it lists what it listed at import.
    h.rt.approve("oci-rugpull", &Narrowing::default(), &actor())
        .await
        .unwrap();
    let exec = h.call("oci-rugpull", "echo", json!({"text": "hi"})).await;
    assert_eq!(exec.status, ExecutionStatus::Failure, "{exec:#?}");
    let error = exec.error.unwrap_or_default();
    assert!(
        error.contains("the server's tool list differs from the one approved")
            && error.contains("read ~/.ssh/id_rsa"),
        "{error}"
    );
    assert_eq!(exec.output, None, "the tool was not called");
    assert_eq!(containers_of("oci-rugpull"), "");
    // The version goes back to approval with the difference.
    let shown = h.rt.show("oci-rugpull").await.unwrap();
    assert_eq!(shown.pending_version, Some(report.import.version), "{shown:#?}");
    let change = shown.versions[0].tool_list_changed.as_ref().unwrap();
    assert!(change.difference.contains("~/.ssh/id_rsa"), "{change:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_meets_the_timeout_with_its_stderr_kept() {
    let Some(()) = oci_image::docker_ready() else {
        return;
    };
    let image = oci_image::image();
    let h = Harness::new().await;
    h.import(
        McpSource::parse(&format!("oci:{}", image.by_digest())),
        "oci-stall",
        &["plain"],
    )
    .await;
    let narrowing = Narrowing {
        timeout_s: Some(2),
        storage_quota_mb: Some(0),
        ..Narrowing::default()
    };
    h.rt.approve("oci-stall", &narrowing, &actor()).await.unwrap();
    let started = std::time::Instant::now();
    let exec = h.call("oci-stall", "stall", json!({})).await;
    assert_eq!(exec.status, ExecutionStatus::Timeout, "{exec:#?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(
        exec.error.as_deref().unwrap_or("").contains("timed out after 2s"),
        "{exec:#?}"
    );
    assert!(
        exec.stderr.as_deref().unwrap_or("").contains("stalling call"),
        "{exec:#?}"
    );
    assert_eq!(containers_of("oci-stall"), "");
}

#[tokio::test]
async fn an_image_servers_secret_given_at_import_reaches_its_container_at_listing_and_calls() {
    let Some(()) = oci_image::docker_ready() else {
        return;
    };
    let image = oci_image::image();
    let h = Harness::new().await;
    const KEY: &str = "oci-key-5e7a1d9c";
    // The server's API key is a secret the person sets; without it the server lists nothing.
    let server = json!({
        "name": "io.example/oci-keyed", "description": "Lists its tools only with its key", "version": "1.0.0",
        "packages": [{
            "registryType": "oci", "identifier": image.by_digest(), "transport": {"type": "stdio"},
            "packageArguments": [{"type": "positional", "value": "keyed"}],
            "environmentVariables": [{"name": "SERVER_API_KEY", "isSecret": true}]
        }]
    });
    let request = |secrets: &[(&str, &str)]| McpImport {
        source: McpSource::ServerJson(server.clone()),
        name: Some("oci-keyed".into()),
        env: Default::default(),
        args: Vec::new(),
        secrets: slovo_core::secrets::Secrets::new(
            secrets
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
    };
    let e =
        h.rt.import_mcp(&request(&[]), &actor())
            .await
            .unwrap_err()
            .to_string();
    assert!(e.contains("tools/list needs SERVER_API_KEY"), "{e}");
    let e =
        h.rt.import_mcp(&request(&[("API_KEY", KEY)]), &actor())
            .await
            .unwrap_err()
            .to_string();
    assert!(
        e.contains("the secret \"API_KEY\" is not one of the server's (its secret environment variables: SERVER_API_KEY)"),
        "{e}"
    );
    assert!(h.rt.list().await.unwrap().is_empty(), "nothing is stored");

    // With it: listed in its container, proposed with the key stored, approved (listing
    // again with the stored key), and called with it in the container's environment.
    let report =
        h.rt.import_mcp(&request(&[("SERVER_API_KEY", KEY)]), &actor())
            .await
            .unwrap();
    assert_eq!(report.tools.len(), 4, "{report:#?}");
    assert_eq!(report.secrets_stored, ["SERVER_API_KEY"]);
    assert!(!serde_json::to_string(&report).unwrap().contains(KEY));
    assert_eq!(h.rt.secret_names("oci-keyed").await.unwrap(), ["SERVER_API_KEY"]);
    h.rt.approve("oci-keyed", &Narrowing::default(), &actor())
        .await
        .unwrap();
    let probe = h.call("oci-keyed", "probe", json!({})).await;
    assert_eq!(probe.status, ExecutionStatus::Success, "{probe:#?}");
    let reversed: String = KEY.chars().rev().collect();
    assert_eq!(probe.output.unwrap()["key_reversed"], reversed.as_str());
    let events = h.rt.store().audit_events_in_display_order(10_000).await.unwrap();
    let trail = format!("{events:?}");
    assert!(trail.contains("secret.set") && !trail.contains(KEY), "{trail}");
}
