//! `GET /v1/audit`: the audit trail of every chain, newest first, filtered and paged by a
//! cursor (`docs/api.md`, `docs/audit.md` "Reading every chain").

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use slovo_core::access::Role;
use slovo_runtime::{AuditCursor, AuditQuery};
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

/// Filters and paging for audit events.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditEventsQuery {
    /// Only events about this tool.
    tool: Option<String>,
    /// Only events of this kind (`execution.finished`, `tool.approved`, …).
    kind: Option<String>,
    /// Only events of this chain (1 on SQLite; on PostgreSQL each instance writes its calls'
    /// results to a chain of its own).
    chain: Option<i64>,
    /// At most this many (1 to 1000; default 50).
    limit: Option<i64>,
    /// Only events shown after this cursor, `AT_MS.CHAIN.SEQ` (the `next_cursor` of the
    /// previous page).
    before: Option<String>,
}

/// Audit events of every chain, newest first by time, then chain, then sequence number
/// (reader). Each event names its `chain`; `next_cursor` pages on without gaps or repeats.
#[utoipa::path(get, path = "/v1/audit", params(AuditEventsQuery),
    responses((status = 200, description = "a page of audit events and the cursor of the next", body = Value)))]
pub(crate) async fn list_audit(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<AuditEventsQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Reader)?;
    let Query(q) = query.map_err(|r| ApiError::bad_request("invalid_query", r.body_text()))?;
    let limit = crate::routes::page_limit(q.limit)?;
    let before = q
        .before
        .map(|c| c.parse::<AuditCursor>())
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?;
    let events = state
        .runtime
        .audit_events(&AuditQuery {
            tool: q.tool,
            kind: q.kind,
            chain: q.chain,
            before,
            limit,
        })
        .await?;
    let next_cursor = if events.len() as i64 == limit {
        events.last().map(|e| AuditCursor::of(e).to_string())
    } else {
        None
    };
    Ok(Json(json!({"events": events, "next_cursor": next_cursor})))
}
