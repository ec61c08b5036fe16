//! The gap decision for rankings by meaning: gradient-boosted trees over what is known of the
//! best candidate ([`GapEvidence`]), and their fit on development cases ([`fit`]).
//!
//! Inputs that depend on how many capabilities are offered (the margin to the second
//! candidate, whether the lexical and the semantic ranker agree on the first) are left out on
//! purpose: in BFCL's live data most unservable requests come with a single function and the
//! servable ones never do, so such inputs would learn the catalogue's size, not the evidence.
//! What the request and the candidate are like is in instead: the request's length: a long,
//! specific request ("a table at The French Laundry in Yountville on the 14th of March at 13:30
//! for 4 people") is less similar to a one-line description than a short one, while a very
//! short one ("sum", "an API call") looks similar to almost anything, so the similarity bar
//! moves with it. And how many parameters the candidate takes and requires: a capability that
//! needs several things is served only by a request that says them ("find me a train" does not
//! serve a train search that needs a route and a date).
//!
//! Trees rather than a linear model because the bar is not linear in these inputs: on the
//! development part of BFCL live, 5-fold cross-validated accuracy is 0.87 for the trees against
//! 0.84 for logistic regression over the same evidence (`docs/discovery.md`).
//!
//! The trees may be fitted under monotone constraints ([`MONOTONE`], [`FitSettings`]): then
//! more similarity, score or coverage never lowers the chance of being served, and more
//! required parameters never raises it, so a decision can be explained input by input and a
//! closer candidate is never called a gap where a farther one is answered. [`cross_validate`]
//! is how the fit and its decision threshold were chosen.

mod committed;
mod cv;
mod fit;

use std::borrow::Cow;

use serde::Serialize;

pub use cv::{CrossValidation, DecisionFigures, cross_validate};
pub use fit::{FitSettings, fit, fit_with};

/// What the gap model knows of the best candidate for a request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GapEvidence {
    /// Cosine similarity of the request's and the capability's embeddings.
    pub similarity: f32,
    /// Normalised BM25F score (0–1).
    pub normalized: f32,
    /// IDF-weighted share of the request's content words the capability holds (0–1).
    pub coverage: f32,
    /// Distinct content words (stemmed, stop words left out) in the request.
    pub query_words: usize,
    /// Parameters the capability requires.
    pub required_parameters: usize,
    /// Parameters it takes, required or not.
    pub parameters: usize,
}

/// How many inputs the model has.
pub const INPUT_COUNT: usize = 6;

/// Names of the model's inputs, in the order of [`GapEvidence::inputs`] (what
/// [`Tree::inputs`] refers to).
pub const INPUTS: [&str; INPUT_COUNT] = [
    "similarity",
    "normalized",
    "coverage",
    "query words",
    "required parameters",
    "parameters",
];

/// How the chance of being served may move when one input grows, all else equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Never lower.
    Increasing,
    /// Never higher.
    Decreasing,
    /// Either way, and by different amounts in different places.
    Free,
}

/// The direction of each input ([`INPUTS`] order), from what it means:
/// - similarity, normalised score, coverage: **increasing**. Each says how much of the request
///   the candidate holds; a candidate that holds more of it cannot be less likely to serve it.
///   A model free here learns BFCL's accidents (a step down at some similarity) and answers
///   one request and calls a closer one a gap, which no one could explain.
/// - query words: **free**. Its effect is on where the similarity bar lies, and that goes both
///   ways: a one-word request looks similar to anything, so at a given similarity a short
///   request is weaker evidence, while a long one is less similar to a one-line description
///   even when served. No direction follows from what it means.
/// - required parameters: **decreasing**. A capability that needs more things is served only
///   by a request that says more of them ("find me a train" against a search that needs a
///   route and a date); all else equal, each required parameter is one more thing the request
///   may lack.
/// - parameters: **free**. Optional parameters ask nothing of the request, and a capability
///   with many of them is no more and no less likely to serve it for that alone.
pub const MONOTONE: [Direction; INPUT_COUNT] = [
    Direction::Increasing,
    Direction::Increasing,
    Direction::Increasing,
    Direction::Free,
    Direction::Decreasing,
    Direction::Free,
];

impl GapEvidence {
    /// The model's inputs (see [`INPUTS`]); counts as numbers.
    pub fn inputs(&self) -> [f32; INPUT_COUNT] {
        [
            self.similarity,
            self.normalized,
            self.coverage,
            self.query_words as f32,
            self.required_parameters as f32,
            self.parameters as f32,
        ]
    }

    /// How many parameters a capability's JSON Schema takes, and how many it requires.
    pub fn parameter_counts(schema: &serde_json::Value) -> (usize, usize) {
        let all = schema
            .get("properties")
            .and_then(serde_json::Value::as_object)
            .map_or(0, serde_json::Map::len);
        let required = schema
            .get("required")
            .and_then(serde_json::Value::as_array)
            .map_or(0, Vec::len);
        (all, required)
    }
}

/// A regression tree of depth two: a split at the root, one split under each side, four
/// leaves. A side that could not be split has an infinite threshold (everything goes left).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Tree {
    /// The input ([`INPUTS`] index) of the root's split, of the left side's and of the right
    /// side's.
    pub inputs: [usize; 3],
    /// Their thresholds: an input at or below its threshold goes left.
    pub thresholds: [f32; 3],
    /// What each leaf adds to the log-odds of being served (learning rate applied), left to
    /// right.
    pub leaves: [f32; 4],
}

impl Tree {
    /// What this tree adds for `inputs`.
    pub fn value(&self, inputs: &[f32; INPUT_COUNT]) -> f32 {
        // An input index out of range (a hand-made tree) goes right, like a NaN would.
        let goes_left = |split: usize| {
            inputs
                .get(self.inputs[split])
                .is_some_and(|x| *x <= self.thresholds[split])
        };
        let (side, first_leaf) = if goes_left(0) { (1, 0) } else { (2, 2) };
        self.leaves[first_leaf + usize::from(!goes_left(side))]
    }
}

/// Whether the best candidate of a ranking by meaning serves the request: a sum of boosted
/// [`Tree`]s over [`GapEvidence::inputs`], read as log-odds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GapModel {
    /// Log-odds before any tree (the share of servable cases the fit saw).
    pub base: f32,
    /// The trees, in the order they were fitted.
    pub trees: Cow<'static, [Tree]>,
}

impl Default for GapModel {
    /// Fitted on the development split of BFCL live multiple + live irrelevance (1,309 cases)
    /// with all-MiniLM-L6-v2 and the weighted fusion:
    /// `slovo discover eval --bfcl DIR --model-dir MODEL --fit-gap` (`docs/discovery.md`).
    fn default() -> Self {
        GapModel {
            base: committed::BASE,
            trees: Cow::Borrowed(&committed::TREES),
        }
    }
}

impl GapModel {
    /// The log-odds that a candidate with this evidence serves the request: the base plus
    /// what every tree adds.
    pub fn log_odds(&self, evidence: &GapEvidence) -> f32 {
        let inputs = evidence.inputs();
        self.base + self.trees.iter().map(|t| t.value(&inputs)).sum::<f32>()
    }

    /// The probability that a candidate with this evidence serves the request.
    pub fn p_served(&self, evidence: &GapEvidence) -> f32 {
        1.0 / (1.0 + (-self.log_odds(evidence)).exp())
    }

    /// Whether a candidate with this evidence is good enough.
    pub fn accepts(&self, evidence: &GapEvidence) -> bool {
        self.p_served(evidence) >= 0.5
    }

    /// The model as the Rust source of `committed.rs`, for committing a new fit.
    pub fn to_source(&self) -> String {
        let mut s = format!(
            "pub(super) const BASE: f32 = {:?};\n\npub(super) const TREES: [Tree; {}] = [\n",
            self.base,
            self.trees.len()
        );
        for t in self.trees.iter() {
            s.push_str(&format!(
                "    t({:?}, [{}], {:?}),\n",
                t.inputs,
                t.thresholds
                    .map(|v| if v.is_finite() {
                        format!("{v:?}")
                    } else {
                        "f32::INFINITY".into()
                    })
                    .join(", "),
                t.leaves
            ));
        }
        s.push_str("];\n");
        s
    }
}

impl std::fmt::Display for GapModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} boosted trees of depth 2 over {} (base log-odds {:.3})",
            self.trees.len(),
            INPUTS.join(", "),
            self.base
        )
    }
}

#[cfg(test)]
mod tests;
