//! One-time sign-in links for the dashboard: `slovo dashboard` makes one, the dashboard
//! redeems it once for a session.
//!
//! A link's code reads `sl_<id>_<secret>` like a token (`access.rs`): the id finds the row and
//! only a SHA-256 of the 256-bit random secret is stored. Both the making and the use are
//! audited, so the trail shows who could sign in and when they did.

use std::time::Duration;

use slovo_core::audit::AuditRecord;
use slovo_core::audit::record::{SigninLinkCreated, SigninLinkUsed};
use slovo_core::time::now_ms;

use crate::access::{random_hex, secret_hash};
use crate::audit_record::AppendRecord;
use crate::{Actor, Result, Runtime};

/// How long a sign-in link stays usable unless told otherwise.
pub const DEFAULT_SIGNIN_LINK_TTL: Duration = Duration::from_secs(10 * 60);

/// A sign-in link just made: the only time its code is visible.
#[derive(Debug, Clone)]
pub struct SigninLink {
    /// The link's id (public; it names the sessions the link opens).
    pub id: String,
    /// The code to put in the link.
    pub code: String,
    /// When it stops working (Unix ms).
    pub expires_at: i64,
}

fn parse(code: &str) -> Option<(&str, &str)> {
    let (id, secret) = code.strip_prefix("sl_")?.split_once('_')?;
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(id, 16) && hex(secret, 64)).then_some((id, secret))
}

impl Runtime {
    /// Makes a one-time dashboard sign-in link valid for `ttl`.
    pub async fn create_signin_link(&self, ttl: Duration, actor: &Actor) -> Result<SigninLink> {
        let id = random_hex(8)?;
        let secret = random_hex(32)?;
        let now = now_ms();
        let expires_at = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        let mut tx = self.store.begin().await?;
        tx.insert_signin_link(&id, &secret_hash(&secret), now, expires_at)
            .await?;
        tx.append_record(
            None,
            &actor.0,
            &AuditRecord::SigninLinkCreated(SigninLinkCreated {
                link: id.clone(),
                expires_at,
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(SigninLink {
            code: format!("sl_{id}_{secret}"),
            id,
            expires_at,
        })
    }

    /// Uses a sign-in link: its id when `code` is a link that exists, was not used and has not
    /// expired (it cannot be used again), `None` otherwise.
    pub async fn redeem_signin_link(&self, code: &str) -> Result<Option<String>> {
        let Some((id, secret)) = parse(code.trim()) else {
            return Ok(None);
        };
        let mut tx = self.store.begin().await?;
        // The stored value is a hash of a random secret, so comparing it in SQL reveals
        // nothing through timing that would help guess the secret.
        if !tx.use_signin_link(id, &secret_hash(secret), now_ms()).await? {
            tx.rollback().await?;
            return Ok(None);
        }
        tx.append_record(
            None,
            &format!("dashboard:link:{id}"),
            &AuditRecord::SigninLinkUsed(SigninLinkUsed { link: id.to_string() }),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(id.to_string()))
    }
}
