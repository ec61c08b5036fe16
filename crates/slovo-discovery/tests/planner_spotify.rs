//! Planner-shaped answers on a real API: Spotify's Web API, cached (pinned) by
//! `scripts/ci-discovery-setup.sh`. For multi-step requests (`eval/planner-spotify.jsonl`),
//! the operation that finds the id the matched operation needs comes into the top five.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use slovo_discovery::{Document, GapRule, Index, resolve};

fn spotify() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let path = cache.join("slovo-test/openapi/spotify.com.json");
    if path.exists() {
        return Some(path);
    }
    let why = format!("{} is missing: run scripts/ci-discovery-setup.sh", path.display());
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("skipped: {why}");
    None
}

fn norm(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

#[test]
fn the_operation_that_finds_a_needed_id_is_among_the_first_five() {
    let Some(path) = spotify() else { return };
    let source = slovo_openapi::Source::from_path(&path, slovo_openapi::DEFAULT_MAX_DOCUMENT_BYTES).unwrap();
    let imported = slovo_openapi::ingest(&source, &slovo_openapi::IngestOptions::default()).unwrap();
    let docs: Vec<Document> = imported
        .manifests
        .iter()
        .flat_map(|m| Document::from_manifest(m, "active"))
        .collect();
    let index = Index::build(docs);

    // Named: "add … to my Road Trip playlist" needs a playlist id; listing the person's
    // playlists finds it, and says for whom.
    let r = resolve(
        &index,
        "add Bohemian Rhapsody to my Road Trip playlist",
        5,
        &GapRule::default(),
    );
    assert_eq!(norm(&r.candidates[0].capability), "addtrackstoplaylist", "{r:?}");
    let lister = r
        .candidates
        .iter()
        .find(|c| norm(&c.capability) == "getalistofcurrentusersplaylists")
        .unwrap_or_else(|| panic!("{:?}", r.candidates));
    assert_eq!(lister.supplies[0].parameter, "playlist_id");
    assert_eq!(norm(&lister.supplies[0].capability), "addtrackstoplaylist");
    assert!(
        r.candidates.iter().take(1).all(|c| c.supplies.is_empty()),
        "the first result is the request's own operation"
    );

    // The whole set: the first step is among the first five for most requests.
    let cases: Vec<serde_json::Value> = include_str!("../eval/planner-spotify.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let found = cases
        .iter()
        .filter(|c| {
            let r = resolve(&index, c["query"].as_str().unwrap(), 5, &GapRule::default());
            r.candidates
                .iter()
                .any(|h| norm(&h.capability) == norm(c["first"].as_str().unwrap()))
        })
        .count();
    assert!(found >= 13, "{found} of {}", cases.len());
}
