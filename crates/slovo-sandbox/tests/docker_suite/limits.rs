//! Resource limits: fork bomb, memory bomb, timeout, CPU share, output floods, daemons.

use std::time::{Duration, Instant};

use serde_json::json;

use super::support::*;
use crate::require_docker;

#[tokio::test]
async fn a_fork_bomb_hits_the_pids_limit() {
    require_docker!();
    let sb = Sandbox::new().await;
    let mut spec = sb.spec("bomb", &["forkbomb"]);
    spec.limits.pids = 16;
    let o = sb.run(&spec).await;
    assert_eq!(o.status.as_str(), "success", "{o:#?}");
    let out = o.output.unwrap();
    assert!(out["forked"].as_i64().unwrap() <= 15, "{out}");
    assert_eq!(out["errno"], json!(libc::EAGAIN));
    sb.assert_nothing_left().await;

    // One that never stops is ended by the timeout; everything is removed.
    let mut spec = sb.spec("bomb", &["forkbomb-forever"]);
    spec.limits.pids = 16;
    spec.limits.timeout = Duration::from_millis(800);
    let t = Instant::now();
    let o = sb.run(&spec).await;
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(o.status.as_str(), "timeout", "{o:#?}");
    sb.assert_nothing_left().await;
}

#[tokio::test]
async fn a_memory_bomb_is_killed_for_out_of_memory() {
    require_docker!();
    let sb = Sandbox::new().await;
    let mut spec = sb.spec("mem", &["membomb"]);
    spec.limits.memory_mb = 32;
    let o = sb.run(&spec).await;
    assert_eq!(o.status.as_str(), "killed", "{o:#?}");
    assert_eq!(o.error.as_deref(), Some("killed: out of memory (limit 32 MB)"));
    // The high-water mark, read after the container was gone: near the limit, not above it
    // (plus the kernel's own small charges for the container).
    let peak = o.peak_memory_bytes.unwrap();
    assert!(peak > 16 * 1024 * 1024 && peak <= 33 * 1024 * 1024, "{peak}");
    sb.assert_nothing_left().await;
}

#[tokio::test]
async fn spinning_past_the_timeout_kills_and_removes_the_container() {
    require_docker!();
    let sb = Sandbox::new().await;
    let mut spec = sb.spec("spin", &["spin"]);
    spec.limits.timeout = Duration::from_millis(800);
    let t = Instant::now();
    let o = sb.run(&spec).await;
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    assert_eq!(o.status.as_str(), "timeout", "{o:#?}");
    assert!(o.error.as_deref().unwrap().starts_with("timed out after 800ms"));
    assert!(o.cpu_ms.unwrap() > 100, "{o:#?}");
    sb.assert_nothing_left().await;
}

#[tokio::test]
async fn the_cpu_share_is_enforced() {
    require_docker!();
    let sb = Sandbox::new().await;
    let mut spec = sb.spec("cpu", &["spin"]);
    spec.limits.timeout = Duration::from_secs(1);
    spec.limits.cpu_percent = 10;
    let o = sb.run(&spec).await;
    assert_eq!(o.status.as_str(), "timeout");
    // Four spinning processes, 10% of one CPU for about a second (and the removal).
    let cpu = o.cpu_ms.unwrap();
    assert!(cpu <= 250, "{cpu} ms of CPU at 10%");
}

#[tokio::test]
async fn a_stdout_flood_is_killed_at_the_limit() {
    require_docker!();
    let sb = Sandbox::with_config(|c| c.stdout_limit = 1024 * 1024).await;
    let o = sb.run(&sb.spec("flood", &["flood"])).await;
    assert_eq!(o.status.as_str(), "killed", "{:?}", o.error);
    assert_eq!(o.error.as_deref(), Some("killed: stdout exceeded its limit"));
    let len = o.output.as_ref().and_then(|v| v.as_str()).map_or(0, str::len);
    assert!(len <= 1024 * 1024, "{len}");
    sb.assert_nothing_left().await;
}

#[tokio::test]
async fn a_child_that_outlives_its_parent_dies_with_the_call() {
    require_docker!();
    let sb = Sandbox::new().await;
    let o = sb.run(&sb.spec("daemon", &["daemon", "1"])).await;
    assert_eq!(o.status.as_str(), "success", "{o:#?}");
    assert_eq!(o.output, Some(json!({"daemonised": true})));
    sb.assert_nothing_left().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !sb.state("daemon").join("daemon-marker").exists(),
        "the daemon survived the call"
    );
}
