//! How the end of a sandboxed program becomes an [`Outcome`], for both backends that run a
//! program (process and Docker): what is kept of its output, and one verdict order.
//!
//! # Verdict order
//! The first rule that holds gives the status and the error:
//! 1. the wall-clock deadline passed → `timeout` (everything in the sandbox was killed,
//!    whatever it was doing);
//! 2. stdout went past its cap → `killed` (the tool was stopped for it);
//! 3. the program exited 0 → `success`, even if the kernel killed one of its processes for
//!    memory: the tool answered, so it dealt with that loss itself;
//! 4. the kernel killed a process for memory → `killed: out of memory`, whatever the exit
//!    status (a tool killed for memory usually dies of `SIGKILL` or exits with an error);
//! 5. another exit code → `failure`;
//! 6. a signal → `killed by signal N (NAME)`; a signal death has no exit code (Docker's
//!    `128 + N` is read as the signal `N`);
//! 7. no exit status at all → `failure`, saying why.
//!
//! When forks failed on the process limit, errors say how often, since that is the likely
//! cause of a failure.

use slovo_core::execution::ExecutionStatus;

use crate::{Outcome, ResourceLimits};

/// A tool's output as kept during its run: stdout up to its cap (going past it stops the
/// tool), stderr up to its cap (the rest is dropped and marked).
#[derive(Debug, Default)]
pub(crate) struct Captured {
    /// stdout as the tool's result (empty when a protocol consumed it).
    pub stdout: Vec<u8>,
    /// stderr, capped.
    pub stderr: Vec<u8>,
    /// More stderr was written than kept.
    pub stderr_truncated: bool,
    /// stdout exceeded its limit; the tool was killed.
    pub stdout_overflow: bool,
    /// The deadline passed; the tool was killed.
    pub timed_out: bool,
}

impl Captured {
    /// Keeps `chunk` of stdout if it fits under `limit`; otherwise marks the overflow and
    /// returns `false` (the caller stops the tool).
    pub fn keep_stdout(&mut self, chunk: &[u8], limit: usize) -> bool {
        if self.stdout.len() + chunk.len() > limit {
            self.stdout_overflow = true;
            return false;
        }
        self.stdout.extend_from_slice(chunk);
        true
    }

    /// Keeps as much of `chunk` of stderr as fits under `limit`.
    pub fn keep_stderr(&mut self, chunk: &[u8], limit: usize) {
        let room = limit.saturating_sub(self.stderr.len());
        self.stderr.extend_from_slice(&chunk[..chunk.len().min(room)]);
        self.stderr_truncated |= chunk.len() > room;
    }

    /// stderr as text, marked when some was dropped.
    fn stderr_text(&self) -> String {
        let mut stderr = String::from_utf8_lossy(&self.stderr).into_owned();
        if self.stderr_truncated {
            stderr.push_str("\n[stderr truncated]");
        }
        stderr
    }
}

/// How the program itself ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Exit {
    /// It exited with this code.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
    /// No usable exit status; the text says why.
    Unknown(String),
}

impl Exit {
    /// From a `waitpid` status.
    pub fn from_wait_status(status: i32) -> Exit {
        if libc::WIFEXITED(status) {
            Exit::Code(libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            Exit::Signal(libc::WTERMSIG(status))
        } else {
            Exit::Unknown(format!(
                "the wait status {status} is neither an exit nor a signal"
            ))
        }
    }

    /// From the exit code a container runtime reports: `128 + N` for death by signal `N`.
    pub fn from_container_code(code: i64) -> Exit {
        match code {
            129..=159 => Exit::Signal((code - 128) as i32),
            0..=255 => Exit::Code(code as i32),
            // A process the runtime could not reap normally (a tool that made itself traced).
            other => Exit::Unknown(format!(
                "the container runtime reported no usable exit status ({other})"
            )),
        }
    }
}

/// What the sandbox's accounting saw of the run.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Accounting {
    /// CPU time (ms).
    pub cpu_ms: Option<u64>,
    /// Peak memory (bytes).
    pub peak_memory_bytes: Option<u64>,
    /// The kernel killed a process for memory.
    pub out_of_memory: bool,
    /// Forks that failed on the process limit.
    pub pids_max_hits: u64,
}

/// The sandbox as the error messages name it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Enclosure {
    /// A process sandbox.
    Sandbox,
    /// A Docker container (removed after the call).
    Container,
}

/// The verdict on one run, in the order of the module documentation.
pub(crate) fn outcome(
    captured: Captured,
    exit: Exit,
    accounting: Accounting,
    limits: &ResourceLimits,
    enclosure: Enclosure,
    sandbox_id: String,
) -> Outcome {
    let pids_note = if accounting.pids_max_hits > 0 {
        format!(
            "; the process limit ({}) was reached {} times",
            limits.pids, accounting.pids_max_hits
        )
    } else {
        String::new()
    };
    let (status, error) = if captured.timed_out {
        let what = match enclosure {
            Enclosure::Sandbox => "the sandbox and every process in it were killed",
            Enclosure::Container => "the container and every process in it were killed and removed",
        };
        (
            ExecutionStatus::Timeout,
            Some(format!("timed out after {:?}; {what}{pids_note}", limits.timeout)),
        )
    } else if captured.stdout_overflow {
        (
            ExecutionStatus::Killed,
            Some("killed: stdout exceeded its limit".to_string()),
        )
    } else if exit == Exit::Code(0) {
        (ExecutionStatus::Success, None)
    } else if accounting.out_of_memory {
        (
            ExecutionStatus::Killed,
            Some(format!("killed: out of memory (limit {} MB)", limits.memory_mb)),
        )
    } else {
        match &exit {
            Exit::Code(c) => (
                ExecutionStatus::Failure,
                Some(format!("exited with code {c}{pids_note}")),
            ),
            Exit::Signal(sig) => (
                ExecutionStatus::Killed,
                Some(format!(
                    "killed by signal {sig} ({}){pids_note}",
                    signal_name(*sig)
                )),
            ),
            Exit::Unknown(why) => (ExecutionStatus::Failure, Some(format!("{why}{pids_note}"))),
        }
    };
    Outcome {
        status,
        output: Outcome::output_from_stdout(&captured.stdout),
        stderr: captured.stderr_text(),
        error,
        exit_code: match exit {
            Exit::Code(c) => Some(c),
            Exit::Signal(_) | Exit::Unknown(_) => None,
        },
        cpu_ms: accounting.cpu_ms,
        peak_memory_bytes: accounting.peak_memory_bytes,
        sandbox_id: Some(sandbox_id),
        network_denials: Vec::new(),
        warm: None,
    }
}

/// The name of the signals a tool is likely to die of.
pub(crate) fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGSYS => "SIGSYS",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGTERM => "SIGTERM",
        libc::SIGPIPE => "SIGPIPE",
        _ => "signal",
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limits() -> ResourceLimits {
        ResourceLimits {
            memory_mb: 64,
            cpu_percent: 100,
            pids: 16,
            storage_mb: 0,
            timeout: Duration::from_millis(500),
        }
    }

    fn verdict(captured: Captured, exit: Exit, accounting: Accounting) -> (ExecutionStatus, Option<String>) {
        let o = outcome(
            captured,
            exit,
            accounting,
            &limits(),
            Enclosure::Sandbox,
            "s".into(),
        );
        (o.status, o.error)
    }

    const OOM: Accounting = Accounting {
        cpu_ms: None,
        peak_memory_bytes: None,
        out_of_memory: true,
        pids_max_hits: 0,
    };

    #[test]
    fn the_verdict_order_holds() {
        let timed_out = || Captured {
            timed_out: true,
            stdout_overflow: true,
            ..Captured::default()
        };
        let overflow = || Captured {
            stdout_overflow: true,
            ..Captured::default()
        };
        // 1. the deadline beats everything else.
        assert_eq!(
            verdict(timed_out(), Exit::Code(0), OOM).0,
            ExecutionStatus::Timeout
        );
        // 2. the stdout cap beats the exit status and memory.
        assert_eq!(
            verdict(overflow(), Exit::Code(0), OOM),
            (
                ExecutionStatus::Killed,
                Some("killed: stdout exceeded its limit".into())
            )
        );
        // 3. exit 0 is a success even after a process was killed for memory.
        assert_eq!(
            verdict(Captured::default(), Exit::Code(0), OOM),
            (ExecutionStatus::Success, None)
        );
        // 4. otherwise memory explains the end, whatever the status.
        for exit in [Exit::Code(1), Exit::Signal(libc::SIGKILL)] {
            assert_eq!(
                verdict(Captured::default(), exit, OOM),
                (
                    ExecutionStatus::Killed,
                    Some("killed: out of memory (limit 64 MB)".into())
                )
            );
        }
        // 5.–7.
        let plain = Accounting::default();
        assert_eq!(
            verdict(Captured::default(), Exit::Code(3), plain),
            (ExecutionStatus::Failure, Some("exited with code 3".into()))
        );
        assert_eq!(
            verdict(Captured::default(), Exit::Signal(libc::SIGSEGV), plain),
            (
                ExecutionStatus::Killed,
                Some("killed by signal 11 (SIGSEGV)".into())
            )
        );
        assert_eq!(
            verdict(Captured::default(), Exit::Unknown("no status".into()), plain),
            (ExecutionStatus::Failure, Some("no status".into()))
        );
    }

    #[test]
    fn the_process_limit_is_named_when_it_was_reached() {
        let hits = Accounting {
            pids_max_hits: 2,
            ..Accounting::default()
        };
        assert_eq!(
            verdict(Captured::default(), Exit::Code(1), hits).1.as_deref(),
            Some("exited with code 1; the process limit (16) was reached 2 times")
        );
    }

    #[test]
    fn container_codes_above_128_are_signals() {
        assert_eq!(Exit::from_container_code(137), Exit::Signal(9));
        assert_eq!(Exit::from_container_code(3), Exit::Code(3));
        assert!(matches!(Exit::from_container_code(-1), Exit::Unknown(_)));
        let o = outcome(
            Captured::default(),
            Exit::from_container_code(137),
            Accounting::default(),
            &limits(),
            Enclosure::Container,
            "c".into(),
        );
        assert_eq!(o.exit_code, None);
        assert_eq!(o.error.as_deref(), Some("killed by signal 9 (SIGKILL)"));
    }

    #[test]
    fn output_is_capped() {
        let mut c = Captured::default();
        assert!(c.keep_stdout(b"1234", 5));
        assert!(!c.keep_stdout(b"56", 5));
        assert!(c.stdout_overflow);
        assert_eq!(c.stdout, b"1234");
        c.keep_stderr(b"abc", 4);
        c.keep_stderr(b"def", 4);
        assert_eq!(c.stderr, b"abcd");
        assert_eq!(c.stderr_text(), "abcd\n[stderr truncated]");
    }
}
