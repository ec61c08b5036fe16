//! One sandboxed run, in two halves: [`ProcessBackend::start_program`] builds the sandbox and
//! starts the program in it; the conversation happens; [`ProcessBackend::finish`] reaps it and
//! reads its accounting into an [`Outcome`]. A process tool and a cold MCP call do both at once
//! ([`ProcessBackend::run_program`]); a warm MCP server is started long before its call and
//! waits, started and initialised, in its pool ([`crate::mcp`]) between the two halves.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use slovo_core::execution::ExecutionStatus;
use slovo_egress::CallGrant;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, Interest};
use tokio::net::unix::pipe;
use tokio::time::Instant;

use super::cgroups::CallCgroup;
use super::error::Result;
use super::{
    CALLS, Conversed, Dialogue, ProcessBackend, ProcessError, Program, ToolIo, child, egress,
    explain_setup_failure, namespaces, sanitize,
};
use crate::ending;
use crate::{Outcome, ResourceLimits, SandboxSpec};

/// A program started in its sandbox, not yet reaped. Dropping it kills everything in the
/// sandbox and removes its cgroup (off the async threads), so that no process, cgroup or
/// egress session outlives it, whichever way it is let go of.
pub(crate) struct Started {
    /// The sandbox's id (on the record).
    pub name: String,
    /// When the program was started.
    pub started_at: Instant,
    limits: ResourceLimits,
    /// Its end of the conversation, until [`Started::take_io`].
    io: Option<ToolIo>,
    running: Running,
    cgroup: Option<CallCgroup>,
    /// The egress session of a call with a network grant; dropping it cuts every connection.
    egress: Option<slovo_egress::Session>,
}

/// What starting a program gave.
pub(crate) enum Launch {
    /// It runs.
    Started(Box<Started>),
    /// The sandbox could not be built or the program not executed: the call's outcome.
    Failed(Box<Outcome>),
}

impl Started {
    /// The program's pipes and exit, for the conversation (once).
    pub fn take_io(&mut self) -> Result<ToolIo> {
        self.io
            .take()
            .ok_or_else(|| ProcessError::refused("the sandbox's pipes were already taken"))
    }

    /// Kills everything in the sandbox, waits for its first process (whose exit ends every
    /// other process of the PID namespace) and removes its cgroup. Blocking.
    pub fn destroy(mut self) {
        self.destroy_now();
    }

    fn destroy_now(&mut self) {
        self.io = None;
        self.egress = None;
        self.running.reap();
        if let Some(cg) = self.cgroup.take()
            && let Err(e) = cg.remove()
        {
            tracing::warn!(error = %e, sandbox = %self.name, "failed to remove a call cgroup");
        }
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if self.running.reaped {
            return;
        }
        // Killed at once; waiting for the exit and removing the cgroup happen off the async
        // threads (both can take milliseconds).
        self.running.kill();
        let mut rest = Started {
            name: std::mem::take(&mut self.name),
            started_at: self.started_at,
            limits: self.limits.clone(),
            io: self.io.take(),
            running: Running {
                pid: self.running.pid,
                pidfd: self.running.pidfd.take(),
                reaped: false,
            },
            cgroup: self.cgroup.take(),
            egress: self.egress.take(),
        };
        self.running.reaped = true;
        std::thread::spawn(move || rest.destroy_now());
    }
}

impl ProcessBackend {
    /// Runs `program` for one call in a fresh sandbox built from `spec`, and lets `dialogue`
    /// talk to it; the sandbox, its limits and its egress are the same whatever is said.
    pub(crate) async fn run_program(
        &self,
        spec: &SandboxSpec,
        program: &Program,
        dialogue: &dyn Dialogue,
    ) -> Result<Outcome> {
        let mut started = match self.start_program(spec, program).await? {
            Launch::Started(s) => s,
            Launch::Failed(outcome) => return Ok(*outcome),
        };
        let conversed = dialogue.converse(started.take_io()?).await;
        Ok(self.finish(*started, conversed))
    }

    /// Builds a fresh sandbox from `spec` and starts `program` in it. The deadline of its
    /// pipes is `spec`'s timeout from now.
    pub(crate) async fn start_program(&self, spec: &SandboxSpec, program: &Program) -> Result<Launch> {
        if let Some(r) = &self.refusal {
            return Err(ProcessError::refused(r.clone()));
        }
        let system_paths = &program.system_paths;
        let Some(bundle) = &spec.bundle_dir else {
            return Err(ProcessError::refused("a process tool needs its installed bundle"));
        };
        let data = self.prepare_data(spec).await?;
        let started_at = Instant::now();
        let deadline = started_at + spec.limits.timeout;
        let name = format!(
            "slovo-{}-{}-{}",
            std::process::id(),
            CALLS.fetch_add(1, Ordering::Relaxed),
            sanitize(&spec.execution_id)
        );
        // Declared before `running`: dropped (removed) after the child is killed.
        let cgroup = match &self.cgroups {
            Some(k) => Some(k.take(&spec.limits)?),
            None => None,
        };
        let cgroup_tasks = match &cgroup {
            Some(cg) => cg.task_files()?,
            None => Vec::new(),
        };
        let mut plan = self.child_plan(spec, bundle, data, program)?;
        plan.cgroup_tasks = cgroup_tasks.iter().map(|f| f.as_raw_fd()).collect();
        let mut hand_over = match spec.network.allows_network() {
            true => Some(egress::HandOver::new()?),
            false => None,
        };
        plan.egress = hand_over.as_ref().map(egress::HandOver::child_plan);
        let premade = self
            .netns
            .as_ref()
            .and_then(|keeper| keeper.take().map(|ns| child::PremadeNetns { keeper, ns }));
        let spawned = child::spawn(&plan, premade)?;
        if let Some(h) = &mut hand_over {
            h.close_child_end();
        }
        let io_err = |e: std::io::Error| ProcessError::Sys {
            action: "watch the sandbox",
            source: e,
        };
        // The pidfd twice: one to wait on (registered with the reactor), one to kill and reap.
        let watched_pidfd = spawned.pidfd.try_clone().map_err(io_err)?;
        let mut running = Running {
            pid: spawned.pid,
            pidfd: Some(spawned.pidfd),
            reaped: false,
        };
        if !self.support.root {
            let path = format!("/proc/{}/setgroups", spawned.pid);
            std::fs::write(&path, "deny").map_err(|e| ProcessError::io("write", path, e))?;
        }
        namespaces::write_id_maps(spawned.pid, self.host_uid, self.host_gid)?;
        drop(cgroup_tasks);
        if let Some(cg) = &cgroup {
            // cgroup v2: the parent moves the child (v1 children moved themselves).
            cg.add_if_v2(spawned.pid)?;
        }
        // SAFETY: writing one byte to our pipe.
        if unsafe { libc::write(spawned.sync.as_raw_fd(), b"1".as_ptr().cast(), 1) } != 1 {
            return Err(ProcessError::sys("start the sandbox"));
        }
        drop(spawned.sync);

        let mut errors = pipe::Receiver::from_owned_fd(spawned.errors).map_err(io_err)?;
        let mut report = [0u8; 12];
        let mut got = 0;
        while got < report.len() {
            match tokio::time::timeout_at(deadline, errors.read(&mut report[got..])).await {
                Ok(Ok(0)) | Err(_) => break,
                Ok(Ok(n)) => got += n,
                Ok(Err(e)) => return Err(io_err(e)),
            }
        }
        drop(errors);
        if got == report.len() {
            running.reap();
            let err = child::decode_failure(&report, &plan.mounts);
            return Ok(Launch::Failed(Box::new(Outcome {
                sandbox_id: Some(name),
                ..Outcome::failed(explain_setup_failure(err, &plan.program, *system_paths))
            })));
        }

        // The child has exec'd, so its listener is waiting on the hand-over socket. Served from
        // here until the sandbox is let go of; dropping the session cuts every connection.
        let egress = match hand_over {
            Some(h) => {
                let listener = h.receive()?;
                let grant = CallGrant {
                    execution_id: spec.execution_id.clone(),
                    policy: spec.network.clone(),
                };
                Some(
                    self.egress
                        .serve(listener, grant)
                        .map_err(|e| ProcessError::Sys {
                            action: "serve the egress listener",
                            source: std::io::Error::other(e.to_string()),
                        })?,
                )
            }
            None => None,
        };

        let stdin = pipe::Sender::from_owned_fd(spawned.stdin).map_err(io_err)?;
        let stdout = pipe::Receiver::from_owned_fd(spawned.stdout).map_err(io_err)?;
        let stderr = pipe::Receiver::from_owned_fd(spawned.stderr).map_err(io_err)?;
        // SAFETY: the pidfd stays open and owned by the AsyncFd.
        let exit = unsafe { AsyncFd::register_with_interest(watched_pidfd, Interest::READABLE) }
            .map_err(|e| io_err(std::io::Error::other(e.to_string())))?;
        let io = ToolIo {
            stdin,
            stdout,
            stderr,
            exit: Arc::new(exit),
            deadline,
            stdout_limit: self.config.stdout_limit,
            stderr_limit: self.config.stderr_limit,
        };
        Ok(Launch::Started(Box::new(Started {
            name,
            started_at,
            limits: spec.limits.clone(),
            io: Some(io),
            running,
            cgroup,
            egress,
        })))
    }

    /// Waits for the program to end (killing it if it has not), and turns what the
    /// conversation saw, its exit status and the cgroup's accounting into the call's outcome.
    pub(crate) fn finish(&self, mut started: Started, conversed: Conversed) -> Outcome {
        started.io = None;
        let status = started.running.reap();
        let exit = ending::Exit::from_wait_status(status);
        let clean_exit = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
        let outcome = self.read_outcome(&mut started, conversed, exit, clean_exit);
        if let (Some(cg), Some(k)) = (started.cgroup.take(), &self.cgroups) {
            k.retire(cg);
        }
        outcome
    }

    /// The outcome of a program that is still running and is about to be destroyed (a warm
    /// MCP server after its one answer): the conversation's verdict and the accounting so far.
    /// It has no exit status; the caller destroys it ([`Started::destroy`]) off the call path.
    pub(crate) fn outcome_before_destroy(&self, started: &mut Started, conversed: Conversed) -> Outcome {
        let exit = ending::Exit::Unknown("the server was destroyed after its answer".into());
        self.read_outcome(started, conversed, exit, false)
    }

    fn read_outcome(
        &self,
        started: &mut Started,
        conversed: Conversed,
        exit: ending::Exit,
        clean_exit: bool,
    ) -> Outcome {
        let watched = conversed.watched;
        let clean = match &conversed.verdict {
            Some(v) => v.status == ExecutionStatus::Success,
            None => clean_exit,
        } && !watched.timed_out
            && !watched.stdout_overflow;
        let stats = started
            .cgroup
            .as_ref()
            .map(|c| c.stats(!clean))
            .unwrap_or_default();
        let limit_hit = stats.oom_kills > 0 || watched.timed_out || watched.stdout_overflow;
        let accounting = ending::Accounting {
            cpu_ms: stats.cpu_ms,
            peak_memory_bytes: stats.peak_memory_bytes,
            out_of_memory: stats.oom_kills > 0,
            pids_max_hits: stats.pids_max_hits,
        };
        let mut outcome = ending::outcome(
            watched,
            exit,
            accounting,
            &started.limits,
            ending::Enclosure::Sandbox,
            started.name.clone(),
        );
        if let Some(v) = conversed.verdict {
            v.apply(&mut outcome, limit_hit);
        }
        outcome.network_denials = started.egress.take().map(|s| s.finish()).unwrap_or_default();
        outcome
    }
}

/// A started child: killed and reaped on drop unless reaped already.
pub(super) struct Running {
    pub pid: i32,
    pub pidfd: Option<OwnedFd>,
    pub reaped: bool,
}

impl Running {
    fn kill(&self) {
        if let Some(fd) = &self.pidfd {
            // SAFETY: pidfd_send_signal on our own pidfd.
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    libc::SIGKILL,
                    0usize,
                    0u32,
                )
            };
        }
    }

    /// Waits for the child (kills it first if needed) and returns its wait status.
    pub fn reap(&mut self) -> i32 {
        let mut status = 0;
        if !self.reaped {
            // SAFETY: waiting for our own child.
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            if r == 0 {
                self.kill();
                // SAFETY: as above.
                unsafe { libc::waitpid(self.pid, &mut status, 0) };
            }
            self.reaped = true;
        }
        status
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
            let pid = self.pid;
            // The child dies at once; reap it off the async thread.
            std::thread::spawn(move || {
                let mut status = 0;
                // SAFETY: waiting for our own child.
                unsafe { libc::waitpid(pid, &mut status, 0) };
            });
        }
    }
}
