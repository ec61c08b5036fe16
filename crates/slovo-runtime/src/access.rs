//! API tokens: created by an admin, shown once, stored as a hash.
//!
//! A token reads `slv_<id>_<secret>`: the id finds the row, the secret (256 random bits) is
//! compared by its SHA-256. A fast hash is right here because the secret is random, not a
//! password: there is nothing to guess from its hash.

use sha2::{Digest, Sha256};
use slovo_core::access::Role;
use slovo_core::audit::AuditRecord;
use slovo_core::audit::record::{TokenCreated, TokenRevoked};
use slovo_core::time::now_ms;
use slovo_store::TokenRow;

use crate::audit_record::AppendRecord;
use crate::{Actor, Result, Runtime, RuntimeError, TokenView};

/// How often `last_used_at` is refreshed at most (ms).
const TOUCH_INTERVAL_MS: i64 = 60_000;

/// A token just created: the only time its secret is visible.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NewToken {
    /// The full token, to hand to its user.
    pub token: String,
    /// Its record, as `token list` shows it.
    pub record: TokenView,
}

pub(crate) fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| {
        RuntimeError::io(
            "read",
            "the system random source",
            std::io::Error::other(e.to_string()),
        )
    })?;
    Ok(hex::encode(buf))
}

pub(crate) fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares two equal-length strings without an early exit.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Runtime {
    /// Creates a token for `role`. The returned secret is not stored anywhere.
    pub async fn create_token(&self, role: Role, label: Option<String>, actor: &Actor) -> Result<NewToken> {
        let id = random_hex(8)?;
        let secret = random_hex(32)?;
        let record = TokenRow {
            id: id.clone(),
            role,
            token_hash: secret_hash(&secret),
            label,
            created_at: now_ms(),
            last_used_at: None,
            revoked_at: None,
        };
        let mut tx = self.store.begin().await?;
        tx.insert_token(&record).await?;
        tx.append_record(
            None,
            &actor.0,
            &AuditRecord::TokenCreated(TokenCreated {
                id: id.clone(),
                role,
                label: record.label.clone(),
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(NewToken {
            token: format!("slv_{id}_{secret}"),
            record: record.into(),
        })
    }

    /// Every token (without secrets).
    pub async fn tokens(&self) -> Result<Vec<TokenView>> {
        Ok(self
            .store
            .tokens()
            .await?
            .into_iter()
            .map(TokenView::from)
            .collect())
    }

    /// Revokes a token.
    pub async fn revoke_token(&self, id: &str, actor: &Actor) -> Result<()> {
        let mut tx = self.store.begin().await?;
        if !tx.revoke_token(id, now_ms()).await? {
            tx.rollback().await?;
            return Err(RuntimeError::NotFound {
                what: "token",
                name: id.to_string(),
            });
        }
        tx.append_record(
            None,
            &actor.0,
            &AuditRecord::TokenRevoked(TokenRevoked { id: id.to_string() }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The token a presented string stands for, if it is valid and not revoked.
    pub async fn authenticate(&self, presented: &str) -> Result<Option<TokenRow>> {
        let Some((id, secret)) = presented
            .strip_prefix("slv_")
            .and_then(|rest| rest.split_once('_'))
        else {
            return Ok(None);
        };
        if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let Some(row) = self.store.token(id).await? else {
            return Ok(None);
        };
        if row.revoked_at.is_some() || !same(&row.token_hash, &secret_hash(secret)) {
            return Ok(None);
        }
        let now = now_ms();
        if row.last_used_at.is_none_or(|t| now - t > TOUCH_INTERVAL_MS) {
            self.store.touch_token(id, now).await?;
        }
        Ok(Some(row))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn comparison_is_exact() {
        assert!(super::same("abc", "abc"));
        assert!(!super::same("abc", "abd"));
        assert!(!super::same("abc", "ab"));
    }
}
