//! Back-pressure: a fixed number of calls run at once, a fixed number wait, the rest are
//! turned away with 503 and `Retry-After`. There is never an unbounded queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// Limits concurrent calls.
#[derive(Debug)]
pub struct CallLimiter {
    running: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
}

/// Held while a call runs.
#[derive(Debug)]
pub struct CallPermit {
    _permit: OwnedSemaphorePermit,
}

impl CallLimiter {
    /// At most `max_running` calls at once and `max_waiting` queued behind them.
    pub fn new(max_running: usize, max_waiting: usize) -> Self {
        CallLimiter {
            running: Arc::new(Semaphore::new(max_running.max(1))),
            waiting: AtomicUsize::new(0),
            max_waiting,
        }
    }

    /// A permit to run, waiting in the bounded queue if needed; 503 when the queue is full.
    pub async fn acquire(&self) -> Result<CallPermit, ApiError> {
        if let Ok(p) = self.running.clone().try_acquire_owned() {
            return Ok(CallPermit { _permit: p });
        }
        let queued = self.waiting.fetch_add(1, Ordering::SeqCst);
        if queued >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::overloaded(1));
        }
        let permit = self.running.clone().acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        permit
            .map(|p| CallPermit { _permit: p })
            .map_err(|_| ApiError::overloaded(1))
    }

    /// Calls running now.
    pub fn running(&self, max_running: usize) -> usize {
        max_running.saturating_sub(self.running.available_permits())
    }

    /// Calls waiting now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}
