//! Instances sharing PostgreSQL share tools: a bundle imported and approved through one
//! instance runs on another, which fetches the bundle from the database and accepts it only if
//! its own digest matches; a forged archive is refused and never installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use slovo_test_support::fresh_postgres_url;
use support::Install;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

fn bundles_of(install: &Install) -> Vec<String> {
    match std::fs::read_dir(install.data.join("bundles")) {
        Ok(dir) => dir
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bundle_imported_through_one_instance_runs_on_another_and_a_forged_one_is_refused() {
    let Some(url) = fresh_postgres_url().await else {
        return; // SLOVO_TEST_SKIP_POSTGRES=1: sharing needs PostgreSQL
    };
    let root = tempfile::tempdir().unwrap();
    let instance = |n: &str| Install {
        data: root.path().join(n),
        url: Some(url.clone()),
    };
    let (a, b, c) = (instance("a"), instance("b"), instance("c"));

    a.run(&["tool", "import", example("text-stats").to_str().unwrap()]);
    a.run(&["tool", "approve", "text-stats"]);
    let digest = bundles_of(&a).pop().expect("a has the bundle");
    assert!(bundles_of(&b).is_empty());

    // Instance b never saw the bundle: its first call fetches, verifies and installs it.
    let out = b.run(&[
        "--json",
        "call",
        "text-stats",
        "stats",
        "--args",
        r#"{"text": "one two two"}"#,
    ]);
    let e: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(e["status"], "success", "{e}");
    assert_eq!(e["output"]["words"], 3, "{e}");
    assert_eq!(bundles_of(&b), vec![digest.clone()]);

    // The database's archive is replaced by another bundle's bytes: an instance that has not
    // installed it yet refuses it, and nothing lands under its bundles.
    let forged = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    for f in ["slovo.yaml", "text_stats.wasm"] {
        std::fs::copy(example("text-stats").join(f), forged.path().join(f)).unwrap();
    }
    std::fs::write(forged.path().join("extra"), "not what was approved").unwrap();
    let forged_digest = slovo_bundle::stage(forged.path(), other.path())
        .unwrap()
        .commit()
        .unwrap();
    let forged_archive = slovo_bundle::pack(&other.path().join(&forged_digest)).unwrap();
    let store = a.store().await;
    store
        .execute_raw(&format!("DELETE FROM bundle_archives WHERE digest = '{digest}'"))
        .await
        .unwrap();
    store
        .save_bundle_archive(&digest, &forged_archive, 0)
        .await
        .unwrap();
    let out = c
        .cmd()
        .args(["call", "text-stats", "stats", "--args", r#"{"text": "x"}"#])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("has digest {forged_digest}: refused")),
        "{stderr}"
    );
    assert!(bundles_of(&c).is_empty(), "{:?}", bundles_of(&c));

    // An instance without the archive at all says what to do.
    store
        .execute_raw(&format!("DELETE FROM bundle_archives WHERE digest = '{digest}'"))
        .await
        .unwrap();
    let out = c
        .cmd()
        .args(["call", "text-stats", "stats", "--args", r#"{"text": "x"}"#])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("keeps no archive of it"), "{stderr}");
    store.close().await;
}
