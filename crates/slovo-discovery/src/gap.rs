//! The gap decision for rankings by meaning: a logistic model over what is known of the best
//! candidate ([`GapEvidence`]), and its fit on development cases ([`fit`]).
//!
//! Inputs that depend on how many capabilities are offered (the margin to the second
//! candidate, whether the lexical and the semantic ranker agree on the first) are left out on
//! purpose: in BFCL's live data most unservable requests come with a single function and the
//! servable ones never do, so such inputs would learn the catalogue's size, not the evidence.
//! What the request and the candidate are like is in instead: the request's length: a long, specific request ("a table at The French
//! Laundry in Yountville on the 14th of March at 13:30 for 4 people") is less similar to a
//! one-line description than a short one, while a very short one ("sum", "an API call")
//! looks similar to almost anything; the model learns how the similarity bar moves with it.
//! And how many parameters the candidate takes and requires: a capability that needs several
//! things is served only by a request that says them ("find me a train" does not serve a train
//! search that needs a route and a date).

use serde::Serialize;

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

/// Names of the model's inputs, in the order of [`GapEvidence::inputs`] and
/// [`GapModel::weights`].
pub const INPUTS: [&str; INPUT_COUNT] = [
    "similarity",
    "normalized",
    "coverage",
    "ln(1 + query words)",
    "similarity × ln(1 + query words)",
    "similarity²",
    "ln(1 + required parameters)",
    "ln(1 + parameters)",
];

/// How many inputs the model has.
pub const INPUT_COUNT: usize = 8;

impl GapEvidence {
    /// The model's inputs (see [`INPUTS`]).
    pub fn inputs(&self) -> [f32; INPUT_COUNT] {
        let ln1p = |n: usize| (1.0 + n as f32).ln();
        let words = ln1p(self.query_words);
        [
            self.similarity,
            self.normalized,
            self.coverage,
            words,
            self.similarity * words,
            self.similarity * self.similarity,
            ln1p(self.required_parameters),
            ln1p(self.parameters),
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

/// Whether the best candidate of a ranking by meaning serves the request: logistic
/// regression over [`GapEvidence::inputs`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GapModel {
    /// Intercept.
    pub bias: f32,
    /// One weight per input of [`INPUTS`].
    pub weights: [f32; INPUT_COUNT],
}

impl Default for GapModel {
    /// Fitted on the development split of BFCL live multiple + live irrelevance (1,309 cases)
    /// with all-MiniLM-L6-v2 and the weighted fusion:
    /// `slovo discover eval --bfcl DIR --model-dir MODEL --fit-gap` (`docs/discovery.md`).
    fn default() -> Self {
        GapModel {
            bias: -2.335,
            weights: [8.852, 1.303, 0.883, 0.201, 3.201, -12.624, -1.582, -0.472],
        }
    }
}

impl GapModel {
    /// The probability that a candidate with this evidence serves the request.
    pub fn p_served(&self, evidence: &GapEvidence) -> f32 {
        let z = self.bias
            + self
                .weights
                .iter()
                .zip(evidence.inputs())
                .map(|(w, x)| w * x)
                .sum::<f32>();
        1.0 / (1.0 + (-z).exp())
    }

    /// Whether a candidate with this evidence is good enough.
    pub fn accepts(&self, evidence: &GapEvidence) -> bool {
        self.p_served(evidence) >= 0.5
    }
}

impl std::fmt::Display for GapModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bias {}", self.bias)?;
        for (name, w) in INPUTS.iter().zip(self.weights) {
            write!(f, ", {name} {w}")?;
        }
        Ok(())
    }
}

/// Fits a [`GapModel`] to `examples` (evidence, and whether the request is servable) by
/// logistic regression: inputs standardised, full-batch gradient descent from zero with a
/// small L2 penalty, then the weights brought back to raw inputs. Cases weigh equally (no
/// class reweighting), so the decision threshold of one half maximises the expected accuracy
/// on data like the development set, which is what "never worse than never a gap" asks.
/// Deterministic: the same examples give the same model.
pub fn fit(examples: &[(GapEvidence, bool)]) -> GapModel {
    const STEPS: usize = 3000;
    const RATE: f64 = 0.5;
    const L2: f64 = 1e-3;
    let n = examples.len().max(1) as f64;
    let raw: Vec<[f64; INPUT_COUNT]> = examples.iter().map(|(e, _)| e.inputs().map(f64::from)).collect();
    let mut mean = [0.0f64; INPUT_COUNT];
    let mut sd = [0.0f64; INPUT_COUNT];
    for x in &raw {
        for (m, v) in mean.iter_mut().zip(x) {
            *m += v / n;
        }
    }
    for x in &raw {
        for ((s, v), m) in sd.iter_mut().zip(x).zip(&mean) {
            *s += (v - m) * (v - m) / n;
        }
    }
    // An input that never varies gets weight 0 (its spread is floored so nothing divides by 0).
    let sd = sd.map(|v| v.sqrt().max(1e-6));
    let standard: Vec<[f64; INPUT_COUNT]> = raw
        .iter()
        .map(|x| std::array::from_fn(|i| (x[i] - mean[i]) / sd[i]))
        .collect();
    let mut bias = 0.0f64;
    let mut w = [0.0f64; INPUT_COUNT];
    for _ in 0..STEPS {
        let mut grad_bias = 0.0;
        let mut grad = [0.0f64; INPUT_COUNT];
        for (x, (_, served)) in standard.iter().zip(examples) {
            let z = bias + w.iter().zip(x).map(|(a, b)| a * b).sum::<f64>();
            let error = 1.0 / (1.0 + (-z).exp()) - if *served { 1.0 } else { 0.0 };
            grad_bias += error;
            for (g, xi) in grad.iter_mut().zip(x) {
                *g += error * xi;
            }
        }
        bias -= RATE * grad_bias / n;
        for (wi, g) in w.iter_mut().zip(&grad) {
            *wi -= RATE * (g / n + L2 * *wi);
        }
    }
    // z = bias + Σ w_i (x_i − mean_i) / sd_i = (bias − Σ w_i mean_i / sd_i) + Σ (w_i / sd_i) x_i
    let raw_weights: [f64; INPUT_COUNT] = std::array::from_fn(|i| w[i] / sd[i]);
    let raw_bias = bias - (0..INPUT_COUNT).map(|i| raw_weights[i] * mean[i]).sum::<f64>();
    let round = |v: f64| ((v * 1000.0).round() / 1000.0) as f32;
    GapModel {
        bias: round(raw_bias),
        weights: raw_weights.map(round),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence(similarity: f32, query_words: usize) -> GapEvidence {
        GapEvidence {
            similarity,
            normalized: 0.0,
            coverage: 0.0,
            query_words,
            required_parameters: 1,
            parameters: 2,
        }
    }

    #[test]
    fn the_fit_separates_what_similarity_separates() {
        // Served requests have similarities 0.5–0.7, gaps 0.1–0.3; twice as many served.
        let mut examples = Vec::new();
        for i in 0..20 {
            let i = i as f32 * 0.01;
            examples.push((evidence(0.5 + i, 4), true));
            examples.push((evidence(0.52 + i, 4), true));
            examples.push((evidence(0.1 + i, 4), false));
        }
        let m = fit(&examples);
        for (e, served) in &examples {
            assert_eq!(m.accepts(e), *served, "{m} at {}", e.similarity);
        }
        assert!(
            m.accepts(&evidence(0.45, 4)) && !m.accepts(&evidence(0.35, 4)),
            "{m}"
        );
        assert_eq!(fit(&examples), m, "deterministic");
    }

    #[test]
    fn the_fit_learns_a_bar_that_moves_with_the_request_length() {
        // Long requests are served from similarity 0.3 on; short ones only from 0.6.
        let mut examples = Vec::new();
        for i in 0..30 {
            let s = i as f32 / 30.0;
            examples.push((evidence(s, 12), s >= 0.3));
            examples.push((evidence(s, 1), s >= 0.6));
        }
        let m = fit(&examples);
        assert!(m.accepts(&evidence(0.45, 12)), "{m}");
        assert!(!m.accepts(&evidence(0.45, 1)), "{m}");
    }

    #[test]
    fn the_model_reads_as_named_weights() {
        let text = GapModel::default().to_string();
        assert!(
            text.starts_with("bias -2.335, similarity 8.852, normalized 1.303"),
            "{text}"
        );
    }
}
