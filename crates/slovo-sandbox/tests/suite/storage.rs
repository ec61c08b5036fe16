//! The storage quota of `/data`, and `/tmp`.

use std::os::unix::fs::MetadataExt;

use serde_json::json;

use super::support::*;
use crate::require_root;

#[tokio::test]
async fn writing_past_the_quota_fails_inside_the_tool_and_the_state_survives() {
    require_root!();
    let sb = Sandbox::new();
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
    let image = sb.backend.config().work_dir.join("volumes");
    let used: u64 = std::fs::read_dir(&image)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().blocks() * 512)
        .sum();
    assert!(used <= 8 * 1024 * 1024, "{used}");
    // Other tools are unaffected.
    assert_eq!(
        sb.probe("other", &["write", "/data/x", "fine"]).await,
        json!({"errno": 0})
    );
    // The state survives the next call, and an unmount (as after a restart).
    assert_eq!(
        sb.probe("filler", &["read", "/data/keep"]).await,
        json!({"errno": 0, "data": "kept"})
    );
    sb.backend.release_state(&sb.state("filler"), false).unwrap();
    assert_eq!(
        sb.probe("filler", &["read", "/data/keep"]).await,
        json!({"errno": 0, "data": "kept"})
    );
}

#[tokio::test]
async fn without_a_quota_data_is_read_only() {
    require_root!();
    let sb = Sandbox::new();
    let mut spec = sb.spec("nostate", &["write", "/data/x"]);
    spec.limits.storage_mb = 0;
    let o = sb.run(&spec).await;
    assert_eq!(o.output, Some(json!({"errno": EROFS})), "{o:#?}");
}

#[tokio::test]
async fn tmp_is_small() {
    require_root!();
    let sb = Sandbox::with_config(|c| c.tmp_mb = 4);
    let out = sb.probe("tmp", &["fill", "/tmp/big"]).await;
    assert_eq!(out["errno"], json!(libc::ENOSPC), "{out}");
    assert!(out["written"].as_i64().unwrap() <= 4 * 1024 * 1024, "{out}");
}
