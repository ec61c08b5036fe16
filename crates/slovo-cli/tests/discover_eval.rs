//! `slovo discover eval --bfcl` on the committed BFCL sample (lexical: no model needed), and
//! `slovo doctor` naming the ranking in use, including a model directory that cannot load.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use assert_cmd::Command;
use serde_json::Value;

fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../slovo-discovery/eval/bfcl-sample")
}

fn slovo(data: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::cargo_bin("slovo").unwrap();
    cmd.env("SLOVO_DATA_DIR", data)
        .env_remove("SLOVO_DATABASE_URL")
        .env_remove("SLOVO_DISCOVERY_MODEL_DIR")
        .env_remove("RUST_LOG")
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn bfcl_eval_reports_dev_and_held_out_figures() {
    let dir = tempfile::tempdir().unwrap();
    let sample = sample();
    let out = slovo(
        dir.path(),
        &["--json", "discover", "eval", "--bfcl", sample.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rankers = report["rankers"].as_array().unwrap();
    assert_eq!(rankers.len(), 1, "lexical only without a model: {report}");
    assert_eq!(rankers[0]["ranker"], "lexical");
    let cases = |part: &str| rankers[0][part]["cases"].as_u64().unwrap();
    assert_eq!(cases("dev") + cases("held_out"), 80);
    assert!(cases("held_out") > 15 && cases("dev") > 40, "{report}");
    assert!(
        rankers[0]["dev"]["recall_at_5"].as_f64().unwrap() > 0.5,
        "{report}"
    );

    let out = slovo(
        dir.path(),
        &["discover", "eval", "--bfcl", "/nonexistent/bfcl"],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("/nonexistent/bfcl/possible_answer/BFCL_v4_live_multiple.json")
    );
}

#[test]
fn doctor_names_the_ranking_and_a_model_that_cannot_load() {
    let dir = tempfile::tempdir().unwrap();
    let out = slovo(dir.path(), &["--json", "doctor"], &[]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["discovery_ranking"]["ranker"], "lexical", "{report}");
    assert!(report["discovery_ranking"].get("problem").is_none());

    let empty = tempfile::tempdir().unwrap();
    let out = slovo(
        dir.path(),
        &["doctor"],
        &[("SLOVO_DISCOVERY_MODEL_DIR", empty.path().to_str().unwrap())],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("discovery ranking: lexical (BM25F): the configured model cannot be used")
            && text.contains("model.safetensors"),
        "{text}"
    );
}
