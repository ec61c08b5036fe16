//! Who is calling: the bearer token, resolved to a role.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use slovo_core::access::Role;
use slovo_runtime::Actor;

use crate::AppState;
use crate::error::ApiError;

/// An authenticated caller. Extracting it answers 401 when the token is missing or invalid;
/// [`Caller::require`] answers 403 when its role does not allow the operation.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's id.
    pub token_id: String,
    /// The token's role.
    pub role: Role,
}

impl Caller {
    /// Fails with 403 unless the caller's role includes `needed`.
    pub fn require(&self, needed: Role) -> Result<(), ApiError> {
        if self.role.includes(needed) {
            Ok(())
        } else {
            Err(ApiError::forbidden(self.role.as_str(), needed.as_str()))
        }
    }

    /// Fails with 403 unless the caller has one of `roles`.
    pub fn require_any(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.iter().any(|r| self.role.includes(*r)) {
            Ok(())
        } else {
            let names: Vec<_> = roles.iter().map(|r| r.as_str()).collect();
            Err(ApiError::forbidden(self.role.as_str(), &names.join(" or ")))
        }
    }

    /// How the caller appears on audit events and executions.
    pub fn actor(&self) -> Actor {
        Actor(format!("token:{}:{}", self.role, self.token_id))
    }
}

impl<S> FromRequestParts<S> for Caller
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .ok_or_else(ApiError::unauthorized)?;
        match state.runtime.authenticate(token.trim()).await? {
            Some(row) => Ok(Caller {
                token_id: row.id,
                role: row.role,
            }),
            None => Err(ApiError::unauthorized()),
        }
    }
}
