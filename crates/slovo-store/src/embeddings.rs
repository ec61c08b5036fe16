//! The embedding cache: vectors of capability texts by (model id, SHA-256 of the text).

use std::collections::HashMap;

use sqlx::{AssertSqlSafe, Row};

use crate::{Result, Store, StoreError};

/// Hashes per statement: well under SQLite's and PostgreSQL's limits on bound parameters.
const CHUNK: usize = 400;

fn encode(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn decode(bytes: &[u8]) -> Result<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return Err(StoreError::Corrupt(format!(
            "embedding_cache vector of {} bytes is not a list of f32",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// The cached vectors of `model` for those of `text_hashes` that have one.
    pub async fn embeddings(&self, model: &str, text_hashes: &[String]) -> Result<HashMap<String, Vec<f32>>> {
        let mut found = HashMap::new();
        for chunk in text_hashes.chunks(CHUNK) {
            let sql = format!(
                "SELECT text_hash, vector FROM embedding_cache WHERE model = $1 AND text_hash IN ({})",
                placeholders(2, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(model);
            for h in chunk {
                q = q.bind(h);
            }
            for row in q.fetch_all(&self.pool).await? {
                let hash: String = row.try_get("text_hash")?;
                let bytes: Vec<u8> = row.try_get("vector")?;
                found.insert(hash, decode(&bytes)?);
            }
        }
        Ok(found)
    }

    /// Caches `vectors` (text hash, vector) of `model`; a hash already cached keeps its vector.
    /// All or nothing.
    pub async fn put_embeddings(&self, model: &str, vectors: &[(String, Vec<f32>)]) -> Result<()> {
        let at = slovo_core::time::now_ms();
        let mut tx = self.pool.begin().await?;
        for chunk in vectors.chunks(CHUNK / 4) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| format!("($1, ${}, ${}, $2)", 3 + 2 * i, 4 + 2 * i))
                .collect();
            let sql = format!(
                "INSERT INTO embedding_cache (model, text_hash, vector, created_at) VALUES {} \
                 ON CONFLICT (model, text_hash) DO NOTHING",
                rows.join(", ")
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(model).bind(at);
            for (hash, vector) in chunk {
                q = q.bind(hash).bind(encode(vector));
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// How many vectors are cached for `model`.
    pub async fn count_embeddings(&self, model: &str) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM embedding_cache WHERE model = $1")
            .bind(model)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }
}
