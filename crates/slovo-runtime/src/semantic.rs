//! Ranking by meaning for `resolve`: the configured embedder (an in-process model or an
//! OpenAI-compatible endpoint), and the vectors of the installed capabilities, cached in the
//! store by (model id, text hash) so that a restart embeds nothing again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use slovo_discovery::embed::{LocalModel, text_hash};
use slovo_discovery::hybrid::embedding_text;
use slovo_discovery::{Index, Ranker, SemanticIndex};
use slovo_llm::EmbeddingsClient;
use slovo_store::Store;
use tracing::info;

/// The fusion `resolve` uses when a model is configured (measured against the others in
/// `docs/discovery.md`).
pub const FUSED_RANKER: Ranker = Ranker::Weighted;

/// Where sentence vectors come from: a sentence-transformers directory run in process
/// (`discovery.model_dir`, loaded on first use so that commands that never rank pay nothing),
/// or an OpenAI-compatible `/embeddings` endpoint (`discovery.embeddings_url`).
#[derive(Debug)]
pub struct Embedder {
    source: Source,
}

#[derive(Debug)]
enum Source {
    Local {
        dir: PathBuf,
        model: tokio::sync::OnceCell<Arc<LocalModel>>,
    },
    Remote(EmbeddingsClient),
}

/// Embedding failed; `resolve` falls back to lexical ranking and says so in the log.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EmbedFailure(String);

impl Embedder {
    /// The model in `dir`, loaded when first needed.
    pub fn local(dir: impl Into<PathBuf>) -> Embedder {
        Embedder {
            source: Source::Local {
                dir: dir.into(),
                model: tokio::sync::OnceCell::new(),
            },
        }
    }

    /// An `/embeddings` endpoint.
    pub fn remote(client: EmbeddingsClient) -> Embedder {
        Embedder {
            source: Source::Remote(client),
        }
    }

    async fn local_model(
        dir: &Path,
        cell: &tokio::sync::OnceCell<Arc<LocalModel>>,
    ) -> Result<Arc<LocalModel>, EmbedFailure> {
        cell.get_or_try_init(|| async {
            let dir = dir.to_path_buf();
            let model = tokio::task::spawn_blocking(move || LocalModel::load(&dir))
                .await
                .map_err(|e| EmbedFailure(e.to_string()))?
                .map_err(|e| EmbedFailure(e.to_string()))?;
            info!(model = %model.id(), "sentence-embedding model loaded");
            Ok(Arc::new(model))
        })
        .await
        .cloned()
    }

    /// What cached vectors are keyed by (loads a local model if needed).
    pub async fn model_id(&self) -> Result<String, EmbedFailure> {
        match &self.source {
            Source::Local { dir, model } => Ok(Self::local_model(dir, model).await?.id().to_string()),
            Source::Remote(c) => Ok(c.model_id()),
        }
    }

    /// One vector per text. The in-process model runs off the async runtime's threads.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedFailure> {
        match &self.source {
            Source::Local { dir, model } => {
                let m = Self::local_model(dir, model).await?;
                tokio::task::spawn_blocking(move || m.embed(&texts))
                    .await
                    .map_err(|e| EmbedFailure(e.to_string()))?
                    .map_err(|e| EmbedFailure(e.to_string()))
            }
            Source::Remote(c) => c.embed(&texts).await.map_err(|e| EmbedFailure(e.to_string())),
        }
    }
}

/// The vectors of `index`'s documents: from the store's cache where there, embedded (and
/// cached) where not. Returns them with how many texts had to be embedded.
pub(crate) async fn document_vectors(
    store: &Store,
    embedder: &Embedder,
    index: &Index,
) -> Result<(SemanticIndex, usize), EmbedFailure> {
    let texts: Vec<String> = index.docs().iter().map(embedding_text).collect();
    let hashes: Vec<String> = texts.iter().map(|t| text_hash(t)).collect();
    let model = embedder.model_id().await?;
    let mut cached: HashMap<String, Vec<f32>> = store
        .embeddings(&model, &hashes)
        .await
        .map_err(|e| EmbedFailure(e.to_string()))?;
    let mut missing: Vec<(String, String)> = Vec::new();
    for (t, h) in texts.iter().zip(&hashes) {
        if !cached.contains_key(h) && !missing.iter().any(|(mh, _)| mh == h) {
            missing.push((h.clone(), t.clone()));
        }
    }
    if !missing.is_empty() {
        info!(model = %model, texts = missing.len(), "embedding capabilities");
        let vectors = embedder
            .embed(missing.iter().map(|(_, t)| t.clone()).collect())
            .await?;
        let rows: Vec<(String, Vec<f32>)> = missing.iter().map(|(h, _)| h.clone()).zip(vectors).collect();
        store
            .put_embeddings(&model, &rows)
            .await
            .map_err(|e| EmbedFailure(e.to_string()))?;
        cached.extend(rows);
    }
    let vectors = hashes
        .iter()
        .map(|h| {
            cached
                .get(h)
                .cloned()
                .ok_or_else(|| EmbedFailure(format!("no vector for {h}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let semantic = SemanticIndex::new(index, vectors).map_err(|e| EmbedFailure(e.to_string()))?;
    Ok((semantic, missing.len()))
}

/// Which ranking `resolve` uses, for `slovo doctor`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RankingReport {
    /// `lexical`, or the fusion used with a model.
    pub ranker: &'static str,
    /// The model's id, when one is configured and answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Why a configured model cannot be used (ranking then stays lexical).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl RankingReport {
    /// One line for a person.
    pub fn render(&self) -> String {
        match (&self.model, &self.problem) {
            (_, Some(p)) => format!("discovery ranking: lexical (BM25F): the configured model cannot be used: {p}"),
            (Some(m), None) => format!("discovery ranking: {} fusion of BM25F and the embedding model {m}", self.ranker),
            (None, None) => "discovery ranking: lexical (BM25F); set discovery.model_dir (or discovery.embeddings_url) to rank by meaning too".into(),
        }
    }
}

/// Loads the configured model (or asks the endpoint for one vector) and says which ranking
/// `resolve` will use.
pub async fn probe(embedder: Option<&Embedder>) -> RankingReport {
    let Some(embedder) = embedder else {
        return RankingReport {
            ranker: Ranker::Lexical.as_str(),
            model: None,
            problem: None,
        };
    };
    let answer = async {
        let id = embedder.model_id().await?;
        embedder.embed(vec!["probe".into()]).await?;
        Ok::<_, EmbedFailure>(id)
    };
    match answer.await {
        Ok(id) => RankingReport {
            ranker: FUSED_RANKER.as_str(),
            model: Some(id),
            problem: None,
        },
        Err(e) => RankingReport {
            ranker: Ranker::Lexical.as_str(),
            model: None,
            problem: Some(e.to_string()),
        },
    }
}
