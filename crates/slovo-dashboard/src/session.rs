//! Sessions: an admin token signs a person in; a random session id in a cookie keeps them in.
//!
//! The cookie is `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page sends
//! it), `Path=/`, and expires with the session. It is `Secure` when the request reached the
//! server over TLS, as told by a reverse proxy's `X-Forwarded-Proto: https` or
//! `Forwarded: proto=https` ([`CookieSecurity::FromRequest`]), or always
//! ([`CookieSecurity::Always`]). Sessions live in memory: a restart signs everyone out. The
//! server keeps only a hash of each session id, so a memory dump does not yield live cookies.
//! Every request re-checks that the token the person signed in with is still valid, so
//! revoking that token ends its sessions.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use slovo_runtime::Actor;
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
    expires: Instant,
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
}

/// Signed-in sessions, by the SHA-256 of their id.
#[derive(Debug)]
pub struct Sessions {
    ttl: Duration,
    by_hash: Mutex<HashMap<String, Session>>,
}

/// A fresh session: the cookie value to send and the session.
#[derive(Debug)]
pub struct NewSession {
    /// The cookie value (the session id). Sent once, never stored.
    pub cookie_value: String,
    /// The session.
    pub session: Session,
}

/// The operating system's random source failed.
#[derive(Debug, thiserror::Error)]
#[error("no randomness for a session id: {0}")]
pub struct RandomError(String);

fn random_hex(bytes: usize) -> Result<String, RandomError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| RandomError(e.to_string()))?;
    Ok(hex::encode(buf))
}

fn hash(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

impl Sessions {
    /// No sessions; each one lasts `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Sessions {
            ttl,
            by_hash: Mutex::new(HashMap::new()),
        }
    }

    /// How long a session lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn locked(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock cannot leave the map half-updated (every operation
        // is a single insert, remove or lookup), so a poisoned lock is still safe to use.
        self.by_hash.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session for the person who presented `principal`.
    pub fn open(&self, principal: Principal) -> Result<NewSession, RandomError> {
        let id = random_hex(32)?;
        let id_hash = hash(&id);
        let session = Session {
            handle: id_hash[..12].to_string(),
            principal,
            csrf: random_hex(32)?,
            expires: Instant::now() + self.ttl,
        };
        let mut map = self.locked();
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        map.insert(id_hash, session.clone());
        Ok(NewSession {
            cookie_value: id,
            session,
        })
    }

    /// The live session with cookie value `id`.
    pub fn find(&self, id: &str) -> Option<Session> {
        let mut map = self.locked();
        let key = hash(id);
        match map.get(&key) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends the session with cookie value `id`.
    pub fn close(&self, id: &str) {
        self.locked().remove(&hash(id));
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
        let session = cookie_value(&parts.headers)
            .and_then(|id| state.sessions.find(&id))
            .ok_or_else(|| PageError::signed_out(&parts.method))?;
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
