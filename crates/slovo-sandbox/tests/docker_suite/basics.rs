//! The contract: stdin, stdout, env, identity, status, accounting, cleanup and refusals.

use std::collections::HashMap;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::CreateContainerOptions;
use serde_json::json;
use slovo_core::manifest::Execution;
use slovo_sandbox::docker::{DockerBackend, DockerConfig, daemon};
use slovo_sandbox::{Backend, InstallRequest};

use super::support::*;
use crate::require_docker;

#[tokio::test]
async fn echoes_the_request_and_removes_the_container() {
    require_docker!();
    let sb = Sandbox::new().await;
    let o = sb.run(&sb.spec("echo", &["echo"])).await;
    assert_eq!(o.status.as_str(), "success", "{o:#?}");
    assert_eq!(o.output, Some(json!({"capability": "probe", "arguments": {}})));
    assert_eq!(o.exit_code, Some(0));
    assert!(
        o.cpu_ms.is_some() && o.peak_memory_bytes.unwrap_or(0) > 0,
        "{o:#?}"
    );
    let id = o.sandbox_id.unwrap();
    assert_eq!(id.len(), 64, "the container id is recorded: {id}");
    sb.assert_nothing_left().await;
    // A large request arrives whole.
    let mut spec = sb.spec("echo", &["echo"]);
    spec.request = json!({"capability": "probe", "arguments": {"blob": "x".repeat(300_000)}});
    let o = sb.run(&spec).await;
    assert_eq!(o.output.as_ref(), Some(&spec.request));
}

#[tokio::test]
async fn runs_unprivileged_without_capabilities_with_no_new_privileges() {
    require_docker!();
    let sb = Sandbox::new().await;
    let info = sb.probe("info", &["info"]).await;
    let uid = i64::from(sb.uid);
    assert_eq!(
        (
            info["uid"].as_i64(),
            info["euid"].as_i64(),
            info["gid"].as_i64(),
            info["egid"].as_i64()
        ),
        (Some(uid), Some(uid), Some(uid), Some(uid)),
        "{info}"
    );
    assert_eq!(info["cap_eff"], "0000000000000000", "{info}");
    assert_eq!(info["no_new_privs"], "1", "{info}");
    assert_eq!(
        info["seccomp"], "2",
        "the daemon's seccomp profile applies: {info}"
    );
    assert_eq!(info["pid"], 1);
    assert_eq!(info["hostname"], "slovo");
    assert_eq!(info["capability"], "probe");
}

#[tokio::test]
async fn a_non_zero_exit_is_a_failure_with_stderr() {
    require_docker!();
    let sb = Sandbox::new().await;
    let o = sb.run(&sb.spec("exit", &["exit", "3"])).await;
    assert_eq!(o.status.as_str(), "failure", "{o:#?}");
    assert_eq!(o.exit_code, Some(3));
    assert_eq!(o.error.as_deref(), Some("exited with code 3"));
    assert_eq!(o.stderr, "exiting with 3\n");
    sb.assert_nothing_left().await;
}

#[tokio::test]
async fn stderr_is_capped() {
    require_docker!();
    let sb = Sandbox::with_config(|c| c.stderr_limit = 1000).await;
    let o = sb.run(&sb.spec("errflood", &["stderr-flood"])).await;
    assert_eq!(o.status.as_str(), "success", "{o:#?}");
    assert!(o.stderr.starts_with(&"E".repeat(1000)));
    assert!(o.stderr.ends_with("[stderr truncated]"));
    assert!(o.stderr.len() < 1100);
}

#[tokio::test]
async fn a_different_image_under_the_same_reference_is_refused_naming_both_digests() {
    require_docker!();
    let sb = Sandbox::new().await;
    let reference = format!("slovo-test-pin:{}", std::process::id());
    let first = import_image(&reference, None);
    let request = InstallRequest {
        tool: "pinned".into(),
        version: "1.0.0".into(),
        execution: Execution::Docker {
            image: reference.clone(),
            entrypoint: Some(vec!["/hostile".into(), "info".into()]),
        },
        bundle_dir: None,
        state_dir: sb.state("pinned"),
        secrets: Default::default(),
    };
    let info = sb.backend.install(&request).await.unwrap();
    let recorded = serde_json::to_value(&info).unwrap();
    assert_eq!(recorded["image_id"], first.as_str());
    let mut spec = sb.spec("pinned", &["info"]);
    spec.execution = request.execution.clone();
    spec.install_info = Some(info);
    assert_eq!(sb.run(&spec).await.status.as_str(), "success");
    // The tag now names another image: the approved one is not what would run.
    let second = import_image(&reference, Some("changed"));
    assert_ne!(first, second);
    let o = sb.run(&spec).await;
    assert_eq!(o.status.as_str(), "failure", "{o:#?}");
    let error = o.error.unwrap();
    assert!(error.contains(&first) && error.contains(&second), "{error}");
    // Without a recorded digest nothing runs either.
    spec.install_info = None;
    let o = sb.run(&spec).await;
    assert!(o.error.unwrap().contains("no image digest"));
    sb.assert_nothing_left().await;
    let _ = std::process::Command::new("docker")
        .args(["rmi", "-f", &reference, &first])
        .output();
}

#[tokio::test]
async fn a_missing_image_is_not_pulled_and_nothing_runs() {
    require_docker!();
    let sb = Sandbox::new().await;
    let execution = Execution::Docker {
        image: "registry.invalid/slovo/absent:1".into(),
        entrypoint: None,
    };
    let info = sb
        .backend
        .install(&InstallRequest {
            tool: "absent".into(),
            version: "1.0.0".into(),
            execution: execution.clone(),
            bundle_dir: None,
            state_dir: sb.state("absent"),
            secrets: Default::default(),
        })
        .await
        .unwrap();
    // Deferred, as for a missing backend: no digest pinned, and the reason recorded.
    let recorded = serde_json::to_value(&info).unwrap();
    assert_eq!(recorded["image_id"], serde_json::Value::Null);
    let reason = recorded["deferred"].as_str().unwrap();
    assert!(
        reason.contains("not present locally") && reason.contains("registry.invalid"),
        "{reason}"
    );
    let mut spec = sb.spec("absent", &["info"]);
    spec.execution = execution;
    spec.install_info = Some(info);
    let o = sb.run(&spec).await;
    assert_eq!(o.status.as_str(), "failure");
    let error = o.error.unwrap();
    assert!(
        error.contains("no image digest") && error.contains("not present locally"),
        "{error}"
    );
    sb.assert_nothing_left().await;
}

#[tokio::test]
async fn without_a_daemon_calls_fail_with_the_reason() {
    require_docker!();
    let sb = Sandbox::new().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = DockerConfig::new(dir.path().join("volumes"));
    config.host = format!("unix://{}/no-daemon.sock", dir.path().display());
    let absent = DockerBackend::new(config);
    let o = absent.run(&sb.spec("nodaemon", &["info"])).await;
    assert_eq!(o.status.as_str(), "failure");
    let error = o.error.unwrap();
    assert!(
        error.starts_with("the Docker daemon is not available at unix://")
            && error.contains("no-daemon.sock"),
        "{error}"
    );
    let info = absent
        .install(&InstallRequest {
            tool: "x".into(),
            version: "1".into(),
            execution: Execution::Docker {
                image: image().to_string(),
                entrypoint: None,
            },
            bundle_dir: None,
            state_dir: sb.state("nodaemon"),
            secrets: Default::default(),
        })
        .await
        .unwrap();
    let info = serde_json::to_value(&info).unwrap();
    assert_eq!(info["image_id"], serde_json::Value::Null);
    assert!(
        info["deferred"].as_str().unwrap().contains("not available"),
        "{info}"
    );
    // The real daemon's backend is unaffected.
    assert_eq!(
        sb.run(&sb.spec("after", &["info"])).await.status.as_str(),
        "success"
    );
}

#[tokio::test]
async fn containers_left_by_a_dead_process_are_removed_at_start_up() {
    require_docker!();
    let _sb = Sandbox::new().await;
    let docker = daemon::connect(daemon::DEFAULT_HOST).await.unwrap();
    // A process that is gone: its pid no longer runs (or runs with another start time).
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let me = std::process::id();
    let create = |name: String, pid: u32, start: u64| {
        let docker = docker.clone();
        async move {
            let mut labels = HashMap::new();
            labels.insert("dev.slovo.managed".to_string(), "1".to_string());
            labels.insert("dev.slovo.pid".to_string(), pid.to_string());
            labels.insert("dev.slovo.pid-start".to_string(), start.to_string());
            labels.insert("dev.slovo.tool".to_string(), format!("leftover-{me}"));
            docker
                .create_container(
                    Some(CreateContainerOptions {
                        name: Some(name),
                        ..Default::default()
                    }),
                    ContainerCreateBody {
                        image: Some(image().to_string()),
                        cmd: Some(vec!["/hostile".into(), "info".into()]),
                        labels: Some(labels),
                        host_config: Some(bollard::models::HostConfig {
                            network_mode: Some("none".into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                )
                .await
                .unwrap()
                .id
        }
    };
    let orphan = create(format!("slovo-orphan-{me}"), dead, 1).await;
    let reused_pid = create(format!("slovo-reused-{me}"), me, 1).await;
    let live = create(format!("slovo-live-{me}"), me, daemon::start_time(me).unwrap()).await;
    // Creating a backend starts the cleanup; calling it directly waits for it.
    let dir = tempfile::tempdir().unwrap();
    let backend = DockerBackend::new(DockerConfig::new(dir.path().join("volumes")));
    let removed = backend.remove_leftovers().await.unwrap();
    // Other backends (this test's own `Sandbox` included) run the same cleanup concurrently;
    // a removal they started may still be finishing.
    let exists = |id: String| {
        let docker = docker.clone();
        async move {
            for _ in 0..50 {
                if docker.inspect_container(&id, None).await.is_err() {
                    return false;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            true
        }
    };
    assert!(!exists(orphan.clone()).await, "the orphan survived ({removed:?})");
    assert!(
        !exists(reused_pid.clone()).await,
        "a container of a reused pid survived"
    );
    let still_there = docker.inspect_container(&live, None).await.is_ok();
    assert!(still_there, "a live process's container was removed");
    docker
        .remove_container(
            &live,
            Some(bollard::query_parameters::RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
}
