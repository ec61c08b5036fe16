//! Handlers: authenticate, check the role, call the runtime, answer JSON.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router, middleware};
use serde::Deserialize;
use serde_json::{Value, json};
use slovo_core::access::Role;
use slovo_core::execution::ExecutionStatus;
use slovo_core::permissions::{HostPattern, Narrowing};
use slovo_runtime::{CallRequest, ImportSource};
use slovo_runtime::{ExecutionCursor, ExecutionFilter};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::metrics::{CallLabels, ResponseLabels};

/// The OpenAPI description of this API, generated from the handlers below.
#[derive(OpenApi)]
#[openapi(
    info(title = "Slovo Tools API", description = "Tools an assistant may use: import, approve, call, audit."),
    paths(
        health, metrics, list_tools, import_tool, show_tool, approve_tool, disable_tool, enable_tool,
        reinstall_tool,
        revoke_tool, import_openapi, import_mcp_server, list_secrets, set_secret, delete_secret, call, list_executions, show_execution, crate::audit_routes::list_audit, verify_audit, list_instances, list_tokens, create_token, revoke_token,
        resolve, list_discovery, reject_discovery
    ),
    components(schemas(OpenApiBody, McpServerBody, CallBody, ApproveBody, RevokeBody, SecretBody, TokenBody, ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("slv_<id>_<secret>")
                    .build(),
            ),
        );
    }
}

/// The shape of every error.
#[derive(ToSchema)]
#[allow(dead_code)]
struct ErrorBody {
    /// `{"code": "...", "message": "..."}`.
    error: Value,
}

pub(crate) fn router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/tools", get(list_tools).post(import_tool))
        .route("/v1/tools/{name}", get(show_tool))
        .route("/v1/tools/{name}/approve", post(approve_tool))
        .route("/v1/tools/{name}/disable", post(disable_tool))
        .route("/v1/tools/{name}/enable", post(enable_tool))
        .route("/v1/tools/{name}/reinstall", post(reinstall_tool))
        .route("/v1/tools/{name}/revoke", post(revoke_tool))
        .route("/v1/tools/{name}/secrets", get(list_secrets))
        .route(
            "/v1/tools/{name}/secrets/{secret}",
            axum::routing::put(set_secret).delete(delete_secret),
        )
        .route("/v1/openapi/import", post(import_openapi))
        .route("/v1/mcp-servers/import", post(import_mcp_server))
        .route("/v1/calls", post(call))
        .route("/v1/resolve", get(resolve))
        .route("/v1/discovery", get(list_discovery))
        .route("/v1/discovery/{id}/reject", post(reject_discovery))
        .route("/v1/executions", get(list_executions))
        .route("/v1/executions/{id}", get(show_execution))
        .route("/v1/audit", get(crate::audit_routes::list_audit))
        .route("/v1/audit/verify", get(verify_audit))
        .route("/v1/instances", get(list_instances))
        .route("/v1/tokens", get(list_tokens).post(create_token))
        .route("/v1/tokens/{id}", delete(revoke_token))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), count_errors))
        .with_state(state)
}

async fn count_errors(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let response = next.run(req).await;
    if response.status().is_client_error() || response.status().is_server_error() {
        state
            .metrics
            .errors
            .get_or_create(&ResponseLabels {
                code: response.status().as_u16(),
            })
            .inc();
    }
    response
}

/// The `limit` of a listing: 50 when not given, refused outside 1 to 1000.
pub(crate) fn page_limit(limit: Option<i64>) -> ApiResult<i64> {
    let limit = limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit must be between 1 and 1000",
        ));
    }
    Ok(limit)
}

fn json_body<T>(payload: Result<Json<T>, JsonRejection>) -> ApiResult<T> {
    payload.map(|Json(v)| v).map_err(ApiError::from)
}

fn to_value<T: serde::Serialize>(v: &T) -> ApiResult<Json<Value>> {
    serde_json::to_value(v)
        .map(Json)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

/// Liveness: the process answers and the database is reachable; `audit_events` counts the
/// events of every audit chain.
#[utoipa::path(get, path = "/health", security(()), responses((status = 200, description = "healthy")))]
async fn health(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let events = state.runtime.audit_event_total().await?;
    Ok(Json(json!({"status": "ok", "audit_events": events})))
}

/// Prometheus metrics (reader).
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format")))]
async fn metrics(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    caller.require(Role::Reader)?;
    let body = state.metrics.render();
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response())
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// Every tool (agent, reader).
#[utoipa::path(get, path = "/v1/tools", responses((status = 200, description = "tools", body = Value)))]
async fn list_tools(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require_any(&[Role::Agent, Role::Reader])?;
    to_value(&json!({"tools": state.runtime.list().await?}))
}

/// Import a manifest (admin). The body is the manifest, YAML or JSON.
#[utoipa::path(post, path = "/v1/tools", request_body(content = String, content_type = "application/yaml"),
    responses((status = 201, description = "imported", body = Value), (status = 422, description = "invalid manifest", body = ErrorBody)))]
async fn import_tool(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Admin)?;
    let bytes = body.map_err(|r| {
        let status = r.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "payload_too_large"
        } else {
            "invalid_body"
        };
        ApiError::new(status, code, r.body_text())
    })?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let name = if json { "request body.json" } else { "request body" };
    let report = state
        .runtime
        .import(
            ImportSource::Manifest {
                name: name.into(),
                bytes: bytes.to_vec(),
            },
            &caller.actor(),
        )
        .await?;
    Ok((StatusCode::CREATED, to_value(&report)?))
}

/// One tool: requested versus granted, status, versions (agent, reader).
#[utoipa::path(get, path = "/v1/tools/{name}", params(("name" = String, Path, description = "tool name")),
    responses((status = 200, description = "the tool", body = Value), (status = 404, description = "no such tool", body = ErrorBody)))]
async fn show_tool(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_any(&[Role::Agent, Role::Reader])?;
    to_value(&state.runtime.show(&name).await?)
}

/// What to grant: every field narrows the request; none may widen it.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    /// Grant no network at all.
    #[serde(default)]
    pub no_network: bool,
    /// Grant only these hosts.
    #[serde(default)]
    pub network_allow: Option<Vec<String>>,
    /// Memory limit (MB).
    #[serde(default)]
    pub memory_limit_mb: Option<u64>,
    /// CPU share (percent of one CPU).
    #[serde(default)]
    pub cpu_limit_percent: Option<u32>,
    /// Storage quota (MB).
    #[serde(default)]
    pub storage_quota_mb: Option<u64>,
    /// Timeout (seconds).
    #[serde(default)]
    pub timeout_s: Option<u64>,
    /// Process limit.
    #[serde(default)]
    pub pids_limit: Option<u32>,
    /// Expiry (RFC 3339).
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// Approve the pending version with grants (admin).
#[utoipa::path(post, path = "/v1/tools/{name}/approve", params(("name" = String, Path)), request_body = ApproveBody,
    responses((status = 200, description = "approved and installed", body = Value), (status = 422, description = "wider than requested", body = ErrorBody)))]
async fn approve_tool(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: Result<Json<ApproveBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Admin)?;
    let b = json_body(body)?;
    let hosts = b
        .network_allow
        .map(|hs| {
            hs.iter()
                .map(|h| {
                    h.parse::<HostPattern>()
                        .map_err(|e| ApiError::bad_request("invalid_input", e.to_string()))
                })
                .collect::<ApiResult<Vec<_>>>()
        })
        .transpose()?;
    let expires_at = b
        .expires_at
        .map(|t| {
            slovo_core::time::parse_rfc3339(&t)
                .map_err(|e| ApiError::bad_request("invalid_input", format!("expires_at: {t:?}: {e}")))
        })
        .transpose()?;
    let narrowing = Narrowing {
        no_network: b.no_network,
        network_allow: hosts,
        storage_quota_mb: b.storage_quota_mb,
        cpu_limit_percent: b.cpu_limit_percent,
        memory_limit_mb: b.memory_limit_mb,
        timeout_s: b.timeout_s,
        pids_limit: b.pids_limit,
        expires_at,
    };
    state.runtime.approve(&name, &narrowing, &caller.actor()).await?;
    to_value(&state.runtime.show(&name).await?)
}

/// Stop serving calls (admin).
#[utoipa::path(post, path = "/v1/tools/{name}/disable", params(("name" = String, Path)), responses((status = 200, description = "disabled", body = Value)))]
async fn disable_tool(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Admin)?;
    to_value(&state.runtime.disable(&name, &caller.actor()).await?)
}

/// Resume serving calls (admin).
#[utoipa::path(post, path = "/v1/tools/{name}/enable", params(("name" = String, Path)), responses((status = 200, description = "enabled", body = Value)))]
async fn enable_tool(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Admin)?;
    to_value(&state.runtime.enable(&name, &caller.actor()).await?)
}

/// Prepare the serving version again, e.g. after its image was loaded (admin).
#[utoipa::path(post, path = "/v1/tools/{name}/reinstall", params(("name" = String, Path)), responses((status = 200, description = "installed again", body = Value)))]
async fn reinstall_tool(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Admin)?;
    state.runtime.reinstall(&name, &caller.actor()).await?;
    to_value(&state.runtime.show(&name).await?)
}

/// How to revoke.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    /// Destroy the tool's state too.
    #[serde(default)]
    pub purge_state: bool,
}

/// Withdraw a tool (admin).
#[utoipa::path(post, path = "/v1/tools/{name}/revoke", params(("name" = String, Path)), request_body = RevokeBody,
    responses((status = 200, description = "revoked", body = Value)))]
async fn revoke_tool(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: Option<Json<RevokeBody>>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Admin)?;
    let purge = body.map(|Json(b)| b.purge_state).unwrap_or(false);
    to_value(&state.runtime.revoke(&name, purge, &caller.actor()).await?)
}

/// An OpenAPI document to import: its text, or an http(s) URL to fetch it from.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenApiBody {
    /// The document itself (JSON or YAML).
    #[serde(default)]
    pub document: Option<String>,
    /// Where to fetch it (public addresses only).
    #[serde(default)]
    pub url: Option<String>,
    /// The tool's name (default: from the title).
    #[serde(default)]
    pub name: Option<String>,
    /// Base URL override.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Only operations with these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Only operations under these paths (prefix or `*` glob).
    #[serde(default)]
    pub paths: Vec<String>,
    /// Only these methods.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Most operations in one tool (default 300); a larger API becomes several tools.
    #[serde(default)]
    pub max_operations: Option<usize>,
    /// Refuse on any specification violation or skipped operation.
    #[serde(default)]
    pub strict: bool,
}

/// Turn an OpenAPI document into a proposal waiting for approval (admin).
#[utoipa::path(post, path = "/v1/openapi/import", request_body = OpenApiBody,
    responses((status = 201, description = "the proposal and the import report", body = Value),
              (status = 422, description = "not an importable OpenAPI document", body = ErrorBody)))]
async fn import_openapi(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<OpenApiBody>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Admin)?;
    let b = json_body(body)?;
    let source = match (b.document, b.url) {
        (Some(doc), None) => slovo_runtime::openapi::Source::from_bytes("request body", doc.into_bytes()),
        (None, Some(url)) => state.runtime.fetch_openapi(&url).await?,
        _ => {
            return Err(ApiError::bad_request(
                "invalid_input",
                "give exactly one of `document` and `url`",
            ));
        }
    };
    let options = slovo_runtime::openapi::IngestOptions {
        tool_name: b.name,
        base_url: b.base_url,
        filter: slovo_runtime::openapi::Filter {
            tags: b.tags,
            paths: b.paths,
            methods: b.methods,
        },
        max_operations: b
            .max_operations
            .unwrap_or(slovo_runtime::openapi::DEFAULT_MAX_OPERATIONS),
        strict: b.strict,
        ..slovo_runtime::openapi::IngestOptions::default()
    };
    let result = state
        .runtime
        .import_openapi(&source, &options, None, &caller.actor())
        .await?;
    Ok((StatusCode::CREATED, to_value(&result)?))
}

/// An MCP server to import: a package by name, or a registry `server.json`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServerBody {
    /// `npm:PACKAGE@VERSION` or `pypi:PACKAGE==VERSION` (exact versions).
    #[serde(default)]
    pub source: Option<String>,
    /// A registry `server.json`, instead of `source`.
    #[serde(default)]
    pub server_json: Option<Value>,
    /// The tool's name (default: from the package's).
    #[serde(default)]
    pub name: Option<String>,
    /// Environment variables for the server.
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// Arguments after the server's program.
    #[serde(default)]
    pub args: Vec<String>,
    /// Values of the server's secrets, by secret name (a remote server's secret headers, a
    /// package or image server's secret environment variables): its tools are listed with
    /// them, and they are stored encrypted as the tool's secrets with the proposal. Never
    /// returned.
    #[serde(default)]
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub secrets: SecretValues,
}

/// Secret values in a request body: `Debug` shows their names only.
#[derive(Default, Deserialize)]
#[serde(transparent)]
pub struct SecretValues(std::collections::BTreeMap<String, String>);

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Fetch an MCP server, read its tools in its sandbox, and propose it (admin).
#[utoipa::path(post, path = "/v1/mcp-servers/import", request_body = McpServerBody,
    responses((status = 201, description = "the proposal, the package's integrity and the server's tools", body = Value),
              (status = 422, description = "not an importable MCP server", body = ErrorBody)))]
async fn import_mcp_server(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<McpServerBody>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Admin)?;
    let b = json_body(body)?;
    // Paths on this host are the command line's to name, not a remote client's.
    let by_name = |s: &String| ["npm:", "pypi:", "oci:"].iter().any(|p| s.starts_with(p));
    let source = match (b.source, b.server_json) {
        (Some(s), None) if by_name(&s) => slovo_runtime::McpSource::Named(s),
        (None, Some(server)) => slovo_runtime::McpSource::ServerJson(server),
        _ => {
            return Err(ApiError::bad_request(
                "invalid_input",
                "give exactly one of `source` (npm:PACKAGE@VERSION, pypi:PACKAGE==VERSION or oci:IMAGE@sha256:DIGEST) and `server_json`",
            ));
        }
    };
    let request = slovo_runtime::McpImport {
        source,
        name: b.name,
        env: b.env,
        args: b.args,
        secrets: slovo_core::secrets::Secrets::new(b.secrets.0),
    };
    let report = state.runtime.import_mcp(&request, &caller.actor()).await?;
    Ok((StatusCode::CREATED, to_value(&report)?))
}

/// A secret's value.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretBody {
    /// The value; stored encrypted, never returned.
    pub value: String,
}

/// The names of a tool's secrets, never their values (admin).
#[utoipa::path(get, path = "/v1/tools/{name}/secrets", params(("name" = String, Path)), responses((status = 200, description = "names", body = Value)))]
async fn list_secrets(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Admin)?;
    to_value(&json!({"secrets": state.runtime.secret_names(&name).await?}))
}

/// Store a tool's secret, encrypted (admin). It can never be read back.
#[utoipa::path(put, path = "/v1/tools/{name}/secrets/{secret}", params(("name" = String, Path), ("secret" = String, Path)),
    request_body = SecretBody, responses((status = 204, description = "stored")))]
async fn set_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, secret)): Path<(String, String)>,
    body: Result<Json<SecretBody>, JsonRejection>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin)?;
    let b = json_body(body)?;
    state
        .runtime
        .set_secret(&name, &secret, b.value.into(), &caller.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete a tool's secret (admin).
#[utoipa::path(delete, path = "/v1/tools/{name}/secrets/{secret}", params(("name" = String, Path), ("secret" = String, Path)),
    responses((status = 204, description = "deleted")))]
async fn delete_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, secret)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin)?;
    state
        .runtime
        .delete_secret(&name, &secret, &caller.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One call.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallBody {
    /// The tool.
    pub tool: String,
    /// The capability.
    pub capability: String,
    /// The arguments, validated against the capability's schema.
    #[serde(default = "empty_object")]
    pub arguments: Value,
    /// The assistant's conversation id.
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// The turn id.
    #[serde(default)]
    pub turn_id: Option<String>,
}

fn empty_object() -> Value {
    json!({})
}

/// Call a capability (agent). A tool that fails still answers 200 with the recorded execution;
/// refusals (invalid arguments, tool not active) answer 4xx and record nothing.
#[utoipa::path(post, path = "/v1/calls", request_body = CallBody,
    responses((status = 200, description = "the recorded execution", body = Value),
              (status = 422, description = "arguments violate the schema", body = ErrorBody),
              (status = 503, description = "overloaded; see Retry-After", body = ErrorBody)))]
async fn call(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<CallBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Agent)?;
    let b = json_body(body)?;
    let permit = match state.calls.acquire().await {
        Ok(p) => p,
        Err(e) => {
            state.metrics.calls_rejected.inc();
            return Err(e);
        }
    };
    state.metrics.calls_in_flight.inc();
    let started = Instant::now();
    let result = state
        .runtime
        .call(CallRequest {
            tool: b.tool,
            capability: b.capability,
            arguments: b.arguments,
            conversation_id: b.conversation_id,
            turn_id: b.turn_id,
            actor: caller.actor(),
        })
        .await;
    state.metrics.calls_in_flight.dec();
    drop(permit);
    state
        .metrics
        .call_seconds
        .observe(started.elapsed().as_secs_f64());
    let status = match &result {
        Ok(e) => e.status.as_str().to_string(),
        Err(_) => "refused".to_string(),
    };
    state.metrics.calls.get_or_create(&CallLabels { status }).inc();
    to_value(&result?)
}

/// Filters and paging for executions.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExecutionsQuery {
    /// Only this tool.
    tool: Option<String>,
    /// Only this status.
    status: Option<String>,
    /// At most this many (1 to 1000; default 50).
    limit: Option<i64>,
    /// Only executions older than this execution id (the `next_cursor` of the previous page).
    before: Option<String>,
}

/// Executions, newest first (reader).
#[utoipa::path(get, path = "/v1/executions", params(ExecutionsQuery),
    responses((status = 200, description = "a page of executions and the cursor of the next", body = Value)))]
async fn list_executions(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ExecutionsQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Reader)?;
    let Query(q) = query.map_err(|r| ApiError::bad_request("invalid_query", r.body_text()))?;
    let limit = page_limit(q.limit)?;
    let status = q
        .status
        .map(|s| {
            s.parse::<ExecutionStatus>()
                .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))
        })
        .transpose()?;
    let before = match q.before {
        Some(id) => {
            let e = state.runtime.execution(&id).await?;
            Some(ExecutionCursor {
                started_at: e.started_at,
                id: e.id,
            })
        }
        None => None,
    };
    let rows = state
        .runtime
        .executions(&ExecutionFilter {
            tool: q.tool,
            status,
            before,
            limit,
        })
        .await?;
    let next_cursor = if rows.len() as i64 == limit {
        rows.last().map(|e| e.id.clone())
    } else {
        None
    };
    to_value(&json!({"executions": rows, "next_cursor": next_cursor}))
}

/// One execution (reader).
#[utoipa::path(get, path = "/v1/executions/{id}", params(("id" = String, Path)),
    responses((status = 200, description = "the execution", body = Value), (status = 404, description = "no such execution", body = ErrorBody)))]
async fn show_execution(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Reader)?;
    to_value(&state.runtime.execution(&id).await?)
}

/// Verify the audit chain against its signed checkpoints (reader). 409 `audit_broken` names
/// the first bad event, or what is wrong with the checkpoint log.
#[utoipa::path(get, path = "/v1/audit/verify",
    responses((status = 200, description = "verified", body = Value), (status = 409, description = "the chain is broken", body = ErrorBody)))]
async fn verify_audit(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Role::Reader)?;
    let r = state.runtime.verify_audit().await?;
    to_value(&json!({"ok": true, "events": r.events, "head_hash": r.head_hash,
        "checkpoints": r.checkpoints, "checkpoint_seq": r.checkpoint_seq,
        "unchecked_events": r.unchecked_events}))
}

/// The instances sharing this database, alive, lapsed or stopped (reader).
#[utoipa::path(get, path = "/v1/instances",
    responses((status = 200, description = "the instances", body = Value)))]
async fn list_instances(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Role::Reader)?;
    to_value(&state.runtime.instances().await?)
}

/// A token to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    /// `admin`, `agent` or `reader`.
    pub role: String,
    /// What it is for.
    #[serde(default)]
    pub label: Option<String>,
}

/// Every token, without secrets (admin).
#[utoipa::path(get, path = "/v1/tokens", responses((status = 200, description = "tokens", body = Value)))]
async fn list_tokens(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Role::Admin)?;
    to_value(&json!({"tokens": state.runtime.tokens().await?}))
}

/// Create a token (admin); its secret is in this answer and nowhere else.
#[utoipa::path(post, path = "/v1/tokens", request_body = TokenBody, responses((status = 201, description = "created", body = Value)))]
async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<TokenBody>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Admin)?;
    let b = json_body(body)?;
    let role: Role = b.role.parse().map_err(|e: slovo_core::access::UnknownRole| {
        ApiError::bad_request("invalid_input", e.to_string())
    })?;
    let created = state.runtime.create_token(role, b.label, &caller.actor()).await?;
    Ok((StatusCode::CREATED, to_value(&created)?))
}

/// Revoke a token (admin).
#[utoipa::path(delete, path = "/v1/tokens/{id}", params(("id" = String, Path)), responses((status = 204, description = "revoked")))]
async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin)?;
    state.runtime.revoke_token(&id, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ResolveQuery {
    /// The request, in words.
    q: String,
    /// At most this many candidates (1 to 100, default 5).
    limit: Option<usize>,
}

/// Which capability serves a request (agent): ranked candidates with scores and the arguments
/// the request gives, or a gap, which opens a discovery request (or names the open one).
#[utoipa::path(get, path = "/v1/resolve", params(ResolveQuery),
    responses((status = 200, description = "candidates, gap decision and discovery request", body = Value)))]
async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ResolveQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Agent)?;
    let Query(q) = query.map_err(|r| ApiError::bad_request("invalid_query", r.body_text()))?;
    let limit = q.limit.unwrap_or(slovo_runtime::DEFAULT_RESOLVE_LIMIT);
    if !(1..=100).contains(&limit) || q.q.trim().is_empty() {
        return Err(ApiError::bad_request(
            "invalid_query",
            "q must not be empty and limit must be between 1 and 100",
        ));
    }
    to_value(&state.runtime.resolve(&q.q, limit, &caller.actor()).await?)
}

/// Discovery requests, oldest first (admin).
#[utoipa::path(get, path = "/v1/discovery", responses((status = 200, description = "discovery requests", body = Value)))]
async fn list_discovery(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Role::Admin)?;
    to_value(&json!({"requests": state.runtime.discovery_requests().await?}))
}

/// Reject a discovery request (admin); a proposal still waiting for approval is withdrawn.
#[utoipa::path(post, path = "/v1/discovery/{id}/reject", params(("id" = String, Path)),
    responses((status = 200, description = "rejected", body = Value), (status = 404, description = "no such request", body = ErrorBody)))]
async fn reject_discovery(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Admin)?;
    to_value(&state.runtime.reject_request(&id, &caller.actor()).await?)
}
