//! Through the runtime: the install step records the image digest and calls carry it back;
//! without a daemon a call is recorded as a failure with the reason, and other backends keep
//! working.

use std::sync::Arc;

use serde_json::json;
use slovo_core::execution::{ExecutionStatus, Outcome, SandboxSpec};
use slovo_core::install::{HttpFacts, InstallFacts};
use slovo_core::permissions::Narrowing;
use slovo_runtime::{Actor, CallRequest, ImportSource, Runtime};
use slovo_sandbox::docker::{DockerBackend, DockerConfig};
use slovo_sandbox::{Backend, BackendError, Backends, InstallRequest};
use slovo_store::Store;

use super::support::*;
use crate::require_docker;

/// Another backend (kind `http`) that always succeeds.
struct Other;

#[async_trait::async_trait]
impl Backend for Other {
    fn kind(&self) -> &'static str {
        "http"
    }
    async fn install(&self, r: &InstallRequest) -> Result<InstallFacts, BackendError> {
        Ok(InstallFacts::Http(HttpFacts { tool: r.tool.clone() }))
    }
    async fn run(&self, _: &SandboxSpec) -> Outcome {
        Outcome {
            status: ExecutionStatus::Success,
            output: Some(json!({"other": true})),
            exit_code: Some(0),
            ..Default::default()
        }
    }
}

fn manifest(name: &str, execution: serde_json::Value) -> ImportSource {
    let mut m = json!({
        "name": name,
        "version": "1.0.0",
        "description": "test",
        "capabilities": [{"name": "echo", "description": "Echo", "parameters": {"type": "object"}}],
        "permissions": {"memory_limit_mb": 64, "storage_quota_mb": 4, "timeout_s": 10},
    });
    if execution.is_null() {
        m["api_requirements"] = json!({"base_url": "https://api.example.invalid"});
        m["capabilities"][0]["endpoint"] = json!("/echo");
        m["capabilities"][0]["method"] = json!("GET");
    } else {
        m["execution"] = execution;
    }
    ImportSource::Manifest {
        name: format!("{name}.json"),
        bytes: m.to_string().into_bytes(),
    }
}

fn call(tool: &str) -> CallRequest {
    CallRequest {
        tool: tool.into(),
        capability: "echo".into(),
        arguments: json!({}),
        conversation_id: None,
        turn_id: None,
        actor: Actor("test".into()),
    }
}

#[tokio::test]
async fn a_call_through_the_runtime_and_one_without_a_daemon() {
    require_docker!();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("slovo.db").display());
    let docker = DockerBackend::new(DockerConfig::new(data.join("sandbox/volumes")));
    let backends = Backends::new().with(docker.clone()).with(Arc::new(Other));
    let rt = Runtime::new(Store::connect(&url).await.unwrap(), backends, &data);
    let actor = Actor("test".into());
    let image = image();
    rt.import(
        manifest(
            "echo",
            json!({"type": "docker", "image": image, "entrypoint": ["/hostile", "echo"]}),
        ),
        &actor,
    )
    .await
    .unwrap();
    rt.approve("echo", &Narrowing::default(), &actor).await.unwrap();
    rt.import(manifest("other", serde_json::Value::Null), &actor)
        .await
        .unwrap();
    rt.approve("other", &Narrowing::default(), &actor).await.unwrap();
    let row = rt.call(call("echo")).await.unwrap();
    assert_eq!(row.status, ExecutionStatus::Success, "{row:?}");
    assert_eq!(row.output, Some(json!({"capability": "echo", "arguments": {}})));
    assert_eq!(row.sandbox_id.as_deref().map(str::len), Some(64), "{row:?}");
    assert!(row.cpu_ms.is_some() && row.peak_memory_bytes.is_some(), "{row:?}");

    // The same data directory and database, but no daemon where the backend looks.
    let mut config = DockerConfig::new(data.join("sandbox/volumes"));
    config.host = format!("unix://{}/absent.sock", dir.path().display());
    let backends = Backends::new()
        .with(DockerBackend::new(config))
        .with(Arc::new(Other));
    let rt2 = Runtime::new(Store::connect(&url).await.unwrap(), backends, &data);
    let row = rt2.call(call("echo")).await.unwrap();
    assert_eq!(row.status, ExecutionStatus::Failure, "{row:?}");
    let error = row.error.unwrap_or_default();
    assert!(
        error.contains("the Docker daemon is not available at unix://"),
        "{error}"
    );
    let row = rt2.call(call("other")).await.unwrap();
    assert_eq!(row.status, ExecutionStatus::Success, "{row:?}");
    for s in [&data.join("volumes/echo")] {
        let _ = docker.release_state(s, true).await;
    }
}

#[tokio::test]
async fn an_image_loaded_after_approval_runs_once_the_tool_is_installed_again() {
    require_docker!();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("slovo.db").display());
    let docker = DockerBackend::new(DockerConfig::new(data.join("sandbox/volumes")));
    let rt = Runtime::new(
        Store::connect(&url).await.unwrap(),
        Backends::new().with(docker.clone()),
        &data,
    );
    let actor = Actor("test".into());
    let reference = format!("slovo-test/late:{}", std::process::id());
    let docker_cli = |args: &[&str]| std::process::Command::new("docker").args(args).output().unwrap();
    let _ = docker_cli(&["rmi", &reference]);
    rt.import(
        manifest(
            "late",
            json!({"type": "docker", "image": reference, "entrypoint": ["/hostile", "echo"]}),
        ),
        &actor,
    )
    .await
    .unwrap();
    // Approved while the image is absent: recorded so, and nothing runs.
    rt.approve("late", &Narrowing::default(), &actor).await.unwrap();
    let row = rt.call(call("late")).await.unwrap();
    assert_eq!(row.status, ExecutionStatus::Failure, "{row:?}");
    let error = row.error.unwrap_or_default();
    assert!(
        error.contains("no image digest was recorded") && error.contains("slovo tool reinstall late"),
        "{error}"
    );
    // Loading the image alone changes nothing: the approval pinned no digest.
    assert!(docker_cli(&["tag", image(), &reference]).status.success());
    let row = rt.call(call("late")).await.unwrap();
    assert_eq!(row.status, ExecutionStatus::Failure, "{row:?}");
    // Installing again records the image's id under the same approval; then it runs.
    rt.reinstall("late", &actor).await.unwrap();
    let row = rt.call(call("late")).await.unwrap();
    assert_eq!(row.status, ExecutionStatus::Success, "{row:?}");
    assert_eq!(row.output, Some(json!({"capability": "echo", "arguments": {}})));
    let _ = docker_cli(&["rmi", &reference]);
    let _ = docker.release_state(&data.join("volumes/late"), true).await;
}
