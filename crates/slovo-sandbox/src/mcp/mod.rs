//! The MCP backend: `execution.type: mcp` tools are MCP servers, each call served by a server
//! started fresh in the process sandbox and stopped after its one answer.
//!
//! # Brief overview
//! [`McpBackend`] implements [`Backend`] for `execution.type: mcp` with the `stdio`
//! transport. One call:
//! 1. the process sandbox starts the server's command (its bundle read-only at `/tool`, the
//!    system directories read-only with `system_paths`, `/data` its state, the grant's limits
//!    and network) — exactly as it starts a process tool;
//! 2. [`client::Session`] speaks MCP over the server's stdin and stdout: `initialize`
//!    (protocol 2025-11-25), `notifications/initialized`, `tools/call`, then closes stdin;
//! 3. the `tools/call` result becomes the call's verdict ([`result`]); the sandbox is destroyed.
//!
//! Everything the server writes counts against the stdout cap, stderr is kept with its cap,
//! and every wait ends at the call's deadline. `docs/mcp-servers.md` has the whole story.

mod client;
mod result;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};
use slovo_core::manifest::{Execution, McpTransport};

pub use client::{PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS};

use crate::process::{Conversed, Dialogue, ProcessBackend, Program, ToolIo};
use crate::{Backend, BackendError, InstallRequest, Outcome, SandboxSpec};

/// Runs MCP servers over stdio in the process sandbox.
#[derive(Debug, Clone)]
pub struct McpBackend {
    process: Arc<ProcessBackend>,
}

impl McpBackend {
    /// A backend that starts each server in `process`'s sandbox (and so with its
    /// configuration, host support and egress proxy).
    pub fn new(process: Arc<ProcessBackend>) -> McpBackend {
        McpBackend { process }
    }
}

/// The sandboxed program of an MCP tool.
fn program_of(execution: &Execution) -> Result<Program, String> {
    let Execution::Mcp {
        transport: McpTransport::Stdio,
        command,
        system_paths,
        env,
        ..
    } = execution
    else {
        return Err(format!("a {} tool is not an MCP tool", execution.kind()));
    };
    Ok(Program {
        command: command.clone(),
        system_paths: *system_paths,
        env: env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        system_program_allowed: true,
    })
}

/// One `tools/call`, from `initialize` to shutdown.
struct OneCall {
    tool: String,
    arguments: Value,
}

#[async_trait]
impl Dialogue for OneCall {
    async fn converse(&self, io: ToolIo<'_>) -> Conversed {
        let mut session = client::Session::new(io);
        let verdict = match session.initialize().await {
            Ok(()) => match session.call_tool(&self.tool, &self.arguments).await {
                Ok(r) => result::verdict_of(&r),
                Err(e) => e.verdict(),
            },
            Err(e) => e.verdict(),
        };
        session.shutdown().await;
        let mut watched = std::mem::take(&mut session.watched);
        // Protocol notes (progress, log messages, ignored output) go on the record with stderr.
        for note in &session.notes {
            watched.stderr.extend_from_slice(format!("\n[mcp] {note}").as_bytes());
        }
        Conversed {
            watched,
            verdict: Some(verdict),
        }
    }
}

#[async_trait]
impl Backend for McpBackend {
    fn kind(&self) -> &'static str {
        "mcp"
    }

    async fn install(&self, request: &InstallRequest) -> Result<Value, BackendError> {
        let fail = |reason: String| BackendError::Install {
            tool: request.tool.clone(),
            reason,
        };
        let program = program_of(&request.execution).map_err(fail)?;
        let bundle = request
            .bundle_dir
            .as_ref()
            .ok_or_else(|| fail("an MCP server tool needs its bundle".into()))?;
        let first = program.command.first().cloned().unwrap_or_default();
        let host = if first.starts_with('/') {
            // A system program: it must exist here, where the sandbox's system directories
            // come from.
            std::path::PathBuf::from(&first)
        } else {
            bundle.join(first.trim_start_matches("./"))
        };
        if !host.is_file() {
            return Err(fail(format!("{} is not a file", host.display())));
        }
        Ok(json!({
            "transport": "stdio",
            "program": first,
            "system_paths": program.system_paths,
            "protocol_version": PROTOCOL_VERSION,
            "refusal": self.process.refusal(),
        }))
    }

    async fn shutdown(&self) {
        // The process backend is shut down by its own registration.
    }

    async fn release_state(&self, state_dir: &std::path::Path, purge: bool) -> Result<(), BackendError> {
        self.process.release_state(state_dir, purge).map_err(|e| BackendError::Install {
            tool: state_dir.display().to_string(),
            reason: format!("failed to release the state volume: {e}"),
        })
    }

    async fn run(&self, spec: &SandboxSpec) -> Outcome {
        let program = match program_of(&spec.execution) {
            Ok(p) => p,
            Err(e) => return Outcome::failed(e),
        };
        let tool = spec
            .execution
            .mcp_tool_name(&spec.capability.name)
            .unwrap_or(&spec.capability.name)
            .to_string();
        let arguments = spec
            .request
            .get("arguments")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let dialogue = OneCall { tool, arguments };
        match self.process.run_program(spec, &program, &dialogue).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, tool = %spec.tool, execution = %spec.execution_id, "MCP call failed");
                Outcome::failed(e.to_string())
            }
        }
    }
}
