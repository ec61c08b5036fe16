//! Figures of a ranker over cases that each bring their own catalogue (the BFCL layout,
//! [`crate::bfcl`]): recall@1, recall@5, MRR, gap precision/recall/accuracy and the false-gap
//! rate; and the fit of the [`GapModel`] on development cases.

use std::collections::HashMap;

use serde::Serialize;

use crate::bfcl::{CatalogueCase, Expected};
use crate::gap::{self, GapEvidence, GapModel};
use crate::hybrid::{self, Ranker, Semantic, SemanticIndex, embedding_text};
use crate::index::{GapRule, Index};

/// Every text a semantic evaluation of `cases` embeds (queries and capabilities), each once.
pub fn texts_to_embed(cases: &[CatalogueCase]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for c in cases {
        for t in std::iter::once(c.query.clone()).chain(c.docs.iter().map(embedding_text)) {
            if seen.insert(t.clone()) {
                out.push(t);
            }
        }
    }
    out
}

/// What happened to one case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// The case's id.
    pub id: String,
    /// Whether some capability serves it.
    pub servable: bool,
    /// Whether the case names the function that serves it.
    pub named: bool,
    /// Rank of the expected function (1-based), if named and ranked.
    pub rank: Option<usize>,
    /// Whether it was called a gap.
    pub gap: bool,
    /// What the gap model saw of the best candidate.
    pub evidence: GapEvidence,
}

/// Ranks every case with `ranker`. `vectors` holds the embedding of every text of
/// [`texts_to_embed`] (unused, and may be empty, for [`Ranker::Lexical`]).
pub fn run(
    cases: &[CatalogueCase],
    vectors: &HashMap<String, Vec<f32>>,
    ranker: Ranker,
    rule: &GapRule,
    gap: &GapModel,
) -> Vec<Outcome> {
    cases
        .iter()
        .map(|c| {
            let index = Index::build(c.docs.clone());
            let doc_vectors: Option<Vec<Vec<f32>>> = c
                .docs
                .iter()
                .map(|d| vectors.get(&embedding_text(d)).cloned())
                .collect();
            let semantic_index = doc_vectors.and_then(|v| SemanticIndex::new(&index, v).ok());
            let query_vector = vectors.get(&c.query);
            let semantic = match (&semantic_index, query_vector) {
                (Some(index), Some(query)) => Some(Semantic { index, query }),
                _ => None,
            };
            let ranking = hybrid::rank(&index, semantic, &c.query, 10, ranker, rule, gap);
            let rank = match &c.expected {
                Expected::Function(name) => ranking
                    .hits
                    .iter()
                    .position(|h| &index.docs()[h.doc].capability == name)
                    .map(|p| p + 1),
                Expected::Any | Expected::Gap => None,
            };
            let query_words = crate::text::query_terms(&c.query).len();
            let evidence = ranking
                .hits
                .first()
                .map(|h| {
                    let (parameters, required_parameters) =
                        GapEvidence::parameter_counts(&index.docs()[h.doc].parameters);
                    GapEvidence {
                        similarity: h.similarity.unwrap_or(0.0),
                        normalized: h.normalized,
                        coverage: h.coverage,
                        query_words,
                        required_parameters,
                        parameters,
                    }
                })
                .unwrap_or(GapEvidence {
                    similarity: 0.0,
                    normalized: 0.0,
                    coverage: 0.0,
                    query_words,
                    required_parameters: 0,
                    parameters: 0,
                });
            Outcome {
                id: c.id.clone(),
                servable: c.expected != Expected::Gap,
                named: matches!(c.expected, Expected::Function(_)),
                rank,
                gap: ranking.gap,
                evidence,
            }
        })
        .collect()
}

/// The figures of a set of outcomes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// Cases.
    pub cases: usize,
    /// Cases with a named function (the base of recall and MRR).
    pub ranked: usize,
    /// Cases that are gaps.
    pub gaps: usize,
    /// Share of named cases whose function comes first.
    pub recall_at_1: f64,
    /// Share of named cases whose function is in the first five.
    pub recall_at_5: f64,
    /// Mean reciprocal rank (0 beyond rank 10).
    pub mrr: f64,
    /// Of the cases called a gap, the share that are.
    pub gap_precision: f64,
    /// Of the gaps, the share called a gap.
    pub gap_recall: f64,
    /// Share of all cases whose gap decision is right.
    pub gap_accuracy: f64,
    /// Share of servable cases called a gap.
    pub false_gap_rate: f64,
    /// The gap accuracy of never calling a gap, for comparison.
    pub never_gap_accuracy: f64,
}

fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

/// Sums up `outcomes`.
pub fn figures(outcomes: &[Outcome]) -> Figures {
    let ranked: Vec<&Outcome> = outcomes.iter().filter(|o| o.named).collect();
    let named = ranked.len();
    let r1 = ranked.iter().filter(|o| o.rank == Some(1)).count();
    let r5 = ranked.iter().filter(|o| o.rank.is_some_and(|r| r <= 5)).count();
    let rr: f64 = ranked.iter().filter_map(|o| o.rank).map(|r| 1.0 / r as f64).sum();
    let gaps = outcomes.iter().filter(|o| !o.servable).count();
    let called = outcomes.iter().filter(|o| o.gap).count();
    let right_gaps = outcomes.iter().filter(|o| o.gap && !o.servable).count();
    let right = outcomes.iter().filter(|o| o.gap != o.servable).count();
    let servable = outcomes.len() - gaps;
    let false_gaps = outcomes.iter().filter(|o| o.gap && o.servable).count();
    Figures {
        cases: outcomes.len(),
        ranked: named,
        gaps,
        recall_at_1: ratio(r1, named),
        recall_at_5: ratio(r5, named),
        mrr: if named == 0 { 0.0 } else { rr / named as f64 },
        gap_precision: ratio(right_gaps, called),
        gap_recall: ratio(right_gaps, gaps),
        gap_accuracy: ratio(right, outcomes.len()),
        false_gap_rate: ratio(false_gaps, servable),
        never_gap_accuracy: ratio(servable, outcomes.len()),
    }
}

/// Fits the [`GapModel`] to `outcomes` (servable or not, from what the model saw).
pub fn fit_gap_model(outcomes: &[Outcome]) -> GapModel {
    let examples: Vec<(GapEvidence, bool)> = outcomes.iter().map(|o| (o.evidence, o.servable)).collect();
    gap::fit(&examples)
}

/// The figures of one ranker on the development and the held-out part.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankerFigures {
    /// The ranker.
    pub ranker: Ranker,
    /// Live multiple mixed with live irrelevance, development part.
    pub dev: Figures,
    /// The same, held-out part.
    pub held_out: Figures,
    /// Share of live relevance cases (servable, unnamed) called a gap, both parts.
    pub relevance_false_gap_rate: f64,
    /// How many live relevance cases there are.
    pub relevance_cases: usize,
}

/// A whole evaluation over BFCL's live sets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveReport {
    /// The embedding model, if any.
    pub model: Option<String>,
    /// The gap model used for the rankers by meaning.
    pub gap_model: GapModel,
    /// Whether `gap_model` was fitted on this run's development part (`--fit-gap`).
    pub fitted: bool,
    /// Texts embedded and how long it took, in seconds.
    pub embedded: usize,
    /// Seconds spent embedding.
    pub embed_seconds: f64,
    /// One entry per ranker.
    pub rankers: Vec<RankerFigures>,
}

/// Embedding the evaluation's texts failed.
#[derive(Debug, thiserror::Error)]
#[error("embedding failed: {0}")]
pub struct EmbeddingFailed(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl EmbeddingFailed {
    /// Wraps whatever the embedder failed with.
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> EmbeddingFailed {
        EmbeddingFailed(error.into())
    }
}

/// How the evaluation embeds texts (an in-process model or an endpoint).
pub trait Embed {
    /// The model's id.
    fn model_id(&self) -> String;
    /// One vector per text.
    fn embed_texts(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbeddingFailed>;
}

impl Embed for crate::embed::LocalModel {
    fn model_id(&self) -> String {
        self.id().to_string()
    }
    fn embed_texts(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbeddingFailed> {
        self.embed(texts).map_err(EmbeddingFailed::new)
    }
}

/// Evaluates every ranker (only the lexical one without `model`) on `sets`: live multiple
/// with live irrelevance, split by [`crate::bfcl::held_out`]. With `fit`, the gap model is
/// first fitted on the development part of the `fit_on` ranker's outcomes.
pub fn evaluate_live(
    sets: &crate::bfcl::LiveSets,
    model: Option<&dyn Embed>,
    fit: Option<Ranker>,
) -> Result<LiveReport, EmbeddingFailed> {
    let mixed: Vec<CatalogueCase> = sets.multiple.iter().chain(&sets.irrelevance).cloned().collect();
    let mut vectors = HashMap::new();
    let started = std::time::Instant::now();
    if let Some(m) = model {
        let all: Vec<CatalogueCase> = mixed.iter().chain(&sets.relevance).cloned().collect();
        let texts = texts_to_embed(&all);
        let embedded = m.embed_texts(&texts)?;
        vectors = texts.into_iter().zip(embedded).collect();
    }
    let embed_seconds = started.elapsed().as_secs_f64();
    let rule = GapRule::default();
    let (dev, held): (Vec<CatalogueCase>, Vec<CatalogueCase>) =
        mixed.into_iter().partition(|c| !c.held_out());
    let mut gap = GapModel::default();
    if let Some(ranker) = fit.filter(|_| model.is_some()) {
        gap = fit_gap_model(&run(&dev, &vectors, ranker, &rule, &gap));
    }
    let rankers: &[Ranker] = if model.is_some() {
        &Ranker::ALL
    } else {
        &[Ranker::Lexical]
    };
    let rankers = rankers
        .iter()
        .map(|&ranker| {
            let relevance = figures(&run(&sets.relevance, &vectors, ranker, &rule, &gap));
            RankerFigures {
                ranker,
                dev: figures(&run(&dev, &vectors, ranker, &rule, &gap)),
                held_out: figures(&run(&held, &vectors, ranker, &rule, &gap)),
                relevance_false_gap_rate: relevance.false_gap_rate,
                relevance_cases: relevance.cases,
            }
        })
        .collect();
    Ok(LiveReport {
        model: model.map(|m| m.model_id()),
        gap_model: gap,
        fitted: fit.is_some() && model.is_some(),
        embedded: vectors.len(),
        embed_seconds,
        rankers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(servable: bool, similarity: f32, rank: Option<usize>, gap: bool) -> Outcome {
        Outcome {
            id: String::new(),
            servable,
            named: servable,
            rank,
            gap,
            evidence: GapEvidence {
                similarity,
                normalized: 0.0,
                coverage: 0.0,
                query_words: 1,
                required_parameters: 0,
                parameters: 0,
            },
        }
    }

    #[test]
    fn figures_count_what_they_say() {
        let o = vec![
            outcome(true, 0.0, Some(1), false),
            outcome(true, 0.0, Some(3), true),
            outcome(true, 0.0, None, false),
            outcome(false, 0.0, None, true),
            outcome(false, 0.0, None, false),
        ];
        let f = figures(&o);
        assert_eq!((f.cases, f.ranked, f.gaps), (5, 3, 2));
        assert!((f.recall_at_1 - 1.0 / 3.0).abs() < 1e-9);
        assert!((f.recall_at_5 - 2.0 / 3.0).abs() < 1e-9);
        assert!((f.mrr - (1.0 + 1.0 / 3.0) / 3.0).abs() < 1e-9);
        assert!((f.gap_precision - 0.5).abs() < 1e-9);
        assert!((f.gap_recall - 0.5).abs() < 1e-9);
        assert!((f.gap_accuracy - 0.6).abs() < 1e-9);
        assert!((f.false_gap_rate - 1.0 / 3.0).abs() < 1e-9);
        assert!((f.never_gap_accuracy - 0.6).abs() < 1e-9);
    }
}
