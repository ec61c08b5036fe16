//! Tools' encrypted secrets.

use sqlx::Row;

use crate::{Result, SecretRow, Store, Tx};

impl Store {
    /// The encrypted secrets of a tool: (name, nonce, ciphertext), by name.
    pub async fn secrets(&self, tool: &str) -> Result<Vec<SecretRow>> {
        let rows = sqlx::query(
            "SELECT tool, name, nonce, ciphertext, created_at, updated_at FROM secrets WHERE tool = $1 ORDER BY name",
        )
        .bind(tool)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SecretRow {
                    tool: r.try_get("tool")?,
                    name: r.try_get("name")?,
                    nonce: r.try_get("nonce")?,
                    ciphertext: r.try_get("ciphertext")?,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }
}

impl Tx {
    /// Creates or replaces a tool's encrypted secret.
    pub async fn save_secret(&mut self, s: &SecretRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO secrets (tool, name, nonce, ciphertext, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (tool, name) DO UPDATE SET nonce = excluded.nonce, ciphertext = excluded.ciphertext, \
             updated_at = excluded.updated_at",
        )
        .bind(&s.tool)
        .bind(&s.name)
        .bind(&s.nonce)
        .bind(&s.ciphertext)
        .bind(s.created_at)
        .bind(s.updated_at)
        .execute(&mut *self.tx)
        .await?;
        self.bump_tool_revision(&s.tool).await
    }

    /// A secret is part of how a tool is called: changing one bumps the tool's revision, so
    /// that a runtime's cached view of the tool (see `insert_running_execution_at`) is
    /// refreshed before the next call. A secret set before its tool exists bumps nothing.
    async fn bump_tool_revision(&mut self, tool: &str) -> Result<()> {
        sqlx::query("UPDATE tools SET revision = revision + 1 WHERE name = $1")
            .bind(tool)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Deletes a tool's secret; false when there was none.
    pub async fn delete_secret(&mut self, tool: &str, name: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM secrets WHERE tool = $1 AND name = $2")
            .bind(tool)
            .bind(name)
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
        if n == 1 {
            self.bump_tool_revision(tool).await?;
        }
        Ok(n == 1)
    }
}
