//! Capability gaps and autonomous discovery for Slovo Tools.
//!
//! This crate provides the search that answers "which capability serves this request?", the
//! calibrated rule that says "none does" (a gap), the argument filling that goes with an
//! answer, and the sources the discovery worker searches when there is a gap.
//!
//! # Brief overview
//! - [`Index`] is a BM25F index over capability [`Document`]s (names, descriptions,
//!   parameters, tags and example requests); [`Index::search`] ranks them and [`GapRule`]
//!   decides whether the best one is good enough. Pure: no I/O.
//! - [`resolve`] puts the two together with [`args::fill`]: ranked capabilities with their
//!   scores and the arguments the request already gives, or a gap.
//! - [`eval`] computes recall@1, recall@5, MRR and gap precision/recall over a JSONL set, and
//!   calibrates the gap rule.
//! - [`sources`] reads candidate tools from manifest directories, OpenAPI catalogues
//!   (APIs.guru layout), OpenAPI URLs and MCP registry `server.json` files. This is the only
//!   module that does I/O.
//!
//! # Example
//! ```
//! use slovo_discovery::{Document, GapRule, Index, resolve};
//! let doc = Document {
//!     tool: "air".into(),
//!     capability: "air_quality".into(),
//!     status: "active".into(),
//!     tool_description: "Air pollution data".into(),
//!     description: "Current air quality index for a city".into(),
//!     parameters: serde_json::json!({"type": "object", "properties": {"city": {"type": "string"}}}),
//!     tags: vec![],
//!     examples: vec![],
//!     route: None,
//! };
//! let index = Index::build(vec![doc]);
//! let r = resolve(&index, "what's the air quality in Lyon", 5, &GapRule::default());
//! assert!(!r.gap);
//! assert_eq!(r.candidates[0].arguments["city"], "Lyon");
//! ```
#![deny(missing_docs)]

pub mod args;
pub mod bfcl;
pub mod embed;
pub mod eval;
pub mod gap;
pub mod hybrid;
mod index;
pub mod measure;
pub mod planner;
pub mod sources;
pub mod text;

use serde::Serialize;
use serde_json::{Map, Value};

pub use gap::{GapEvidence, GapModel};
pub use hybrid::{Ranker, Semantic, SemanticIndex};
pub use index::{Document, GapRule, Hit, Index, Ranking};

/// One ranked capability, with the arguments the request already gives.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResolvedCapability {
    /// Index of the capability's document in the [`Index`].
    #[serde(skip)]
    pub doc: usize,
    /// The tool.
    pub tool: String,
    /// The capability.
    pub capability: String,
    /// The tool's status (`active`, `pending_approval`, …, or `catalogue`).
    pub status: String,
    /// What the capability does.
    pub description: String,
    /// Raw BM25F score.
    pub score: f32,
    /// Score as a share of the best the query could reach (0–1).
    pub normalized: f32,
    /// IDF-weighted share of the request's words the capability covers (0–1).
    pub coverage: f32,
    /// Cosine similarity of the request's and the capability's embeddings (ranking by meaning).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
    /// The gap rule accepts it.
    pub confident: bool,
    /// Arguments filled from the request.
    pub arguments: Map<String, Value>,
    /// How each argument was found.
    pub argument_sources: Map<String, Value>,
    /// Required parameters the request does not give.
    pub missing: Vec<String>,
    /// The ids this capability finds for others among the results (it was lifted into them, or
    /// was already there): a planner calls it first ([`planner`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub supplies: Vec<planner::Supply>,
}

/// The answer to "which capability serves this request?".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resolution {
    /// The request.
    pub query: String,
    /// Best first.
    pub candidates: Vec<ResolvedCapability>,
    /// No candidate is good enough.
    pub gap: bool,
    /// Why, when it is a gap.
    pub gap_reason: Option<String>,
    /// For a ranking by meaning: the gap model's estimated chance that the first candidate
    /// serves the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub served_chance: Option<f32>,
}

/// Ranks the capabilities of `index` for `query` (at most `limit`), fills their arguments,
/// and decides with `rule` whether it is a gap.
pub fn resolve(index: &Index, query: &str, limit: usize, rule: &GapRule) -> Resolution {
    resolve_with(
        index,
        None,
        query,
        limit,
        Ranker::Lexical,
        rule,
        &GapModel::default(),
    )
}

/// [`resolve`] with a ranking by meaning: `ranker` orders the candidates and, unless it is
/// [`Ranker::Lexical`] or there is no `semantic` side, `gap` decides whether it is a gap.
pub fn resolve_with(
    index: &Index,
    semantic: Option<Semantic<'_>>,
    query: &str,
    limit: usize,
    ranker: Ranker,
    rule: &GapRule,
    gap: &GapModel,
) -> Resolution {
    let mut ranking = hybrid::rank(index, semantic, query, limit, ranker, rule, gap);
    let supplies = lift_producers(index, query, limit, &mut ranking.hits, || {
        hybrid::rank(index, semantic, query, index.len(), ranker, rule, gap).hits
    });
    let candidates = ranking
        .hits
        .iter()
        .map(|h| {
            let d = &index.docs()[h.doc];
            let filled = args::fill(query, &d.parameters);
            ResolvedCapability {
                doc: h.doc,
                tool: d.tool.clone(),
                capability: d.capability.clone(),
                status: d.status.clone(),
                description: d.description.clone(),
                score: h.score,
                normalized: h.normalized,
                coverage: h.coverage,
                similarity: h.similarity,
                confident: h.confident,
                arguments: filled.arguments,
                argument_sources: filled.how,
                missing: filled.missing,
                supplies: supplies
                    .iter()
                    .filter(|(d, _)| *d == h.doc)
                    .map(|(_, s)| s.clone())
                    .collect(),
            }
        })
        .collect();
    Resolution {
        query: query.to_string(),
        candidates,
        gap: ranking.gap,
        gap_reason: ranking.gap_reason,
        served_chance: ranking.served_chance,
    }
}

/// Planner-shaped answers: when one of the first hits needs an id the request does not give,
/// the capability of the same API that finds it is brought in right after it ([`planner::lift`]).
/// The whole index is ranked again only then (`everything`), so requests without such a need
/// cost nothing more. Returns what each lifted (or present) producer supplies.
fn lift_producers(
    index: &Index,
    query: &str,
    limit: usize,
    hits: &mut Vec<Hit>,
    everything: impl FnOnce() -> Vec<Hit>,
) -> Vec<(usize, planner::Supply)> {
    let facts = index.planner_facts();
    let missing = |d: usize| args::fill(query, &index.docs()[d].parameters).missing;
    let needs_an_id = hits.iter().take(planner::CONSUMERS_LOOKED_AT).any(|h| {
        let unfilled = missing(h.doc);
        facts[h.doc].needs.iter().any(|n| unfilled.contains(&n.parameter))
    });
    if !needs_an_id {
        return Vec::new();
    }
    let all = everything();
    let order: Vec<usize> = all.iter().map(|h| h.doc).collect();
    let top: Vec<usize> = hits.iter().map(|h| h.doc).collect();
    let (lifted, supplies) = planner::lift(index.docs(), facts, &top, &order, limit, &missing);
    *hits = lifted
        .iter()
        .filter_map(|d| all.iter().find(|h| h.doc == *d).cloned())
        .collect();
    supplies
}

/// A key under which equivalent requests meet: the sorted, distinct, stemmed non-value words.
/// "What's the air quality in Lyon?" and "air quality in Paris" share `air qualiti`.
pub fn need_key(description: &str) -> String {
    let mut terms: Vec<String> = text::query_terms(description)
        .into_iter()
        .filter(|t| !t.value)
        .map(|t| t.term)
        .collect();
    terms.sort();
    terms.dedup();
    terms.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn equivalent_needs_share_a_key() {
        assert_eq!(need_key("What's the air quality in Lyon?"), "air qualiti");
        assert_eq!(
            need_key("air quality in New York"),
            need_key("the air quality, please")
        );
        assert_ne!(need_key("air quality"), need_key("air pressure"));
        assert_eq!(need_key("the"), "");
    }
}
