//! Ranking by meaning: cosine similarity of sentence embeddings, alone or fused with the BM25F
//! ranking of [`Index`], and the gap decision that goes with it.
//!
//! The vectors come from outside (an in-process [`crate::embed::LocalModel`] or an
//! OpenAI-compatible embeddings endpoint) and are cached by the caller; this module is pure.
//! Fusion methods, measured in `docs/discovery.md`:
//! - reciprocal rank fusion: `1/(k + lexical rank) + 1/(k + semantic rank)`;
//! - weighted scores: `α · similarity + (1 − α) · normalised BM25F score`.

use serde::{Deserialize, Serialize};

use crate::embed::cosine;
use crate::gap::{GapEvidence, GapModel};
use crate::index::{Document, GapRule, Hit, Index, Ranking};

/// The text of a capability that is embedded: its name as words, its description and its
/// tool's description (parameters and examples measured no better; `docs/discovery.md`).
pub fn embedding_text(doc: &Document) -> String {
    let name: String = doc
        .capability
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    let mut text = format!("{}: {}", name.trim(), doc.description.trim());
    let tool = doc.tool_description.trim();
    if !tool.is_empty() && tool != doc.description.trim() {
        text.push_str(" (");
        text.push_str(tool);
        text.push(')');
    }
    text
}

/// One vector per document of an [`Index`], in the same order.
#[derive(Debug, Clone)]
pub struct SemanticIndex {
    vectors: Vec<Vec<f32>>,
}

/// The vectors do not fit the index.
#[derive(Debug, thiserror::Error)]
#[error("{vectors} vectors for {docs} documents")]
pub struct MismatchedVectors {
    vectors: usize,
    docs: usize,
}

impl SemanticIndex {
    /// The vectors of `index`'s documents, in index order.
    pub fn new(index: &Index, vectors: Vec<Vec<f32>>) -> Result<SemanticIndex, MismatchedVectors> {
        if vectors.len() != index.len() {
            return Err(MismatchedVectors {
                vectors: vectors.len(),
                docs: index.len(),
            });
        }
        Ok(SemanticIndex { vectors })
    }

    /// Cosine similarity of every document to the query vector, in index order.
    pub fn similarities(&self, query: &[f32]) -> Vec<f32> {
        self.vectors.iter().map(|v| cosine(v, query)).collect()
    }
}

/// How candidates are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ranker {
    /// BM25F only (the default without a model).
    Lexical,
    /// Embedding similarity only.
    Semantic,
    /// Reciprocal rank fusion of both.
    Rrf,
    /// Weighted sum of similarity and normalised BM25F score.
    Weighted,
}

impl Ranker {
    /// Every ranker, for evaluation.
    pub const ALL: [Ranker; 4] = [Ranker::Lexical, Ranker::Semantic, Ranker::Rrf, Ranker::Weighted];

    /// Its name in configuration and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Ranker::Lexical => "lexical",
            Ranker::Semantic => "semantic",
            Ranker::Rrf => "rrf",
            Ranker::Weighted => "weighted",
        }
    }
}

/// RRF's rank offset; small because catalogues offered for one request are small and the
/// first few ranks are what matter (measured on the development split).
pub const RRF_K: f32 = 10.0;
/// Weight of the similarity in [`Ranker::Weighted`] (measured on the development split).
pub const WEIGHTED_ALPHA: f32 = 0.7;

/// The query's side of a ranking by meaning: the document vectors and the query's vector.
#[derive(Debug, Clone, Copy)]
pub struct Semantic<'a> {
    /// Vectors of the index's documents.
    pub index: &'a SemanticIndex,
    /// The query's vector (same model).
    pub query: &'a [f32],
}

/// Ranks `index`'s capabilities for `query` with `ranker`. Without `semantic`, or with
/// [`Ranker::Lexical`], this is [`Index::search`] with `rule`; otherwise the gap decision is
/// `gap`'s.
pub fn rank(
    index: &Index,
    semantic: Option<Semantic<'_>>,
    query: &str,
    limit: usize,
    ranker: Ranker,
    rule: &GapRule,
    gap: &GapModel,
) -> Ranking {
    let Some(sem) = semantic.filter(|_| ranker != Ranker::Lexical) else {
        return index.search(query, limit, rule);
    };
    // Every document's lexical figures (those the query does not touch score 0).
    let loose = GapRule {
        min_normalized: 0.0,
        min_coverage: 0.0,
    };
    let lexical = index.search(query, index.len(), &loose);
    let mut lex: Vec<(f32, f32, f32)> = vec![(0.0, 0.0, 0.0); index.len()];
    let mut lex_rank: Vec<Option<usize>> = vec![None; index.len()];
    for (r, h) in lexical.hits.iter().enumerate() {
        lex[h.doc] = (h.score, h.normalized, h.coverage);
        lex_rank[h.doc] = Some(r + 1);
    }
    let sims = sem.index.similarities(sem.query);
    let mut by_sim: Vec<usize> = (0..index.len()).collect();
    by_sim.sort_by(|&a, &b| sims[b].total_cmp(&sims[a]).then(a.cmp(&b)));
    let mut sem_rank = vec![0usize; index.len()];
    for (r, &d) in by_sim.iter().enumerate() {
        sem_rank[d] = r + 1;
    }
    let fused = |d: usize| -> f32 {
        match ranker {
            Ranker::Semantic | Ranker::Lexical => sims[d],
            Ranker::Rrf => {
                1.0 / (RRF_K + sem_rank[d] as f32) + lex_rank[d].map_or(0.0, |r| 1.0 / (RRF_K + r as f32))
            }
            Ranker::Weighted => WEIGHTED_ALPHA * sims[d] + (1.0 - WEIGHTED_ALPHA) * lex[d].1,
        }
    };
    let scores: Vec<f32> = (0..index.len()).map(fused).collect();
    let query_words = crate::text::query_terms(query).len();
    let evidence = |d: usize| {
        let (parameters, required_parameters) = GapEvidence::parameter_counts(&index.docs()[d].parameters);
        GapEvidence {
            similarity: sims[d],
            normalized: lex[d].1,
            coverage: lex[d].2,
            query_words,
            required_parameters,
            parameters,
        }
    };
    let mut order: Vec<usize> = (0..index.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order.truncate(limit);
    let hits: Vec<Hit> = order
        .into_iter()
        .map(|d| {
            let (_, normalized, coverage) = lex[d];
            Hit {
                doc: d,
                score: scores[d],
                normalized,
                coverage,
                similarity: Some(sims[d]),
                confident: gap.accepts(&evidence(d)),
            }
        })
        .collect();
    let is_gap = !hits.first().is_some_and(|h| h.confident);
    let gap_reason = is_gap.then(|| match hits.first() {
        None => "there is no capability".to_string(),
        Some(h) => {
            let d = &index.docs()[h.doc];
            format!(
                "best candidate {}.{} is too unlikely to serve the request (similarity {:.2}, normalised score {:.2}, covers {:.0}% of the request; estimated chance {:.0}%)",
                d.tool,
                d.capability,
                sims[h.doc],
                h.normalized,
                h.coverage * 100.0,
                gap.p_served(&evidence(h.doc)) * 100.0
            )
        }
    });
    let served_chance = hits.first().map(|h| gap.p_served(&evidence(h.doc)));
    Ranking {
        hits,
        gap: is_gap,
        gap_reason,
        served_chance,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(cap: &str, desc: &str) -> Document {
        Document {
            tool: "t".into(),
            capability: cap.into(),
            status: "active".into(),
            tool_description: String::new(),
            description: desc.into(),
            parameters: json!({"type": "object"}),
            tags: vec![],
            examples: vec![],
            route: None,
        }
    }

    /// Three capabilities; the request shares words only with the second, while its vector
    /// points at the first.
    fn setup() -> (Index, SemanticIndex) {
        let index = Index::build(vec![
            doc("reserve", "Restaurant reservations"),
            doc("book_search", "Search books by title"),
            doc("weather", "Weather forecast"),
        ]);
        let vectors = vec![vec![1.0, 0.1, 0.0], vec![0.2, 1.0, 0.0], vec![0.0, 0.0, 1.0]];
        let semantic = SemanticIndex::new(&index, vectors).unwrap();
        (index, semantic)
    }

    fn order(r: &Ranking) -> Vec<usize> {
        r.hits.iter().map(|h| h.doc).collect()
    }

    #[test]
    fn each_ranker_orders_by_its_own_evidence() {
        let (index, semantic) = setup();
        let query = [1.0, 0.0, 0.0];
        let sem = Some(Semantic {
            index: &semantic,
            query: &query,
        });
        let rule = GapRule::default();
        let gap = GapModel::default();
        let q = "book a table";
        let lexical = rank(&index, sem, q, 3, Ranker::Lexical, &rule, &gap);
        assert_eq!(order(&lexical)[0], 1, "words: 'book' is in book_search");
        assert!(lexical.hits[0].similarity.is_none());
        let semantic_only = rank(&index, sem, q, 3, Ranker::Semantic, &rule, &gap);
        assert_eq!(order(&semantic_only), vec![0, 1, 2]);
        let weighted = rank(&index, sem, q, 3, Ranker::Weighted, &rule, &gap);
        assert_eq!(order(&weighted)[0], 0, "similarity outweighs one shared word");
        assert!(weighted.hits[0].similarity.is_some_and(|s| s > 0.99));
        let rrf = rank(&index, sem, q, 3, Ranker::Rrf, &rule, &gap);
        // Rank 1 by meaning and unranked by words, against rank 2 and rank 1: the second wins.
        assert_eq!(order(&rrf)[0], 1);
        // Without vectors, every ranker is the lexical one.
        let none = rank(&index, None, q, 3, Ranker::Weighted, &rule, &gap);
        assert_eq!(none, lexical);
    }

    #[test]
    fn the_gap_model_decides_for_rankings_by_meaning() {
        let (index, semantic) = setup();
        // One tree: served from similarity 0.9 on.
        let strict = GapModel {
            base: 0.0,
            trees: vec![crate::gap::Tree {
                inputs: [0, 0, 0],
                thresholds: [0.9, 0.9, 0.9],
                leaves: [-5.0, -5.0, 5.0, 5.0],
            }]
            .into(),
        };
        let near = [1.0, 0.0, 0.0];
        let far = [0.5, 0.5, 0.5];
        let r = |q: &[f32]| {
            let sem = Some(Semantic {
                index: &semantic,
                query: q,
            });
            rank(
                &index,
                sem,
                "x",
                3,
                Ranker::Semantic,
                &GapRule::default(),
                &strict,
            )
        };
        assert!(!r(&near).gap, "similarity 0.99 passes a 0.9 bar");
        let far_ranking = r(&far);
        assert!(far_ranking.gap, "similarity 0.65 does not");
        assert!(far_ranking.gap_reason.unwrap().contains("similarity 0.6"));
    }

    #[test]
    fn vectors_must_fit_the_index() {
        let (index, _) = setup();
        assert!(SemanticIndex::new(&index, vec![vec![1.0]]).is_err());
    }
}
