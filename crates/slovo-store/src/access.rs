//! API tokens and one-time dashboard sign-in links.

use sqlx::AssertSqlSafe;

use crate::rows::TOKEN_COLUMNS;
use crate::{Result, Store, TokenRow, Tx};

impl Store {
    /// An API token by id.
    pub async fn token(&self, id: &str) -> Result<Option<TokenRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(TokenRow::from_row).transpose()
    }

    /// Every API token, oldest first.
    pub async fn tokens(&self) -> Result<Vec<TokenRow>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at, id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(TokenRow::from_row).collect()
    }

    /// Records that a token was used (not audited: it is bookkeeping, not a decision).
    pub async fn touch_token(&self, id: &str, at: i64) -> Result<()> {
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl Tx {
    /// Stores a new API token.
    pub async fn insert_token(&mut self, t: &TokenRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_tokens (id, role, token_hash, label, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&t.id)
        .bind(t.role.as_str())
        .bind(&t.token_hash)
        .bind(&t.label)
        .bind(t.created_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Stores a one-time dashboard sign-in link (its secret only as a hash).
    pub async fn insert_signin_link(
        &mut self,
        id: &str,
        secret_hash: &str,
        created_at: i64,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO dashboard_signin_links (id, secret_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(secret_hash)
        .bind(created_at)
        .bind(expires_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Marks a sign-in link used at `at`; false when there is no such link with that secret,
    /// or it was used already, or it expired. One statement, so two concurrent uses cannot both
    /// succeed.
    pub async fn use_signin_link(&mut self, id: &str, secret_hash: &str, at: i64) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE dashboard_signin_links SET used_at = $1 \
             WHERE id = $2 AND secret_hash = $3 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(at)
        .bind(id)
        .bind(secret_hash)
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Revokes an API token; false when there is no such (unrevoked) token.
    pub async fn revoke_token(&mut self, id: &str, at: i64) -> Result<bool> {
        let n = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(at)
            .bind(id)
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
        Ok(n == 1)
    }
}
