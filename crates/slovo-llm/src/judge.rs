//! An optional second opinion on a gap decision: an OpenAI-compatible chat-completions model
//! is shown the request and the best candidates, and says whether one of them serves it.
//!
//! The answer must be JSON valid against [`JUDGE_SCHEMA`] that names one of the candidates
//! it was shown (or none); anything else is retried, and the whole exchange is bounded by one
//! deadline. Whatever happens is returned as a [`Judgement`] the caller records next to the
//! offline decision; when the judge cannot answer, the offline decision stands.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{LlmConfig, LlmError};

/// The JSON Schema every verdict must satisfy.
pub const JUDGE_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["served", "capability", "reason"],
  "additionalProperties": false,
  "properties": {
    "served": {"type": "boolean"},
    "capability": {"type": ["string", "null"]},
    "reason": {"type": "string", "minLength": 1, "maxLength": 400}
  }
}"#;

/// A candidate shown to the judge.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JudgeCandidate {
    /// Its name (`tool.capability`); the verdict must use it as given.
    pub name: String,
    /// What it does.
    pub description: String,
}

/// What the judge said, and how long it took, for the record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Judgement {
    /// Whether one of the candidates serves the request.
    pub served: bool,
    /// The candidate that does (one of those shown), when `served`.
    pub capability: Option<String>,
    /// The judge's reason, as it gave it.
    pub reason: String,
    /// The model that judged.
    pub model: String,
    /// Attempts it took (answers that failed the checks count).
    pub attempts: usize,
    /// Wall time of the whole exchange, in milliseconds.
    pub elapsed_ms: u64,
}

#[derive(Deserialize)]
struct Verdict {
    served: bool,
    capability: Option<String>,
    reason: String,
}

/// Asks a chat-completions endpoint whether a request is a gap.
#[derive(Debug, Clone)]
pub struct GapJudge {
    config: LlmConfig,
    http: reqwest::Client,
    schema: std::sync::Arc<jsonschema::Validator>,
    deadline: Duration,
}

impl GapJudge {
    /// A judge for `config` whose whole exchange (every attempt) ends within `deadline`.
    pub fn new(config: LlmConfig, deadline: Duration) -> Result<Self, LlmError> {
        let http = crate::http_client(&config)?;
        let schema_value: Value =
            serde_json::from_str(JUDGE_SCHEMA).map_err(|e| LlmError::Config(e.to_string()))?;
        let schema = jsonschema::validator_for(&schema_value).map_err(|e| LlmError::Config(e.to_string()))?;
        Ok(GapJudge {
            config,
            http,
            schema: std::sync::Arc::new(schema),
            deadline,
        })
    }

    /// Whether one of `candidates` serves `request`. Fails when every attempt failed or the
    /// deadline passed; the reasons say which.
    pub async fn judge(&self, request: &str, candidates: &[JudgeCandidate]) -> Result<Judgement, LlmError> {
        let started = Instant::now();
        let prompt = json!({"request": request, "candidates": candidates});
        let mut reasons = Vec::new();
        for attempt in 1..=self.config.max_attempts.max(1) {
            let Some(left) = self.deadline.checked_sub(started.elapsed()) else {
                break;
            };
            let outcome = match tokio::time::timeout(
                left,
                crate::ask_json(&self.http, &self.config, &system_prompt(), &prompt),
            )
            .await
            {
                Err(_) => Err(format!("no answer within {} ms", self.deadline.as_millis())),
                Ok(answer) => answer.and_then(|a| self.check(candidates, a)),
            };
            match outcome {
                Ok(verdict) => {
                    return Ok(Judgement {
                        served: verdict.served,
                        capability: verdict.capability,
                        reason: verdict.reason.trim().to_string(),
                        model: self.config.model.clone(),
                        attempts: attempt,
                        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    });
                }
                Err(why) => {
                    tracing::warn!(attempt, reason = %why, "gap judgement rejected");
                    reasons.push(why);
                }
            }
        }
        if reasons.is_empty() {
            reasons.push(format!("no answer within {} ms", self.deadline.as_millis()));
        }
        Err(LlmError::Discarded(reasons))
    }

    fn check(&self, candidates: &[JudgeCandidate], answer: Value) -> Result<Verdict, String> {
        let problems: Vec<String> = self
            .schema
            .iter_errors(&answer)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if !problems.is_empty() {
            return Err(format!("does not match the schema: {}", problems.join(", ")));
        }
        let verdict: Verdict = serde_json::from_value(answer).map_err(|e| e.to_string())?;
        match (&verdict.capability, verdict.served) {
            (Some(name), true) if candidates.iter().any(|c| &c.name == name) => Ok(verdict),
            (Some(name), true) => Err(format!("names a capability it was not shown: {name}")),
            (None, true) => Err("says served but names no capability".into()),
            (_, false) => Ok(Verdict {
                capability: None,
                ..verdict
            }),
        }
    }
}

fn system_prompt() -> String {
    format!(
        "You decide whether an assistant's installed tools can serve a person's request. You are given the request and \
         the best candidate capabilities. Say served=true and name the capability (exactly as given) only when calling it \
         would do what the person asks; a capability of the same topic that does something else does not serve it. \
         Answer with JSON only, matching this JSON Schema:\n{JUDGE_SCHEMA}"
    )
}
