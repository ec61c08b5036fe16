//! Gradient boosting of depth-two trees for the gap model: logistic loss, each tree fitted by
//! least squares to the residuals (whether served, minus the current probability), its leaves
//! set by one Newton step, shrunk by the learning rate. Exact greedy splits; deterministic.

use std::borrow::Cow;

use super::{GapEvidence, GapModel, INPUT_COUNT, Tree};

/// How [`fit_with`] boosts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitSettings {
    /// How many trees.
    pub trees: usize,
    /// What each tree's leaves are multiplied by.
    pub learning_rate: f64,
    /// The fewest cases a leaf may hold.
    pub min_leaf: usize,
}

impl Default for FitSettings {
    /// The settings chosen by cross-validation on the development part of BFCL live.
    fn default() -> Self {
        FitSettings {
            trees: 100,
            learning_rate: 0.1,
            min_leaf: 10,
        }
    }
}

/// Fits a [`GapModel`] to `examples` (evidence, and whether the request is servable) with
/// [`FitSettings::default`]. Cases weigh equally, so the decision threshold of one half
/// maximises the expected accuracy on data like the examples, which is what "never worse than
/// never a gap" asks. The same examples give the same model.
pub fn fit(examples: &[(GapEvidence, bool)]) -> GapModel {
    fit_with(examples, FitSettings::default())
}

/// [`fit`] with other settings.
pub fn fit_with(examples: &[(GapEvidence, bool)], settings: FitSettings) -> GapModel {
    let inputs: Vec<[f32; INPUT_COUNT]> = examples.iter().map(|(e, _)| e.inputs()).collect();
    let served: Vec<f64> = examples.iter().map(|(_, s)| if *s { 1.0 } else { 0.0 }).collect();
    let n = served.len();
    let share = (served.iter().sum::<f64>() / n.max(1) as f64).clamp(1e-3, 1.0 - 1e-3);
    let base = (share / (1.0 - share)).ln() as f32;
    let mut log_odds = vec![f64::from(base); n];
    let mut trees = Vec::with_capacity(settings.trees);
    for _ in 0..settings.trees {
        let probability: Vec<f64> = log_odds.iter().map(|z| 1.0 / (1.0 + (-z).exp())).collect();
        let step = Step {
            inputs: &inputs,
            residual: served.iter().zip(&probability).map(|(y, p)| y - p).collect(),
            curvature: probability.iter().map(|p| p * (1.0 - p)).collect(),
            settings,
        };
        let tree = step.tree();
        for (z, x) in log_odds.iter_mut().zip(&inputs) {
            *z += f64::from(tree.value(x));
        }
        trees.push(tree);
    }
    GapModel {
        base,
        trees: Cow::Owned(trees),
    }
}

/// One boosting step: what the next tree is fitted to.
struct Step<'a> {
    inputs: &'a [[f32; INPUT_COUNT]],
    residual: Vec<f64>,
    curvature: Vec<f64>,
    settings: FitSettings,
}

/// A split of some cases: the input, its threshold, and the cases on each side.
struct Split {
    input: usize,
    threshold: f32,
    left: Vec<usize>,
    right: Vec<usize>,
}

impl Step<'_> {
    fn tree(&self) -> Tree {
        let all: Vec<usize> = (0..self.residual.len()).collect();
        let root = self.split(&all);
        let left = self.split(&root.left);
        let right = self.split(&root.right);
        Tree {
            inputs: [root.input, left.input, right.input],
            thresholds: [root.threshold, left.threshold, right.threshold],
            leaves: [
                self.leaf(&left.left),
                self.leaf(&left.right),
                self.leaf(&right.left),
                self.leaf(&right.right),
            ],
        }
    }

    /// The split of `cases` that most reduces the squared residuals, each side keeping at
    /// least `min_leaf` cases; no split (everything left) when there is none.
    fn split(&self, cases: &[usize]) -> Split {
        let min_leaf = self.settings.min_leaf.max(1);
        let n = cases.len();
        let total: f64 = cases.iter().map(|&i| self.residual[i]).sum();
        let mut best: Option<(f64, usize, f32)> = None;
        if n >= 2 * min_leaf {
            for input in 0..INPUT_COUNT {
                let mut sorted = cases.to_vec();
                sorted.sort_by(|&a, &b| {
                    self.inputs[a][input]
                        .total_cmp(&self.inputs[b][input])
                        .then(a.cmp(&b))
                });
                let mut left_sum = 0.0;
                for k in 1..n {
                    left_sum += self.residual[sorted[k - 1]];
                    let (below, above) = (self.inputs[sorted[k - 1]][input], self.inputs[sorted[k]][input]);
                    if k < min_leaf || n - k < min_leaf || below == above {
                        continue;
                    }
                    let right_sum = total - left_sum;
                    let gain = left_sum * left_sum / k as f64 + right_sum * right_sum / (n - k) as f64
                        - total * total / n as f64;
                    if best.is_none_or(|(g, _, _)| gain > g + 1e-12) {
                        let threshold = ((f64::from(below) + f64::from(above)) / 2.0) as f32;
                        best = Some((gain, input, threshold));
                    }
                }
            }
        }
        let (input, threshold) = best.map_or((0, f32::INFINITY), |(_, i, t)| (i, t));
        // Sides by the comparison prediction makes, so fit and prediction never disagree.
        let (left, right) = cases.iter().partition(|&&i| self.inputs[i][input] <= threshold);
        Split {
            input,
            threshold,
            left,
            right,
        }
    }

    /// One Newton step of the logistic loss over `cases`, shrunk by the learning rate.
    fn leaf(&self, cases: &[usize]) -> f32 {
        let residual: f64 = cases.iter().map(|&i| self.residual[i]).sum();
        let curvature: f64 = cases.iter().map(|&i| self.curvature[i]).sum();
        if curvature < 1e-12 {
            return 0.0;
        }
        let value = self.settings.learning_rate * residual / curvature;
        (value * 1e4).round() as f32 / 1e4
    }
}
