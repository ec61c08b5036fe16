//! Optional LLM analysis of a tool proposal.
//!
//! [`ChatAnalyzer`] asks any OpenAI-compatible chat-completions endpoint (a base URL, a model
//! and an optional key) to improve a proposal: clearer capability descriptions, requests a
//! person might say, and risk notes. The answer must be JSON that validates against
//! [`ANALYSIS_SCHEMA`] and names exactly the proposal's capabilities; an answer that does not
//! is retried, and after the last attempt discarded — never stored. Callers then keep the
//! deterministic offline analysis (`slovo_openapi::offline_analysis`), so a proposal never
//! depends on a model being reachable or well-behaved.
//!
//! [`EmbeddingsClient`] asks an OpenAI-compatible `/embeddings` endpoint for sentence vectors
//! (discovery's ranking by meaning without an in-process model).
#![deny(missing_docs)]

mod embeddings;
mod judge;

pub use embeddings::{EmbeddingsClient, EmbeddingsError};
pub use judge::{GapJudge, JUDGE_SCHEMA, JudgeCandidate, Judgement};

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use slovo_core::Manifest;
use slovo_openapi::{Analysis, CapabilityAnalysis};

/// The JSON Schema every answer must satisfy.
pub const ANALYSIS_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["capabilities"],
  "additionalProperties": false,
  "properties": {
    "capabilities": {
      "type": "array",
      "items": {
        "type": "object",
        "required": ["name", "description", "examples"],
        "additionalProperties": false,
        "properties": {
          "name": {"type": "string"},
          "description": {"type": "string", "minLength": 10, "maxLength": 600},
          "examples": {"type": "array", "minItems": 1, "maxItems": 5, "items": {"type": "string", "minLength": 3, "maxLength": 200}},
          "risk_note": {"type": ["string", "null"], "maxLength": 400}
        }
      }
    }
  }
}"#;

/// Where and how to ask.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// Base URL of the API, up to and excluding `/chat/completions` (e.g. `https://api.example.com/v1`).
    pub base_url: String,
    /// The model name.
    pub model: String,
    /// Bearer key, from the secret store; `None` for local servers that need none.
    pub api_key: Option<String>,
    /// Attempts before the answer is discarded. By default, 3.
    pub max_attempts: usize,
    /// Timeout of one request. By default, 60 seconds.
    pub timeout: Duration,
}

impl LlmConfig {
    /// A configuration with the defaults above.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>, api_key: Option<String>) -> Self {
        LlmConfig {
            base_url: base_url.into(),
            model: model.into(),
            api_key,
            max_attempts: 3,
            timeout: Duration::from_secs(60),
        }
    }
}

/// Why no analysis came back.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// Every attempt failed; the reasons, one per attempt.
    #[error("the LLM answer was discarded after {} attempts: {}", .0.len(), .0.join("; "))]
    Discarded(Vec<String>),
    /// The configuration cannot work.
    #[error("bad LLM configuration: {0}")]
    Config(String),
}

/// Asks a chat-completions endpoint for an [`Analysis`].
#[derive(Debug, Clone)]
pub struct ChatAnalyzer {
    config: LlmConfig,
    http: reqwest::Client,
    schema: std::sync::Arc<jsonschema::Validator>,
}

#[derive(Deserialize)]
struct Answer {
    capabilities: Vec<AnswerCapability>,
}

#[derive(Deserialize)]
struct AnswerCapability {
    name: String,
    description: String,
    examples: Vec<String>,
    #[serde(default)]
    risk_note: Option<String>,
}

impl ChatAnalyzer {
    /// An analyzer for `config`.
    pub fn new(config: LlmConfig) -> Result<Self, LlmError> {
        let http = http_client(&config)?;
        let schema_value: Value =
            serde_json::from_str(ANALYSIS_SCHEMA).map_err(|e| LlmError::Config(e.to_string()))?;
        let schema = jsonschema::validator_for(&schema_value).map_err(|e| LlmError::Config(e.to_string()))?;
        Ok(ChatAnalyzer {
            config,
            http,
            schema: std::sync::Arc::new(schema),
        })
    }

    /// The analysis of `manifest`, or why none could be had.
    pub async fn analyze(&self, manifest: &Manifest) -> Result<Analysis, LlmError> {
        let wanted: Vec<Value> = manifest
            .capabilities
            .iter()
            .map(|c| {
                let params: Vec<&String> =
                    c.parameters.get("properties").and_then(Value::as_object).map(|p| p.keys().collect()).unwrap_or_default();
                json!({"name": c.name, "method": c.method, "endpoint": c.endpoint, "description": c.description, "parameters": params})
            })
            .collect();
        let prompt =
            json!({"tool": manifest.name, "description": manifest.description, "capabilities": wanted});
        let mut reasons = Vec::new();
        for attempt in 1..=self.config.max_attempts.max(1) {
            match self
                .ask(&prompt)
                .await
                .and_then(|answer| self.check(manifest, answer))
            {
                Ok(a) => return Ok(a),
                Err(why) => {
                    tracing::warn!(attempt, reason = %why, "LLM analysis rejected");
                    reasons.push(why);
                }
            }
        }
        Err(LlmError::Discarded(reasons))
    }

    async fn ask(&self, prompt: &Value) -> Result<Value, String> {
        let system = format!(
            "You review tools an assistant may call. For each capability write a clear description a person can approve, \
             1 to 5 short requests a person might say that it serves, and a risk note if it changes, overwrites or deletes \
             anything. Answer with JSON only, matching this JSON Schema, with exactly the capabilities given, by name:\n{ANALYSIS_SCHEMA}"
        );
        ask_json(&self.http, &self.config, &system, prompt).await
    }

    fn check(&self, manifest: &Manifest, answer: Value) -> Result<Analysis, String> {
        let problems: Vec<String> = self
            .schema
            .iter_errors(&answer)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if !problems.is_empty() {
            return Err(format!("does not match the schema: {}", problems.join(", ")));
        }
        let parsed: Answer = serde_json::from_value(answer).map_err(|e| e.to_string())?;
        let expected: HashSet<&str> = manifest.capabilities.iter().map(|c| c.name.as_str()).collect();
        let got: HashSet<&str> = parsed.capabilities.iter().map(|c| c.name.as_str()).collect();
        if let Some(invented) = got.difference(&expected).next() {
            return Err(format!("names a capability the tool does not have: {invented}"));
        }
        if got.len() != parsed.capabilities.len() {
            return Err("names a capability more than once".into());
        }
        if let Some(missing) = expected.difference(&got).next() {
            return Err(format!("leaves out the capability {missing}"));
        }
        let order: Vec<&str> = manifest.capabilities.iter().map(|c| c.name.as_str()).collect();
        let mut capabilities: Vec<CapabilityAnalysis> = parsed
            .capabilities
            .into_iter()
            .map(|c| CapabilityAnalysis {
                name: c.name,
                description: c.description.trim().to_string(),
                examples: c.examples.into_iter().map(|e| e.trim().to_string()).collect(),
                risk_note: c.risk_note.filter(|r| !r.trim().is_empty()),
            })
            .collect();
        capabilities.sort_by_key(|c| order.iter().position(|n| *n == c.name));
        Ok(Analysis { capabilities })
    }
}

/// The HTTP client every LLM call uses: the configured per-request timeout, no proxy.
pub(crate) fn http_client(config: &LlmConfig) -> Result<reqwest::Client, LlmError> {
    // Installing the process-wide TLS provider fails only when one is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(config.timeout)
        .no_proxy()
        .build()
        .map_err(|e| LlmError::Config(e.to_string()))
}

/// One chat-completions exchange whose answer must be a JSON document: `system` instructs,
/// `prompt` is the user message. The reason of any failure, for the caller's retry log.
pub(crate) async fn ask_json(
    http: &reqwest::Client,
    config: &LlmConfig,
    system: &str,
    prompt: &Value,
) -> Result<Value, String> {
    let body = json!({
        "model": config.model,
        "temperature": 0,
        "response_format": {"type": "json_object"},
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": prompt.to_string()}
        ]
    });
    let url = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
    let mut req = http.post(&url).json(&body);
    if let Some(key) = &config.api_key {
        req = req.bearer_auth(key);
    }
    let resp = req.send().await.map_err(|e| format!("request failed: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    let envelope: Value = resp
        .json()
        .await
        .map_err(|e| format!("not a chat-completions answer: {e}"))?;
    let content = envelope
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .ok_or("no choices[0].message.content in the answer")?;
    let text = content
        .trim()
        .trim_start_matches("```json")
        .trim_start_matches("```")
        .trim_end_matches("```");
    serde_json::from_str(text.trim()).map_err(|e| format!("the content is not JSON: {e}"))
}
