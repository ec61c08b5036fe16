//! Cross-validation of the gap model on development cases: K folds over several shuffles,
//! each case's chance of being served predicted by a model fitted without its fold.
//!
//! A shuffle orders the cases by SHA-256 of the shuffle's number and the case's key (its id)
//! and cuts that order into K contiguous folds, as scikit-learn's `KFold` does after
//! shuffling. The folds therefore depend neither on the order the cases come in nor on a
//! random generator's version, and anyone can recompute them from the ids.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{FitSettings, GapEvidence, fit_with};

/// The out-of-fold chances of every case, per shuffle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CrossValidation {
    /// Whether each case is servable.
    pub served: Vec<bool>,
    /// Per shuffle, each case's chance of being served by the model fitted without its fold.
    pub chances: Vec<Vec<f32>>,
}

/// How decisions at one threshold fare under cross-validation, averaged over the shuffles.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DecisionFigures {
    /// A case is answered (not a gap) when its chance is at least this.
    pub threshold: f32,
    /// Share of cases decided right.
    pub accuracy: f64,
    /// The lowest and the highest accuracy of a single shuffle.
    pub accuracy_range: (f64, f64),
    /// Share of servable cases called a gap.
    pub false_gap_rate: f64,
    /// Share of unservable cases called a gap.
    pub gap_recall: f64,
}

/// Cross-validates [`fit_with`] under `settings` on `cases` (key, evidence, servable):
/// `folds` folds, `shuffles` shuffles (numbered from 0).
pub fn cross_validate(
    cases: &[(&str, GapEvidence, bool)],
    settings: FitSettings,
    folds: usize,
    shuffles: usize,
) -> CrossValidation {
    let folds = folds.max(2);
    let chances = (0..shuffles)
        .map(|shuffle| {
            let fold_of = assign_folds(cases, folds, shuffle);
            let mut chances = vec![0.0; cases.len()];
            for fold in 0..folds {
                let training: Vec<(GapEvidence, bool)> = cases
                    .iter()
                    .zip(&fold_of)
                    .filter(|(_, f)| **f != fold)
                    .map(|((_, evidence, served), _)| (*evidence, *served))
                    .collect();
                let model = fit_with(&training, settings);
                for (i, (_, evidence, _)) in cases.iter().enumerate() {
                    if fold_of[i] == fold {
                        chances[i] = model.p_served(evidence);
                    }
                }
            }
            chances
        })
        .collect();
    CrossValidation {
        served: cases.iter().map(|(_, _, served)| *served).collect(),
        chances,
    }
}

/// The fold of each case in one shuffle.
fn assign_folds(cases: &[(&str, GapEvidence, bool)], folds: usize, shuffle: usize) -> Vec<usize> {
    let mut order: Vec<(Vec<u8>, usize)> = cases
        .iter()
        .enumerate()
        .map(|(i, (key, _, _))| (Sha256::digest(format!("{shuffle}:{key}")).to_vec(), i))
        .collect();
    order.sort();
    let n = cases.len();
    let mut fold_of = vec![0; n];
    for (rank, (_, i)) in order.into_iter().enumerate() {
        fold_of[i] = rank * folds / n;
    }
    fold_of
}

impl CrossValidation {
    /// The figures of deciding at `threshold`.
    pub fn at(&self, threshold: f32) -> DecisionFigures {
        let per_shuffle: Vec<(f64, f64, f64)> = self
            .chances
            .iter()
            .map(|chances| {
                let (mut right, mut false_gaps, mut found_gaps) = (0, 0, 0);
                for (chance, served) in chances.iter().zip(&self.served) {
                    let gap = *chance < threshold;
                    right += usize::from(gap != *served);
                    false_gaps += usize::from(gap && *served);
                    found_gaps += usize::from(gap && !*served);
                }
                let servable = self.served.iter().filter(|s| **s).count();
                let gaps = self.served.len() - servable;
                (
                    ratio(right, self.served.len()),
                    ratio(false_gaps, servable),
                    ratio(found_gaps, gaps),
                )
            })
            .collect();
        let mean = |f: fn(&(f64, f64, f64)) -> f64| {
            per_shuffle.iter().map(f).sum::<f64>() / per_shuffle.len().max(1) as f64
        };
        let accuracies = per_shuffle.iter().map(|s| s.0);
        DecisionFigures {
            threshold,
            accuracy: mean(|s| s.0),
            accuracy_range: (
                accuracies.clone().fold(f64::INFINITY, f64::min),
                accuracies.fold(f64::NEG_INFINITY, f64::max),
            ),
            false_gap_rate: mean(|s| s.1),
            gap_recall: mean(|s| s.2),
        }
    }
}

fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}
