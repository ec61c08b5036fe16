//! The seccomp filter every tool runs under.
//!
//! # Why a deny list
//! The namespaces, the read-only mount tree, the dropped capabilities and Landlock already
//! decide what a tool can reach. Seccomp removes the *kernel attack surface* a tool has no use
//! for and that those layers do not cover: system calls that create new privilege domains
//! (`unshare`, `setns`, namespace flags of `clone`), that reach across processes (`ptrace`,
//! `process_vm_*`), that bypass seccomp itself (`io_uring`), or that are rarely-needed and
//! historically buggy (`bpf`, `keyctl`, `perf_event_open`, `userfaultfd`, the mount API). A
//! deny list keeps ordinary programs (interpreters, compilers, shells) working without
//! curating hundreds of system calls, and every entry below says what it protects.
//!
//! # Policy
//! 1. A system call from another architecture (i386 `int 0x80`) kills the process; an x32
//!    system call (number with bit 30 set) fails with `EPERM`.
//! 2. Each [`Rule`] of [`policy`] fails its system call with its errno when its conditions
//!    hold (all of them; no condition = always).
//! 3. Everything else is allowed.
//!
//! `clone3` fails with `ENOSYS`, not `EPERM`: its flags live in memory a filter cannot read,
//! and `ENOSYS` makes the C library fall back to `clone`, whose flags are checked.
//!
//! The program is compiled in the parent by the pure function [`compile`] (tested below on
//! its whole output) and installed by the child with one `seccomp(2)` call, last before
//! `execve`.

use libc::sock_filter;

/// A comparison on one argument of a system call (the low 32 bits, which hold every value
/// checked here: flags, socket domains and types, ioctl requests).
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

/// One denied system call (under conditions), and the errno it fails with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Name, for documentation and tests.
    pub name: &'static str,
    /// System call number.
    pub nr: i64,
    /// All must hold; empty means always.
    pub conds: Vec<Cond>,
    /// The errno returned.
    pub errno: i32,
}

impl Rule {
    fn deny(name: &'static str, nr: i64) -> Rule {
        Rule {
            name,
            nr,
            conds: Vec::new(),
            errno: libc::EPERM,
        }
    }
    fn deny_if(name: &'static str, nr: i64, conds: Vec<Cond>) -> Rule {
        Rule {
            name,
            nr,
            conds,
            errno: libc::EPERM,
        }
    }
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

/// The policy: what is denied and why (see the module documentation).
pub fn policy() -> Vec<Rule> {
    use libc::*;
    let mut rules = vec![
        // Reaching into other processes.
        Rule::deny("ptrace", SYS_ptrace),
        Rule::deny("process_vm_readv", SYS_process_vm_readv),
        Rule::deny("process_vm_writev", SYS_process_vm_writev),
        Rule::deny("kcmp", SYS_kcmp),
        Rule::deny("pidfd_getfd", SYS_pidfd_getfd),
        // New privilege domains and changes to the file system view.
        Rule::deny("unshare", SYS_unshare),
        Rule::deny("setns", SYS_setns),
        Rule::deny_if(
            "clone",
            SYS_clone,
            vec![Cond::AnyBit {
                arg: 0,
                mask: NAMESPACE_FLAGS,
            }],
        ),
        Rule {
            name: "clone3",
            nr: SYS_clone3,
            conds: Vec::new(),
            errno: ENOSYS,
        },
        Rule::deny("mount", SYS_mount),
        Rule::deny("umount2", SYS_umount2),
        Rule::deny("pivot_root", SYS_pivot_root),
        Rule::deny("chroot", SYS_chroot),
        Rule::deny("open_tree", SYS_open_tree),
        Rule::deny("move_mount", SYS_move_mount),
        Rule::deny("fsopen", SYS_fsopen),
        Rule::deny("fsconfig", SYS_fsconfig),
        Rule::deny("fsmount", SYS_fsmount),
        Rule::deny("fspick", SYS_fspick),
        Rule::deny("mount_setattr", SYS_mount_setattr),
        Rule::deny("open_by_handle_at", SYS_open_by_handle_at),
        Rule::deny("name_to_handle_at", SYS_name_to_handle_at),
        // Kernel surfaces with a history of privilege escalations.
        Rule::deny("bpf", SYS_bpf),
        Rule::deny("perf_event_open", SYS_perf_event_open),
        Rule::deny("userfaultfd", SYS_userfaultfd),
        Rule::deny("keyctl", SYS_keyctl),
        Rule::deny("add_key", SYS_add_key),
        Rule::deny("request_key", SYS_request_key),
        Rule::deny("io_uring_setup", SYS_io_uring_setup),
        Rule::deny("io_uring_enter", SYS_io_uring_enter),
        Rule::deny("io_uring_register", SYS_io_uring_register),
        Rule::deny("fanotify_init", SYS_fanotify_init),
        // The machine itself.
        Rule::deny("kexec_load", SYS_kexec_load),
        Rule::deny("kexec_file_load", SYS_kexec_file_load),
        Rule::deny("init_module", SYS_init_module),
        Rule::deny("finit_module", SYS_finit_module),
        Rule::deny("delete_module", SYS_delete_module),
        Rule::deny("reboot", SYS_reboot),
        Rule::deny("swapon", SYS_swapon),
        Rule::deny("swapoff", SYS_swapoff),
        Rule::deny("syslog", SYS_syslog),
        Rule::deny("acct", SYS_acct),
        Rule::deny("quotactl", SYS_quotactl),
        Rule::deny("settimeofday", SYS_settimeofday),
        Rule::deny("clock_settime", SYS_clock_settime),
        Rule::deny("clock_adjtime", SYS_clock_adjtime),
        Rule::deny("adjtimex", SYS_adjtimex),
        Rule::deny("sethostname", SYS_sethostname),
        Rule::deny("setdomainname", SYS_setdomainname),
        Rule::deny("vhangup", SYS_vhangup),
        // Raw network access: packet sockets, raw IPv4/IPv6 sockets.
        Rule::deny_if(
            "socket",
            SYS_socket,
            vec![Cond::Eq {
                arg: 0,
                value: AF_PACKET as u32,
            }],
        ),
        Rule::deny_if(
            "socket",
            SYS_socket,
            vec![
                Cond::Eq {
                    arg: 0,
                    value: AF_INET as u32,
                },
                Cond::MaskedEq {
                    arg: 1,
                    mask: 0xf,
                    value: SOCK_RAW as u32,
                },
            ],
        ),
        Rule::deny_if(
            "socket",
            SYS_socket,
            vec![
                Cond::Eq {
                    arg: 0,
                    value: AF_INET6 as u32,
                },
                Cond::MaskedEq {
                    arg: 1,
                    mask: 0xf,
                    value: SOCK_RAW as u32,
                },
            ],
        ),
        // Injecting input into a terminal.
        Rule::deny_if(
            "ioctl",
            SYS_ioctl,
            vec![Cond::Eq {
                arg: 1,
                value: TIOCSTI as u32,
            }],
        ),
        Rule::deny_if(
            "ioctl",
            SYS_ioctl,
            vec![Cond::Eq {
                arg: 1,
                value: TIOCLINUX as u32,
            }],
        ),
    ];
    rules.extend(arch_rules());
    rules
}

#[cfg(target_arch = "x86_64")]
fn arch_rules() -> Vec<Rule> {
    use libc::*;
    vec![
        Rule::deny("iopl", SYS_iopl),
        Rule::deny("ioperm", SYS_ioperm),
        Rule::deny("uselib", SYS_uselib),
        Rule::deny("_sysctl", SYS__sysctl),
        Rule::deny("lookup_dcookie", SYS_lookup_dcookie),
    ]
}

#[cfg(not(target_arch = "x86_64"))]
fn arch_rules() -> Vec<Rule> {
    Vec::new()
}

/// `AUDIT_ARCH_*` of this build.
#[cfg(target_arch = "x86_64")]
pub const AUDIT_ARCH: u32 = 0xc000_003e;
/// `AUDIT_ARCH_*` of this build.
#[cfg(target_arch = "aarch64")]
pub const AUDIT_ARCH: u32 = 0xc000_00b7;

const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

// struct seccomp_data { int nr; __u32 arch; __u64 ip; __u64 args[6]; }
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const fn off_arg_lo(arg: u8) -> u32 {
    16 + 8 * arg as u32 // little endian: the low half comes first
}

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}
fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Compiles `rules` into a classic BPF program for `arch` (an `AUDIT_ARCH_*` value).
///
/// Each rule is one self-contained block that reloads the system call number, so blocks never
/// jump further than their own end (at most 3 instructions per condition, well within the
/// 255 of a BPF jump).
pub fn compile(rules: &[Rule], arch: u32) -> Vec<sock_filter> {
    let mut prog = vec![
        stmt(LD_W_ABS, OFF_ARCH),
        jump(JEQ_K, arch, 1, 0),
        stmt(RET_K, SECCOMP_RET_KILL_PROCESS),
        stmt(LD_W_ABS, OFF_NR),
        jump(JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(RET_K, SECCOMP_RET_ERRNO | libc::EPERM as u32),
    ];
    // Whether the accumulator holds the system call number (a failed condition leaves an
    // argument in it).
    let mut acc_is_nr = true;
    for rule in rules {
        let ret = stmt(RET_K, SECCOMP_RET_ERRNO | (rule.errno as u32 & 0xffff));
        // Instructions after the syscall check, up to and including the return.
        let mut body: Vec<sock_filter> = Vec::new();
        for (i, cond) in rule.conds.iter().enumerate() {
            // Distance from the end of this condition to the block's end (past `ret`) is the
            // number of instructions of the remaining conditions plus the return.
            let rest: usize = rule.conds[i + 1..].iter().map(cond_len).sum::<usize>() + 1;
            match *cond {
                Cond::Eq { arg, value } => {
                    body.push(stmt(LD_W_ABS, off_arg_lo(arg)));
                    body.push(jump(JEQ_K, value, 0, rest as u8));
                }
                Cond::MaskedEq { arg, mask, value } => {
                    body.push(stmt(LD_W_ABS, off_arg_lo(arg)));
                    body.push(stmt(AND_K, mask));
                    body.push(jump(JEQ_K, value, 0, rest as u8));
                }
                Cond::AnyBit { arg, mask } => {
                    body.push(stmt(LD_W_ABS, off_arg_lo(arg)));
                    body.push(jump(JSET_K, mask, 0, rest as u8));
                }
            }
        }
        body.push(ret);
        if !acc_is_nr {
            prog.push(stmt(LD_W_ABS, OFF_NR));
        }
        acc_is_nr = rule.conds.is_empty();
        prog.push(jump(JEQ_K, rule.nr as u32, 0, body.len() as u8));
        prog.extend(body);
    }
    prog.push(stmt(RET_K, SECCOMP_RET_ALLOW));
    prog
}

fn cond_len(cond: &Cond) -> usize {
    match cond {
        Cond::Eq { .. } | Cond::AnyBit { .. } => 2,
        Cond::MaskedEq { .. } => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn f(code: u16, jt: u8, jf: u8, k: u32) -> (u16, u8, u8, u32) {
        (code, jt, jf, k)
    }

    fn flat(p: &[sock_filter]) -> Vec<(u16, u8, u8, u32)> {
        p.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect()
    }

    #[test]
    fn compiles_unconditional_and_conditional_rules() {
        let rules = vec![
            Rule::deny("ptrace", 101),
            Rule {
                name: "clone3",
                nr: 435,
                conds: vec![],
                errno: libc::ENOSYS,
            },
            Rule::deny_if(
                "socket",
                41,
                vec![
                    Cond::Eq { arg: 0, value: 2 },
                    Cond::MaskedEq {
                        arg: 1,
                        mask: 0xf,
                        value: 3,
                    },
                ],
            ),
            Rule::deny_if(
                "clone",
                56,
                vec![Cond::AnyBit {
                    arg: 0,
                    mask: 0x1000_0000,
                }],
            ),
            Rule::deny("ptrace", 101),
        ];
        let eperm = SECCOMP_RET_ERRNO | 1;
        assert_eq!(
            flat(&compile(&rules, 0xc000_003e)),
            vec![
                f(LD_W_ABS, 0, 0, 4),
                f(JEQ_K, 1, 0, 0xc000_003e),
                f(RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),
                f(LD_W_ABS, 0, 0, 0),
                f(JGE_K, 0, 1, X32_SYSCALL_BIT),
                f(RET_K, 0, 0, eperm),
                // ptrace
                f(JEQ_K, 0, 1, 101),
                f(RET_K, 0, 0, eperm),
                // clone3
                f(JEQ_K, 0, 1, 435),
                f(RET_K, 0, 0, SECCOMP_RET_ERRNO | 38),
                // socket(AF_INET, SOCK_RAW)
                f(JEQ_K, 0, 6, 41),
                f(LD_W_ABS, 0, 0, 16),
                f(JEQ_K, 0, 4, 2),
                f(LD_W_ABS, 0, 0, 24),
                f(AND_K, 0, 0, 0xf),
                f(JEQ_K, 0, 1, 3),
                f(RET_K, 0, 0, eperm),
                // clone(CLONE_NEWUSER)
                f(LD_W_ABS, 0, 0, 0),
                f(JEQ_K, 0, 3, 56),
                f(LD_W_ABS, 0, 0, 16),
                f(JSET_K, 0, 1, 0x1000_0000),
                f(RET_K, 0, 0, eperm),
                // ptrace again: the number is reloaded after a conditional block
                f(LD_W_ABS, 0, 0, 0),
                f(JEQ_K, 0, 1, 101),
                f(RET_K, 0, 0, eperm),
                f(RET_K, 0, 0, SECCOMP_RET_ALLOW),
            ]
        );
    }

    #[test]
    fn policy_denies_the_documented_calls() {
        let names: Vec<&str> = policy().iter().map(|r| r.name).collect();
        for needed in [
            "ptrace",
            "unshare",
            "setns",
            "clone",
            "clone3",
            "mount",
            "pivot_root",
            "bpf",
            "keyctl",
            "add_key",
            "perf_event_open",
            "userfaultfd",
            "io_uring_setup",
            "socket",
            "ioctl",
            "kexec_load",
            "init_module",
        ] {
            assert!(names.contains(&needed), "{needed} missing from the policy");
        }
        // A program the kernel accepts: at most 4096 instructions.
        assert!(compile(&policy(), AUDIT_ARCH).len() < 4096);
    }
}
