//! A started server's standard streams, whatever runs it: the MCP client
//! ([`super::client::Session`]) speaks over [`ServerStdio`] and nothing else, so the same
//! conversation (framing, caps, deadline, declined requests, notes) serves a server in the
//! process sandbox ([`PipeStdio`], its pipes and pidfd) and one in a container (the Docker
//! backend's attached streams, `super::oci`).

use std::future::Future;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;

use crate::process::{ToolIo, kill};

/// One piece of what a started server wrote.
pub(crate) enum Output {
    /// Bytes of its stdout.
    Stdout(Vec<u8>),
    /// Bytes of its stderr.
    Stderr(Vec<u8>),
    /// Its stdout is closed (usually: it exited); nothing more will come from it.
    StdoutClosed,
}

/// What a server does once its stdin is closed.
pub(crate) enum AfterClose {
    /// It wrote to stderr.
    Stderr(Vec<u8>),
    /// It exited (or can write nothing more).
    Exited,
}

/// The standard streams of a started server. Every future here is cancel-safe: the client
/// races each of them against the call's deadline.
pub(crate) trait ServerStdio: Send {
    /// Writes all of `bytes` to the server's stdin.
    fn write(&mut self, bytes: &[u8]) -> impl Future<Output = std::io::Result<()>> + Send;

    /// Closes the server's stdin (the stdio transport's shutdown); writing is then an error.
    fn close_stdin(&mut self) -> impl Future<Output = ()> + Send;

    /// The next thing the server wrote on stdout or stderr. Called only while stdout is open.
    fn read(&mut self) -> impl Future<Output = Output> + Send;

    /// After [`ServerStdio::close_stdin`]: the next stderr the server writes, or its exit.
    fn after_close(&mut self) -> impl Future<Output = AfterClose> + Send;

    /// Stops the server at once (a limit was hit).
    fn kill(&mut self);
}

/// Bytes read from a stream at most at once.
const CHUNK: usize = 64 * 1024;

/// A server in the process sandbox: its pipes and its pidfd.
pub(crate) struct PipeStdio {
    stdin: Option<pipe::Sender>,
    stdout: pipe::Receiver,
    stderr: pipe::Receiver,
    exit: Arc<AsyncFd<OwnedFd>>,
    stdout_open: bool,
    stderr_open: bool,
    out_buf: Vec<u8>,
    err_buf: Vec<u8>,
}

impl PipeStdio {
    pub fn new(io: ToolIo) -> PipeStdio {
        PipeStdio {
            stdin: Some(io.stdin),
            stdout: io.stdout,
            stderr: io.stderr,
            exit: io.exit,
            stdout_open: true,
            stderr_open: true,
            out_buf: vec![0u8; CHUNK],
            err_buf: vec![0u8; CHUNK],
        }
    }
}

impl ServerStdio for PipeStdio {
    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self.stdin.as_mut() {
            Some(stdin) => stdin.write_all(bytes).await,
            None => Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "stdin is closed",
            )),
        }
    }

    async fn close_stdin(&mut self) {
        self.stdin = None;
    }

    async fn read(&mut self) -> Output {
        loop {
            if !self.stdout_open {
                return Output::StdoutClosed;
            }
            tokio::select! {
                r = self.stdout.read(&mut self.out_buf) => match r {
                    Ok(0) | Err(_) => self.stdout_open = false,
                    Ok(n) => return Output::Stdout(self.out_buf[..n].to_vec()),
                },
                r = self.stderr.read(&mut self.err_buf), if self.stderr_open => match r {
                    Ok(0) | Err(_) => self.stderr_open = false,
                    Ok(n) => return Output::Stderr(self.err_buf[..n].to_vec()),
                },
            }
        }
    }

    async fn after_close(&mut self) -> AfterClose {
        loop {
            tokio::select! {
                r = self.stderr.read(&mut self.err_buf), if self.stderr_open => match r {
                    Ok(0) | Err(_) => self.stderr_open = false,
                    Ok(n) => return AfterClose::Stderr(self.err_buf[..n].to_vec()),
                },
                r = self.exit.readable() => {
                    if let Ok(mut guard) = r {
                        guard.retain_ready();
                    }
                    return AfterClose::Exited;
                },
            }
        }
    }

    fn kill(&mut self) {
        kill(&self.exit);
    }
}
