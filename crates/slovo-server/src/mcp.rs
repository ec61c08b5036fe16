//! The MCP server: every active capability as an MCP tool, over stdio (`slovo mcp`) and over
//! streamable HTTP (`/mcp`, agent token), with the official Rust SDK (`rmcp`).
//!
//! # Brief overview
//! - [`SlovoMcp`] implements [`ServerHandler`] by hand, because the tool list is dynamic:
//!   `tools/list` lists every capability of every active tool ([`names`] gives each a name of at
//!   most 64 characters); `tools/call` goes through [`Runtime::call`], the same call path as the
//!   CLI and the REST API.
//! - [`router`] mounts rmcp's `StreamableHttpService` at `/mcp` behind agent-token
//!   authentication (the REST API's [`Caller`]); [`serve_stdio`] serves one client on stdin and
//!   stdout.
//! - Sessions send `notifications/tools/list_changed` when a tool is approved, upgraded,
//!   disabled, enabled or revoked, whoever did it (this server, the CLI, another instance): the
//!   runtime's change feed ([`Runtime::tool_list_changes`]) tells them.
//!
//! # How results map
//! - A recorded execution with status `success`: text content with the output (a string as
//!   is, anything else as pretty JSON), and `structuredContent` when the output is a JSON
//!   object.
//! - A recorded execution with any other status: `isError: true`, with the status, exit code,
//!   error, stderr and output as text.
//! - A refusal before any sandbox (invalid arguments, tool disabled, revoked or not runnable,
//!   expired grant): `isError: true` with the runtime's message, since the model can correct
//!   these or tell the person. Nothing is recorded, as with the CLI and REST. A name resolves
//!   against the listed tools first and then against every tool, so a call to a tool disabled
//!   since the client listed it gets this answer too.
//! - An unknown tool name: the JSON-RPC error "invalid params" (-32602). Internal failures
//!   (database, file system): "internal error" (-32603), with the cause only in the log.
//!
//! Besides the capabilities, one built-in tool is always listed: [`RESOLVE_TOOL`]
//! (`slovo_resolve`, `{query, limit?}`), which answers like REST `GET /v1/resolve` through
//! [`Runtime::resolve`]: ranked capabilities with scores and filled arguments, or a gap with
//! the discovery request it opened (or found open). Its name contains no `__` and is shorter
//! than 64 characters, so no capability can be named like it (see [`names`]).
//!
//! Every result carries `_meta["slovo/execution_id"]` and `_meta["slovo/status"]` when an
//! execution was recorded. A `tools/call` may carry `_meta.conversation_id` and `_meta.turn_id`
//! (strings); they are recorded on the execution like the CLI's `--conversation` / `--turn`.

pub mod names;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::{Router, extract::State};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, JsonObject,
    ListToolsResult, MetaObject, PaginatedRequestParams, ServerCapabilities, ServerConfig,
    SubscriptionFilter, Tool, ToolAnnotations,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::{Value, json};
use slovo_core::access::Role;
use slovo_core::execution::ExecutionStatus;
use slovo_core::lifecycle::ToolStatus;
use slovo_core::manifest::Capability;
use slovo_runtime::ExecutionView;
use slovo_runtime::{Actor, CallRequest, ErrorKind, Runtime, RuntimeError};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::metrics::CallLabels;
use names::Target;

/// The built-in resolve tool. Capability names always contain `__` or are exactly 64
/// characters long ([`names`]), so this one cannot collide with any of them.
pub const RESOLVE_TOOL: &str = "slovo_resolve";

/// How a session reaches the server, which decides who its calls are recorded as.
#[derive(Clone)]
enum Door {
    /// Local stdio: the person running `slovo mcp`; calls are recorded as `mcp:stdio`.
    Stdio,
    /// Streamable HTTP: each request carries an agent token; calls are recorded as
    /// `mcp:<token id>`, and share the REST API's back-pressure and metrics.
    Http(AppState),
}

/// The MCP handler over one [`Runtime`]. Cheap to clone: one per HTTP session.
#[derive(Clone)]
pub struct SlovoMcp {
    runtime: Arc<Runtime>,
    door: Door,
}

/// One listed capability.
struct Entry {
    name: String,
    target: Target,
    version: String,
    tool_description: String,
    capability: Capability,
}

impl SlovoMcp {
    /// A handler for the local stdio door.
    pub fn stdio(runtime: Arc<Runtime>) -> SlovoMcp {
        SlovoMcp {
            runtime,
            door: Door::Stdio,
        }
    }

    /// Every capability of every active tool, named by [`names::assign`]. With `everything`,
    /// the tools that are not active too (their serving version, else their pending one): a
    /// call to one of those reaches the runtime, whose refusal tells the model why.
    async fn catalogue(&self, everything: bool) -> Result<Vec<Entry>, RuntimeError> {
        let mut found: HashMap<Target, (String, String, Capability)> = HashMap::new();
        for t in self.runtime.store().tools().await? {
            if t.status != ToolStatus::Active && !everything {
                continue;
            }
            let Some(version) = t.active_version.clone().or_else(|| t.pending_version.clone()) else {
                continue;
            };
            let compiled = self.runtime.compiled(&t.name, &version).await?;
            // A chain's hints are derived from its steps (docs/chains.md).
            let chain_hints = self.runtime.chain_hints(&t.name).await?;
            for cap in &compiled.manifest.capabilities {
                let mut cap = cap.clone();
                if let Some(h) = chain_hints {
                    cap.read_only = Some(h.read_only);
                    cap.destructive = Some(h.destructive);
                }
                let target = Target {
                    tool: t.name.clone(),
                    capability: cap.name.clone(),
                };
                let details = (version.clone(), compiled.manifest.description.clone(), cap);
                found.insert(target, details);
            }
        }
        let named = names::assign(found.keys().cloned().collect());
        Ok(named
            .into_iter()
            .filter_map(|(name, target)| {
                let (version, tool_description, capability) = found.remove(&target)?;
                Some(Entry {
                    name,
                    target,
                    version,
                    tool_description,
                    capability,
                })
            })
            .collect())
    }

    /// Who a call is recorded as.
    fn actor(&self, context: &RequestContext<RoleServer>) -> Result<Actor, ErrorData> {
        match &self.door {
            Door::Stdio => Ok(Actor("mcp:stdio".into())),
            Door::Http(_) => context
                .extensions
                .get::<Parts>()
                .and_then(|p| p.extensions.get::<Caller>())
                .map(|c| Actor(format!("mcp:{}", c.token_id)))
                // The middleware authenticates every request; reaching here without a caller
                // is a wiring bug, never a reason to record a call anonymously.
                .ok_or_else(|| ErrorData::internal_error("unauthenticated MCP request", None)),
        }
    }

    /// Runs the call, with the REST API's back-pressure and metrics on the HTTP door.
    async fn run(&self, req: CallRequest) -> Result<Result<ExecutionView, RuntimeError>, ApiError> {
        let Door::Http(state) = &self.door else {
            return Ok(self.runtime.call(req).await);
        };
        let permit = match state.calls.acquire().await {
            Ok(p) => p,
            Err(e) => {
                state.metrics.calls_rejected.inc();
                return Err(e);
            }
        };
        state.metrics.calls_in_flight.inc();
        let started = Instant::now();
        let result = self.runtime.call(req).await;
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
        Ok(result)
    }

    /// [`RESOLVE_TOOL`]: [`Runtime::resolve`], as REST `GET /v1/resolve` does, answered as
    /// structured content and as text (the same JSON). Invalid arguments are an `isError`
    /// result, like a capability's.
    async fn resolve(&self, args: JsonObject, actor: &Actor) -> Result<CallToolResponse, ErrorData> {
        let (query, limit) = match resolve_arguments(&args) {
            Ok(a) => a,
            Err(why) => return Ok(CallToolResult::error(vec![ContentBlock::text(why)]).into()),
        };
        let outcome = match self.runtime.resolve(&query, limit, actor).await {
            Ok(o) => o,
            Err(err) => {
                return match err.kind() {
                    ErrorKind::AuditBroken | ErrorKind::Internal => Err(internal(err)),
                    // Refusals the model can act on (none expected today: resolve reads and
                    // opens requests only).
                    _ => Ok(CallToolResult::error(vec![ContentBlock::text(err.to_string())]).into()),
                };
            }
        };
        let value = serde_json::to_value(&outcome).map_err(|e| {
            tracing::error!(error = %e, "serialising a resolve outcome failed");
            ErrorData::internal_error("something went wrong; the server log has the details", None)
        })?;
        let mut result = CallToolResult::success(vec![ContentBlock::text(text_of(&value))]);
        result.structured_content = Some(value);
        Ok(result.into())
    }

    /// Sends `notifications/tools/list_changed` to a legacy (initialize-based) session
    /// whenever the list of active tools changes, until the session's transport closes.
    async fn notify_session(runtime: Arc<Runtime>, peer: rmcp::Peer<RoleServer>) {
        let mut rx = runtime.tool_list_changes().await;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if let Err(e) = peer.notify_tool_list_changed().await {
                        tracing::debug!(error = %e, "MCP session gone; stop sending tools/list_changed");
                        return;
                    }
                }
                _ = tick.tick() => {
                    if peer.is_transport_closed() {
                        return;
                    }
                }
            }
        }
    }
}

/// The MCP tool for one entry.
fn tool_of(e: &Entry) -> Tool {
    let cap = &e.capability;
    let schema: JsonObject = match &cap.parameters {
        Value::Object(o) => o.clone(),
        _ => serde_json::Map::from_iter([("type".to_string(), json!("object"))]),
    };
    let description = if cap.description.trim().is_empty() {
        e.tool_description.clone()
    } else if e.tool_description.trim().is_empty() {
        cap.description.clone()
    } else {
        format!(
            "{}\n\nPart of the tool {} {}: {}",
            cap.description, e.target.tool, e.version, e.tool_description
        )
    };
    let title = format!("{} ({})", cap.name, e.target.tool);
    let method = cap.method.as_deref().map(str::to_ascii_uppercase);
    let read_only = cap
        .read_only
        .or_else(|| matches!(method.as_deref(), Some("GET" | "HEAD")).then_some(true));
    let destructive = cap
        .destructive
        .or_else(|| matches!(method.as_deref(), Some("DELETE")).then_some(true));
    let mut annotations = ToolAnnotations::with_title(title.clone());
    annotations.read_only_hint = read_only;
    annotations.destructive_hint = destructive;
    Tool::new(e.name.clone(), description, schema)
        .with_title(title)
        .with_annotations(annotations)
}

/// The built-in [`RESOLVE_TOOL`].
fn resolve_tool() -> Tool {
    let schema = json!({
        "type": "object",
        "properties": {
            "query": {
                "type": "string",
                "minLength": 1,
                "description": "The request, in words (\"what's the air quality in Lyon\")."
            },
            "limit": {
                "type": "integer",
                "minimum": 1,
                "maximum": 100,
                "default": slovo_runtime::DEFAULT_RESOLVE_LIMIT,
                "description": "At most this many candidates."
            }
        },
        "required": ["query"],
        "additionalProperties": false
    });
    let schema = schema.as_object().cloned().unwrap_or_default();
    let title = "Find the capability for a request (Slovo)".to_string();
    let mut annotations = ToolAnnotations::with_title(title.clone());
    // A gap opens a discovery request (a write), but asking again reuses it.
    annotations.read_only_hint = Some(false);
    annotations.destructive_hint = Some(false);
    annotations.idempotent_hint = Some(true);
    annotations.open_world_hint = Some(false);
    Tool::new(
        RESOLVE_TOOL,
        "Ranks the capabilities of installed and proposed tools for a request in words, with \
         scores and the arguments the request already gives; or reports a gap (no candidate is \
         good enough) and opens a discovery request for a person to review, reusing an \
         equivalent open one. A candidate with status pending_approval is not callable yet. \
         The answer is the same JSON as GET /v1/resolve.",
        schema,
    )
    .with_title(title)
    .with_annotations(annotations)
}

/// Reads `{query, limit?}` for [`RESOLVE_TOOL`], with REST's rules (a non-empty query, a limit
/// from 1 to 100).
fn resolve_arguments(args: &JsonObject) -> Result<(String, usize), String> {
    if let Some(extra) = args.keys().find(|k| !matches!(k.as_str(), "query" | "limit")) {
        return Err(format!(
            "invalid arguments: unknown argument {extra:?} (query, limit)"
        ));
    }
    let query = match args.get("query") {
        Some(Value::String(q)) if !q.trim().is_empty() => q.clone(),
        _ => return Err("invalid arguments: query must be a non-empty string".into()),
    };
    let limit = match args.get("limit") {
        None | Some(Value::Null) => slovo_runtime::DEFAULT_RESOLVE_LIMIT,
        Some(v) => match v.as_u64() {
            Some(n @ 1..=100) => n as usize,
            _ => return Err("invalid arguments: limit must be an integer from 1 to 100".into()),
        },
    };
    Ok((query, limit))
}

/// Text for a value: a string as is, anything else as pretty JSON.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_else(|_| other.to_string()),
    }
}

/// The MCP result of a recorded execution.
fn result_of(e: &ExecutionView) -> CallToolResult {
    let mut result = if e.status == ExecutionStatus::Success {
        let text = e.output.as_ref().map(text_of).unwrap_or_default();
        let mut r = CallToolResult::success(vec![ContentBlock::text(text)]);
        if let Some(Value::Object(_)) = &e.output {
            r.structured_content = e.output.clone();
        }
        r
    } else {
        let mut text = format!("the call did not succeed: status {}", e.status.as_str());
        if let Some(code) = e.exit_code {
            text.push_str(&format!(", exit code {code}"));
        }
        if let Some(err) = &e.error {
            text.push_str(&format!("\nerror: {err}"));
        }
        if let Some(stderr) = e.stderr.as_deref().filter(|s| !s.trim().is_empty()) {
            text.push_str(&format!("\nstderr:\n{stderr}"));
        }
        if let Some(out) = &e.output {
            text.push_str(&format!("\noutput:\n{}", text_of(out)));
        }
        CallToolResult::error(vec![ContentBlock::text(text)])
    };
    result.meta = Some(MetaObject::from(serde_json::Map::from_iter([
        ("slovo/execution_id".to_string(), json!(e.id)),
        ("slovo/status".to_string(), json!(e.status.as_str())),
    ])));
    result
}

/// A string from the request's `_meta`.
fn meta_string(meta: &serde_json::Map<String, Value>, key: &str) -> Option<String> {
    match meta.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl ServerHandler for SlovoMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_server_info(Implementation::new("slovo", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "Tools a person approved in Slovo Tools. Every call runs sandboxed and is recorded. \
             A call that fails, or whose arguments do not fit the tool's schema, returns isError \
             with the reason.",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let entries = self.catalogue(false).await.map_err(internal)?;
        let mut tools = vec![resolve_tool()];
        tools.extend(entries.iter().map(tool_of));
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let actor = self.actor(&context)?;
        if request.name == RESOLVE_TOOL {
            return self.resolve(request.arguments.unwrap_or_default(), &actor).await;
        }
        // Listed names first; then names of tools that stopped being active since the client
        // listed them, so the runtime's refusal reaches the model as an isError result.
        let mut entry = None;
        for everything in [false, true] {
            let entries = self.catalogue(everything).await.map_err(internal)?;
            entry = entries.into_iter().find(|e| e.name == request.name);
            if entry.is_some() {
                break;
            }
        }
        let Some(entry) = entry else {
            return Err(ErrorData::invalid_params(
                format!(
                    "unknown tool {:?}; tools/list has the tools available now",
                    request.name
                ),
                None,
            ));
        };
        // rmcp moves a request's `_meta` into the context; fall back to the params all the same.
        let meta: &serde_json::Map<String, Value> = match &request.meta {
            Some(m) if context.meta.is_empty() => m,
            _ => &context.meta,
        };
        let (conversation_id, turn_id) = (meta_string(meta, "conversation_id"), meta_string(meta, "turn_id"));
        let req = CallRequest {
            tool: entry.target.tool,
            capability: entry.target.capability,
            arguments: Value::Object(request.arguments.unwrap_or_default()),
            conversation_id,
            turn_id,
            actor,
        };
        let outcome = match self.run(req).await {
            Ok(o) => o,
            Err(overloaded) => {
                return Ok(CallToolResult::error(vec![ContentBlock::text(overloaded.message)]).into());
            }
        };
        match outcome {
            Ok(execution) => Ok(result_of(&execution).into()),
            Err(err) => match err.kind() {
                ErrorKind::InvalidInput
                | ErrorKind::NotFound
                | ErrorKind::InvalidState
                | ErrorKind::Unavailable => {
                    Ok(CallToolResult::error(vec![ContentBlock::text(err.to_string())]).into())
                }
                ErrorKind::AuditBroken | ErrorKind::Internal => Err(internal(err)),
            },
        }
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        tokio::spawn(Self::notify_session(self.runtime.clone(), context.peer));
    }

    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        Some(requested.supported_by(&self.get_info().capabilities))
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        if context.accepted().tools_list_changed != Some(true) {
            context.cancelled().await;
            return Ok(());
        }
        let mut rx = self.runtime.tool_list_changes().await;
        loop {
            tokio::select! {
                _ = context.cancelled() => return Ok(()),
                changed = rx.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    if let Err(e) = context.sink().notify_tool_list_changed().await {
                        tracing::debug!(error = %e, "MCP subscription gone; stop sending tools/list_changed");
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// An internal error: logged with its cause, answered without it.
fn internal(err: RuntimeError) -> ErrorData {
    tracing::error!(error = %err, "MCP request failed");
    ErrorData::internal_error("something went wrong; the server log has the details", None)
}

/// `/mcp`: rmcp's streamable HTTP service behind agent-token authentication. Calls share the
/// REST API's back-pressure and metrics; long-lived streams end when `state.shutdown` is
/// cancelled.
pub fn router(state: AppState) -> Router {
    let handler = SlovoMcp {
        runtime: state.runtime.clone(),
        door: Door::Http(state.clone()),
    };
    let config = StreamableHttpServerConfig::default()
        .with_max_request_body_bytes(state.config.max_body_bytes)
        .with_cancellation_token(state.shutdown.child_token());
    let service = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    Router::new()
        .route_service("/mcp", service)
        .layer(middleware::from_fn_with_state(state, require_agent))
}

/// 401 without a valid token, 403 unless the token's role includes agent; the caller rides
/// along in the request's extensions so calls are recorded as `mcp:<token id>`.
async fn require_agent(
    State(_state): State<AppState>,
    caller: Caller,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    caller.require(Role::Agent)?;
    req.extensions_mut().insert(caller);
    Ok(next.run(req).await)
}

/// Serves one MCP client on stdin and stdout until it disconnects or `shutdown` completes;
/// then records the calls it cut short as `cancelled`.
pub async fn serve_stdio(
    runtime: Arc<Runtime>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let checkpoint_timer = runtime.spawn_audit_checkpoint_timer();
    let handler = SlovoMcp::stdio(runtime.clone());
    let running = handler
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| std::io::Error::other(format!("MCP initialization failed: {e}")))?;
    let cancel = running.cancellation_token();
    let quit = tokio::select! {
        r = running.waiting() => r,
        _ = shutdown => {
            cancel.cancel();
            Ok(rmcp::service::QuitReason::Cancelled)
        }
    };
    if let Err(e) = quit {
        tracing::error!(error = %e, "MCP stdio service ended abnormally");
    }
    match runtime
        .abandon_inflight(
            ExecutionStatus::Cancelled,
            "the MCP client disconnected during the call",
        )
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::warn!(count = n, "recorded calls cut short as cancelled"),
        Err(e) => tracing::error!(error = %e, "failed to record cancelled calls"),
    }
    checkpoint_timer.abort();
    if let Err(e) = runtime.flush_audit_checkpoints().await {
        tracing::error!(error = %e, "failed to write the audit checkpoint at the end of the session");
    }
    Ok(())
}
