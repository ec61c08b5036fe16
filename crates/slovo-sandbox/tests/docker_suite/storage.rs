//! The storage quota of `/data` (the process sandbox's state volumes, bind-mounted), and `/tmp`.

use std::os::unix::fs::MetadataExt;

use serde_json::json;
use slovo_sandbox::Backend;

use super::support::*;
use crate::require_docker;

#[tokio::test]
async fn writing_past_the_quota_fails_inside_the_tool_and_the_state_survives() {
    require_docker!();
    let sb = Sandbox::new().await;
    assert_eq!(
        sb.probe("filler", &["write", "/data/keep", "kept"]).await,
        json!({"errno": 0})
    );
    let mut spec = sb.spec("filler", &["fill", "/data/big"]);
    spec.limits.storage_mb = 8;
    let o = sb.run(&spec).await;
    assert_eq!(o.status.as_str(), "success", "{o:#?}");
    let out = o.output.unwrap();
    assert_eq!(out["errno"], json!(libc::ENOSPC), "{out}");
    assert!(out["written"].as_i64().unwrap() < 8 * 1024 * 1024, "{out}");
    // The host holds at most the image's size.
    let used: u64 = std::fs::read_dir(sb.dir.path().join("volumes"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().blocks() * 512)
        .sum();
    assert!(used <= 8 * 1024 * 1024, "{used}");
    assert_eq!(
        sb.probe("other", &["write", "/data/x", "fine"]).await,
        json!({"errno": 0})
    );
    // The state survives the next call, and an unmount (as after a restart).
    assert_eq!(
        sb.probe("filler", &["read", "/data/keep"]).await,
        json!({"errno": 0, "data": "kept"})
    );
    sb.backend
        .release_state(&sb.state("filler"), false)
        .await
        .unwrap();
    assert_eq!(
        sb.probe("filler", &["read", "/data/keep"]).await,
        json!({"errno": 0, "data": "kept"})
    );
}

#[tokio::test]
async fn without_a_quota_data_is_not_writable() {
    require_docker!();
    let sb = Sandbox::new().await;
    let mut spec = sb.spec("nostate", &["write", "/data/x"]);
    spec.limits.storage_mb = 0;
    let o = sb.run(&spec).await;
    assert_eq!(o.status.as_str(), "success", "{o:#?}");
    assert_ne!(errno(&o.output.unwrap()), 0);
}

#[tokio::test]
async fn tmp_is_small() {
    require_docker!();
    let sb = Sandbox::with_config(|c| c.tmp_mb = 4).await;
    let out = sb.probe("tmp", &["fill", "/tmp/big"]).await;
    assert_eq!(out["errno"], json!(libc::ENOSPC), "{out}");
    assert!(out["written"].as_i64().unwrap() <= 4 * 1024 * 1024, "{out}");
}
