//! Sentence embeddings from any OpenAI-compatible `/embeddings` endpoint (the assistant's own
//! model server), for ranking capabilities by meaning when no model runs in process.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

/// Texts per request: endpoints cap the batch size, and one failure then costs little.
const BATCH: usize = 64;

/// Why no vectors came back.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddingsError {
    /// The endpoint could not be reached or answered with an error status.
    #[error("embeddings endpoint {url}: {reason}")]
    Request {
        /// The URL asked.
        url: String,
        /// Why.
        reason: String,
    },
    /// The answer is not what the protocol says.
    #[error("embeddings endpoint {url}: malformed answer: {reason}")]
    Malformed {
        /// The URL asked.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The configuration cannot work.
    #[error("bad embeddings configuration: {0}")]
    Config(String),
}

#[derive(Deserialize)]
struct Answer {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    index: usize,
    embedding: Vec<f32>,
}

/// Asks an `/embeddings` endpoint for vectors.
#[derive(Debug, Clone)]
pub struct EmbeddingsClient {
    url: String,
    model: String,
    api_key: Option<String>,
    http: reqwest::Client,
}

impl EmbeddingsClient {
    /// A client for `base_url` (`…/v1`) and `model`, with a bearer `api_key` if the endpoint
    /// needs one, and `timeout` per request.
    pub fn new(
        base_url: &str,
        model: impl Into<String>,
        api_key: Option<String>,
        timeout: Duration,
    ) -> Result<Self, EmbeddingsError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .no_proxy()
            .build()
            .map_err(|e| EmbeddingsError::Config(e.to_string()))?;
        Ok(EmbeddingsClient {
            url: format!("{}/embeddings", base_url.trim_end_matches('/')),
            model: model.into(),
            api_key,
            http,
        })
    }

    /// What cached vectors are keyed by: the endpoint's model name and its URL.
    pub fn model_id(&self) -> String {
        format!("{}@{}", self.model, self.url)
    }

    /// One vector per text, in order.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbeddingsError> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(BATCH) {
            out.extend(self.embed_batch(batch).await?);
        }
        Ok(out)
    }

    async fn embed_batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbeddingsError> {
        let request_error = |reason: String| EmbeddingsError::Request {
            url: self.url.clone(),
            reason,
        };
        let malformed = |reason: String| EmbeddingsError::Malformed {
            url: self.url.clone(),
            reason,
        };
        let mut request = self
            .http
            .post(&self.url)
            .json(&json!({"model": self.model, "input": texts}));
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|e| request_error(e.to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(request_error(format!("status {status}")));
        }
        let answer: Answer = response.json().await.map_err(|e| malformed(e.to_string()))?;
        // The protocol numbers the vectors; put them back in the order of the texts.
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        for item in answer.data {
            let slot = vectors
                .get_mut(item.index)
                .ok_or_else(|| malformed(format!("index {} for {} texts", item.index, texts.len())))?;
            *slot = Some(item.embedding);
        }
        let vectors: Vec<Vec<f32>> = vectors
            .into_iter()
            .enumerate()
            .map(|(i, v)| v.ok_or_else(|| malformed(format!("no vector for text {i}"))))
            .collect::<Result<_, _>>()?;
        let dims = vectors.first().map_or(0, Vec::len);
        if dims == 0 || vectors.iter().any(|v| v.len() != dims) {
            return Err(malformed("vectors are empty or of different lengths".into()));
        }
        Ok(vectors)
    }
}
