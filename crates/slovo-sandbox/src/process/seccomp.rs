//! The seccomp program every process tool runs under: the allow list of
//! [`crate::linux::syscalls`] compiled into classic BPF.
//!
//! # The program
//! The parent compiles the policy with the pure function [`compile`] (tested below on its
//! output) and the child installs it with one `seccomp(2)` call, last before `execve`. The
//! program checks the architecture, then finds the system call number by binary search over
//! the ranges of numbers that share a decision (about 90), so a call decided by its number
//! runs at most 12 instructions whatever the length of the list; only calls decided by their
//! arguments load them (`socket`, the longest path, runs 28). (The
//! kernel also caches "always allowed" per number, so most calls skip the filter entirely.)

use libc::sock_filter;

pub use crate::linux::syscalls::{Action, Case, Cond, Policy, Syscall, policy};

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
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
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
fn ret(action: Action) -> sock_filter {
    stmt(
        RET_K,
        match action {
            Action::Allow => SECCOMP_RET_ALLOW,
            Action::Errno(e) => SECCOMP_RET_ERRNO | (e as u32 & 0xffff),
        },
    )
}

/// What a range of numbers leads to: a return, or the argument checks of one system call.
#[derive(Debug, Clone, Copy)]
enum Leaf<'a> {
    Ret(Action),
    Args(&'a Syscall),
}

/// Compiles `policy` into a classic BPF program for `arch` (an `AUDIT_ARCH_*` value).
///
/// After the architecture and x32 checks, the numbers `0..X32_SYSCALL_BIT` are cut into
/// ranges that share a decision (neighbouring numbers with the same unconditional decision
/// make one range), and a balanced binary search of `JGE` jumps leads to each range's leaf: a
/// return, or the argument checks of one system call. A subtree longer than a conditional
/// jump can skip (255 instructions) is skipped with an unconditional `JA`.
pub fn compile(policy: &Policy, arch: u32) -> Vec<sock_filter> {
    let mut prog = vec![
        stmt(LD_W_ABS, OFF_ARCH),
        jump(JEQ_K, arch, 1, 0),
        stmt(RET_K, SECCOMP_RET_KILL_PROCESS),
        stmt(LD_W_ABS, OFF_NR),
        jump(JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(RET_K, SECCOMP_RET_ERRNO | libc::EPERM as u32),
    ];
    prog.extend(search(&ranges(policy)));
    prog
}

/// The ranges of numbers sharing a decision: `(first number, leaf)`, first numbers
/// increasing from 0, each range running up to the next one's first number.
fn ranges(policy: &Policy) -> Vec<(u32, Leaf<'_>)> {
    fn push<'a>(out: &mut Vec<(u32, Leaf<'a>)>, start: u32, leaf: Leaf<'a>) {
        if let (Some((_, Leaf::Ret(prev))), Leaf::Ret(next)) = (out.last(), leaf)
            && *prev == next
        {
            return;
        }
        out.push((start, leaf));
    }
    let mut out: Vec<(u32, Leaf<'_>)> = Vec::new();
    let mut next = 0u32;
    let mut syscalls: Vec<&Syscall> = policy.syscalls.iter().collect();
    syscalls.sort_by_key(|s| s.nr);
    for s in syscalls {
        if s.nr < next {
            continue; // named twice: the first one decides (the policy's tests forbid it)
        }
        if s.nr > next {
            push(&mut out, next, Leaf::Ret(policy.unlisted));
        }
        push(
            &mut out,
            s.nr,
            if s.cases.is_empty() {
                Leaf::Ret(s.otherwise)
            } else {
                Leaf::Args(s)
            },
        );
        next = s.nr.saturating_add(1);
    }
    push(&mut out, next, Leaf::Ret(policy.unlisted));
    out
}

/// The binary search over `ranges` (the accumulator holds the system call number).
fn search(ranges: &[(u32, Leaf<'_>)]) -> Vec<sock_filter> {
    let mid = ranges.len() / 2;
    let (Some((_, first)), Some((pivot, _))) = (ranges.first(), ranges.get(mid)) else {
        return vec![ret(Action::Errno(libc::ENOSYS))]; // no ranges: unreachable
    };
    if ranges.len() == 1 {
        return leaf(first);
    }
    let left = search(&ranges[..mid]);
    let right = search(&ranges[mid..]);
    let mut out = Vec::with_capacity(left.len() + right.len() + 2);
    match u8::try_from(left.len()) {
        Ok(skip) => out.push(jump(JGE_K, *pivot, skip, 0)),
        Err(_) => {
            out.push(jump(JGE_K, *pivot, 0, 1));
            out.push(stmt(JA, left.len() as u32));
        }
    }
    out.extend(left);
    out.extend(right);
    out
}

/// A leaf: its return, or its system call's cases (each failing condition jumps to the next
/// case; every path ends in a return, so the accumulator need not be restored).
fn leaf(leaf: &Leaf<'_>) -> Vec<sock_filter> {
    let s = match leaf {
        Leaf::Ret(action) => return vec![ret(*action)],
        Leaf::Args(s) => s,
    };
    let mut out = Vec::new();
    for c in &s.cases {
        for (i, cond) in c.conds.iter().enumerate() {
            // From the end of this condition to the next case: the remaining conditions and
            // this case's return (a handful of instructions, far below 255).
            let rest: usize = c.conds[i + 1..].iter().map(cond_len).sum::<usize>() + 1;
            let fail = u8::try_from(rest).unwrap_or(u8::MAX);
            match *cond {
                Cond::Eq { arg, value } => {
                    out.push(stmt(LD_W_ABS, off_arg_lo(arg)));
                    out.push(jump(JEQ_K, value, 0, fail));
                }
                Cond::MaskedEq { arg, mask, value } => {
                    out.push(stmt(LD_W_ABS, off_arg_lo(arg)));
                    out.push(stmt(AND_K, mask));
                    out.push(jump(JEQ_K, value, 0, fail));
                }
                Cond::AnyBit { arg, mask } => {
                    out.push(stmt(LD_W_ABS, off_arg_lo(arg)));
                    out.push(jump(JSET_K, mask, 0, fail));
                }
            }
        }
        out.push(ret(c.action));
    }
    out.push(ret(s.otherwise));
    out
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
    use crate::linux::syscalls::{case, eq};
    use pretty_assertions::assert_eq;

    fn f(code: u16, jt: u8, jf: u8, k: u32) -> (u16, u8, u8, u32) {
        (code, jt, jf, k)
    }

    fn flat(p: &[sock_filter]) -> Vec<(u16, u8, u8, u32)> {
        p.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect()
    }

    /// A classic BPF interpreter for the instructions `compile` emits, over a
    /// `seccomp_data`; returns the program's return value and the instructions it ran.
    fn run(prog: &[sock_filter], arch: u32, nr: u32, args: &[u64; 6]) -> (u32, usize) {
        let mut acc = 0u32;
        let mut pc = 0usize;
        let mut steps = 0;
        loop {
            let i = prog[pc];
            steps += 1;
            pc += 1;
            match i.code {
                LD_W_ABS => {
                    acc = match i.k {
                        OFF_NR => nr,
                        OFF_ARCH => arch,
                        k if (16..64).contains(&k) && k % 4 == 0 => {
                            let a = args[((k - 16) / 8) as usize];
                            if k % 8 == 0 { a as u32 } else { (a >> 32) as u32 }
                        }
                        k => panic!("load of offset {k}"),
                    }
                }
                AND_K => acc &= i.k,
                JA => pc += i.k as usize,
                JEQ_K | JGE_K | JSET_K => {
                    let taken = match i.code {
                        JEQ_K => acc == i.k,
                        JGE_K => acc >= i.k,
                        _ => acc & i.k != 0,
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
                RET_K => return (i.k, steps),
                c => panic!("instruction {c:#x}"),
            }
        }
    }

    fn encode(a: Action) -> u32 {
        ret(a).k
    }

    #[test]
    fn compiles_a_binary_search_over_ranges() {
        let eperm = Action::Errno(libc::EPERM);
        let policy = Policy {
            syscalls: vec![
                Syscall {
                    name: "read",
                    nr: 0,
                    cases: vec![],
                    otherwise: Action::Allow,
                },
                Syscall {
                    name: "write",
                    nr: 1,
                    cases: vec![],
                    otherwise: Action::Allow,
                },
                Syscall {
                    name: "socket",
                    nr: 41,
                    cases: vec![
                        case(
                            vec![
                                eq(0, 2),
                                Cond::MaskedEq {
                                    arg: 1,
                                    mask: 0xf,
                                    value: 3,
                                },
                            ],
                            eperm,
                        ),
                        case(vec![eq(0, 1)], Action::Allow),
                    ],
                    otherwise: Action::Errno(libc::EAFNOSUPPORT),
                },
                Syscall {
                    name: "clone",
                    nr: 56,
                    cases: vec![case(
                        vec![Cond::AnyBit {
                            arg: 0,
                            mask: 0x1000_0000,
                        }],
                        eperm,
                    )],
                    otherwise: Action::Allow,
                },
                Syscall {
                    name: "ptrace",
                    nr: 101,
                    cases: vec![],
                    otherwise: eperm,
                },
            ],
            unlisted: Action::Errno(libc::ENOSYS),
        };
        let allow = SECCOMP_RET_ALLOW;
        let eperm = SECCOMP_RET_ERRNO | 1;
        let enosys = SECCOMP_RET_ERRNO | 38;
        // Ranges: [0,2) allow, [2,41) ENOSYS, 41 socket, [42,56) ENOSYS, 56 clone,
        // [57,101) ENOSYS, 101 EPERM, [102,…) ENOSYS.
        assert_eq!(
            flat(&compile(&policy, 0xc000_003e)),
            vec![
                f(LD_W_ABS, 0, 0, 4),
                f(JEQ_K, 1, 0, 0xc000_003e),
                f(RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),
                f(LD_W_ABS, 0, 0, 0),
                f(JGE_K, 0, 1, X32_SYSCALL_BIT),
                f(RET_K, 0, 0, eperm),
                // nr >= 56?
                f(JGE_K, 16, 0, 56),
                // nr >= 41?
                f(JGE_K, 3, 0, 41),
                // nr >= 2?
                f(JGE_K, 1, 0, 2),
                f(RET_K, 0, 0, allow),
                f(RET_K, 0, 0, enosys),
                // nr >= 42?
                f(JGE_K, 10, 0, 42),
                // socket: AF_INET and SOCK_RAW → EPERM
                f(LD_W_ABS, 0, 0, 16),
                f(JEQ_K, 0, 4, 2),
                f(LD_W_ABS, 0, 0, 24),
                f(AND_K, 0, 0, 0xf),
                f(JEQ_K, 0, 1, 3),
                f(RET_K, 0, 0, eperm),
                // AF_UNIX → allow
                f(LD_W_ABS, 0, 0, 16),
                f(JEQ_K, 0, 1, 1),
                f(RET_K, 0, 0, allow),
                // otherwise
                f(RET_K, 0, 0, SECCOMP_RET_ERRNO | libc::EAFNOSUPPORT as u32),
                f(RET_K, 0, 0, enosys),
                // nr >= 101?
                f(JGE_K, 6, 0, 101),
                // nr >= 57?
                f(JGE_K, 4, 0, 57),
                // clone: a namespace flag → EPERM, otherwise allow
                f(LD_W_ABS, 0, 0, 16),
                f(JSET_K, 0, 1, 0x1000_0000),
                f(RET_K, 0, 0, eperm),
                f(RET_K, 0, 0, allow),
                f(RET_K, 0, 0, enosys),
                // nr >= 102?
                f(JGE_K, 1, 0, 102),
                f(RET_K, 0, 0, eperm),
                f(RET_K, 0, 0, enosys),
            ]
        );
    }

    #[test]
    fn a_long_subtree_is_skipped_with_an_unconditional_jump() {
        // 400 calls alternating allow and EPERM: 400 ranges, subtrees far longer than 255.
        let policy = Policy {
            syscalls: (0..400)
                .map(|nr| Syscall {
                    name: "x",
                    nr,
                    cases: vec![],
                    otherwise: if nr % 2 == 0 {
                        Action::Allow
                    } else {
                        Action::Errno(libc::EPERM)
                    },
                })
                .collect(),
            unlisted: Action::Errno(libc::ENOSYS),
        };
        let prog = compile(&policy, AUDIT_ARCH);
        assert!(prog.iter().any(|i| i.code == JA), "no JA in a long program");
        for nr in 0..420 {
            let want = policy.decide(nr, &[0; 6]);
            assert_eq!(run(&prog, AUDIT_ARCH, nr, &[0; 6]).0, encode(want), "{nr}");
        }
    }

    /// Argument vectors that exercise every condition of the policy: each compared value,
    /// its neighbours, every single bit, and garbage in the upper halves.
    fn probes(policy: &Policy) -> Vec<[u64; 6]> {
        let mut values: Vec<u32> = vec![0, 1, 2, 3, 0x7fff_ffff, 0x8000_0000, u32::MAX];
        values.extend((0..32).map(|b| 1u32 << b));
        for s in &policy.syscalls {
            for c in &s.cases {
                for cond in &c.conds {
                    let v = match *cond {
                        Cond::Eq { value, .. } | Cond::MaskedEq { value, .. } => value,
                        Cond::AnyBit { mask, .. } => mask,
                    };
                    values.extend([v, v.wrapping_add(1), v.wrapping_sub(1), v | 0x10]);
                }
            }
        }
        let mut out = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let w = values[(i * 7 + 3) % values.len()];
            let x = values[(i * 13 + 5) % values.len()];
            for upper in [0u64, 0xdead_beef_0000_0000] {
                out.push([u64::from(*v) | upper, u64::from(w) | upper, u64::from(x), 0, 0, 0]);
                out.push([u64::from(*v), u64::from(*v) | upper, u64::from(*v), 0, 0, 0]);
                // socket(AF_INET/AF_INET6/AF_NETLINK, v, v) and friends.
                for family in [libc::AF_INET, libc::AF_INET6, libc::AF_NETLINK, libc::AF_UNIX] {
                    out.push([family as u64 | upper, u64::from(*v), u64::from(*v), 0, 0, 0]);
                    out.push([family as u64, 3 | u64::from(*v & !0xf), 0, 0, 0, 0]);
                }
            }
        }
        out
    }

    #[test]
    fn the_compiled_program_decides_as_the_policy_does() {
        let policy = policy();
        let prog = compile(&policy, AUDIT_ARCH);
        let probes = probes(&policy);
        let mut numbers: Vec<u32> = (0..1100).collect();
        numbers.extend([0x3fff_fffe, 0x3fff_ffff]);
        for nr in numbers {
            for args in &probes {
                let (got, _) = run(&prog, AUDIT_ARCH, nr, args);
                assert_eq!(got, encode(policy.decide(nr, args)), "nr {nr}, args {args:x?}");
            }
        }
        // Another architecture is killed; x32 numbers and negative ones fail with EPERM.
        assert_eq!(run(&prog, 0x4000_0003, 20, &[0; 6]).0, SECCOMP_RET_KILL_PROCESS);
        for nr in [0x4000_0000 | 39, 0x4000_0000, u32::MAX] {
            assert_eq!(run(&prog, AUDIT_ARCH, nr, &[0; 6]).0, SECCOMP_RET_ERRNO | 1);
        }
    }

    #[test]
    fn every_call_is_decided_in_a_few_instructions() {
        let policy = policy();
        let prog = compile(&policy, AUDIT_ARCH);
        // The kernel refuses programs over 4096 instructions; this one is a few hundred.
        assert!(prog.len() < 300, "{} instructions", prog.len());
        let mut worst = 0;
        for nr in 0..1100 {
            for args in probes(&policy).iter().take(40) {
                worst = worst.max(run(&prog, AUDIT_ARCH, nr, args).1);
            }
        }
        // The prologue, the search, and socket's checks on the longest path.
        assert!(worst <= 32, "the longest path runs {worst} instructions");
        // A call decided by its number: the 5 instructions of the prologue it passes, about
        // log2(ranges) comparisons, and the return.
        for s in policy.syscalls.iter().filter(|s| s.cases.is_empty()) {
            let (_, steps) = run(&prog, AUDIT_ARCH, s.nr, &[0; 6]);
            assert!(steps <= 12, "{} runs {steps} instructions", s.name);
        }
    }
}
