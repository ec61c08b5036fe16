//! Capped in-memory stdout and stderr.
//!
//! stdout is the call's result: a tool that writes more than the cap is stopped at once (the
//! write traps and the call is recorded as `killed`). stderr is diagnostics: the first bytes up
//! to the cap are kept and the rest is dropped silently, as the process backend does.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// What happens past the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overflow {
    /// Trap the guest (stdout).
    Trap,
    /// Keep the first bytes, drop the rest (stderr).
    Truncate,
}

/// The stdout limit was exceeded (carried by the trap).
#[derive(Debug, thiserror::Error)]
#[error("stdout exceeded the limit of {0} bytes")]
pub(crate) struct OutputLimitExceeded(pub usize);

/// An in-memory output stream with a byte cap, shared between the WASI context and the caller.
#[derive(Debug, Clone)]
pub(crate) struct CappedPipe {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    buffer: Mutex<Vec<u8>>,
    cap: usize,
    overflow: Overflow,
    exceeded: AtomicBool,
}

impl CappedPipe {
    pub(crate) fn new(cap: usize, overflow: Overflow) -> CappedPipe {
        CappedPipe {
            inner: Arc::new(Inner {
                buffer: Mutex::new(Vec::new()),
                cap,
                overflow,
                exceeded: AtomicBool::new(false),
            }),
        }
    }

    /// True once a write went past the cap.
    pub(crate) fn exceeded(&self) -> bool {
        self.inner.exceeded.load(Ordering::Relaxed)
    }

    /// The bytes kept.
    pub(crate) fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.inner.buffer.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Appends what fits; `Err` when the cap traps.
    fn append(&self, bytes: &[u8]) -> Result<(), OutputLimitExceeded> {
        let mut buf = self.inner.buffer.lock().unwrap_or_else(PoisonError::into_inner);
        let room = self.inner.cap.saturating_sub(buf.len());
        if bytes.len() <= room {
            buf.extend_from_slice(bytes);
            return Ok(());
        }
        self.inner.exceeded.store(true, Ordering::Relaxed);
        match self.inner.overflow {
            Overflow::Trap => Err(OutputLimitExceeded(self.inner.cap)),
            Overflow::Truncate => {
                buf.extend_from_slice(&bytes[..room]);
                Ok(())
            }
        }
    }
}

#[async_trait::async_trait]
impl Pollable for CappedPipe {
    async fn ready(&mut self) {}
}

impl OutputStream for CappedPipe {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.append(&bytes)
            .map_err(|e| StreamError::Trap(wasmtime::Error::new(e)))
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        // Always writable: the cap is enforced in `write`, so a guest cannot probe it.
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for CappedPipe {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Poll::Ready(
            self.append(buf)
                .map(|()| buf.len())
                .map_err(std::io::Error::other),
        )
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdout_traps_past_the_cap_and_stderr_truncates() {
        let out = CappedPipe::new(4, Overflow::Trap);
        assert!(out.append(b"abc").is_ok());
        assert!(out.append(b"de").is_err());
        assert!(out.exceeded());
        assert_eq!(out.take(), b"abc");

        let err = CappedPipe::new(4, Overflow::Truncate);
        assert!(err.append(b"abc").is_ok());
        assert!(err.append(b"def").is_ok());
        assert!(err.exceeded());
        assert_eq!(err.take(), b"abcd");
    }
}
