//! A small MCP client over stdio, for exactly one call: `initialize`,
//! `notifications/initialized`, `tools/call`, then shutdown (stdin closed). It speaks over a
//! server's standard streams ([`ServerStdio`]), whether the process sandbox or a container
//! runs it.
//!
//! Messages are JSON-RPC 2.0, one per line. Everything the server writes counts against the
//! call's stdout cap, every wait ends at the call's deadline, and stderr is drained (capped)
//! all along, so a server that floods, stalls or never answers meets the same limits as any
//! process tool. The client asks for protocol 2025-11-25 and accepts a server that answers with
//! an earlier revision it knows ([`SUPPORTED_PROTOCOL_VERSIONS`]); a server that speaks only
//! the stateless 2026-07-28 revision (`initialize` refused with the unsupported-version error
//! naming it) is spoken to in that revision (`conversation.rs`); any other answer fails the
//! call naming the versions on both sides.
//!
//! When the call's deadline passes while a request waits for its answer, the server is told
//! (`notifications/cancelled`, best effort and bounded) before it is killed.

use std::time::Duration;

use serde_json::{Value, json};
use slovo_core::execution::ExecutionStatus;
use tokio::time::Instant;

use super::conversation::{self, Rpc, STATELESS_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS};
use super::stdio::{AfterClose, Output, PipeStdio, ServerStdio};
use crate::ending::Captured;
use crate::process::{ToolIo, Verdict};

/// How long a server gets to exit by itself once its stdin is closed, before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(200);

/// Lines of protocol notes (progress, logs, ignored output) kept on the record at most.
const MAX_NOTES: usize = 64;

/// How long a server that timed out gets to read `notifications/cancelled` (and to say on
/// stderr what it did about it) before it is killed: the writing of the notification and the
/// wait together, so a timed-out call ends at most this much later (sooner if the server
/// closes its stderr, as it does when it exits). Long enough for a server on a busy host to
/// be scheduled, short against any call's timeout.
const CANCEL_GRACE: Duration = Duration::from_millis(250);

/// Why a conversation with a server ended without a result.
#[derive(Debug, thiserror::Error)]
pub(crate) enum McpError {
    /// The call's deadline passed (the server was killed).
    #[error("the MCP server did not answer {phase} before the call's timeout")]
    Timeout { phase: &'static str },
    /// The server wrote more than the stdout cap (it was killed).
    #[error("the MCP server wrote more than the output limit during {phase}")]
    Overflow { phase: &'static str },
    /// The server closed its stdout (usually: it exited).
    #[error("the MCP server closed its output during {phase} without answering")]
    Closed { phase: &'static str },
    /// Writing to the server failed (it exited or closed its stdin).
    #[error("failed to send {phase} to the MCP server: {source}")]
    Write {
        phase: &'static str,
        source: std::io::Error,
    },
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
    Refused {
        phase: &'static str,
        code: i64,
        message: String,
    },
    /// The server's answer breaks the protocol.
    #[error("the MCP server's answer to {phase} is not valid: {reason}")]
    Protocol { phase: &'static str, reason: String },
}

/// One conversation with a started server, over its standard streams `S`.
pub(crate) struct Session<S: ServerStdio> {
    stdio: S,
    /// Whether the server's stdin was closed (the stdio transport's shutdown).
    stdin_closed: bool,
    deadline: Instant,
    stdout_limit: usize,
    stderr_limit: usize,
    /// Bytes read from stdout but not yet a complete line.
    pending: Vec<u8>,
    /// Bytes read from stdout in all (against the cap).
    stdout_total: usize,
    stdout_open: bool,
    next_id: i64,
    /// Whether the stateless 2026-07-28 revision was agreed.
    stateless: bool,
    /// What the record keeps besides stderr: progress, log messages, ignored lines.
    pub notes: Vec<String>,
    pub watched: Captured,
    /// The server's `initialize` result.
    pub server: Option<Value>,
}

impl<S: ServerStdio> Rpc for Session<S> {
    type Error = McpError;

    fn violation(phase: &'static str, reason: String) -> McpError {
        McpError::Protocol { phase, reason }
    }

    fn versions_offered(error: &McpError) -> Option<&[String]> {
        match error {
            McpError::UnsupportedVersion { supported, .. } => Some(supported),
            _ => None,
        }
    }

    fn stateless(&self) -> bool {
        self.stateless
    }

    fn enter_stateless(&mut self) {
        self.stateless = true;
    }

    fn next_request_id(&self) -> i64 {
        self.next_id
    }

    async fn send_request(
        &mut self,
        phase: &'static str,
        method: &str,
        params: Value,
    ) -> Result<Value, McpError> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(
            phase,
            &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        )
        .await?;
        loop {
            let message = match self.next_message(phase).await {
                Ok(message) => message,
                Err(McpError::Timeout { .. }) => {
                    if conversation::cancellable(method) {
                        self.cancel(id).await;
                    }
                    return Err(self.time_out(phase));
                }
                Err(e) => return Err(e),
            };
            if message.get("method").is_some() {
                self.answer_server_message(phase, &message).await?;
                continue;
            }
            if message.get("id").and_then(Value::as_i64) != Some(id) {
                self.note(format!(
                    "ignored a response to an unknown request: {}",
                    brief(&message)
                ));
                continue;
            }
            if let Some(error) = message.get("error") {
                if error
                    .get("code")
                    .and_then(Value::as_i64)
                    .is_some_and(conversation::is_unsupported_version)
                {
                    return Err(unsupported_version(phase, error));
                }
                return Err(McpError::Refused {
                    phase,
                    code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                    message: error
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("(no message)")
                        .to_string(),
                });
            }
            return match message.get("result") {
                Some(r) if r.is_object() => Ok(r.clone()),
                _ => Err(McpError::Protocol {
                    phase,
                    reason: "a response without an object `result`".into(),
                }),
            };
        }
    }
}

impl Session<PipeStdio> {
    /// A conversation with a server started in the process sandbox.
    pub fn new(io: ToolIo) -> Session<PipeStdio> {
        let (deadline, stdout_limit, stderr_limit) = (io.deadline, io.stdout_limit, io.stderr_limit);
        Session::over(PipeStdio::new(io), deadline, stdout_limit, stderr_limit)
    }
}

impl<S: ServerStdio> Session<S> {
    /// A conversation over `stdio`: every wait ends at `deadline`, stdout may carry
    /// `stdout_limit` bytes in all, and `stderr_limit` bytes of stderr are kept.
    pub fn over(stdio: S, deadline: Instant, stdout_limit: usize, stderr_limit: usize) -> Session<S> {
        Session {
            stdio,
            stdin_closed: false,
            deadline,
            stdout_limit,
            stderr_limit,
            pending: Vec::new(),
            stdout_total: 0,
            stdout_open: true,
            next_id: 1,
            stateless: false,
            notes: Vec::new(),
            watched: Captured::default(),
            server: None,
        }
    }

    /// Moves the deadline of every wait from now on: a warm server waited in its pool, and its
    /// call gets the grant's whole timeout from the moment it is taken.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }

    /// `initialize` and `notifications/initialized`; with a server of the stateless revision,
    /// `server/discover` instead.
    pub async fn initialize(&mut self) -> Result<(), McpError> {
        let opened = conversation::open(self).await?;
        self.server = Some(opened.server);
        self.stateless = opened.stateless;
        if self.stateless {
            return Ok(());
        }
        self.notify("notifications/initialized", json!({})).await
    }

    /// `tools/list`, every page.
    pub async fn list_tools(&mut self) -> Result<Vec<Value>, McpError> {
        conversation::list_tools(self).await
    }

    /// `tools/call`; progress notifications on the way are noted.
    pub async fn call_tool(&mut self, name: &str, arguments: &Value) -> Result<Value, McpError> {
        conversation::call_tool(self, name, arguments).await
    }

    /// Closes the server's stdin (the stdio transport's shutdown) and gives it a moment to
    /// exit; whatever is left is killed with the sandbox.
    pub async fn shutdown(&mut self) {
        let grace = (Instant::now() + SHUTDOWN_GRACE).min(self.deadline);
        self.stdin_closed = true;
        if tokio::time::timeout_at(grace, self.stdio.close_stdin())
            .await
            .is_err()
        {
            return;
        }
        while let Ok(after) = tokio::time::timeout_at(grace, self.stdio.after_close()).await {
            match after {
                AfterClose::Stderr(chunk) => self.keep_stderr(&chunk),
                AfterClose::Exited => break,
            }
        }
    }

    async fn notify(&mut self, method: &str, params: Value) -> Result<(), McpError> {
        self.send(
            method_phase(method),
            &json!({"jsonrpc": "2.0", "method": method, "params": params}),
        )
        .await
    }

    /// A notification is noted (progress, log messages); a request from the server
    /// (sampling, roots, elicitation) is declined: this client offers none of them.
    async fn answer_server_message(&mut self, phase: &'static str, message: &Value) -> Result<(), McpError> {
        let method = message.get("method").and_then(Value::as_str).unwrap_or("");
        match message.get("id") {
            Some(id) => {
                self.note(format!("declined the server's request {method}"));
                let reply = json!({
                    "jsonrpc": "2.0",
                    "id": id,
                    "error": {"code": -32601, "message": "not offered by this client"},
                });
                self.send(phase, &reply).await
            }
            None => {
                let params = message.get("params").cloned().unwrap_or(Value::Null);
                match method {
                    "notifications/progress" => self.note(format!("progress: {}", brief(&params))),
                    "notifications/message" => self.note(format!("log: {}", brief(&params))),
                    _ => {}
                }
                Ok(())
            }
        }
    }

    /// Tells the server that the request `id` is abandoned (`notifications/cancelled`), best
    /// effort: within [`CANCEL_GRACE`] the notification is written, if the server reads its
    /// input, and its stderr is kept, so that what it does about it is on the record. The
    /// caller kills the server afterwards whatever happened.
    async fn cancel(&mut self, id: i64) {
        let until = Instant::now() + CANCEL_GRACE;
        let notification = json!({
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": id, "reason": "the call's timeout passed"},
        });
        let mut line = notification.to_string().into_bytes();
        line.push(b'\n');
        if self.stdin_closed {
            return;
        }
        match tokio::time::timeout_at(until, self.stdio.write(&line)).await {
            Ok(Ok(())) => self.note(format!("sent notifications/cancelled for request {id}")),
            // A server that does not read its input is not told; it is killed all the same.
            _ => return,
        }
        // What the server says about it (on stderr) is kept; its stdout no longer matters.
        while self.stdout_open {
            match tokio::time::timeout_at(until, self.stdio.read()).await {
                Ok(Output::Stderr(chunk)) => self.keep_stderr(&chunk),
                Ok(Output::Stdout(_)) => {}
                Ok(Output::StdoutClosed) => self.stdout_open = false,
                Err(_) => return,
            }
        }
        while let Ok(AfterClose::Stderr(chunk)) =
            tokio::time::timeout_at(until, self.stdio.after_close()).await
        {
            self.keep_stderr(&chunk);
        }
    }

    async fn send(&mut self, phase: &'static str, message: &Value) -> Result<(), McpError> {
        let mut line = message.to_string().into_bytes();
        line.push(b'\n');
        if self.stdin_closed {
            return Err(McpError::Write {
                phase,
                source: std::io::Error::new(std::io::ErrorKind::BrokenPipe, "stdin is closed"),
            });
        }
        // Writing can block on a server that does not read; the deadline still holds.
        match tokio::time::timeout_at(self.deadline, self.stdio.write(&line)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(McpError::Write { phase, source }),
            Err(_) => Err(self.time_out(phase)),
        }
    }

    /// The next JSON-RPC message on stdout, reading (and capping) stdout and stderr until
    /// one is complete.
    async fn next_message(&mut self, phase: &'static str) -> Result<Value, McpError> {
        loop {
            while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                let text = String::from_utf8_lossy(&line);
                let text = text.trim();
                if text.is_empty() {
                    continue;
                }
                match serde_json::from_str::<Value>(text) {
                    Ok(v) if v.is_object() => return Ok(v),
                    _ => self.note(format!(
                        "ignored a line that is not a JSON-RPC message: {}",
                        clip(text)
                    )),
                }
            }
            if !self.stdout_open {
                return Err(McpError::Closed { phase });
            }
            let output = match tokio::time::timeout_at(self.deadline, self.stdio.read()).await {
                Ok(output) => output,
                // The caller tells the server the request is cancelled, then kills it.
                Err(_) => return Err(McpError::Timeout { phase }),
            };
            match output {
                Output::StdoutClosed => self.stdout_open = false,
                Output::Stdout(chunk) => {
                    self.stdout_total += chunk.len();
                    if self.stdout_total > self.stdout_limit {
                        self.watched.stdout_overflow = true;
                        self.stdio.kill();
                        return Err(McpError::Overflow { phase });
                    }
                    self.pending.extend_from_slice(&chunk);
                }
                Output::Stderr(chunk) => self.keep_stderr(&chunk),
            }
        }
    }

    /// The call's deadline passed: the server is killed.
    fn time_out(&mut self, phase: &'static str) -> McpError {
        self.watched.timed_out = true;
        self.stdio.kill();
        McpError::Timeout { phase }
    }

    fn keep_stderr(&mut self, chunk: &[u8]) {
        self.watched.keep_stderr(chunk, self.stderr_limit);
    }

    fn note(&mut self, note: String) {
        if self.notes.len() < MAX_NOTES {
            self.notes.push(note);
        }
    }
}

/// A server refused the protocol version asked for: the versions it speaks, as it listed them.
fn unsupported_version(phase: &'static str, error: &Value) -> McpError {
    let supported = conversation::versions_listed(error);
    McpError::UnsupportedVersion { phase, supported }
}

/// The phase a notification belongs to, for error messages.
fn method_phase(method: &str) -> &'static str {
    match method {
        "notifications/initialized" => "notifications/initialized",
        _ => "a notification",
    }
}

fn brief(v: &Value) -> String {
    clip(&v.to_string())
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

impl McpError {
    /// The call's verdict for a conversation that ended this way.
    pub fn verdict(&self) -> Verdict {
        let status = match self {
            McpError::Timeout { .. } => ExecutionStatus::Timeout,
            McpError::Overflow { .. } => ExecutionStatus::Killed,
            _ => ExecutionStatus::Failure,
        };
        Verdict {
            status,
            output: None,
            error: Some(self.to_string()),
        }
    }
}
