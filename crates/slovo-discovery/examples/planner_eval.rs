//! Planner-shaped answers measured on Spotify's Web API (cached by
//! `scripts/ci-discovery-setup.sh`): for each multi-step request of
//! `eval/planner-spotify.jsonl`, is the operation a planner needs first among the top five,
//! before (ranking alone) and after lifting the producers of needed ids?
//! `cargo run -p slovo-discovery --example planner_eval -- SPOTIFY.json [MODEL_DIR]`

use serde::Deserialize;
use slovo_discovery::embed::LocalModel;
use slovo_discovery::hybrid::{self, embedding_text};
use slovo_discovery::{Document, GapModel, GapRule, Index, Ranker, Semantic, SemanticIndex, resolve_with};

#[derive(Deserialize)]
struct Case {
    query: String,
    then: String,
    first: String,
}

/// `get-a-list-of-current-users-playlists` and `get_a_list_of_current_users_playlists` meet.
fn same_name(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    norm(a) == norm(b)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let document = args
        .first()
        .ok_or("usage: planner_eval SPOTIFY.json [MODEL_DIR]")?;
    let source = slovo_openapi::Source::from_path(document, slovo_openapi::DEFAULT_MAX_DOCUMENT_BYTES)?;
    let imported = slovo_openapi::ingest(&source, &slovo_openapi::IngestOptions::default())?;
    let docs: Vec<Document> = imported
        .manifests
        .iter()
        .flat_map(|m| Document::from_manifest(m, "active"))
        .collect();
    let index = Index::build(docs);
    let cases: Vec<Case> = include_str!("../eval/planner-spotify.jsonl")
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let model = args.get(1).map(|d| LocalModel::load(d.as_ref())).transpose()?;
    let semantic = match &model {
        Some(m) => Some(SemanticIndex::new(
            &index,
            m.embed(&index.docs().iter().map(embedding_text).collect::<Vec<_>>())?,
        )?),
        None => None,
    };
    let (rule, gap) = (GapRule::default(), GapModel::default());
    let (mut before, mut after, mut then_before, mut then_after) = (0, 0, 0, 0);
    for c in &cases {
        let query_vector = match &model {
            Some(m) => m.embed(std::slice::from_ref(&c.query))?.pop(),
            None => None,
        };
        let sem = semantic
            .as_ref()
            .zip(query_vector.as_deref())
            .map(|(index, query)| Semantic { index, query });
        let ranker = if sem.is_some() {
            Ranker::Weighted
        } else {
            Ranker::Lexical
        };
        let plain: Vec<String> = hybrid::rank(&index, sem, &c.query, 5, ranker, &rule, &gap)
            .hits
            .iter()
            .map(|h| index.docs()[h.doc].capability.clone())
            .collect();
        let shaped: Vec<String> = resolve_with(&index, sem, &c.query, 5, ranker, &rule, &gap)
            .candidates
            .iter()
            .map(|h| h.capability.clone())
            .collect();
        let has = |list: &[String], name: &str| list.iter().any(|n| same_name(n, name));
        before += usize::from(has(&plain, &c.first));
        after += usize::from(has(&shaped, &c.first));
        then_before += usize::from(has(&plain, &c.then));
        then_after += usize::from(has(&shaped, &c.then));
        println!(
            "{}\n  before: {}\n  after:  {}",
            c.query,
            plain.join(", "),
            shaped.join(", ")
        );
        if std::env::var_os("PLANNER_DEBUG").is_some() {
            let r = resolve_with(&index, sem, &c.query, 3, ranker, &rule, &gap);
            for cand in &r.candidates {
                println!(
                    "    {} missing {:?} facts {:?}",
                    cand.capability,
                    cand.missing,
                    index.planner_facts()[cand.doc]
                );
            }
        }
    }
    let n = cases.len();
    println!(
        "{} ranking, {n} requests: first step in top 5 {before} → {after}; the step that needs it in top 5 {then_before} → {then_after}",
        if model.is_some() { "weighted" } else { "lexical" }
    );
    Ok(())
}
