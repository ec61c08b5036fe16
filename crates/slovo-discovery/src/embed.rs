//! Sentence embeddings in process: a BERT-family model from a sentence-transformers directory
//! (`model.safetensors`, `tokenizer.json`, `config.json`, `modules.json`, `1_Pooling/config.json`),
//! run on the CPU with candle. Nothing is downloaded: the directory is given by a person
//! (`discovery.model_dir`) or, for tests, unpacked by `scripts/ci-discovery-setup.sh`.
//!
//! The pooling (mean or CLS) and the final L2 normalisation follow the directory's own
//! `modules.json` and pooling configuration, so vectors match what sentence-transformers gives
//! for the same model.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A file of the model directory is missing or unreadable.
    #[error("model file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A configuration file says something this loader does not support.
    #[error("model file {path}: {reason}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is not supported.
        reason: String,
    },
    /// The tokenizer failed on a text.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The model failed (shapes, weights).
    #[error("model: {0}")]
    Model(#[from] candle_core::Error),
}

/// How token vectors become one sentence vector (`1_Pooling/config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Mean of the token vectors, padding excluded.
    Mean,
    /// The first (`[CLS]`) token's vector.
    Cls,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

#[derive(Deserialize)]
struct ModuleEntry {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    path: String,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

/// Texts per forward pass: padding to the longest text of a batch wastes less with small
/// batches of similar texts, and memory stays bounded.
const BATCH: usize = 32;

/// A sentence-embedding model loaded from a sentence-transformers directory.
pub struct LocalModel {
    id: String,
    model: BertModel,
    tokenizer: Tokenizer,
    pooling: Pooling,
    normalize: bool,
    device: Device,
}

impl std::fmt::Debug for LocalModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalModel")
            .field("id", &self.id)
            .field("pooling", &self.pooling)
            .field("normalize", &self.normalize)
            .finish()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, EmbedError> {
    std::fs::read(path).map_err(|e| EmbedError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, EmbedError> {
    serde_json::from_slice(&read(path)?).map_err(|e| EmbedError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

impl LocalModel {
    /// Loads the model in `dir`. Its id (what cached vectors are keyed by) is the directory's
    /// name followed by a digest of its weights, so that replacing the weights under the same
    /// name never reuses vectors of the old ones.
    pub fn load(dir: &Path) -> Result<LocalModel, EmbedError> {
        let weights_path = dir.join("model.safetensors");
        let weights = read(&weights_path)?;
        let digest = hex::encode(&Sha256::digest(&weights)[..6]);
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        let config: BertConfig = read_json(&dir.join("config.json"))?;
        let (pooling, normalize) = pipeline(dir)?;
        let max_len = match dir.join("sentence_bert_config.json") {
            p if p.exists() => read_json::<SentenceBertConfig>(&p)?.max_seq_length,
            _ => None,
        }
        .unwrap_or(config.max_position_embeddings);

        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|e| EmbedError::File {
            path: tokenizer_path.clone(),
            reason: e.to_string(),
        })?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..PaddingParams::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..TruncationParams::default()
            }))
            .map_err(|e| EmbedError::Unsupported {
                path: tokenizer_path,
                reason: e.to_string(),
            })?;

        let device = Device::Cpu;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)?;
        let model = BertModel::load(vb, &config)?;
        Ok(LocalModel {
            id: format!("{name}@{digest}"),
            model,
            tokenizer,
            pooling,
            normalize,
            device,
        })
    }

    /// What cached vectors are keyed by: the directory name and a digest of the weights.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// One vector per text, in order.
    pub fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        // Batches of texts of similar length: a batch is padded to its longest text, so one
        // long text among short ones would multiply the work.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for batch in order.chunks(BATCH) {
            let batch_texts: Vec<String> = batch.iter().map(|&i| texts[i].clone()).collect();
            for (&i, v) in batch.iter().zip(self.embed_batch(&batch_texts)?) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    fn embed_batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        let rows = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> Result<Tensor, EmbedError> {
            let rows = encodings
                .iter()
                .map(|e| Tensor::new(f(e), &self.device))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Tensor::stack(&rows, 0)?)
        };
        let ids = rows(&|e| e.get_ids())?;
        let type_ids = rows(&|e| e.get_type_ids())?;
        let mask = rows(&|e| e.get_attention_mask())?;
        let hidden = self.model.forward(&ids, &type_ids, Some(&mask))?;
        let pooled = match self.pooling {
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
            Pooling::Mean => {
                let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
                let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
                let counts = mask.sum(1)?.clamp(1e-9, f32::MAX)?;
                summed.broadcast_div(&counts)?
            }
        };
        let pooled = if self.normalize {
            let norms = pooled.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f32::MAX)?;
            pooled.broadcast_div(&norms)?
        } else {
            pooled
        };
        Ok(pooled.to_vec2::<f32>()?)
    }
}

/// The pooling and whether vectors are normalised, from `modules.json` (a directory without
/// one is taken as mean pooling, normalised: the sentence-transformers default for BERT).
fn pipeline(dir: &Path) -> Result<(Pooling, bool), EmbedError> {
    let modules_path = dir.join("modules.json");
    if !modules_path.exists() {
        return Ok((Pooling::Mean, true));
    }
    let modules: Vec<ModuleEntry> = read_json(&modules_path)?;
    let mut pooling = Pooling::Mean;
    let mut normalize = false;
    for m in &modules {
        match m.kind.rsplit('.').next().unwrap_or_default() {
            "Transformer" => {}
            "Pooling" => {
                let path = dir.join(&m.path).join("config.json");
                let c: PoolingConfig = read_json(&path)?;
                pooling = match (
                    c.pooling_mode_mean_tokens,
                    c.pooling_mode_cls_token,
                    c.pooling_mode_max_tokens || c.pooling_mode_mean_sqrt_len_tokens,
                ) {
                    (true, false, false) => Pooling::Mean,
                    (false, true, false) => Pooling::Cls,
                    _ => {
                        return Err(EmbedError::Unsupported {
                            path,
                            reason: "only mean or CLS pooling (one of them) is supported".into(),
                        });
                    }
                };
            }
            "Normalize" => normalize = true,
            other => {
                return Err(EmbedError::Unsupported {
                    path: modules_path.clone(),
                    reason: format!("module type {other:?} is not supported"),
                });
            }
        }
    }
    Ok((pooling, normalize))
}

/// Cosine similarity; for normalised vectors the dot product.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

/// The key a text's vector is cached under (with the model id): a SHA-256 of the text.
pub fn text_hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}
