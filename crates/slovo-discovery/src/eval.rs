//! Evaluation: recall@1, recall@5, MRR and gap-detection precision/recall of an index over a
//! set of `{query, expected}` cases, and the threshold sweep that calibrates [`GapRule`].

use serde::{Deserialize, Serialize};

use crate::index::{GapRule, Index, Ranking};

/// What a query should find: a tool and (optionally) one of its capabilities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    /// The tool.
    pub tool: String,
    /// The capability; `None` accepts any capability of the tool.
    #[serde(default)]
    pub capability: Option<String>,
}

/// One line of an evaluation file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalCase {
    /// The request.
    pub query: String,
    /// What serves it; `None` means nothing in the catalogue does (the answer must be a gap).
    pub expected: Option<Expected>,
}

/// A line of an evaluation file that is not a case.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {source}")]
pub struct CaseError {
    /// The line, from 1.
    pub line: usize,
    /// What is wrong with it.
    #[source]
    pub source: serde_json::Error,
}

/// Parses a JSONL evaluation file (blank lines and `//` comments skipped).
pub fn parse_cases(text: &str) -> Result<Vec<EvalCase>, CaseError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with("//"))
        .map(|(i, l)| serde_json::from_str(l).map_err(|source| CaseError { line: i + 1, source }))
        .collect()
}

/// The figures of one evaluation run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// Cases in total.
    pub cases: usize,
    /// Cases that something serves.
    pub servable: usize,
    /// Cases nothing serves.
    pub unservable: usize,
    /// Share of servable cases whose answer is ranked first.
    pub recall_at_1: f64,
    /// Share of servable cases whose answer is in the first five.
    pub recall_at_5: f64,
    /// Mean reciprocal rank of the answer (0 beyond rank 10) over servable cases.
    pub mrr: f64,
    /// Of the cases called a gap, the share that really are.
    pub gap_precision: f64,
    /// Of the cases that really are gaps, the share called a gap.
    pub gap_recall: f64,
    /// Servable cases answered (not a gap) with the right capability first.
    pub answered_correctly: f64,
    /// The rule used.
    pub rule: GapRule,
    /// Cases answered wrongly: (query, what came first or `gap`, what was expected).
    pub misses: Vec<(String, String, String)>,
}

fn is_match(index: &Index, doc: usize, e: &Expected) -> bool {
    let d = &index.docs()[doc];
    d.tool == e.tool && e.capability.as_ref().is_none_or(|c| &d.capability == c)
}

fn rank_of(index: &Index, r: &Ranking, e: &Expected) -> Option<usize> {
    r.hits
        .iter()
        .position(|h| is_match(index, h.doc, e))
        .map(|p| p + 1)
}

/// Runs every case through `index` with `rule`.
pub fn evaluate(index: &Index, cases: &[EvalCase], rule: &GapRule) -> EvalReport {
    let rankings: Vec<Ranking> = cases.iter().map(|c| index.search(&c.query, 10, rule)).collect();
    report(index, cases, &rankings, rule)
}

fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 { 1.0 } else { n as f64 / d as f64 }
}

fn report(index: &Index, cases: &[EvalCase], rankings: &[Ranking], rule: &GapRule) -> EvalReport {
    let (mut r1, mut r5, mut rr, mut servable, mut ok) = (0, 0, 0.0, 0, 0);
    let (mut gap_called, mut gap_right, mut gap_real) = (0, 0, 0);
    let mut misses = Vec::new();
    for (c, r) in cases.iter().zip(rankings) {
        if r.gap {
            gap_called += 1;
        }
        let first = r
            .hits
            .first()
            .map(|h| format!("{}.{}", index.docs()[h.doc].tool, index.docs()[h.doc].capability))
            .unwrap_or_else(|| "-".into());
        match &c.expected {
            None => {
                gap_real += 1;
                if r.gap {
                    gap_right += 1;
                } else {
                    misses.push((c.query.clone(), first, "gap".into()));
                }
            }
            Some(e) => {
                servable += 1;
                let rank = rank_of(index, r, e);
                if rank == Some(1) {
                    r1 += 1;
                }
                if rank.is_some_and(|k| k <= 5) {
                    r5 += 1;
                }
                if let Some(k) = rank {
                    rr += 1.0 / k as f64;
                }
                if rank == Some(1) && !r.gap {
                    ok += 1;
                } else {
                    let got = if r.gap { format!("gap ({first})") } else { first };
                    let want = format!("{}.{}", e.tool, e.capability.as_deref().unwrap_or("*"));
                    misses.push((c.query.clone(), got, want));
                }
            }
        }
    }
    EvalReport {
        cases: cases.len(),
        servable,
        unservable: gap_real,
        recall_at_1: ratio(r1, servable),
        recall_at_5: ratio(r5, servable),
        mrr: if servable == 0 { 1.0 } else { rr / servable as f64 },
        gap_precision: ratio(gap_right, gap_called),
        gap_recall: ratio(gap_right, gap_real),
        answered_correctly: ratio(ok, servable),
        rule: *rule,
        misses,
    }
}

/// Sweeps both thresholds and returns the rule that maximises the share of cases handled
/// right (servable: right capability first and not a gap; unservable: a gap), preferring
/// the stricter rule on ties (a wrong tool is worse than none).
pub fn calibrate(index: &Index, cases: &[EvalCase]) -> GapRule {
    let loose = GapRule {
        min_normalized: 0.0,
        min_coverage: 0.0,
    };
    let rankings: Vec<Ranking> = cases.iter().map(|c| index.search(&c.query, 10, &loose)).collect();
    let mut best = (0usize, GapRule::default());
    for n in 0..=20 {
        for k in 0..=20 {
            let rule = GapRule {
                min_normalized: n as f32 * 0.025,
                min_coverage: k as f32 * 0.05,
            };
            let mut right = 0;
            for (c, r) in cases.iter().zip(&rankings) {
                let first = r.hits.first();
                let accepted = first.is_some_and(|h| rule.accepts(h.normalized, h.coverage));
                right += match &c.expected {
                    None => usize::from(!accepted),
                    Some(e) => usize::from(accepted && first.is_some_and(|h| is_match(index, h.doc, e))),
                };
            }
            if right > best.0
                || (right == best.0
                    && n as f32 * 0.025 >= best.1.min_normalized
                    && k as f32 * 0.05 >= best.1.min_coverage)
            {
                best = (right, rule);
            }
        }
    }
    best.1
}
