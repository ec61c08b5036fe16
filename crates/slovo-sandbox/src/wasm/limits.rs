//! Memory, table, time and CPU limits of one call.
//!
//! - **Memory and tables**: a [`ResourceLimiter`] sees every growth of a linear memory or a
//!   table, including the initial allocation at instantiation. Growth past the grant traps at
//!   once (rather than returning -1 to the guest), so an out-of-memory is as final and as
//!   recognisable as the kernel's OOM kill of a process: the call is recorded as `killed`.
//! - **Time and CPU**: epoch interruption. A ticker thread advances the engine's epoch every
//!   [`WasmConfig::tick`](super::WasmConfig::tick); at each tick a running instance enters
//!   [`CallClock::on_tick`], which traps once the wall-clock deadline has passed and, when the
//!   grant gives less than one CPU, sleeps the thread long enough to keep its CPU time within
//!   the granted share. Epochs cost a load and a compare per loop header and function entry
//!   (fuel costs several times more, on every basic block), and what the grant limits is wall
//!   time and CPU share, not a deterministic instruction count.

use std::time::{Duration, Instant};

use wasmtime::ResourceLimiter;

/// The memory limit was exceeded (carried by the trap).
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {0} MB exceeded")]
pub(crate) struct MemoryLimitExceeded(pub u64);

/// The table limit was exceeded (carried by the trap).
#[derive(Debug, thiserror::Error)]
#[error("table limit of {0} elements exceeded")]
pub(crate) struct TableLimitExceeded(pub usize);

/// The wall-clock deadline passed (carried by the trap).
#[derive(Debug, thiserror::Error)]
#[error("wall-clock limit of {0:?} exceeded")]
pub(crate) struct DeadlineExceeded(pub Duration);

/// Limits linear memories and tables of one instance, and remembers what happened.
#[derive(Debug)]
pub(crate) struct Limiter {
    memory_mb: u64,
    memory_bytes: usize,
    table_elements: usize,
    /// Largest linear memory size reached (bytes).
    pub(crate) peak_memory: usize,
    /// A growth past the memory limit was refused.
    pub(crate) memory_exceeded: bool,
    /// A growth past the table limit was refused.
    pub(crate) table_exceeded: bool,
}

impl Limiter {
    pub(crate) fn new(memory_mb: u64, table_elements: usize) -> Limiter {
        let bytes = memory_mb.saturating_mul(1024 * 1024);
        Limiter {
            memory_mb,
            memory_bytes: usize::try_from(bytes).unwrap_or(usize::MAX),
            table_elements,
            peak_memory: 0,
            memory_exceeded: false,
            table_exceeded: false,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_exceeded = true;
            return Err(wasmtime::Error::new(MemoryLimitExceeded(self.memory_mb)));
        }
        self.peak_memory = self.peak_memory.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.table_exceeded = true;
            return Err(wasmtime::Error::new(TableLimitExceeded(self.table_elements)));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        4
    }

    fn memories(&self) -> usize {
        1
    }
}

/// The clock of one call: its deadline and CPU share.
#[derive(Debug)]
pub(crate) struct CallClock {
    started: Instant,
    deadline: Instant,
    timeout: Duration,
    cpu_start: Duration,
    /// Percent of one CPU; 100 or more means no throttling.
    cpu_percent: u32,
    /// The deadline passed while the tool ran.
    pub(crate) timed_out: bool,
    /// Total time slept to keep within the CPU share.
    pub(crate) throttled: Duration,
}

impl CallClock {
    /// Starts the clock on the calling thread.
    pub(crate) fn start(timeout: Duration, cpu_percent: u32) -> CallClock {
        let started = Instant::now();
        CallClock {
            started,
            deadline: started + timeout,
            timeout,
            cpu_start: thread_cpu_time(),
            cpu_percent,
            timed_out: false,
            throttled: Duration::ZERO,
        }
    }

    /// CPU time used by the call so far (the call runs on one thread from start to end).
    pub(crate) fn cpu_used(&self) -> Duration {
        thread_cpu_time().saturating_sub(self.cpu_start)
    }

    /// Time left before the deadline.
    pub(crate) fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Fails with [`DeadlineExceeded`] once the deadline has passed.
    pub(crate) fn check_deadline(&mut self) -> wasmtime::Result<()> {
        if Instant::now() >= self.deadline {
            self.timed_out = true;
            return Err(wasmtime::Error::new(DeadlineExceeded(self.timeout)));
        }
        Ok(())
    }

    /// Called at every epoch tick while WebAssembly runs.
    pub(crate) fn on_tick(&mut self) -> wasmtime::Result<()> {
        self.check_deadline()?;
        if self.cpu_percent == 0 || self.cpu_percent >= 100 {
            return Ok(());
        }
        // Keep cpu_used / elapsed <= cpu_percent / 100: sleep until the elapsed wall time
        // allows the CPU time already used.
        let used = self.cpu_used();
        let allowed_elapsed = used.saturating_mul(100) / self.cpu_percent;
        let elapsed = self.started.elapsed();
        if allowed_elapsed > elapsed {
            let pause = (allowed_elapsed - elapsed).min(self.remaining());
            std::thread::sleep(pause);
            self.throttled += pause;
        }
        self.check_deadline()
    }
}

/// CPU time of the calling thread.
pub(crate) fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID needs nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_growth_past_the_grant_traps_and_is_remembered() {
        let mut l = Limiter::new(1, 10);
        assert!(l.memory_growing(0, 65536, None).unwrap());
        assert_eq!(l.peak_memory, 65536);
        assert!(l.memory_growing(65536, 2 * 1024 * 1024, None).is_err());
        assert!(l.memory_exceeded);
        assert!(l.table_growing(0, 11, None).is_err());
        assert!(l.table_exceeded);
    }

    #[test]
    fn the_clock_throttles_to_the_cpu_share() {
        let mut clock = CallClock::start(Duration::from_secs(5), 50);
        // Spin until the thread has really had 30 ms of CPU: on a busy machine that takes
        // longer than 30 ms of wall time, which only makes the bound below easier to meet.
        while clock.cpu_used() < Duration::from_millis(30) {
            std::hint::black_box(0u64);
        }
        clock.on_tick().unwrap();
        // 30 ms of CPU at 50% needs about 60 ms of wall time.
        assert!(
            clock.started.elapsed() >= Duration::from_millis(55),
            "{:?}",
            clock.started.elapsed()
        );
        assert!(!clock.timed_out);
    }
}
