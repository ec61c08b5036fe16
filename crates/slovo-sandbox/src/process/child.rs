//! The two sides of `clone`: [`spawn`] in the parent, [`child_main`] in the child.
//!
//! # Why `clone` and not a helper binary
//! Re-executing a helper (as bubblewrap or codex's `linux-sandbox` do) costs an `execve` and a
//! dynamic link before any isolation work starts. Here the parent prepares *everything* first —
//! C strings, the mount plan, the seccomp program, the Landlock rules — then calls `clone` with
//! the new namespaces, and the child runs a fixed sequence of raw system calls ending in
//! `execve` of the tool. The child never allocates, takes no lock and calls no C-library
//! wrapper that synchronises threads (the `setxid` family is called through `syscall(2)`):
//! after `clone` from a multi-threaded parent only the calling thread exists in the child.
//!
//! # Protocol
//! 1. The child joins its call cgroup through `tasks` files the parent opened (cgroup v1), then
//!    waits on the *sync* pipe.
//! 2. The parent writes the uid/gid maps (on cgroup v2 it also moves the child) and one byte.
//! 3. The child builds the sandbox and `execve`s. Any failure writes `(step, detail, errno)`
//!    to the *error* pipe (close-on-exec) and exits with 127; a successful `execve` closes the
//!    pipe, so the parent reads end-of-file.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::error::{ProcessError, Result};
use super::{caps, egress, landlock, mounts, namespaces, rlimits};

/// Bind sources in the private data directory one plan may have (the bundle, the state
/// volume); the child keeps their descriptors on its stack.
const MAX_PRIVATE_SOURCES: usize = 4;

/// The steps of the child, as reported on failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Step {
    /// Waiting for the parent.
    Sync = 0,
    /// Joining the call's cgroup.
    Cgroup,
    /// Opening the bind sources in the private data directory (the detail is the index of the
    /// mount operation).
    OpenPrivate,
    /// Dropping supplementary groups, setting gid and uid.
    Ids,
    /// Entering a new cgroup namespace.
    CgroupNamespace,
    /// Setting the hostname.
    Hostname,
    /// Bringing the loopback up.
    Loopback,
    /// Binding the egress listener on the loopback and handing it to the parent.
    Egress,
    /// Building the root (the detail is the index of the mount operation).
    Mounts,
    /// Changing to the working directory.
    Chdir,
    /// Applying rlimits.
    Rlimits,
    /// Connecting stdin, stdout, stderr.
    Stdio,
    /// Dropping capabilities.
    Capabilities,
    /// Setting `no_new_privs`.
    NoNewPrivs,
    /// Applying Landlock.
    Landlock,
    /// Installing the seccomp filter.
    Seccomp,
    /// Executing the tool.
    Exec,
}

impl Step {
    const ALL: [Step; 17] = [
        Step::Sync,
        Step::Cgroup,
        Step::OpenPrivate,
        Step::Ids,
        Step::CgroupNamespace,
        Step::Hostname,
        Step::Loopback,
        Step::Egress,
        Step::Mounts,
        Step::Chdir,
        Step::Rlimits,
        Step::Stdio,
        Step::Capabilities,
        Step::NoNewPrivs,
        Step::Landlock,
        Step::Seccomp,
        Step::Exec,
    ];

    /// What the step does, for an error message.
    pub fn name(self) -> &'static str {
        match self {
            Step::Sync => "wait for the parent",
            Step::Cgroup => "join the call's cgroup",
            Step::OpenPrivate => "open a bind source in the data directory",
            Step::Ids => "set uid and gid",
            Step::CgroupNamespace => "enter a cgroup namespace",
            Step::Hostname => "set the hostname",
            Step::Loopback => "bring the loopback up",
            Step::Egress => "hand the egress listener to the proxy",
            Step::Mounts => "build the root file system",
            Step::Chdir => "change directory",
            Step::Rlimits => "set rlimits",
            Step::Stdio => "connect stdio",
            Step::Capabilities => "drop capabilities",
            Step::NoNewPrivs => "set no_new_privs",
            Step::Landlock => "apply landlock",
            Step::Seccomp => "install the seccomp filter",
            Step::Exec => "execute the tool",
        }
    }
}

/// Everything the child needs, prepared before `clone`.
pub(crate) struct ChildPlan {
    pub(crate) mounts: mounts::Prepared,
    pub(crate) hostname: CString,
    pub(crate) cwd: CString,
    pub(crate) rlimits: Vec<(libc::__rlimit_resource_t, u64)>,
    pub(crate) last_cap: u32,
    pub(crate) landlock: Option<landlock::Prepared>,
    pub(crate) seccomp: Vec<libc::sock_filter>,
    pub(crate) program: CString,
    pub(crate) argv: Vec<CString>,
    pub(crate) envp: Vec<CString>,
    /// Open `tasks` files of the call's v1 cgroups, written by the child (owned by the caller).
    pub(crate) cgroup_tasks: Vec<RawFd>,
    /// Drop supplementary groups (root only; an unprivileged parent denied `setgroups`).
    pub(crate) set_groups: bool,
    /// With a network grant: bind the proxy listener in the new namespace and send it.
    pub(crate) egress: Option<egress::ChildEgress>,
}

/// A network namespace made ahead of time for this call, and the keeper that made it (see
/// [`namespaces::NetnsKeeper`]). Without one, `clone` creates the namespace.
pub(crate) struct PremadeNetns<'a> {
    pub(crate) keeper: &'a namespaces::NetnsKeeper,
    pub(crate) ns: OwnedFd,
}

/// The parent's ends of a started child.
pub(crate) struct Spawned {
    pub(crate) pid: i32,
    pub(crate) pidfd: OwnedFd,
    /// Write the "go" byte here.
    pub(crate) sync: OwnedFd,
    /// Read `(step, detail, errno)` or end-of-file here.
    pub(crate) errors: OwnedFd,
    pub(crate) stdin: OwnedFd,
    pub(crate) stdout: OwnedFd,
    pub(crate) stderr: OwnedFd,
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(ProcessError::sys("create a pipe"));
    }
    // SAFETY: fresh fds we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Clones the child into new namespaces. The child waits for [`Spawned::sync`].
pub(crate) fn spawn(plan: &ChildPlan, netns: Option<PremadeNetns<'_>>) -> Result<Spawned> {
    let (sync_r, sync_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (in_r, in_w) = pipe()?;
    let (out_r, out_w) = pipe()?;
    let (errout_r, errout_w) = pipe()?;
    let argv: Vec<*const libc::c_char> = plan
        .argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp: Vec<*const libc::c_char> = plan
        .envp
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let fds = ChildFds {
        sync: sync_r.as_raw_fd(),
        err: err_w.as_raw_fd(),
        stdin: in_r.as_raw_fd(),
        stdout: out_w.as_raw_fd(),
        stderr: errout_w.as_raw_fd(),
    };
    let mut pidfd: libc::c_int = -1;
    let mut flags = namespaces::clone_flags() | libc::CLONE_PIDFD as u64 | libc::SIGCHLD as u64;
    let own_netns = netns.is_none();
    if !own_netns {
        // The child inherits the namespace this thread is in for the clone.
        flags &= !(libc::CLONE_NEWNET as u64);
    }
    let mut clone = || {
        // SAFETY: clone without CLONE_VM and without a new stack behaves like fork: the child
        // gets a copy of this thread's stack and continues here. It only runs `child_main`,
        // which never returns and uses raw system calls only.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone,
                flags,
                0usize,
                &mut pidfd as *mut libc::c_int,
                0usize,
                0usize,
            )
        };
        if pid == 0 {
            child_main(plan, own_netns, &fds, &argv, &envp);
        }
        pid
    };
    let pid = match &netns {
        Some(n) => n.keeper.clone_in(&n.ns, clone)?,
        None => clone(),
    };
    // The child holds the namespace now; ours goes.
    drop(netns);
    if pid < 0 {
        let e = ProcessError::sys("clone the sandbox");
        tracing::error!(error = %e, "failed to clone");
        return Err(e);
    }
    // SAFETY: the kernel returned a fresh pidfd.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    drop((sync_r, err_w, in_r, out_w, errout_w));
    Ok(Spawned {
        pid: pid as i32,
        pidfd,
        sync: sync_w,
        errors: err_r,
        stdin: in_w,
        stdout: out_r,
        stderr: errout_r,
    })
}

struct ChildFds {
    sync: RawFd,
    err: RawFd,
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
}

/// Decodes a failure report of the child.
pub(crate) fn decode_failure(buf: &[u8; 12], plan_steps: &mounts::Prepared) -> ProcessError {
    let word = |i: usize| u32::from_ne_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    let step = Step::ALL.get(word(0) as usize).copied().unwrap_or(Step::Exec);
    let detail = word(4) as usize;
    let errno = word(8) as i32;
    let name = match step {
        Step::Mounts | Step::OpenPrivate => {
            plan_steps.ops.get(detail).map(|(_, s)| *s).unwrap_or(step.name())
        }
        _ => step.name(),
    };
    ProcessError::Setup {
        step: name,
        source: io::Error::from_raw_os_error(errno),
    }
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

fn fail(fd: RawFd, step: Step, detail: u32, errno: i32) -> ! {
    let mut buf = [0u8; 12];
    buf[0..4].copy_from_slice(&(step as u32).to_ne_bytes());
    buf[4..8].copy_from_slice(&detail.to_ne_bytes());
    buf[8..12].copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: writing a stack buffer to our pipe, then exiting without running destructors.
    unsafe {
        libc::write(fd, buf.as_ptr().cast(), buf.len());
        libc::_exit(127)
    }
}

/// The kernel's `struct sigaction` (for `rt_sigaction`).
#[repr(C)]
struct KernelSigaction {
    handler: libc::sighandler_t,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// Reads one byte from the sync pipe; false if the parent closed it (gave up or died).
fn wait_byte(fd: RawFd) -> bool {
    let mut byte = 0u8;
    loop {
        // SAFETY: reading one byte into a stack variable.
        let r = unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) };
        if r == 1 {
            return true;
        }
        if r < 0 && errno() == libc::EINTR {
            continue;
        }
        return false;
    }
}

fn sys(r: libc::c_long) -> Result<(), i32> {
    if r < 0 { Err(errno()) } else { Ok(()) }
}

/// The child: build the sandbox and `execve` the tool. Never returns.
fn child_main(
    plan: &ChildPlan,
    own_netns: bool,
    fds: &ChildFds,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> ! {
    let id = namespaces::TOOL_ID as libc::c_long;
    let e = fds.err;
    // SAFETY (whole function): raw system calls on fds and C strings prepared by the parent.
    unsafe {
        // Join the call's cgroup(s) first, so that everything below is accounted to the call.
        // Each fd is a v1 `tasks` file the parent opened: the kernel checks the opener's
        // credentials, and a thread moving itself ("0") skips the global lock whose writers
        // wait for an RCU grace period (milliseconds under load) — a parent writing our pid
        // would take it.
        for fd in &plan.cgroup_tasks {
            if libc::write(*fd, b"0".as_ptr().cast(), 1) != 1 {
                fail(e, Step::Cgroup, 0, errno());
            }
        }
        // The parent has written the id maps (and, on cgroup v2, moved us).
        if !wait_byte(fds.sync) {
            libc::_exit(127);
        }
        libc::close(fds.sync);

        // The bundle and the state volume lie in the private data directory, which the tool's
        // uid cannot traverse: open them while this process still has the parent's identity.
        let mut opened = [(usize::MAX, -1); MAX_PRIVATE_SOURCES];
        let mut n_opened = 0;
        for (i, (op, _)) in plan.mounts.ops.iter().enumerate() {
            match mounts::open_private_source(op) {
                Ok(None) => {}
                Ok(Some(fd)) if n_opened < MAX_PRIVATE_SOURCES => {
                    opened[n_opened] = (i, fd);
                    n_opened += 1;
                }
                Ok(Some(_)) => fail(e, Step::OpenPrivate, i as u32, libc::E2BIG),
                Err(x) => fail(e, Step::OpenPrivate, i as u32, x),
            }
        }

        let groups = if plan.set_groups {
            libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>())
        } else {
            0
        };
        if let Err(x) = sys(groups)
            .and_then(|_| sys(libc::syscall(libc::SYS_setresgid, id, id, id)))
            .and_then(|_| sys(libc::syscall(libc::SYS_setresuid, id, id, id)))
        {
            fail(e, Step::Ids, 0, x);
        }
        if libc::unshare(libc::CLONE_NEWCGROUP) < 0 {
            fail(e, Step::CgroupNamespace, 0, errno());
        }
        if libc::sethostname(plan.hostname.as_ptr(), plan.hostname.as_bytes().len()) < 0 {
            fail(e, Step::Hostname, 0, errno());
        }
        // A namespace made ahead of time has its loopback up already (and is not ours to
        // change).
        if own_netns && let Err(x) = namespaces::loopback_up() {
            fail(e, Step::Loopback, 0, x);
        }
        // The loopback is up and the tool does not exist yet: the only way out this sandbox
        // will have is created now.
        if let Some(plan) = &plan.egress
            && let Err(x) = egress::send_listener(plan)
        {
            fail(e, Step::Egress, 0, x);
        }
        for (i, (op, _)) in plan.mounts.ops.iter().enumerate() {
            let fd = opened[..n_opened]
                .iter()
                .find(|(at, _)| *at == i)
                .map(|(_, fd)| *fd);
            if let Err(x) = mounts::run(op, fd) {
                fail(e, Step::Mounts, i as u32, x);
            }
        }
        if libc::chdir(plan.cwd.as_ptr()) < 0 {
            fail(e, Step::Chdir, 0, errno());
        }
        if let Err(x) = rlimits::apply(&plan.rlimits) {
            fail(e, Step::Rlimits, 0, x);
        }
        for (from, to) in [(fds.stdin, 0), (fds.stdout, 1), (fds.stderr, 2)] {
            if libc::dup2(from, to) < 0 {
                fail(e, Step::Stdio, 0, errno());
            }
        }
        // The Rust runtime ignores SIGPIPE, our own parent may ignore others, and a runtime
        // thread may block signals; ignored dispositions and the mask survive execve, so
        // restore the defaults.
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        // Raw rt_sigaction: the C library refuses its internal signals (32, 33).
        let dfl = KernelSigaction {
            handler: libc::SIG_DFL,
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        for sig in 1..=64 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    &dfl,
                    std::ptr::null_mut::<KernelSigaction>(),
                    8usize,
                );
            }
        }
        // Every other descriptor (the parent's, other calls' pipes) closes at execve.
        if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) < 0 {
            fail(e, Step::Stdio, 1, errno());
        }
        if let Err((_, x)) = caps::drop_all(plan.last_cap) {
            fail(e, Step::Capabilities, 0, x);
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 {
            fail(e, Step::NoNewPrivs, 0, errno());
        }
        if let Some(ll) = &plan.landlock
            && let Err(x) = ll.apply()
        {
            fail(e, Step::Landlock, 0, x);
        }
        let prog = libc::sock_fprog {
            len: plan.seccomp.len() as u16,
            filter: plan.seccomp.as_ptr().cast_mut(),
        };
        if libc::syscall(
            libc::SYS_seccomp,
            1u32, /* SECCOMP_SET_MODE_FILTER */
            0u32,
            &prog,
        ) < 0
        {
            fail(e, Step::Seccomp, 0, errno());
        }
        libc::execve(plan.program.as_ptr(), argv.as_ptr(), envp.as_ptr());
        fail(e, Step::Exec, 0, errno())
    }
}
