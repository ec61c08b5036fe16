//! The streamable-http transport: an MCP server at a remote endpoint, reached like an HTTP
//! tool's API.
//!
//! Every message is a POST to the endpoint (`Accept: application/json, text/event-stream`);
//! the answer to a request comes as one JSON body or as a stream of server-sent events that
//! may carry notifications and requests of the server before it. The server's
//! `MCP-Session-Id` (from the `initialize` answer) and the negotiated `MCP-Protocol-Version`
//! go on every later request, and the session is ended with a DELETE.
//!
//! A server that refuses `initialize` naming the stateless 2026-07-28 revision among the
//! versions it speaks is spoken to in that revision (`conversation.rs`): no session at all
//! (no `MCP-Session-Id`, no `notifications/initialized`, no DELETE), `MCP-Protocol-Version:
//! 2026-07-28` and the revision's standard headers (`standard_headers.rs`) on every POST, and
//! the client's context in the `_meta` of every request. Such a server refuses a request with
//! its JSON-RPC error and a 4xx status; that error is read like any other.
//!
//! A call whose deadline passes while a request waits is cancelled as its revision says: in a
//! handshake session a `notifications/cancelled` naming the request is POSTed, then the
//! session is ended; in the stateless revision closing the request's response stream is the
//! cancellation (dropping the request does it) and nothing is sent. Both within
//! [`CANCEL_GRACE`].
//!
//! The network rules are the HTTP backend's, on every request and every redirect: the grant
//! must allow the host and port, every address must be public by the configured policy
//! (unless the configuration allows every address), redirects are followed by hand and never
//! from https to http, and the secret headers stay with the endpoint's origin. Everything the
//! server sends in one call counts against one byte budget.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use slovo_core::execution::{ExecutionStatus, NetworkPolicy};
use tokio::time::Instant;

use super::conversation::{self, Rpc, STATELESS_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS};
use super::standard_headers;
use crate::http::{AddressRule, HttpConfig, Outgoing, check_target, follow, header_pair};
use crate::process::Verdict;

/// The response header that names the session.
const SESSION_HEADER: &str = "mcp-session-id";

/// The request header that names the negotiated revision.
const VERSION_HEADER: &str = "mcp-protocol-version";

/// Lines of protocol notes (progress, logs, declined requests) kept on the record at most.
const MAX_NOTES: usize = 64;

/// How long telling a server about a timed-out call (`notifications/cancelled`) and ending its
/// session (DELETE) may take together: a timed-out call ends at most this much later. Long
/// enough for a server on the same network to answer twice, short against any call's timeout.
pub(crate) const CANCEL_GRACE: Duration = Duration::from_millis(250);

/// Why a conversation with a remote server ended without a result.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RemoteError {
    /// The request was not sent: the grant, the address rule or the headers refuse it.
    #[error("refused: {0}")]
    Refused(String),
    /// Sending or reading failed (connection, redirect refused, timeout of the client).
    #[error("the MCP server could not be reached during {phase}: {reason}")]
    Transport { phase: &'static str, reason: String },
    /// The server answered with an HTTP error status.
    #[error("the MCP server answered {phase} with HTTP {status}: {body}")]
    Status {
        phase: &'static str,
        status: u16,
        body: String,
    },
    /// The server sent more than the response limit.
    #[error("the MCP server sent more than {limit} bytes during {phase}")]
    Overflow { phase: &'static str, limit: usize },
    /// The server does not speak the protocol version asked for, nor one this client could
    /// fall back to.
    #[error(
        "the MCP server refused {phase}: the server speaks only the protocol versions {supported:?}; this client speaks {}, {STATELESS_PROTOCOL_VERSION}",
        SUPPORTED_PROTOCOL_VERSIONS.join(", ")
    )]
    UnsupportedVersion {
        phase: &'static str,
        supported: Vec<String>,
    },
    /// The server answered with a JSON-RPC error.
    #[error("the MCP server refused {phase}: {message} (code {code})")]
    Rpc {
        phase: &'static str,
        code: i64,
        message: String,
    },
    /// The server's answer breaks the protocol.
    #[error("the MCP server's answer to {phase} is not valid: {reason}")]
    Protocol { phase: &'static str, reason: String },
}

impl RemoteError {
    /// The call's verdict for a conversation that ended this way.
    pub fn verdict(&self) -> Verdict {
        let status = match self {
            RemoteError::Overflow { .. } => ExecutionStatus::Killed,
            _ => ExecutionStatus::Failure,
        };
        Verdict {
            status,
            output: None,
            error: Some(self.to_string()),
        }
    }
}

/// What a remote session is allowed to reach and send.
pub(crate) struct Endpoint<'a> {
    /// The server's URL.
    pub url: &'a str,
    /// The grant's network policy.
    pub network: &'a NetworkPolicy,
    /// Headers sent with every request.
    pub headers: &'a BTreeMap<String, String>,
    /// Header → value of the secret headers (already looked up).
    pub credentials: Vec<(String, String)>,
    /// The overall timeout of the client's requests.
    pub timeout: std::time::Duration,
}

/// One session with a remote server.
pub(crate) struct RemoteSession {
    client: reqwest::Client,
    url: reqwest::Url,
    network: NetworkPolicy,
    rule: AddressRule,
    max_redirects: usize,
    headers: HeaderMap,
    credentials: HeaderMap,
    session_id: Option<HeaderValue>,
    protocol_version: Option<HeaderValue>,
    /// Whether the stateless 2026-07-28 revision is spoken: no session, its headers.
    stateless: bool,
    next_id: i64,
    /// The request waiting for its answer, if it is one the client may cancel: when the call's
    /// deadline drops the conversation, this is the request to cancel.
    in_flight: Option<i64>,
    /// The tools the server listed in this session (the called tool's `inputSchema` says
    /// which arguments go in headers too, in the stateless revision).
    listed: Vec<Value>,
    /// Bytes the server may still send in this call.
    budget: usize,
    limit: usize,
    /// Progress, log messages and declined requests, for the record.
    pub notes: Vec<String>,
    /// The server's `initialize` result.
    pub server: Option<Value>,
}

impl Rpc for RemoteSession {
    type Error = RemoteError;

    fn violation(phase: &'static str, reason: String) -> RemoteError {
        RemoteError::Protocol { phase, reason }
    }

    fn versions_offered(error: &RemoteError) -> Option<&[String]> {
        match error {
            RemoteError::UnsupportedVersion { supported, .. } => Some(supported),
            _ => None,
        }
    }

    fn stateless(&self) -> bool {
        self.stateless
    }

    /// No session from now on (a refused `initialize` may have opened one on the server's
    /// side; its id is not sent again), and the revision named on every POST.
    fn enter_stateless(&mut self) {
        self.stateless = true;
        self.session_id = None;
        self.protocol_version = Some(HeaderValue::from_static(STATELESS_PROTOCOL_VERSION));
    }

    fn next_request_id(&self) -> i64 {
        self.next_id
    }

    async fn send_request(
        &mut self,
        phase: &'static str,
        method: &str,
        params: Value,
    ) -> Result<Value, RemoteError> {
        let id = self.next_id;
        self.next_id += 1;
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        // Cleared once answered: if the call's deadline drops this future first, it stays.
        self.in_flight = conversation::cancellable(method).then_some(id);
        let answer = self.post(phase, &message, Some(id)).await;
        self.in_flight = None;
        let answer = answer?.ok_or_else(|| RemoteError::Protocol {
            phase,
            reason: "no response to the request".into(),
        })?;
        if let Some(error) = answer.get("error") {
            return Err(rpc_error(phase, error));
        }
        match answer.get("result") {
            Some(r) if r.is_object() => Ok(r.clone()),
            _ => Err(RemoteError::Protocol {
                phase,
                reason: "a response without an object `result`".into(),
            }),
        }
    }
}

impl RemoteSession {
    /// A session with `endpoint` under `config`'s address policy; checks the endpoint against
    /// the grant and the address rule before anything is sent.
    pub fn open(endpoint: Endpoint<'_>, config: &HttpConfig) -> Result<RemoteSession, RemoteError> {
        crate::http::ensure_tls_provider();
        let url = reqwest::Url::parse(endpoint.url)
            .map_err(|e| RemoteError::Refused(format!("{} is not a URL: {e}", endpoint.url)))?;
        let rule = config.rule();
        check_target(&url, endpoint.network, &rule)
            .map_err(|refusal| RemoteError::Refused(refusal.to_string()))?;
        let mut headers = HeaderMap::new();
        for (name, value) in endpoint.headers {
            let (name, value) = header_pair(name, value).map_err(RemoteError::Refused)?;
            headers.append(name, value);
        }
        let mut credentials = HeaderMap::new();
        for (name, value) in &endpoint.credentials {
            let (name, value) = header_pair(name, value).map_err(RemoteError::Refused)?;
            credentials.append(name, value);
        }
        let client = crate::http::client(rule.clone(), endpoint.timeout, &config.extra_roots)
            .map_err(|e| RemoteError::Refused(e.to_string()))?;
        Ok(RemoteSession {
            client,
            url,
            network: endpoint.network.clone(),
            rule,
            max_redirects: config.max_redirects,
            headers,
            credentials,
            session_id: None,
            protocol_version: None,
            stateless: false,
            next_id: 1,
            in_flight: None,
            listed: Vec::new(),
            budget: config.max_response_bytes,
            limit: config.max_response_bytes,
            notes: Vec::new(),
            server: None,
        })
    }

    /// `initialize` and `notifications/initialized`, keeping the session id and the revision;
    /// with a server of the stateless revision, `server/discover` alone.
    pub async fn initialize(&mut self) -> Result<(), RemoteError> {
        let opened = conversation::open(self).await?;
        let version = opened.server.get("protocolVersion").and_then(Value::as_str);
        self.protocol_version = version.and_then(|v| HeaderValue::from_str(v).ok());
        self.server = Some(opened.server);
        if opened.stateless {
            return Ok(());
        }
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized", "params": {}});
        self.post("notifications/initialized", &note, None)
            .await
            .map(|_| ())
    }

    /// `tools/list`, every page.
    pub async fn list_tools(&mut self) -> Result<Vec<Value>, RemoteError> {
        let tools = conversation::list_tools(self).await?;
        self.listed = tools.clone();
        Ok(tools)
    }

    /// `tools/call`; progress notifications on the way are noted.
    pub async fn call_tool(&mut self, name: &str, arguments: &Value) -> Result<Value, RemoteError> {
        conversation::call_tool(self, name, arguments).await
    }

    /// Ends the session (DELETE with its id), when the server gave one; a server that does
    /// not allow it (405) or does not answer changes nothing for the call.
    pub async fn shutdown(&mut self) {
        let Some(session) = self.session_id.clone() else {
            return;
        };
        let mut headers = self.headers.clone();
        headers.insert(HeaderName::from_static(SESSION_HEADER), session);
        let request = Outgoing {
            method: reqwest::Method::DELETE,
            url: self.url.clone(),
            headers,
            credentials: self.credentials.clone(),
            body: None,
        };
        if let Err(e) = follow(
            &self.client,
            request,
            &self.network,
            &self.rule,
            self.max_redirects,
        )
        .await
        {
            self.note(format!("ending the session failed: {e}"));
        }
    }

    /// The call's deadline passed and the conversation was dropped with its HTTP request:
    /// the request waiting for its answer is cancelled as the revision says, and the session
    /// ended, all within [`CANCEL_GRACE`]. What happened is noted for the record.
    pub async fn abandon(&mut self) {
        let until = Instant::now() + CANCEL_GRACE;
        if let Some(id) = self.in_flight.take() {
            if self.stateless {
                // The revision's cancellation is the closed response stream; it expects no
                // notification.
                self.note(format!(
                    "closed the response stream of request {id} (the stateless revision's cancellation)"
                ));
            } else {
                self.cancel(id, until).await;
            }
        }
        if tokio::time::timeout_at(until, self.shutdown()).await.is_err() {
            self.note(format!(
                "ending the session got no answer within {} ms",
                CANCEL_GRACE.as_millis()
            ));
        }
    }

    /// POSTs `notifications/cancelled` for request `id` in the session, by `until`.
    async fn cancel(&mut self, id: i64, until: Instant) {
        let notification = json!({
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": id, "reason": "the call's timeout passed"},
        });
        let sent =
            tokio::time::timeout_at(until, self.post("notifications/cancelled", &notification, None)).await;
        let note = match sent {
            Ok(Ok(_)) => format!("sent notifications/cancelled for request {id}"),
            Ok(Err(e)) => format!("notifications/cancelled for request {id} failed: {e}"),
            Err(_) => format!(
                "notifications/cancelled for request {id} got no answer within {} ms",
                CANCEL_GRACE.as_millis()
            ),
        };
        self.note(note);
    }

    /// POSTs one message; with `expect` (a request id), returns the response with that id
    /// from a JSON body or an event stream, answering what the server sends before it.
    fn post<'s>(
        &'s mut self,
        phase: &'static str,
        message: &'s Value,
        expect: Option<i64>,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Option<Value>, RemoteError>> + Send + 's>> {
        // Boxed: declining a server's request inside an event stream posts again.
        Box::pin(async move {
            let response = self.send(phase, message).await?;
            let status = response.status();
            if let Some(session) = response.headers().get(SESSION_HEADER)
                && self.session_id.is_none()
                && !self.stateless
            {
                self.session_id = Some(session.clone());
            }
            if !status.is_success() {
                let json = content_type(&response).starts_with("application/json");
                let body = self.read_body(phase, response).await.unwrap_or_default();
                // The stateless revision answers a request it refuses (an unknown version,
                // headers that disagree with the body) with its JSON-RPC error and a 4xx.
                if json
                    && let Ok(answer) = serde_json::from_slice::<Value>(&body)
                    && let Some(error) = answer.get("error")
                {
                    return Err(rpc_error(phase, error));
                }
                return Err(RemoteError::Status {
                    phase,
                    status: status.as_u16(),
                    body: clip(&String::from_utf8_lossy(&body)),
                });
            }
            let Some(id) = expect else {
                // A notification or a response: 202 Accepted with no body.
                return Ok(None);
            };
            let content_type = content_type(&response);
            if content_type.starts_with("text/event-stream") {
                self.read_stream(phase, response, id).await.map(Some)
            } else if content_type.starts_with("application/json") {
                let body = self.read_body(phase, response).await?;
                let parsed: Value = serde_json::from_slice(&body).map_err(|e| RemoteError::Protocol {
                    phase,
                    reason: format!("the body is not JSON: {e}"),
                })?;
                // A batch may hold the response among notifications.
                let messages = match parsed {
                    Value::Array(items) => items,
                    one => vec![one],
                };
                for m in messages {
                    if let Some(found) = self.take(phase, m, id).await? {
                        return Ok(Some(found));
                    }
                }
                Err(RemoteError::Protocol {
                    phase,
                    reason: "the JSON body holds no response to the request".into(),
                })
            } else {
                Err(RemoteError::Protocol {
                    phase,
                    reason: format!("unexpected content type {content_type:?}"),
                })
            }
        })
    }

    /// Sends `message` with the protocol headers, following redirects by the network rules.
    async fn send(&mut self, phase: &'static str, message: &Value) -> Result<reqwest::Response, RemoteError> {
        let mut headers = self.headers.clone();
        headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        if let Some(session) = &self.session_id {
            headers.insert(HeaderName::from_static(SESSION_HEADER), session.clone());
        }
        if let Some(version) = &self.protocol_version {
            headers.insert(HeaderName::from_static(VERSION_HEADER), version.clone());
        }
        if self.stateless {
            let schema = self.input_schema_of(message);
            for (name, value) in standard_headers::of(message, schema) {
                headers.insert(name, value);
            }
        }
        let body = serde_json::to_vec(message).map_err(|e| RemoteError::Protocol {
            phase,
            reason: e.to_string(),
        })?;
        let request = Outgoing {
            method: reqwest::Method::POST,
            url: self.url.clone(),
            headers,
            credentials: self.credentials.clone(),
            body: Some((HeaderValue::from_static("application/json"), body)),
        };
        follow(
            &self.client,
            request,
            &self.network,
            &self.rule,
            self.max_redirects,
        )
        .await
        .map_err(|e| RemoteError::Transport {
            phase,
            reason: e.to_string(),
        })
    }

    /// A message from the server: the response to `id` is returned; a notification is
    /// noted; a request of the server (sampling, roots, elicitation) is declined, since this
    /// client offers none of them.
    async fn take(
        &mut self,
        phase: &'static str,
        message: Value,
        id: i64,
    ) -> Result<Option<Value>, RemoteError> {
        if let Some(method) = message.get("method").and_then(Value::as_str) {
            let method = method.to_string();
            match message.get("id") {
                Some(request_id) => {
                    self.note(format!("declined the server's request {method}"));
                    let reply = json!({
                        "jsonrpc": "2.0",
                        "id": request_id,
                        "error": {"code": -32601, "message": "not offered by this client"},
                    });
                    self.post(phase, &reply, None).await?;
                }
                None => {
                    let params = message.get("params").cloned().unwrap_or(Value::Null);
                    match method.as_str() {
                        "notifications/progress" => {
                            self.note(format!("progress: {}", clip(&params.to_string())))
                        }
                        "notifications/message" => self.note(format!("log: {}", clip(&params.to_string()))),
                        _ => {}
                    }
                }
            }
            return Ok(None);
        }
        if message.get("id").and_then(Value::as_i64) == Some(id) {
            return Ok(Some(message));
        }
        self.note(format!(
            "ignored a response to an unknown request: {}",
            clip(&message.to_string())
        ));
        Ok(None)
    }

    /// Reads server-sent events until the response to `id` arrives.
    async fn read_stream(
        &mut self,
        phase: &'static str,
        mut response: reqwest::Response,
        id: i64,
    ) -> Result<Value, RemoteError> {
        let mut events = EventParser::default();
        loop {
            let chunk = response.chunk().await.map_err(|e| RemoteError::Transport {
                phase,
                reason: crate::http::describe(&e),
            })?;
            let Some(chunk) = chunk else {
                return Err(RemoteError::Protocol {
                    phase,
                    reason: "the event stream ended without a response".into(),
                });
            };
            self.spend(phase, chunk.len())?;
            for data in events.push(&chunk) {
                match serde_json::from_str::<Value>(&data) {
                    Ok(message) if message.is_object() => {
                        if let Some(found) = self.take(phase, message, id).await? {
                            return Ok(found);
                        }
                    }
                    _ => self.note(format!(
                        "ignored an event that is not a JSON-RPC message: {}",
                        clip(&data)
                    )),
                }
            }
        }
    }

    async fn read_body(
        &mut self,
        phase: &'static str,
        mut response: reqwest::Response,
    ) -> Result<Vec<u8>, RemoteError> {
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| RemoteError::Transport {
            phase,
            reason: crate::http::describe(&e),
        })? {
            self.spend(phase, chunk.len())?;
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// The `inputSchema` of the tool a `tools/call` message names, as listed in this session.
    fn input_schema_of(&self, message: &Value) -> Option<&Value> {
        let name = message.pointer("/params/name").and_then(Value::as_str)?;
        self.listed
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some(name))?
            .get("inputSchema")
    }

    fn spend(&mut self, phase: &'static str, bytes: usize) -> Result<(), RemoteError> {
        self.budget = self.budget.checked_sub(bytes).ok_or(RemoteError::Overflow {
            phase,
            limit: self.limit,
        })?;
        Ok(())
    }

    fn note(&mut self, note: String) {
        if self.notes.len() < MAX_NOTES {
            self.notes.push(note);
        }
    }
}

/// The error a JSON-RPC `error` object from the server stands for.
fn rpc_error(phase: &'static str, error: &Value) -> RemoteError {
    let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
    if conversation::is_unsupported_version(code) {
        let supported = conversation::versions_listed(error);
        return RemoteError::UnsupportedVersion { phase, supported };
    }
    RemoteError::Rpc {
        phase,
        code,
        message: error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("(no message)")
            .to_string(),
    }
}

/// The response's media type, lower-cased (empty when it names none).
fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// The `data` of server-sent events, from bytes as they arrive (`text/event-stream`: lines
/// ending in LF, CR LF or CR; an event ends at an empty line; `data:` lines join with LF;
/// other fields and comments are of no use here).
#[derive(Default)]
struct EventParser {
    pending: Vec<u8>,
    data: Vec<String>,
}

impl EventParser {
    /// Feeds `bytes`; returns the data of every event completed by them.
    fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut done = Vec::new();
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n' || *b == b'\r') {
            // A CR at the very end may be the first half of CR LF: wait for the next byte.
            if self.pending[end] == b'\r' && end + 1 == self.pending.len() {
                break;
            }
            let skip = if self.pending[end] == b'\r' && self.pending.get(end + 1) == Some(&b'\n') {
                2
            } else {
                1
            };
            let line: Vec<u8> = self.pending.drain(..end + skip).take(end).collect();
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                if !self.data.is_empty() {
                    done.push(self.data.join("\n"));
                    self.data.clear();
                }
            } else if let Some(value) = line.strip_prefix("data")
                && (value.is_empty() || value.starts_with(':'))
            {
                let value = value.strip_prefix(':').unwrap_or("");
                self.data
                    .push(value.strip_prefix(' ').unwrap_or(value).to_string());
            }
        }
        done
    }
}

fn clip(s: &str) -> String {
    const MAX: usize = 300;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::EventParser;

    #[test]
    fn events_are_read_across_chunks_and_line_endings() {
        let mut p = EventParser::default();
        assert!(p.push(b"event: message\r\nid: 1\r\ndata: {\"a\":").is_empty());
        assert_eq!(
            p.push(b"1}\r\n\r\n: comment\n\ndata:x\ndata: y\r"),
            vec!["{\"a\":1}"]
        );
        assert_eq!(p.push(b"\n\n"), vec!["x\ny"]);
        assert!(p.push(b"dataless: 1\n\n").is_empty());
    }
}
