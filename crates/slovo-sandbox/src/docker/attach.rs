//! How the backend and the program in a call's container talk over the one attached
//! connection (stdin, stdout and stderr): the docker tool's contract (the request on stdin,
//! the result on stdout, the exit code says how it went, [`RequestOnStdin`]), or a protocol
//! such as MCP (`crate::mcp`), which gives its own verdict. The container, its limits and its
//! network are the same whatever is said.

use std::pin::Pin;

use async_trait::async_trait;
use bollard::container::LogOutput;
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::ending::Captured;
use crate::process::Verdict;

/// The container's output as the daemon multiplexes it on the attached connection.
pub(crate) type OutputStream = Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;

/// The started container's end of the conversation: its attached streams, the call's
/// deadline and the output caps.
pub(crate) struct ContainerIo {
    /// The container's stdin; shutting it down closes the program's stdin.
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
    /// Its stdout and stderr; the stream ends when the container's streams close (it exited).
    pub output: OutputStream,
    /// When the call times out.
    pub deadline: Instant,
    /// Bytes of stdout allowed in all; more stops the call.
    pub stdout_limit: usize,
    /// Bytes of stderr kept.
    pub stderr_limit: usize,
}

/// What a conversation saw and, if the protocol itself says how the call went, its verdict
/// (the container is then removed without waiting for it to exit).
pub(crate) struct ContainerConversed {
    pub watched: Watched,
    pub verdict: Option<Verdict>,
}

/// How the backend and the program in the container talk during a call.
#[async_trait]
pub(crate) trait ContainerDialogue: Send + Sync {
    /// Talks to the started container until the call is over (it may still be running; it is
    /// removed forcibly afterwards).
    async fn converse(&self, io: ContainerIo) -> ContainerConversed;
}

/// The docker tool's contract: the request on stdin, then its output until it exits.
pub(crate) struct RequestOnStdin {
    pub request: Vec<u8>,
}

#[async_trait]
impl ContainerDialogue for RequestOnStdin {
    async fn converse(&self, io: ContainerIo) -> ContainerConversed {
        let request = self.request.clone();
        let mut input = io.input;
        let writer = tokio::spawn(async move {
            let _ = input.write_all(&request).await;
            let _ = input.shutdown().await;
        });
        let watched = watch(io.output, io.deadline, io.stdout_limit, io.stderr_limit).await;
        writer.abort();
        ContainerConversed {
            watched,
            verdict: None,
        }
    }
}

/// What was observed while the container ran.
#[derive(Debug, Default)]
pub(crate) struct Watched {
    pub captured: Captured,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    pub stream_error: Option<String>,
}

/// Reads the container's output until it ends, stdout goes past its cap or the deadline.
async fn watch(
    mut output: OutputStream,
    deadline: Instant,
    stdout_limit: usize,
    stderr_limit: usize,
) -> Watched {
    let mut w = Watched::default();
    let timeout = tokio::time::sleep_until(deadline);
    tokio::pin!(timeout);
    loop {
        tokio::select! {
            item = output.next() => match item {
                None => break,
                Some(Err(e)) => {
                    w.stream_error = Some(e.to_string());
                    break;
                }
                Some(Ok(LogOutput::StdOut { message })) => {
                    if !w.captured.keep_stdout(&message, stdout_limit) {
                        break;
                    }
                }
                Some(Ok(LogOutput::StdErr { message })) => w.captured.keep_stderr(&message, stderr_limit),
                Some(Ok(_)) => {}
            },
            _ = &mut timeout => {
                w.captured.timed_out = true;
                break;
            }
        }
    }
    w
}
