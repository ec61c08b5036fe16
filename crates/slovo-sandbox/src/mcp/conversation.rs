//! What an MCP client says, whatever carries it: `initialize` and the check of the revision
//! the server answers with, `tools/list` page by page, and `tools/call` with a progress token.
//! The stdio client (`client.rs`) and the streamable-HTTP one (`remote.rs`) each carry the
//! messages their own way; this is the conversation both hold, written once.

use serde_json::{Value, json};

/// The revision this client asks for.
pub const PROTOCOL_VERSION: &str = "2025-11-25";

/// Revisions a server may answer with: their `tools/call` is the same.
pub const SUPPORTED_PROTOCOL_VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];

/// A JSON-RPC session with a server, over some transport.
pub(crate) trait Rpc {
    /// Why a conversation ended without a result.
    type Error;

    /// The error for a server that broke the protocol in `phase`.
    fn violation(phase: &'static str, reason: String) -> Self::Error;

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

/// `initialize`: the server's answer and the revision agreed, one this client speaks. The
/// caller then sends `notifications/initialized` its own way.
pub(crate) async fn initialize<R: Rpc>(rpc: &mut R) -> Result<(Value, String), R::Error> {
    let phase = "initialize";
    let params = json!({
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "slovo-tools", "version": env!("CARGO_PKG_VERSION")},
    });
    let result = rpc.send_request(phase, "initialize", params).await?;
    let version = result.get("protocolVersion").and_then(Value::as_str);
    let Some(version) = version.filter(|v| SUPPORTED_PROTOCOL_VERSIONS.contains(v)) else {
        return Err(R::violation(
            phase,
            format!(
                "protocol version {version:?} is not one this client speaks ({})",
                SUPPORTED_PROTOCOL_VERSIONS.join(", ")
            ),
        ));
    };
    let version = version.to_string();
    Ok((result, version))
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
        let result = rpc.send_request(phase, "tools/list", params).await?;
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
    rpc.send_request("tools/call", "tools/call", params).await
}
