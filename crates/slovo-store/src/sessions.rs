//! Signed-in dashboard sessions. The rows are bookkeeping, not audited (signing in with a link
//! is audited when the link is used; every change a session makes is audited with the session
//! as actor). Only a hash of each session id is stored.

use sqlx::Row;

use crate::{Result, Store};

/// One signed-in session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// SHA-256 of the session id (hex); the id itself is only in the person's cookie.
    pub id_hash: String,
    /// What the person signed in with: `token:<id>` or `link:<id>`.
    pub principal: String,
    /// When it was opened, Unix ms.
    pub created_at: i64,
    /// When it ends, Unix ms.
    pub expires_at: i64,
}

impl Store {
    /// Stores a new session, first dropping every session that ended before `row.created_at`.
    pub async fn insert_session(&self, row: &SessionRow) -> Result<()> {
        sqlx::query("DELETE FROM dashboard_sessions WHERE expires_at <= $1")
            .bind(row.created_at)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO dashboard_sessions (id_hash, principal, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&row.id_hash)
        .bind(&row.principal)
        .bind(row.created_at)
        .bind(row.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The session whose id hashes to `id_hash`, if it has not ended at `now`.
    pub async fn live_session(&self, id_hash: &str, now: i64) -> Result<Option<SessionRow>> {
        let row = sqlx::query(
            "SELECT id_hash, principal, created_at, expires_at FROM dashboard_sessions \
             WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(SessionRow {
                id_hash: r.try_get("id_hash")?,
                principal: r.try_get("principal")?,
                created_at: r.try_get("created_at")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Ends a session (sign-out); false when there was none.
    pub async fn delete_session(&self, id_hash: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM dashboard_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    }
}
