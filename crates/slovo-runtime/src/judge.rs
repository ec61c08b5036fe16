//! The optional second opinion on `resolve`'s gap decisions: when an LLM is configured
//! (`discovery.judge` with `llm.base_url`), a decision of the gap model that lies near its
//! boundary is sent to [`slovo_llm::GapJudge`], which may confirm or overturn it. The judge is
//! bounded in time and its answer schema-checked (both in `slovo_llm`); when it cannot answer,
//! the offline decision stands. Either way the answer says how the decision was made
//! ([`GapDecision`]) and the log has it.

use std::time::Duration;

use serde::Serialize;
use slovo_discovery::Resolution;
use slovo_llm::{GapJudge, JudgeCandidate, Judgement, LlmConfig};
use tracing::{info, warn};

use crate::Runtime;

/// A decision is borderline, and goes to the judge, when the gap model's estimated chance that
/// the best candidate serves the request is within this distance of one half. On the
/// development part of BFCL live this band holds 150 of 1,309 decisions of the committed gap
/// model, and that model is right on 0.60 of them against 0.93 outside it (`docs/discovery.md`).
pub const BORDERLINE_BAND: f32 = 0.2;

/// How many of the best candidates the judge is shown.
pub const JUDGED_CANDIDATES: usize = 3;

/// Where the judge is (`llm.base_url`, `llm.model`) and how long `resolve` waits for it. Its
/// key, if it needs one, is the `_llm` secret `api_key`, read when the judge is first needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JudgeSettings {
    /// Base URL of the OpenAI-compatible API (`…/v1`).
    pub base_url: String,
    /// The model's name.
    pub model: String,
    /// The whole exchange, every attempt included, ends within this.
    pub deadline: Duration,
}

/// Who made a gap decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecidedBy {
    /// The calibrated lexical rule (no embedding model).
    Rule,
    /// The gap model of a ranking by meaning.
    Model,
    /// The LLM judge, whose verdict was taken.
    Judge,
}

/// How `resolve` came to its gap decision, for the answer and the log.
#[derive(Debug, Clone, Serialize)]
pub struct GapDecision {
    /// Who decided.
    pub by: DecidedBy,
    /// What the offline rule or model said (`true`: a gap).
    pub offline_gap: bool,
    /// The gap model's estimated chance that the best candidate serves the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub served_chance: Option<f32>,
    /// The judge's verdict, when it was asked and answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judgement: Option<Judgement>,
    /// Why the judge, asked, gave no usable verdict (the offline decision stands).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judge_error: Option<String>,
}

/// Whether a decision with this estimated chance is close enough to the boundary to be judged.
pub fn is_borderline(served_chance: f32) -> bool {
    (served_chance - 0.5).abs() <= BORDERLINE_BAND
}

impl Runtime {
    /// The gap decision of `resolution`, sent to the judge when one is configured and the
    /// decision is borderline; a verdict is applied to `resolution` (a served verdict puts the
    /// named candidate first).
    pub(crate) async fn judge_gap(&self, query: &str, resolution: &mut Resolution) -> GapDecision {
        let mut decision = GapDecision {
            by: if resolution.served_chance.is_some() {
                DecidedBy::Model
            } else {
                DecidedBy::Rule
            },
            offline_gap: resolution.gap,
            served_chance: resolution.served_chance,
            judgement: None,
            judge_error: None,
        };
        let Some(settings) = &self.settings.gap_judge else {
            return decision;
        };
        if !resolution.served_chance.is_some_and(is_borderline) || resolution.candidates.is_empty() {
            return decision;
        }
        let candidates: Vec<JudgeCandidate> = resolution
            .candidates
            .iter()
            .take(JUDGED_CANDIDATES)
            .map(|c| JudgeCandidate {
                name: format!("{}.{}", c.tool, c.capability),
                description: c.description.clone(),
            })
            .collect();
        let verdict = match self.gap_judge(settings).await {
            Ok(judge) => judge.judge(query, &candidates).await.map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        match verdict {
            Ok(judgement) if apply(resolution, &judgement) => {
                info!(
                    query,
                    offline_gap = decision.offline_gap,
                    served_chance = ?decision.served_chance,
                    gap = resolution.gap,
                    capability = ?judgement.capability,
                    model = %judgement.model,
                    elapsed_ms = judgement.elapsed_ms,
                    "gap decision by the judge"
                );
                decision.by = DecidedBy::Judge;
                decision.judgement = Some(judgement);
            }
            Ok(judgement) => {
                let why = format!(
                    "the judge named a candidate it was not shown: {:?}",
                    judgement.capability
                );
                warn!(query, reason = %why, "the gap judge gave no verdict; the offline decision stands");
                decision.judge_error = Some(why);
            }
            Err(why) => {
                warn!(query, reason = %why, "the gap judge gave no verdict; the offline decision stands");
                decision.judge_error = Some(why);
            }
        }
        decision
    }

    /// The judge, made on first use (its key comes from the secret store).
    async fn gap_judge(&self, settings: &JudgeSettings) -> Result<&GapJudge, String> {
        self.discovery
            .judge
            .get_or_try_init(|| async {
                let key = self.llm_api_key().await.map_err(|e| e.to_string())?;
                // The judge cuts every attempt off at its deadline, whatever the client's timeout.
                let config = LlmConfig::new(&settings.base_url, &settings.model, key);
                GapJudge::new(config, settings.deadline).map_err(|e| e.to_string())
            })
            .await
    }
}

/// Applies the judge's verdict: served puts the named candidate first and answers it; not
/// served makes the request a gap, with the judge's reason. A served verdict naming none of the
/// candidates (which `GapJudge` already refuses) changes nothing and returns false.
fn apply(resolution: &mut Resolution, judgement: &Judgement) -> bool {
    let named = judgement.capability.as_deref().and_then(|name| {
        resolution
            .candidates
            .iter()
            .position(|c| format!("{}.{}", c.tool, c.capability) == name)
    });
    match (judgement.served, named) {
        (true, Some(i)) => {
            let chosen = resolution.candidates.remove(i);
            resolution.candidates.insert(0, chosen);
            resolution.candidates[0].confident = true;
            resolution.gap = false;
            resolution.gap_reason = None;
            true
        }
        (true, None) => false,
        (false, _) => {
            for c in &mut resolution.candidates {
                c.confident = false;
            }
            resolution.gap = true;
            resolution.gap_reason = Some(format!(
                "the judge ({}) found that no candidate serves the request: {}",
                judgement.model, judgement.reason
            ));
            true
        }
    }
}
