//! One error type for every endpoint, turned into a response in one place.
//!
//! Every error is JSON: `{"error": {"code": "...", "message": "..."}}`. Codes are stable (clients
//! branch on them); messages are for people. Internal errors answer with a generic message and
//! the real cause goes to the log, never to the client.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use slovo_runtime::{ErrorKind, RuntimeError};

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Seconds after which a retry may succeed (back-pressure).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 401: no valid token.
    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid token is required (Authorization: Bearer slv_…)",
        )
    }

    /// 403: the token's role does not allow this.
    pub fn forbidden(role: &str, needed: &str) -> Self {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this needs the {needed} role; the token is {role}"),
        )
    }

    /// 503 with `Retry-After`: too many calls at once.
    pub fn overloaded(retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "too many calls in progress; retry later",
            )
        }
    }

    /// 400: a request that is malformed before it reaches the runtime.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl From<RuntimeError> for ApiError {
    fn from(err: RuntimeError) -> Self {
        if err.kind() == ErrorKind::Unavailable {
            // The database's lock is held elsewhere or its disk is full: nothing was written,
            // and the same request may succeed later.
            return ApiError {
                retry_after: Some(5),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    err.to_string(),
                )
            };
        }
        let (status, code) = match &err {
            RuntimeError::InvalidManifest(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_manifest"),
            RuntimeError::InvalidBundle { .. } | RuntimeError::BundleEntry { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_bundle")
            }
            RuntimeError::OpenApi(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_openapi"),
            RuntimeError::Fetch(_) => (StatusCode::UNPROCESSABLE_ENTITY, "fetch_failed"),
            RuntimeError::McpImport { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "mcp_import_failed"),
            RuntimeError::InvalidArguments { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_arguments"),
            RuntimeError::Grant { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "grant_wider_than_request"),
            RuntimeError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            RuntimeError::GrantExpired { .. } => (StatusCode::CONFLICT, "grant_expired"),
            RuntimeError::NotCallable { .. } => (StatusCode::CONFLICT, "tool_not_callable"),
            RuntimeError::NotRunnable { .. } => (StatusCode::CONFLICT, "tool_not_runnable"),
            RuntimeError::Transition { .. } => (StatusCode::CONFLICT, "invalid_transition"),
            RuntimeError::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
            RuntimeError::AuditBroken(_) => (StatusCode::CONFLICT, "audit_broken"),
            RuntimeError::Install { .. } | RuntimeError::Io { .. } | RuntimeError::Store(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        debug_assert!(
            matches!(err.kind(), ErrorKind::Internal) == (status == StatusCode::INTERNAL_SERVER_ERROR)
        );
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            // The cause may name paths or database details: log it, tell the client less.
            tracing::error!(error = %err, "internal error");
            return ApiError::new(
                status,
                code,
                "something went wrong; the server log has the details",
            );
        }
        ApiError::new(status, code, err.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            _ => "invalid_json",
        };
        let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
            StatusCode::BAD_REQUEST
        } else {
            status
        };
        ApiError::new(status, code, rejection.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": {"code": self.code, "message": self.message}}));
        let mut response = (self.status, body).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
