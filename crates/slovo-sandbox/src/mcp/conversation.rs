//! What an MCP client says, whatever carries it: the opening (`initialize`, or for a server of
//! the stateless revision `server/discover`) and the check of the revision agreed,
//! `tools/list` page by page, and `tools/call` with a progress token. The stdio client
//! (`client.rs`) and the streamable-HTTP one (`remote.rs`) each carry the messages their own
//! way; this is the conversation both hold, written once.
//!
//! Negotiation: `initialize` asking for 2025-11-25, which every reference server speaks. A
//! server that refuses it with the unsupported-version error (`-32022`; `-32004` in drafts of the
//! revision) naming the stateless
//! 2026-07-28 revision among the versions it speaks is spoken to in that revision instead:
//! no handshake, `server/discover` to learn the server, and the client's context
//! (`io.modelcontextprotocol/protocolVersion`, `…/clientInfo`, `…/clientCapabilities`) in the
//! `_meta` of every request — as the `rmcp` SDK behind Slovo's own MCP endpoint has it.

use serde_json::{Map, Value, json};

/// The revision this client asks for.
pub const PROTOCOL_VERSION: &str = "2025-11-25";

/// Revisions with the `initialize` handshake a server may answer with: their `tools/call` is
/// the same.
pub const SUPPORTED_PROTOCOL_VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];

/// The stateless revision, spoken with a server that refuses the handshake and names it.
pub const STATELESS_PROTOCOL_VERSION: &str = "2026-07-28";

/// The JSON-RPC error code of a server that does not speak the requested protocol version
/// (its `data.supported` lists those it does), as the 2026-07-28 revision numbers it; servers
/// of that revision answer `initialize` with it.
const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// The same error as drafts of the revision numbered it, which some servers still send.
const UNSUPPORTED_PROTOCOL_VERSION_DRAFT: i64 = -32004;

/// Whether a JSON-RPC error `code` is the unsupported-version error.
pub(crate) fn is_unsupported_version(code: i64) -> bool {
    code == UNSUPPORTED_PROTOCOL_VERSION || code == UNSUPPORTED_PROTOCOL_VERSION_DRAFT
}

/// The `_meta` keys of the client's context on every request of the stateless revision.
const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";

/// The `_meta` key of a `server/discover` result that names the server.
const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// A JSON-RPC session with a server, over some transport.
pub(crate) trait Rpc {
    /// Why a conversation ended without a result.
    type Error;

    /// The error for a server that broke the protocol in `phase`.
    fn violation(phase: &'static str, reason: String) -> Self::Error;

    /// The versions the server said it speaks, if `error` is its refusal of the version
    /// asked for (the unsupported-version error); `None` for any other error.
    fn versions_offered(error: &Self::Error) -> Option<&[String]>;

    /// Whether the revision agreed is the stateless one: every request then carries the
    /// client's context in its `_meta`.
    fn stateless(&self) -> bool;

    /// The server refused the handshake and speaks the stateless revision: from the
    /// `server/discover` on, every message is sent the way that revision wants it (over HTTP:
    /// no session, the revision's headers).
    fn enter_stateless(&mut self);

    /// The id the next request will carry (the progress token of a call names it).
    fn next_request_id(&self) -> i64;

    /// Sends one request and waits for its response's `result`.
    async fn send_request(
        &mut self,
        phase: &'static str,
        method: &str,
        params: Value,
    ) -> Result<Value, Self::Error>;
}

/// What the opening of a conversation agreed.
pub(crate) struct Opened {
    /// The server's facts as an `initialize` result holds them (`protocolVersion`,
    /// `capabilities`, `serverInfo`), however they were learned.
    pub server: Value,
    /// Whether the revision agreed is the stateless 2026-07-28: no
    /// `notifications/initialized` follows, and every request carries the client's context.
    pub stateless: bool,
}

/// Opens the conversation: `initialize`, or `server/discover` with a server that speaks only
/// the stateless revision. With `initialize` agreed, the caller then sends
/// `notifications/initialized` its own way.
pub(crate) async fn open<R: Rpc>(rpc: &mut R) -> Result<Opened, R::Error> {
    match initialize(rpc).await {
        Ok(server) => Ok(Opened {
            server,
            stateless: false,
        }),
        Err(refused) => {
            let speaks_stateless = R::versions_offered(&refused)
                .is_some_and(|offered| offered.iter().any(|v| v == STATELESS_PROTOCOL_VERSION));
            if !speaks_stateless {
                return Err(refused);
            }
            rpc.enter_stateless();
            let server = discover(rpc).await?;
            Ok(Opened {
                server,
                stateless: true,
            })
        }
    }
}

/// The versions an unsupported-version error (`error`, a JSON-RPC error object) lists in its
/// `data.supported`.
pub(crate) fn versions_listed(error: &Value) -> Vec<String> {
    error
        .pointer("/data/supported")
        .and_then(Value::as_array)
        .map(|versions| {
            versions
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a request of `method` is one the client may cancel when it gives up waiting: every
/// one but `initialize`, which the handshake revisions forbid cancelling.
pub(crate) fn cancellable(method: &str) -> bool {
    method != "initialize"
}

/// `initialize`: the server's answer, with a revision this client speaks.
async fn initialize<R: Rpc>(rpc: &mut R) -> Result<Value, R::Error> {
    let phase = "initialize";
    let params = json!({
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": client_info(),
    });
    let result = rpc.send_request(phase, "initialize", params).await?;
    let version = result.get("protocolVersion").and_then(Value::as_str);
    if version.is_none_or(|v| !SUPPORTED_PROTOCOL_VERSIONS.contains(&v)) {
        return Err(R::violation(
            phase,
            format!(
                "protocol version {version:?} is not one this client speaks ({})",
                SUPPORTED_PROTOCOL_VERSIONS.join(", ")
            ),
        ));
    }
    Ok(result)
}

/// `server/discover`, the stateless revision's opening: the server must list that revision
/// among its `supportedVersions`. Its facts are returned in the shape of an `initialize`
/// result, so that the install facts read the same whichever way they were learned.
async fn discover<R: Rpc>(rpc: &mut R) -> Result<Value, R::Error> {
    let phase = "server/discover";
    let params = json!({"_meta": Value::Object(client_context())});
    let result = rpc.send_request(phase, "server/discover", params).await?;
    let versions = result.get("supportedVersions").and_then(Value::as_array);
    if !versions.is_some_and(|vs| vs.iter().any(|v| v == STATELESS_PROTOCOL_VERSION)) {
        return Err(R::violation(
            phase,
            format!(
                "its `supportedVersions` ({}) do not include {STATELESS_PROTOCOL_VERSION}, which it named when it refused `initialize`",
                result.get("supportedVersions").unwrap_or(&Value::Null)
            ),
        ));
    }
    let server_info = result.get("_meta").and_then(|m| m.get(META_SERVER_INFO));
    Ok(json!({
        "protocolVersion": STATELESS_PROTOCOL_VERSION,
        "capabilities": result.get("capabilities").cloned().unwrap_or_else(|| json!({})),
        "serverInfo": server_info.cloned().unwrap_or(Value::Null),
    }))
}

/// `tools/list`, every page. A server that pages forever meets the transport's byte budget or
/// the call's deadline.
pub(crate) async fn list_tools<R: Rpc>(rpc: &mut R) -> Result<Vec<Value>, R::Error> {
    let phase = "tools/list";
    let mut tools = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let result = request(rpc, phase, "tools/list", params).await?;
        let Some(page) = result.get("tools").and_then(Value::as_array) else {
            return Err(R::violation(phase, "no `tools` array".into()));
        };
        tools.extend(page.iter().cloned());
        match result.get("nextCursor").and_then(Value::as_str) {
            Some(c) if !c.is_empty() => cursor = Some(c.to_string()),
            _ => return Ok(tools),
        }
    }
}

/// `tools/call`, asking for progress notifications (the transport notes them on the way).
pub(crate) async fn call_tool<R: Rpc>(rpc: &mut R, name: &str, arguments: &Value) -> Result<Value, R::Error> {
    let token = format!("slovo-{}", rpc.next_request_id());
    let params = json!({"name": name, "arguments": arguments, "_meta": {"progressToken": token}});
    request(rpc, "tools/call", "tools/call", params).await
}

/// A request after the opening: in the stateless revision its `_meta` carries the client's
/// context besides what it holds already.
async fn request<R: Rpc>(
    rpc: &mut R,
    phase: &'static str,
    method: &str,
    mut params: Value,
) -> Result<Value, R::Error> {
    if rpc.stateless()
        && let Some(params) = params.as_object_mut()
    {
        let meta = params.entry("_meta").or_insert_with(|| Value::Object(Map::new()));
        if let Some(meta) = meta.as_object_mut() {
            meta.extend(client_context());
        }
    }
    rpc.send_request(phase, method, params).await
}

/// Who this client is, as `initialize` and the stateless `_meta` name it.
fn client_info() -> Value {
    json!({"name": "slovo-tools", "version": env!("CARGO_PKG_VERSION")})
}

/// The client's context a request of the stateless revision carries in its `_meta`: the
/// revision, the client and its capabilities (none: it offers no sampling, roots or
/// elicitation).
fn client_context() -> Map<String, Value> {
    let mut context = Map::new();
    context.insert(META_PROTOCOL_VERSION.into(), json!(STATELESS_PROTOCOL_VERSION));
    context.insert(META_CLIENT_INFO.into(), client_info());
    context.insert(META_CLIENT_CAPABILITIES.into(), json!({}));
    context
}
