//! The seccomp filter every tool runs under: an allow list.
//!
//! # Why an allow list
//! The namespaces, the read-only mount tree, the dropped capabilities and Landlock already
//! decide what a tool can reach. Seccomp removes the *kernel attack surface* a tool has no use
//! for and that those layers do not cover. A deny list cannot do that: whatever it does not
//! name passes, including socket families that no namespace isolates (`AF_VSOCK` reaches the
//! hypervisor's services from a VM; `AF_ALG` is a page-cache write, CVE-2026-31431), and every
//! system call a future kernel adds. So the policy names what ordinary programs need and
//! refuses everything else.
//!
//! # How the list was derived
//! From what ordinary tools call: `strace -f -c` of Debian's `python3` (threads, `subprocess`,
//! `multiprocessing`, `asyncio`, `ssl`, `sqlite3`, `getaddrinfo`), `node` (worker threads,
//! `child_process`, `fs`, `net`, `dns`, `os.networkInterfaces`), `bash` and `dash` running a
//! script of coreutils, `tar`, `gzip`, `find`, `sed`, `awk`, pipes, subshells and traps, a
//! `gcc -static` program with a thread and a fork, and a program without a C library — 100
//! distinct system calls in all. Around that core, the allow list of Docker's default profile
//! (moby `profiles/seccomp/default.json`) served as the reference for the rest of the
//! ordinary surface (signals, timers, IPC, extended attributes, scheduling), minus what it
//! allows and this policy refuses on purpose (below).
//!
//! # Policy
//! 1. A system call of another architecture (i386 `int 0x80`) kills the process; an x32
//!    system call (number with bit 30 set) fails with `EPERM`.
//! 2. A system call the policy names ([`Syscall`]) is allowed, refused with its errno, or
//!    decided by its arguments: the first [`Case`] whose conditions all hold, else its
//!    `otherwise` action.
//! 3. Every other number fails with `ENOSYS` ([`Policy::unlisted`]).
//!
//! # Which errno
//! - `ENOSYS` for every number the policy does not name: what a kernel without that call
//!   answers, so libraries fall back to an older call (glibc, libuv, Go and Rust's standard
//!   library all probe new calls this way) instead of failing. `clone3` is refused the same way
//!   on purpose: its flags live in memory a filter cannot read, and `ENOSYS` sends the C
//!   library back to `clone`, whose flags are checked.
//! - `EPERM` for the calls refused *on purpose* because they are dangerous (named below, each
//!   group saying why): a program gets the answer it would get without the privilege, and the
//!   refusal is visible as a refusal rather than as a missing feature.
//! - `EAFNOSUPPORT` for a socket family outside the allowed ones: what a kernel built without
//!   that family answers, so programs that probe families carry on. `EPROTONOSUPPORT` for a
//!   netlink protocol other than `NETLINK_ROUTE`, as for a protocol the kernel lacks.
//!
//! The process backend compiles this policy into its seccomp program (`process::seccomp`);
//! the Docker backend writes the same policy as a Docker profile (`docker::seccomp`).

/// A comparison on one argument of a system call (the low 32 bits, which hold every value
/// checked here: flags, socket domains, types and protocols, ioctl requests, personas; the
/// kernel reads these arguments as 32-bit `int`s, so the upper half is not the kernel's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    /// `arg == value`.
    Eq {
        /// Argument index (0–5).
        arg: u8,
        /// Value.
        value: u32,
    },
    /// `arg & mask == value`.
    MaskedEq {
        /// Argument index (0–5).
        arg: u8,
        /// Mask.
        mask: u32,
        /// Value.
        value: u32,
    },
    /// `arg & mask != 0`.
    AnyBit {
        /// Argument index (0–5).
        arg: u8,
        /// Mask.
        mask: u32,
    },
}

impl Cond {
    /// Whether the condition holds for `args` (the filter's semantics, for tests and tools).
    pub fn holds(&self, args: &[u64; 6]) -> bool {
        let lo = |arg: u8| args.get(usize::from(arg)).map_or(0, |a| *a as u32);
        match *self {
            Cond::Eq { arg, value } => lo(arg) == value,
            Cond::MaskedEq { arg, mask, value } => lo(arg) & mask == value,
            Cond::AnyBit { arg, mask } => lo(arg) & mask != 0,
        }
    }

    /// The argument the condition reads.
    pub fn arg(&self) -> u8 {
        match *self {
            Cond::Eq { arg, .. } | Cond::MaskedEq { arg, .. } | Cond::AnyBit { arg, .. } => arg,
        }
    }
}

/// What the filter does with a system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// The call goes to the kernel.
    Allow,
    /// The call fails with this errno without reaching the kernel.
    Errno(i32),
}

/// One case of a system call decided by its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// All must hold (at least one).
    pub conds: Vec<Cond>,
    /// The decision when they do.
    pub action: Action,
}

/// One system call the policy names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syscall {
    /// Name, as the kernel and libseccomp spell it.
    pub name: &'static str,
    /// Number on this architecture.
    pub nr: u32,
    /// Checked in order; the first whose conditions all hold decides. Empty for a call
    /// decided by its number alone.
    pub cases: Vec<Case>,
    /// The decision when no case holds.
    pub otherwise: Action,
}

impl Syscall {
    /// What the policy decides for this call with `args`.
    pub fn decide(&self, args: &[u64; 6]) -> Action {
        self.cases
            .iter()
            .find(|c| c.conds.iter().all(|cond| cond.holds(args)))
            .map_or(self.otherwise, |c| c.action)
    }
}

/// The whole policy: the named system calls (sorted by number, each once) and the decision for
/// every other number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The named system calls, sorted by number.
    pub syscalls: Vec<Syscall>,
    /// The decision for a number the policy does not name.
    pub unlisted: Action,
}

impl Policy {
    /// The named system call `name`.
    pub fn get(&self, name: &str) -> Option<&Syscall> {
        self.syscalls.iter().find(|s| s.name == name)
    }

    /// What the policy decides for the native system call `nr` with `args` (the architecture
    /// and x32 checks of the compiled program come before this).
    pub fn decide(&self, nr: u32, args: &[u64; 6]) -> Action {
        match self.syscalls.binary_search_by_key(&nr, |s| s.nr) {
            Ok(i) => self.syscalls.get(i).map_or(self.unlisted, |s| s.decide(args)),
            Err(_) => self.unlisted,
        }
    }
}

pub(crate) const fn eq(arg: u8, value: u32) -> Cond {
    Cond::Eq { arg, value }
}

pub(crate) fn case(conds: Vec<Cond>, action: Action) -> Case {
    Case { conds, action }
}

/// `(name, number)` pairs from `libc::SYS_*` constants.
macro_rules! named {
    ($($sys:ident),* $(,)?) => {
        vec![$((stringify!($sys).trim_start_matches("SYS_"), libc::$sys)),*]
    };
}

/// Every namespace flag of `clone`/`unshare`.
pub const NAMESPACE_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP
    | 0x80) as u32; // CLONE_NEWTIME

/// `PER_LINUX`: the ordinary persona.
pub const PER_LINUX: u32 = 0;
/// `personality(0xffffffff)`: asks for the current persona without changing it.
pub const PERSONALITY_QUERY: u32 = 0xffff_ffff;

/// Allowed whatever their arguments: what ordinary programs need.
#[rustfmt::skip]
fn allowed() -> Vec<(&'static str, libc::c_long)> {
    let mut calls = named![
        // Files: reading, writing, metadata, directories, links, permissions, attributes.
        SYS_read, SYS_write, SYS_readv, SYS_writev, SYS_pread64, SYS_pwrite64, SYS_preadv,
        SYS_pwritev, SYS_preadv2, SYS_pwritev2, SYS_lseek, SYS_openat, SYS_openat2, SYS_close,
        SYS_close_range, SYS_dup, SYS_dup3, SYS_fcntl, SYS_flock, SYS_fstat, SYS_newfstatat,
        SYS_statx, SYS_statfs, SYS_fstatfs, SYS_faccessat, SYS_faccessat2, SYS_readlinkat,
        SYS_getdents64, SYS_getcwd, SYS_chdir, SYS_fchdir, SYS_mkdirat, SYS_renameat,
        SYS_renameat2, SYS_linkat, SYS_symlinkat, SYS_unlinkat, SYS_fchmod, SYS_fchmodat,
        SYS_fchmodat2, SYS_fchown, SYS_fchownat, SYS_umask, SYS_truncate, SYS_ftruncate,
        SYS_fallocate, SYS_fsync, SYS_fdatasync, SYS_sync, SYS_syncfs, SYS_sync_file_range,
        SYS_utimensat, SYS_mknodat, SYS_getxattr, SYS_lgetxattr, SYS_fgetxattr, SYS_listxattr,
        SYS_llistxattr, SYS_flistxattr, SYS_setxattr, SYS_lsetxattr, SYS_fsetxattr,
        SYS_removexattr, SYS_lremovexattr, SYS_fremovexattr, SYS_copy_file_range, SYS_sendfile,
        SYS_splice, SYS_tee, SYS_vmsplice, SYS_readahead, SYS_fadvise64, SYS_pipe2,
        SYS_inotify_init1, SYS_inotify_add_watch, SYS_inotify_rm_watch,
        // Memory of the process itself.
        SYS_brk, SYS_mmap, SYS_munmap, SYS_mprotect, SYS_mremap, SYS_msync, SYS_madvise,
        SYS_mincore, SYS_mlock, SYS_mlock2, SYS_munlock, SYS_mlockall, SYS_munlockall,
        SYS_membarrier, SYS_memfd_create, SYS_pkey_alloc, SYS_pkey_free, SYS_pkey_mprotect,
        SYS_mseal,
        // Processes and threads (inside the tool's own PID namespace).
        SYS_execve, SYS_execveat, SYS_exit, SYS_exit_group, SYS_wait4, SYS_waitid, SYS_getpid,
        SYS_getppid, SYS_gettid, SYS_getuid, SYS_geteuid, SYS_getgid, SYS_getegid,
        SYS_getresuid, SYS_getresgid, SYS_getgroups, SYS_setuid, SYS_setgid, SYS_setreuid,
        SYS_setregid, SYS_setresuid, SYS_setresgid, SYS_setfsuid, SYS_setfsgid, SYS_setgroups,
        SYS_getpgid, SYS_setpgid, SYS_getsid, SYS_setsid, SYS_getpriority, SYS_setpriority,
        SYS_getrlimit, SYS_setrlimit, SYS_prlimit64, SYS_getrusage, SYS_capget, SYS_capset,
        SYS_prctl, SYS_set_tid_address, SYS_set_robust_list, SYS_get_robust_list, SYS_rseq,
        SYS_futex, SYS_futex_waitv, SYS_sched_yield, SYS_sched_getaffinity,
        SYS_sched_setaffinity, SYS_sched_getparam, SYS_sched_setparam, SYS_sched_getscheduler,
        SYS_sched_setscheduler, SYS_sched_get_priority_max, SYS_sched_get_priority_min,
        SYS_sched_rr_get_interval, SYS_sched_getattr, SYS_sched_setattr, SYS_getcpu,
        SYS_ioprio_get, SYS_ioprio_set, SYS_times, SYS_sysinfo, SYS_uname, SYS_getrandom,
        SYS_restart_syscall,
        // A tool may restrict itself further.
        SYS_seccomp, SYS_landlock_create_ruleset, SYS_landlock_add_rule,
        SYS_landlock_restrict_self,
        // Signals (to processes of the tool's own PID namespace).
        SYS_rt_sigaction, SYS_rt_sigprocmask, SYS_rt_sigreturn, SYS_rt_sigpending,
        SYS_rt_sigsuspend, SYS_rt_sigtimedwait, SYS_rt_sigqueueinfo, SYS_rt_tgsigqueueinfo,
        SYS_sigaltstack, SYS_kill, SYS_tkill, SYS_tgkill, SYS_pidfd_open, SYS_pidfd_send_signal,
        SYS_signalfd4,
        // Clocks and timers.
        SYS_nanosleep, SYS_clock_nanosleep, SYS_clock_gettime, SYS_clock_getres,
        SYS_gettimeofday, SYS_getitimer, SYS_setitimer, SYS_timer_create, SYS_timer_settime,
        SYS_timer_gettime, SYS_timer_getoverrun, SYS_timer_delete, SYS_timerfd_create,
        SYS_timerfd_settime, SYS_timerfd_gettime,
        // Waiting for events.
        SYS_epoll_create1, SYS_epoll_ctl, SYS_epoll_pwait, SYS_epoll_pwait2, SYS_ppoll,
        SYS_pselect6, SYS_eventfd2,
        // Sockets once made (`socket` and `socketpair` are decided by their family).
        SYS_connect, SYS_accept, SYS_accept4, SYS_bind, SYS_listen, SYS_getsockname,
        SYS_getpeername, SYS_sendto, SYS_recvfrom, SYS_sendmsg, SYS_recvmsg, SYS_sendmmsg,
        SYS_recvmmsg, SYS_shutdown, SYS_setsockopt, SYS_getsockopt,
        // System V and POSIX IPC (the tool's own IPC namespace).
        SYS_msgget, SYS_msgsnd, SYS_msgrcv, SYS_msgctl, SYS_semget, SYS_semop, SYS_semtimedop,
        SYS_semctl, SYS_shmget, SYS_shmat, SYS_shmdt, SYS_shmctl, SYS_mq_open, SYS_mq_unlink,
        SYS_mq_timedsend, SYS_mq_timedreceive, SYS_mq_notify, SYS_mq_getsetattr,
        // Asynchronous I/O of the old interface (databases use it; it does not bypass
        // seccomp the way io_uring does).
        SYS_io_setup, SYS_io_destroy, SYS_io_submit, SYS_io_cancel, SYS_io_getevents,
    ];
    calls.extend(arch_allowed());
    calls
}

/// x86-64's older calls that newer architectures replaced with the `*at` and `p*` forms
/// above; static binaries and older C libraries still make them.
#[cfg(target_arch = "x86_64")]
#[rustfmt::skip]
fn arch_allowed() -> Vec<(&'static str, libc::c_long)> {
    let mut calls = named![
        SYS_open, SYS_creat, SYS_stat, SYS_lstat, SYS_access, SYS_readlink, SYS_getdents,
        SYS_mkdir, SYS_rmdir, SYS_rename, SYS_link, SYS_symlink, SYS_unlink, SYS_chmod,
        SYS_chown, SYS_lchown, SYS_mknod, SYS_utime, SYS_utimes, SYS_futimesat, SYS_pipe,
        SYS_dup2, SYS_poll, SYS_select, SYS_epoll_create, SYS_epoll_wait, SYS_eventfd,
        SYS_signalfd, SYS_inotify_init, SYS_fork, SYS_vfork, SYS_alarm, SYS_pause, SYS_time,
        SYS_getpgrp,
        // Thread-local storage of the process itself (every x86-64 program sets it up).
        SYS_arch_prctl,
    ];
    // The C library's shadow stack (CET), where the C library and the CPU have it.
    calls.push(("map_shadow_stack", 453));
    calls
}

#[cfg(not(target_arch = "x86_64"))]
fn arch_allowed() -> Vec<(&'static str, libc::c_long)> {
    Vec::new()
}

/// Refused with `EPERM` whatever their arguments: known and dangerous.
#[rustfmt::skip]
fn refused() -> Vec<(&'static str, libc::c_long)> {
    let mut calls = named![
        // Reaching into other processes.
        SYS_ptrace, SYS_process_vm_readv, SYS_process_vm_writev, SYS_kcmp, SYS_pidfd_getfd,
        SYS_process_madvise, SYS_migrate_pages, SYS_move_pages,
        // New privilege domains and changes to the file system view.
        SYS_unshare, SYS_setns, SYS_mount, SYS_umount2, SYS_pivot_root, SYS_chroot,
        SYS_open_tree, SYS_move_mount, SYS_fsopen, SYS_fsconfig, SYS_fsmount, SYS_fspick,
        SYS_mount_setattr, SYS_open_by_handle_at, SYS_name_to_handle_at,
        // Kernel surfaces with a history of privilege escalations; io_uring would also run
        // operations the filter never sees.
        SYS_bpf, SYS_perf_event_open, SYS_userfaultfd, SYS_keyctl, SYS_add_key,
        SYS_request_key, SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register,
        SYS_fanotify_init,
        // The machine itself.
        SYS_kexec_load, SYS_kexec_file_load, SYS_init_module, SYS_finit_module,
        SYS_delete_module, SYS_reboot, SYS_swapon, SYS_swapoff, SYS_syslog, SYS_acct,
        SYS_quotactl, SYS_quotactl_fd, SYS_settimeofday, SYS_clock_settime,
        SYS_clock_adjtime, SYS_adjtimex, SYS_sethostname, SYS_setdomainname, SYS_vhangup,
    ];
    // The mount API's open_tree with attributes (Linux 6.15).
    calls.push(("open_tree_attr", 467));
    calls.extend(arch_refused());
    calls
}

#[cfg(target_arch = "x86_64")]
#[rustfmt::skip]
fn arch_refused() -> Vec<(&'static str, libc::c_long)> {
    named![
        // Hardware I/O ports, the local descriptor table (16-bit segments: a source of
        // kernel bugs, used by nothing a tool runs), and obsolete kernel interfaces.
        SYS_iopl, SYS_ioperm, SYS_modify_ldt, SYS_uselib, SYS__sysctl, SYS_lookup_dcookie,
    ]
}

#[cfg(not(target_arch = "x86_64"))]
fn arch_refused() -> Vec<(&'static str, libc::c_long)> {
    Vec::new()
}

/// Decided by their arguments.
fn filtered() -> Vec<Syscall> {
    use libc::*;
    let eperm = Action::Errno(EPERM);
    vec![
        // Threads and processes, but no new namespace (a new user namespace would give the
        // tool every capability inside it).
        Syscall {
            name: "clone",
            nr: SYS_clone as u32,
            cases: vec![case(
                vec![Cond::AnyBit {
                    arg: 0,
                    mask: NAMESPACE_FLAGS,
                }],
                eperm,
            )],
            otherwise: Action::Allow,
        },
        // Its flags are in memory a filter cannot read: ENOSYS sends the C library back to
        // clone.
        Syscall {
            name: "clone3",
            nr: SYS_clone3 as u32,
            cases: Vec::new(),
            otherwise: Action::Errno(ENOSYS),
        },
        // Unix, IPv4 and IPv6 sockets, and netlink's routing protocol (getaddrinfo and
        // getifaddrs read the addresses of the tool's own network namespace with it). Raw
        // IP sockets fail as they would without CAP_NET_RAW. Every other family, among them
        // AF_VSOCK (the hypervisor's services, which no network namespace isolates), AF_ALG
        // (the kernel's crypto API), AF_PACKET, AF_KEY, TIPC, RDS and CAN, is refused as a
        // kernel without it would; so is every other netlink protocol (uevents, audit, …).
        Syscall {
            name: "socket",
            nr: SYS_socket as u32,
            cases: vec![
                case(
                    vec![
                        eq(0, AF_INET as u32),
                        Cond::MaskedEq {
                            arg: 1,
                            mask: 0xf,
                            value: SOCK_RAW as u32,
                        },
                    ],
                    eperm,
                ),
                case(
                    vec![
                        eq(0, AF_INET6 as u32),
                        Cond::MaskedEq {
                            arg: 1,
                            mask: 0xf,
                            value: SOCK_RAW as u32,
                        },
                    ],
                    eperm,
                ),
                case(vec![eq(0, AF_UNIX as u32)], Action::Allow),
                case(vec![eq(0, AF_INET as u32)], Action::Allow),
                case(vec![eq(0, AF_INET6 as u32)], Action::Allow),
                case(
                    vec![eq(0, AF_NETLINK as u32), eq(2, NETLINK_ROUTE as u32)],
                    Action::Allow,
                ),
                case(vec![eq(0, AF_NETLINK as u32)], Action::Errno(EPROTONOSUPPORT)),
            ],
            otherwise: Action::Errno(EAFNOSUPPORT),
        },
        // Only Unix socket pairs (the only family besides TIPC that has them).
        Syscall {
            name: "socketpair",
            nr: SYS_socketpair as u32,
            cases: vec![case(vec![eq(0, AF_UNIX as u32)], Action::Allow)],
            otherwise: Action::Errno(EAFNOSUPPORT),
        },
        // Injecting input into a terminal.
        Syscall {
            name: "ioctl",
            nr: SYS_ioctl as u32,
            cases: vec![
                case(vec![eq(1, TIOCSTI as u32)], eperm),
                case(vec![eq(1, TIOCLINUX as u32)], eperm),
            ],
            otherwise: Action::Allow,
        },
        // The ordinary Linux persona and the query of the current one; other personas
        // switch off address-space randomisation or make data executable
        // (READ_IMPLIES_EXEC), or emulate other systems' behaviour.
        Syscall {
            name: "personality",
            nr: SYS_personality as u32,
            cases: vec![
                case(vec![eq(0, PER_LINUX)], Action::Allow),
                case(vec![eq(0, PERSONALITY_QUERY)], Action::Allow),
            ],
            otherwise: eperm,
        },
    ]
}

/// The policy: what is allowed, what is refused and why (see the module documentation).
pub fn policy() -> Policy {
    let plain = |(name, nr): (&'static str, libc::c_long), action| Syscall {
        name,
        nr: nr as u32,
        cases: Vec::new(),
        otherwise: action,
    };
    let mut syscalls: Vec<Syscall> = allowed()
        .into_iter()
        .map(|c| plain(c, Action::Allow))
        .chain(
            refused()
                .into_iter()
                .map(|c| plain(c, Action::Errno(libc::EPERM))),
        )
        .chain(filtered())
        .collect();
    syscalls.sort_by_key(|s| s.nr);
    Policy {
        syscalls,
        unlisted: Action::Errno(libc::ENOSYS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use std::collections::HashSet;

    #[test]
    fn the_policy_is_well_formed() {
        let policy = policy();
        let mut numbers = HashSet::new();
        let mut names = HashSet::new();
        for s in &policy.syscalls {
            assert!(numbers.insert(s.nr), "number {} named twice ({})", s.nr, s.name);
            assert!(names.insert(s.name), "{} named twice", s.name);
            for c in &s.cases {
                assert!(!c.conds.is_empty(), "{}: a case without conditions", s.name);
                assert!(c.conds.iter().all(|c| c.arg() < 6), "{}", s.name);
            }
        }
        assert!(policy.syscalls.windows(2).all(|w| w[0].nr < w[1].nr));
        assert_eq!(policy.unlisted, Action::Errno(libc::ENOSYS));
    }

    /// The union of `strace -f -c` over python3, node, bash, dash, a static glibc program and a
    /// program without a C library (see the module documentation).
    #[rustfmt::skip]
    const STRACED: &[&str] = &[
        "accept4", "access", "arch_prctl", "bind", "brk", "capget", "chmod",
        "clock_nanosleep", "close", "close_range", "connect", "copy_file_range", "dup2",
        "epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_wait", "eventfd2", "execve",
        "fadvise64", "fchdir", "fchmodat", "fchown", "fcntl", "fdatasync", "fstat",
        "fstatfs", "futex", "getcwd", "getdents64", "getegid", "geteuid", "getgid",
        "getgroups", "getpeername", "getpgrp", "getpid", "getppid", "getrandom",
        "getsockname", "getsockopt", "gettid", "getuid", "getxattr", "kill", "lgetxattr",
        "link", "listen", "lseek", "madvise", "mkdir", "mknodat", "mmap", "mprotect",
        "munmap", "newfstatat", "openat", "pipe2", "pkey_alloc", "poll", "pread64",
        "prlimit64", "pwrite64", "read", "readlink", "recvfrom", "recvmsg", "rename",
        "renameat", "renameat2", "rmdir", "rseq", "rt_sigaction", "rt_sigprocmask",
        "rt_sigreturn", "sched_getaffinity", "sendfile", "sendto", "set_robust_list",
        "set_tid_address", "setsockopt", "shutdown", "sigaltstack", "statfs", "statx",
        "symlinkat", "sysinfo", "umask", "uname", "unlink", "unlinkat", "utimensat",
        "vfork", "wait4", "write",
    ];

    #[test]
    fn what_ordinary_programs_call_is_allowed() {
        let policy = policy();
        for name in STRACED {
            let s = policy.get(name).unwrap_or_else(|| panic!("{name} is not named"));
            assert_eq!((s.cases.len(), s.otherwise), (0, Action::Allow), "{name}");
        }
        // Decided by their arguments: the ordinary cases pass.
        let d = |name: &str, args: [u64; 6]| policy.get(name).map(|s| s.decide(&args));
        let sigchld = libc::SIGCHLD as u64;
        let thread = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM
            | libc::CLONE_SETTLS
            | libc::CLONE_PARENT_SETTID
            | libc::CLONE_CHILD_CLEARTID) as u64;
        assert_eq!(d("clone", [sigchld, 0, 0, 0, 0, 0]), Some(Action::Allow));
        assert_eq!(d("clone", [thread, 0, 0, 0, 0, 0]), Some(Action::Allow));
        let stream = (libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) as u64;
        for family in [libc::AF_UNIX, libc::AF_INET, libc::AF_INET6] {
            assert_eq!(
                d("socket", [family as u64, stream, 0, 0, 0, 0]),
                Some(Action::Allow)
            );
            assert_eq!(d("socket", [family as u64, 2, 17, 0, 0, 0]), Some(Action::Allow));
        }
        let netlink = [libc::AF_NETLINK as u64, 3, 0, 0, 0, 0];
        assert_eq!(d("socket", netlink), Some(Action::Allow));
        assert_eq!(d("socketpair", [1, 1, 0, 0, 0, 0]), Some(Action::Allow));
        assert_eq!(d("ioctl", [1, libc::TCGETS, 0, 0, 0, 0]), Some(Action::Allow));
        assert_eq!(
            d("personality", [0xffff_ffff, 0, 0, 0, 0, 0]),
            Some(Action::Allow)
        );
        assert_eq!(d("personality", [0, 0, 0, 0, 0, 0]), Some(Action::Allow));
    }

    #[test]
    fn the_refusals_are_the_documented_ones() {
        let policy = policy();
        let eperm = Action::Errno(libc::EPERM);
        let d = |name: &str, args: [u64; 6]| policy.get(name).map(|s| s.decide(&args));
        for name in [
            "ptrace",
            "process_vm_readv",
            "unshare",
            "setns",
            "mount",
            "pivot_root",
            "bpf",
            "keyctl",
            "add_key",
            "perf_event_open",
            "userfaultfd",
            "io_uring_setup",
            "kexec_load",
            "init_module",
            "modify_ldt",
            "open_tree_attr",
        ] {
            assert_eq!(d(name, [0; 6]), Some(eperm), "{name}");
        }
        assert_eq!(d("clone3", [0; 6]), Some(Action::Errno(libc::ENOSYS)));
        let ns = libc::CLONE_NEWUSER as u64 | libc::SIGCHLD as u64;
        assert_eq!(d("clone", [ns, 0, 0, 0, 0, 0]), Some(eperm));
        // Socket families: only Unix, IPv4, IPv6 and netlink's routing protocol.
        let eafnosupport = Some(Action::Errno(libc::EAFNOSUPPORT));
        for family in [
            libc::AF_ALG,
            libc::AF_VSOCK,
            libc::AF_TIPC,
            libc::AF_RDS,
            libc::AF_CAN,
            libc::AF_PACKET,
            libc::AF_KEY,
            libc::AF_BLUETOOTH,
            libc::AF_XDP,
            0,
            46,
            1000,
            -1,
        ] {
            let f = family as u32 as u64;
            assert_eq!(d("socket", [f, 1, 0, 0, 0, 0]), eafnosupport, "{family}");
            assert_eq!(d("socketpair", [f, 1, 0, 0, 0, 0]), eafnosupport, "{family}");
        }
        // Upper bits the kernel ignores cannot turn a refused family into an allowed one,
        // nor the other way round.
        let vsock = libc::AF_VSOCK as u64 | 0x1_0000_0000;
        assert_eq!(d("socket", [vsock, 1, 0, 0, 0, 0]), eafnosupport);
        let eproto = Some(Action::Errno(libc::EPROTONOSUPPORT));
        for protocol in [libc::NETLINK_KOBJECT_UEVENT, libc::NETLINK_AUDIT, 4, 12, 16] {
            let args = [libc::AF_NETLINK as u64, 3, protocol as u64, 0, 0, 0];
            assert_eq!(d("socket", args), eproto, "{protocol}");
        }
        for (family, kind) in [(libc::AF_INET, libc::SOCK_RAW), (libc::AF_INET6, libc::SOCK_RAW)] {
            let args = [family as u64, (kind | libc::SOCK_CLOEXEC) as u64, 1, 0, 0, 0];
            assert_eq!(d("socket", args), Some(eperm));
        }
        // Terminal injection and unusual personas.
        assert_eq!(d("ioctl", [0, libc::TIOCSTI, 0, 0, 0, 0]), Some(eperm));
        assert_eq!(d("ioctl", [0, libc::TIOCLINUX, 0, 0, 0, 0]), Some(eperm));
        for persona in [0x0040_0000u64, 0x0004_0000, 0x0001, 0x0008, 0x0002_0000] {
            assert_eq!(
                d("personality", [persona, 0, 0, 0, 0, 0]),
                Some(eperm),
                "{persona:#x}"
            );
        }
        // A number no kernel has yet.
        assert_eq!(policy.decide(1000, &[0; 6]), Action::Errno(libc::ENOSYS));
    }
}
