//! Sessions: an admin token signs a person in; a random session id in a cookie keeps them in.
//!
//! The cookie is `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page sends
//! it), `Path=/`, and expires with the session. It is `Secure` when the request reached the
//! server over TLS, as told by a reverse proxy's `X-Forwarded-Proto: https` or
//! `Forwarded: proto=https` ([`CookieSecurity::FromRequest`]), or always
//! ([`CookieSecurity::Always`]). Sessions are kept in the database, so a restart signs no one
//! out; only a SHA-256 of each session id is stored, so the database does not yield live
//! cookies, and the CSRF token is derived from the id, so it is not stored either.
//! Every request re-checks that the token the person signed in with is still valid, so
//! revoking that token ends its sessions.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use slovo_core::time::now_ms;
use slovo_runtime::{Actor, Runtime, RuntimeError, SessionRow};
use subtle::ConstantTimeEq;

use crate::DashboardState;
use crate::error::PageError;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "slovo_session";

/// When the session cookie carries the `Secure` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieSecurity {
    /// When the request came over TLS, as a reverse proxy reports with `X-Forwarded-Proto` or
    /// `Forwarded`. `slovo serve` itself speaks plain HTTP, so without a proxy in front the
    /// cookie cannot be `Secure` (the browser would never send it back).
    FromRequest,
    /// Always (the dashboard is only ever reached over TLS).
    Always,
}

impl CookieSecurity {
    /// Whether the cookie set in answer to a request with `headers` is `Secure`.
    pub fn secure(self, headers: &HeaderMap) -> bool {
        match self {
            CookieSecurity::Always => true,
            CookieSecurity::FromRequest => arrived_over_tls(headers),
        }
    }
}

fn arrived_over_tls(headers: &HeaderMap) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    header("x-forwarded-proto").trim().eq_ignore_ascii_case("https")
        || header("forwarded")
            .split([';', ','])
            .any(|part| part.trim().eq_ignore_ascii_case("proto=https"))
}

/// What a person signed in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An admin token, by id: revoking it ends the session.
    Token(String),
    /// A one-time sign-in link, by id (`slovo dashboard`).
    Link(String),
}

impl Principal {
    fn as_actor_part(&self) -> String {
        match self {
            Principal::Token(id) => format!("token:{id}"),
            Principal::Link(id) => format!("link:{id}"),
        }
    }
}

/// A signed-in person.
#[derive(Debug, Clone)]
pub struct Session {
    /// A short public name of the session: the first 12 hex digits of its id's hash. Safe to
    /// show and to log; it cannot be turned back into the cookie.
    pub handle: String,
    /// What the person signed in with.
    pub principal: Principal,
    /// The token every state-changing request must carry.
    pub csrf: String,
}

impl Session {
    /// How this session appears on audit events: it names the session and the token or link
    /// behind it.
    pub fn actor(&self) -> Actor {
        Actor(format!(
            "dashboard:session:{}:{}",
            self.handle,
            self.principal.as_actor_part()
        ))
    }

    /// True when `presented` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        !presented.is_empty() && bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }

    /// The session with cookie value `id`, hashing to `id_hash`, for `principal`.
    fn new(id: &str, id_hash: &str, principal: Principal) -> Session {
        Session {
            handle: id_hash[..12].to_string(),
            principal,
            csrf: csrf_token(id),
        }
    }
}

/// Signed-in sessions, kept in the database by the SHA-256 of their id, so they outlive a
/// restart of the server and are shared by every instance on one database.
pub struct Sessions {
    ttl: Duration,
    runtime: Arc<Runtime>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// A fresh session: the cookie value to send and the session.
#[derive(Debug)]
pub struct NewSession {
    /// The cookie value (the session id). Sent once, never stored.
    pub cookie_value: String,
    /// The session.
    pub session: Session,
}

/// Why a session could not be opened or found.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The operating system's random source failed.
    #[error("no randomness for a session id: {0}")]
    Random(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] RuntimeError),
}

fn random_hex(bytes: usize) -> Result<String, SessionError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| SessionError::Random(e.to_string()))?;
    Ok(hex::encode(buf))
}

fn hash(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// A session's CSRF token, derived from its id: nothing stored yields it (the database keeps
/// only a different hash of the id), and every request that carries the cookie can recompute it.
fn csrf_token(id: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"slovo-dashboard-csrf\0");
    h.update(id.as_bytes());
    hex::encode(h.finalize())
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Sessions {
    /// Sessions kept in the runtime's database; each one lasts `ttl`.
    pub fn new(runtime: Arc<Runtime>, ttl: Duration) -> Self {
        Sessions { ttl, runtime }
    }

    /// How long a session lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Opens a session for the person who presented `principal`.
    pub async fn open(&self, principal: Principal) -> Result<NewSession, SessionError> {
        let id = random_hex(32)?;
        let id_hash = hash(&id);
        let now = now_ms();
        self.runtime
            .store()
            .insert_session(&SessionRow {
                id_hash: id_hash.clone(),
                principal: principal.as_actor_part(),
                created_at: now,
                expires_at: now.saturating_add(ms(self.ttl)),
            })
            .await
            .map_err(RuntimeError::from)?;
        Ok(NewSession {
            session: Session::new(&id, &id_hash, principal),
            cookie_value: id,
        })
    }

    /// The live session with cookie value `id`.
    pub async fn find(&self, id: &str) -> Result<Option<Session>, SessionError> {
        let id_hash = hash(id);
        let found = self.runtime.store().live_session(&id_hash, now_ms()).await;
        let Some(row) = found.map_err(RuntimeError::from)? else {
            return Ok(None);
        };
        let principal = match row.principal.split_once(':') {
            Some(("token", t)) => Principal::Token(t.to_string()),
            Some(("link", l)) => Principal::Link(l.to_string()),
            _ => {
                tracing::warn!(session = %&id_hash[..12], "a stored session names no token or link");
                return Ok(None);
            }
        };
        Ok(Some(Session::new(id, &id_hash, principal)))
    }

    /// Ends the session with cookie value `id`.
    pub async fn close(&self, id: &str) -> Result<(), SessionError> {
        self.runtime
            .store()
            .delete_session(&hash(id))
            .await
            .map_err(RuntimeError::from)?;
        Ok(())
    }
}

/// The session cookie's value in a request, if any.
pub fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_string())
}

/// The `Set-Cookie` value that starts a session.
pub fn set_cookie(value: &str, max_age: Duration, secure: bool) -> String {
    format!(
        "{COOKIE_NAME}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that ends a session.
pub fn clear_cookie(secure: bool) -> String {
    set_cookie("", Duration::ZERO, secure)
}

impl<S> FromRequestParts<S> for Session
where
    DashboardState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = DashboardState::from_ref(state);
        let found = match cookie_value(&parts.headers) {
            Some(id) => state.sessions.find(&id).await?,
            None => None,
        };
        let session = found.ok_or_else(|| PageError::signed_out(&parts.method))?;
        // The token may have been revoked since sign-in: its sessions end with it.
        let Principal::Token(token_id) = &session.principal else {
            return Ok(session);
        };
        let token = state
            .runtime
            .store()
            .token(token_id)
            .await
            .map_err(|e| PageError::Runtime(e.into()))?;
        match token {
            Some(t) if t.revoked_at.is_none() => Ok(session),
            _ => Err(PageError::signed_out(&parts.method)),
        }
    }
}
