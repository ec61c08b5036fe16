//! How the sandbox and the started tool talk during a call: the process contract (the
//! request on stdin, the result on stdout, the exit status says how it went) or a protocol such
//! as MCP ([`crate::mcp`]), which gives its own verdict. The sandbox, its limits and its egress
//! are the same whatever is said.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use slovo_core::execution::ExecutionStatus;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::time::Instant;

use crate::Outcome;
use crate::ending::Captured;

/// What runs in a sandbox: the program, its arguments and its environment.
#[derive(Debug, Clone)]
pub(crate) struct Program {
    /// Program and arguments; the program is relative to the bundle root, or (see
    /// `system_program_allowed`) an absolute path to a system program.
    pub command: Vec<String>,
    /// Mount the host's system directories read-only.
    pub system_paths: bool,
    /// Extra environment variables (never `SLOVO_*`: the manifest validation refuses them).
    pub env: Vec<(String, String)>,
    /// The program may be an absolute path into the system directories.
    pub system_program_allowed: bool,
    /// The call's capability and execution id are in the environment (`SLOVO_CAPABILITY`,
    /// `SLOVO_EXECUTION_ID`): a process tool serves one capability of one call. An MCP server
    /// does not get them: it serves whatever `tools/call` asks, and a pooled server is started
    /// before its call exists, so cold and warm servers see the same environment.
    pub call_env: bool,
}

/// The started tool's end of the conversation: its pipes, its exit, the call's deadline and
/// the output caps.
pub(crate) struct ToolIo {
    /// The tool's stdin.
    pub stdin: pipe::Sender,
    /// The tool's stdout.
    pub stdout: pipe::Receiver,
    /// The tool's stderr.
    pub stderr: pipe::Receiver,
    /// Readable once the tool has exited (a pidfd). Shared so that a conversation can outlive
    /// the function that started the tool (a warm MCP server waits in its pool).
    pub exit: Arc<AsyncFd<OwnedFd>>,
    /// When the call times out.
    pub deadline: Instant,
    /// Bytes of stdout allowed in all; more kills the call.
    pub stdout_limit: usize,
    /// Bytes of stderr kept.
    pub stderr_limit: usize,
}

/// Kills the tool whose pidfd `exit` watches (and, with its pid namespace, everything it
/// started).
pub(crate) fn kill(exit: &AsyncFd<OwnedFd>) {
    // SAFETY: pidfd_send_signal on our own pidfd.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            exit.get_ref().as_raw_fd(),
            libc::SIGKILL,
            0usize,
            0u32,
        )
    };
}

/// What a conversation saw and, if the protocol itself says how the call went (an MCP
/// result), its verdict, which the exit status does not override.
pub(crate) struct Conversed {
    pub watched: Captured,
    pub verdict: Option<Verdict>,
}

/// How a call went according to the protocol spoken with the tool.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Verdict {
    pub status: ExecutionStatus,
    pub output: Option<Value>,
    pub error: Option<String>,
}

impl Verdict {
    /// Replaces the exit-status reading of `outcome` (the server is stopped after its answer,
    /// so its exit says nothing), unless a limit (time, output, memory) ended the call: that
    /// is what happened, whatever the protocol got to say.
    pub(crate) fn apply(self, outcome: &mut Outcome, limit_hit: bool) {
        if limit_hit {
            return;
        }
        outcome.status = self.status;
        outcome.output = self.output;
        outcome.error = self.error;
    }
}

/// How the sandbox and the tool talk during a call.
#[async_trait]
pub(crate) trait Dialogue: Send + Sync {
    /// Talks to the started tool until the call is over (the tool may still be running; it
    /// is killed afterwards).
    async fn converse(&self, io: ToolIo) -> Conversed;
}

/// The process contract: the request on stdin, the result on stdout, the exit status says how
/// it went.
pub(super) struct StdinRequest {
    pub request: Vec<u8>,
}

#[async_trait]
impl Dialogue for StdinRequest {
    async fn converse(&self, io: ToolIo) -> Conversed {
        let request = self.request.clone();
        let mut stdin = io.stdin;
        let writer = tokio::spawn(async move {
            let _ = stdin.write_all(&request).await;
        });
        let watched = watch(
            &io.exit,
            io.stdout,
            io.stderr,
            io.deadline,
            io.stdout_limit,
            io.stderr_limit,
        )
        .await;
        writer.abort();
        Conversed {
            watched,
            verdict: None,
        }
    }
}

async fn watch(
    exit: &AsyncFd<OwnedFd>,
    mut stdout: pipe::Receiver,
    mut stderr: pipe::Receiver,
    deadline: Instant,
    stdout_limit: usize,
    stderr_limit: usize,
) -> Captured {
    let mut w = Captured::default();
    let (mut out_open, mut err_open, mut exited) = (true, true, false);
    let mut out_buf = vec![0u8; 64 * 1024];
    let mut err_buf = vec![0u8; 16 * 1024];
    let timeout = tokio::time::sleep_until(deadline);
    tokio::pin!(timeout);
    // After the exit, descriptors still open elsewhere get a short grace to reach end-of-file.
    let grace = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(grace);
    while out_open || err_open || !exited {
        tokio::select! {
            r = stdout.read(&mut out_buf), if out_open => match r {
                Ok(0) | Err(_) => out_open = false,
                Ok(n) => {
                    if !w.keep_stdout(&out_buf[..n], stdout_limit) {
                        out_open = false;
                        kill(exit);
                    }
                }
            },
            r = stderr.read(&mut err_buf), if err_open => match r {
                Ok(0) | Err(_) => err_open = false,
                Ok(n) => w.keep_stderr(&err_buf[..n], stderr_limit),
            },
            r = exit.readable(), if !exited => {
                if let Ok(mut guard) = r {
                    guard.retain_ready();
                }
                exited = true;
                grace.as_mut().reset(Instant::now() + Duration::from_millis(250));
            },
            _ = &mut timeout, if !exited && !w.timed_out => {
                w.timed_out = true;
                kill(exit);
            },
            _ = &mut grace, if exited => break,
        }
    }
    w
}
