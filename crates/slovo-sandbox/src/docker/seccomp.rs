//! The seccomp profile of every container: the process sandbox's policy
//! ([`crate::linux::syscalls::policy`]), written as a Docker profile, instead of the daemon's
//! default.
//!
//! Why not the daemon's default: on the daemons this project meets (20.10 here) it still
//! allows `io_uring_setup` (a kernel surface that bypasses seccomp for the operations it
//! queues), `ptrace` (and `PTRACE_TRACEME` as the container's pid 1 makes the runtime's shim on
//! the host its tracer) and, before Docker 29.x, `AF_ALG` sockets (CVE-2026-31431). One policy
//! for both backends also means one list to review.
//!
//! The translation. The profile's default is the policy's decision for a number it does not
//! name (`SCMP_ACT_ERRNO` with `defaultErrnoRet` `ENOSYS`). A system call decided by its
//! number alone becomes one entry (the allowed ones share one entry, and so does each errno).
//! A system call decided by its arguments is cut into *disjoint* regions of its arguments,
//! each with one decision, and each region becomes one entry. Disjoint, because libseccomp does not evaluate a profile's entries in order: an entry
//! without arguments overrides every entry with arguments for the same call, whatever their
//! actions, and overlapping entries with different actions have no defined winner. A region
//! is a set of `arg & mask == value` comparisons (`SCMP_CMP_MASKED_EQ`), at most one per
//! argument (libseccomp allows no more), on the low 32 bits only, as the process sandbox's
//! filter compares them, so upper bits a tool sets in an `int` argument change nothing.
//! Only the native architecture is listed: a system call of another ABI (i386 `int 0x80`,
//! x32) does not match the profile's architecture, and libseccomp kills the process (SIGSYS;
//! tested by `system_calls_of_another_abi_do_not_get_through`). A name the host's libseccomp
//! does not know (a call newer than it) is skipped by the runtime, so it gets the default.
//!
//! Daemons before Docker 23 (20.10 here) drop `defaultErrnoRet`: there, a number the policy
//! does not name fails with `EPERM` instead of `ENOSYS` — still refused — except numbers above
//! every call the host's libseccomp knows, to which runc answers `ENOSYS` itself. The policy's
//! own `ENOSYS` decisions (`clone3`) are entries of their own, so they hold on those daemons.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::linux::syscalls::{Action, Cond, Policy, Syscall, policy};

/// The profile's architecture, in libseccomp's names.
#[cfg(target_arch = "x86_64")]
const ARCHITECTURE: &str = "SCMP_ARCH_X86_64";
/// The profile's architecture, in libseccomp's names.
#[cfg(target_arch = "aarch64")]
const ARCHITECTURE: &str = "SCMP_ARCH_AARCH64";

/// The profile as Docker's JSON (the value of `--security-opt seccomp=…`), built once.
pub fn profile_json() -> &'static str {
    static PROFILE: OnceLock<String> = OnceLock::new();
    PROFILE.get_or_init(|| profile().to_string())
}

/// The profile of [`policy`].
pub fn profile() -> Value {
    profile_of(&policy())
}

/// The profile of `policy`.
pub fn profile_of(policy: &Policy) -> Value {
    let default = policy.unlisted;
    // Calls decided by their number alone, grouped by decision. A decision equal to the
    // default is written out too: daemons before Docker 23 ignore `defaultErrnoRet`, and
    // their default is EPERM (clone3 must still get ENOSYS there); where the default applies,
    // the runtime skips such entries.
    let mut plain: BTreeMap<Action, Vec<&str>> = BTreeMap::new();
    let mut filtered: Vec<Value> = Vec::new();
    for s in &policy.syscalls {
        if s.cases.is_empty() {
            plain.entry(s.otherwise).or_default().push(s.name);
            continue;
        }
        for (region, action) in regions(s) {
            let mut entry = entry(&[s.name], action);
            let args: Vec<Value> = region
                .0
                .iter()
                .enumerate()
                .filter(|(_, (mask, _))| *mask != 0)
                .map(|(arg, (mask, value))| {
                    json!({"index": arg, "value": mask, "valueTwo": value, "op": "SCMP_CMP_MASKED_EQ"})
                })
                .collect();
            if !args.is_empty() {
                entry["args"] = Value::Array(args);
            }
            filtered.push(entry);
        }
    }
    let mut syscalls: Vec<Value> = plain
        .into_iter()
        .map(|(action, names)| entry(&names, action))
        .collect();
    syscalls.extend(filtered);
    let mut profile = json!({
        "defaultAction": action_name(default),
        "architectures": [ARCHITECTURE],
        "syscalls": syscalls,
    });
    if let Action::Errno(e) = default {
        profile["defaultErrnoRet"] = json!(e);
    }
    profile
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Allow => "SCMP_ACT_ALLOW",
        Action::Errno(_) => "SCMP_ACT_ERRNO",
    }
}

fn entry(names: &[&str], action: Action) -> Value {
    let mut entry = json!({"names": names, "action": action_name(action)});
    if let Action::Errno(e) = action {
        entry["errnoRet"] = json!(e);
    }
    entry
}

/// A set of argument vectors: `arg & mask == value` for each of the six arguments (low 32
/// bits; mask 0 means any value). `value` has no bit outside `mask`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region(pub [(u32, u32); 6]);

const ANY: Region = Region([(0, 0); 6]);

impl Region {
    fn with(arg: u8, mask: u32, value: u32) -> Region {
        let mut r = ANY;
        if let Some(slot) = r.0.get_mut(usize::from(arg)) {
            *slot = (mask, value & mask);
        }
        r
    }

    /// The argument vectors in both regions, if any.
    fn meet(&self, other: &Region) -> Option<Region> {
        let mut out = ANY;
        for (o, ((m1, v1), (m2, v2))) in out.0.iter_mut().zip(self.0.iter().zip(other.0.iter())) {
            let common = m1 & m2;
            if v1 & common != v2 & common {
                return None;
            }
            *o = (m1 | m2, v1 | v2);
        }
        Some(out)
    }

    /// Disjoint regions covering every argument vector outside this one: for each
    /// constrained bit (argument by argument, high bits first), "the bits before agree, this
    /// one differs".
    fn complement(&self) -> Vec<Region> {
        let mut out = Vec::new();
        let mut prefix = ANY;
        for (arg, (mask, value)) in self.0.iter().enumerate() {
            for bit in (0..32).rev().map(|b| 1u32 << b).filter(|b| mask & b != 0) {
                let mut differs = prefix;
                if let Some((m, v)) = differs.0.get_mut(arg) {
                    *m |= bit;
                    *v = (*v & !bit) | (!value & bit);
                }
                out.push(differs);
                if let Some((m, v)) = prefix.0.get_mut(arg) {
                    *m |= bit;
                    *v |= value & bit;
                }
            }
        }
        out
    }

    /// Whether `args` is in the region.
    pub fn contains(&self, args: &[u64; 6]) -> bool {
        self.0
            .iter()
            .zip(args.iter())
            .all(|((mask, value), a)| (*a as u32) & mask == *value)
    }
}

/// Disjoint regions where `cond` holds.
fn cond_regions(cond: &Cond) -> Vec<Region> {
    match *cond {
        Cond::Eq { arg, value } => vec![Region::with(arg, u32::MAX, value)],
        Cond::MaskedEq { arg, mask, value } => vec![Region::with(arg, mask, value)],
        // "Some bit of mask set" as "this bit set, every higher bit of mask clear".
        Cond::AnyBit { arg, mask } => (0..32)
            .rev()
            .map(|b| 1u32 << b)
            .filter(|b| mask & b != 0)
            .map(|bit| {
                let higher = mask & !(bit | (bit - 1));
                Region::with(arg, higher | bit, bit)
            })
            .collect(),
    }
}

/// The pairwise intersections of two sets of disjoint regions (disjoint again).
fn meet_all(a: &[Region], b: &[Region]) -> Vec<Region> {
    a.iter()
        .flat_map(|x| b.iter().filter_map(move |y| x.meet(y)))
        .collect()
}

/// Disjoint regions covering everything outside the disjoint regions `a`.
fn complement_all(a: &[Region]) -> Vec<Region> {
    a.iter().fold(vec![ANY], |acc, r| meet_all(&acc, &r.complement()))
}

/// The arguments of `s` cut into disjoint regions with their decisions (first matching case
/// first, as the process sandbox's filter decides).
pub fn regions(s: &Syscall) -> Vec<(Region, Action)> {
    let mut out = Vec::new();
    let mut rest = vec![ANY];
    for c in &s.cases {
        let holds = c
            .conds
            .iter()
            .fold(vec![ANY], |acc, cond| meet_all(&acc, &cond_regions(cond)));
        out.extend(meet_all(&rest, &holds).into_iter().map(|r| (r, c.action)));
        rest = meet_all(&rest, &complement_all(&holds));
    }
    out.extend(rest.into_iter().map(|r| (r, s.otherwise)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn entries_named<'a>(p: &'a Value, name: &str) -> Vec<&'a Value> {
        p["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["names"].as_array().unwrap().iter().any(|n| n == name))
            .collect()
    }

    fn action_of(e: &Value) -> Action {
        match e["action"].as_str().unwrap() {
            "SCMP_ACT_ALLOW" => Action::Allow,
            "SCMP_ACT_ERRNO" => Action::Errno(e["errnoRet"].as_i64().unwrap() as i32),
            a => panic!("{a}"),
        }
    }

    /// Comparisons `(index, mask, value)` of one entry.
    type Comparisons = Vec<(usize, u64, u64)>;

    /// A profile's entries, parsed once: names, comparisons, action.
    struct Parsed {
        entries: Vec<(Vec<String>, Comparisons, Action)>,
        default: Action,
    }

    fn parse(p: &Value) -> Parsed {
        let entries = p["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let names = e["names"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_str().unwrap().to_string())
                    .collect();
                let args = e.get("args").map_or_else(Vec::new, |a| {
                    a.as_array()
                        .unwrap()
                        .iter()
                        .map(|c| {
                            assert_eq!(c["op"], "SCMP_CMP_MASKED_EQ");
                            (
                                c["index"].as_u64().unwrap() as usize,
                                c["value"].as_u64().unwrap(),
                                c["valueTwo"].as_u64().unwrap(),
                            )
                        })
                        .collect()
                });
                (names, args, action_of(e))
            })
            .collect();
        assert_eq!(p["defaultAction"], "SCMP_ACT_ERRNO");
        let default = Action::Errno(p["defaultErrnoRet"].as_i64().unwrap() as i32);
        Parsed { entries, default }
    }

    /// What the profile decides for `name` with `args`, as libseccomp would: the matching
    /// entry's action (asserting that at most one matches), else the default.
    fn decide(p: &Parsed, name: &str, args: &[u64; 6]) -> Action {
        let matching: Vec<Action> = p
            .entries
            .iter()
            .filter(|(names, cmps, _)| {
                names.iter().any(|n| n == name)
                    && cmps.iter().all(|(i, mask, value)| args[*i] & mask == *value)
            })
            .map(|(_, _, action)| *action)
            .collect();
        assert!(matching.len() <= 1, "{name} {args:x?}: {matching:?}");
        matching.first().copied().unwrap_or(p.default)
    }

    #[test]
    fn the_profile_decides_as_the_policy_does() {
        let policy = policy();
        let p = parse(&profile());
        assert_eq!(p.default, Action::Errno(libc::ENOSYS));
        let mut values: Vec<u64> = vec![0, 1, 2, 3, 9, 10, 15, 16, 17, 38, 40, 0x5412, 0x541c];
        values.extend((0..32).map(|b| 1u64 << b));
        values.extend([0x7fff_ffff, 0xffff_ffff, 0x1_0000_0010, 0xdead_beef_0000_0002]);
        values.push(0x0040_0000);
        for s in &policy.syscalls {
            if s.cases.is_empty() {
                for args in [[0; 6], [u64::MAX; 6]] {
                    assert_eq!(decide(&p, s.name, &args), s.otherwise, "{}", s.name);
                }
                continue;
            }
            for a in &values {
                for b in [0u64, 1, 2, 3, 0x80803, 0x5412, 0x541c] {
                    for c in [0u64, 1, 9, 15, 0x1_0000_0000] {
                        for args in [[*a, b, c, 0, 0, 0], [b, *a, c, 0, 0, 0]] {
                            let want = s.decide(&args);
                            assert_eq!(decide(&p, s.name, &args), want, "{} {args:x?}", s.name);
                        }
                    }
                }
            }
        }
        // A name the policy does not know gets the default.
        let unnamed = decide(&p, "lsm_list_modules", &[0; 6]);
        assert_eq!(unnamed, Action::Errno(libc::ENOSYS));
    }

    #[test]
    fn the_regions_of_a_call_are_disjoint_and_complete() {
        for s in policy().syscalls.iter().filter(|s| !s.cases.is_empty()) {
            let regions = regions(s);
            for (i, (a, _)) in regions.iter().enumerate() {
                for (b, _) in &regions[i + 1..] {
                    assert_eq!(a.meet(b), None, "{}: {a:x?} and {b:x?} overlap", s.name);
                }
            }
            // Complete: the regions' sizes add up to the whole space of the constrained bits.
            let bits = |r: &Region| r.0.iter().map(|(m, _)| m.count_ones()).sum::<u32>();
            let mut union = ANY;
            for (r, _) in &regions {
                for (u, (m, _)) in union.0.iter_mut().zip(r.0.iter()) {
                    u.0 |= m;
                }
            }
            let all = bits(&union);
            let covered: u128 = regions.iter().map(|(r, _)| 1u128 << (all - bits(r))).sum();
            assert_eq!(covered, 1u128 << all, "{}", s.name);
        }
    }

    #[test]
    fn every_entry_compares_each_argument_at_most_once() {
        let p = profile();
        for e in p["syscalls"].as_array().unwrap() {
            if let Some(args) = e.get("args") {
                let idx: Vec<u64> = args
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a["index"].as_u64().unwrap())
                    .collect();
                let unique: HashSet<&u64> = idx.iter().collect();
                assert_eq!(unique.len(), idx.len(), "{e}");
                assert_eq!(e["names"].as_array().unwrap().len(), 1, "{e}");
            }
        }
        // Small enough to pass on every container create.
        assert!(profile_json().len() < 64 * 1024, "{} bytes", profile_json().len());
    }

    #[test]
    fn a_name_is_either_unconditional_or_conditional() {
        let p = profile();
        let mut plain = HashSet::new();
        let mut conditional = HashSet::new();
        for e in p["syscalls"].as_array().unwrap() {
            for n in e["names"].as_array().unwrap() {
                let n = n.as_str().unwrap();
                if e.get("args").is_some() {
                    conditional.insert(n);
                } else {
                    assert!(plain.insert(n), "{n} in two unconditional entries");
                }
            }
        }
        assert!(
            plain.is_disjoint(&conditional),
            "{:?}",
            plain.intersection(&conditional)
        );
        for name in ["ptrace", "io_uring_setup", "modify_ldt"] {
            let e = entries_named(&p, name);
            assert_eq!(
                (e.len(), action_of(e[0])),
                (1, Action::Errno(libc::EPERM)),
                "{name}"
            );
        }
        assert_eq!(action_of(entries_named(&p, "read")[0]), Action::Allow);
        // clone3's ENOSYS is the default's, and still written out (see profile_of).
        let clone3 = entries_named(&p, "clone3");
        assert_eq!(clone3.len(), 1);
        assert_eq!(action_of(clone3[0]), Action::Errno(libc::ENOSYS));
    }

    /// System calls that Docker's default profile does not allow a container without
    /// capabilities (as Slovo runs them) on x86-64. Reference: moby's
    /// `profiles/seccomp/default.json` at commit 00f3d189e420d485e42d15fe494f96d272284e0e (the
    /// profile of Docker 23/24: `socket` allowed except `AF_VSOCK`), every x86-64 call outside
    /// its allow lists and outside the entries included only for capabilities; plus the
    /// `io_uring_*` calls, removed from its allow list in Docker 25.0 (moby pull request
    /// 46762). Calls newer than that profile (which it refuses only because it predates them)
    /// are not listed.
    #[rustfmt::skip]
    const DOCKER_REFUSES: &[&str] = &[
        "_sysctl", "acct", "add_key", "afs_syscall", "bpf", "chroot", "clock_settime",
        "clone3", "create_module", "delete_module", "fanotify_init", "finit_module",
        "fsconfig", "fsmount", "fsopen", "fspick", "get_kernel_syms", "get_mempolicy",
        "getpmsg", "init_module", "io_uring_enter", "io_uring_register", "io_uring_setup",
        "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie",
        "mbind", "migrate_pages", "mount", "mount_setattr", "move_mount", "move_pages",
        "nfsservctl", "open_by_handle_at", "open_tree", "perf_event_open", "pidfd_getfd",
        "pivot_root", "process_madvise", "putpmsg", "query_module", "quotactl", "quotactl_fd",
        "reboot", "request_key", "security", "set_mempolicy", "set_mempolicy_home_node",
        "setdomainname", "sethostname", "setns", "settimeofday", "swapoff", "swapon",
        "sysfs", "syslog", "tuxcall", "umount2", "unshare", "uselib", "userfaultfd", "ustat",
        "vhangup", "vserver",
    ];

    #[test]
    fn the_profile_refuses_everything_dockers_default_refuses() {
        let p = profile();
        for name in DOCKER_REFUSES {
            for e in entries_named(&p, name) {
                assert_ne!(action_of(e), Action::Allow, "{name} is allowed: {e}");
            }
        }
        // Allowed by Docker only with some arguments: never with others here.
        let parsed = parse(&p);
        let sample = |name: &str, args: [u64; 6]| decide(&parsed, name, &args);
        // socket: not AF_VSOCK (40), not AF_ALG (38, Docker 29.x, moby pull request 52494).
        for family in [38u64, 40] {
            assert_ne!(
                sample("socket", [family, 1, 0, 0, 0, 0]),
                Action::Allow,
                "{family}"
            );
        }
        // clone: none of the namespace flags 0x7e020000.
        for bit in (0..32).map(|b| 1u64 << b).filter(|b| b & 0x7e02_0000 != 0) {
            assert_ne!(
                sample("clone", [bit | 17, 0, 0, 0, 0, 0]),
                Action::Allow,
                "{bit:#x}"
            );
        }
        // personality: only 0, 8, 0x20000, 0x20008 and 0xffffffff.
        for persona in [0x0040_0000u64, 0x0004_0000, 1, 6, 0x0100_0000] {
            assert_ne!(sample("personality", [persona, 0, 0, 0, 0, 0]), Action::Allow);
        }
        // ptrace and process_vm_* are allowed by that profile (kernels from 4.8), refused here.
        for name in ["ptrace", "process_vm_readv", "process_vm_writev", "modify_ldt"] {
            assert_eq!(sample(name, [0; 6]), Action::Errno(libc::EPERM), "{name}");
        }
    }
}
