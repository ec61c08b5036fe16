//! The seccomp profile of every container: the process sandbox's policy
//! ([`crate::process::seccomp::policy`]), written as a Docker profile, instead of the daemon's
//! default.
//!
//! Why not the daemon's default: it is an allow list tuned for general containers, and on the
//! daemons this project meets (20.10 here) it still allows `io_uring_setup` (a kernel surface
//! that bypasses seccomp for the operations it queues) and `ptrace` (a tool can trace its own
//! children, and `PTRACE_TRACEME` as the container's pid 1 makes the runtime's shim on the host
//! its tracer). One policy for both backends also means one list to review: every entry of
//! the process sandbox's policy says what it protects.
//!
//! The translation: each [`Rule`] becomes an `SCMP_ACT_ERRNO` entry with its errno; the
//! conditions of a rule are all required (libseccomp ANDs the comparisons of one entry), and
//! an "any of these bits" condition becomes one entry per bit. Comparisons look at the low 32
//! bits only (`SCMP_CMP_MASKED_EQ` with mask `0xffffffff`), as the process sandbox's filter
//! does, so upper bits a tool sets in an `int` argument cannot slip past an equality.
//! Only the native architecture is listed: a system call of another ABI (i386 `int 0x80`,
//! x32) does not match the profile's architecture, and libseccomp kills the process (SIGSYS;
//! tested by `system_calls_of_another_abi_do_not_get_through`).

use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::process::seccomp::{Cond, Rule, policy};

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

/// The profile: allow by default, deny what [`policy`] denies.
pub fn profile() -> Value {
    let syscalls: Vec<Value> = policy().iter().flat_map(entries).collect();
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": [ARCHITECTURE],
        "syscalls": syscalls,
    })
}

/// The profile entries of one rule: one per alternative of its conditions.
fn entries(rule: &Rule) -> Vec<Value> {
    // Alternatives (OR) of comparison lists (AND).
    let mut alternatives: Vec<Vec<Value>> = vec![Vec::new()];
    for cond in &rule.conds {
        let options: Vec<Value> = match *cond {
            Cond::Eq { arg, value } => vec![masked_eq(arg, u32::MAX, value)],
            Cond::MaskedEq { arg, mask, value } => vec![masked_eq(arg, mask, value)],
            Cond::AnyBit { arg, mask } => (0..32)
                .map(|bit| 1u32 << bit)
                .filter(|bit| mask & bit != 0)
                .map(|bit| masked_eq(arg, bit, bit))
                .collect(),
        };
        alternatives = alternatives
            .iter()
            .flat_map(|args| {
                options.iter().map(move |option| {
                    let mut next = args.clone();
                    next.push(option.clone());
                    next
                })
            })
            .collect();
    }
    alternatives
        .into_iter()
        .map(|args| {
            let mut entry = json!({
                "names": [rule.name],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": rule.errno,
            });
            if !args.is_empty() {
                entry["args"] = Value::Array(args);
            }
            entry
        })
        .collect()
}

/// `arg & mask == value` (Docker's `value` is the mask, `valueTwo` the expected value).
fn masked_eq(arg: u8, mask: u32, value: u32) -> Value {
    json!({"index": arg, "value": mask, "valueTwo": value, "op": "SCMP_CMP_MASKED_EQ"})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries_named<'a>(p: &'a Value, name: &str) -> Vec<&'a Value> {
        p["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["names"][0] == name)
            .collect()
    }

    #[test]
    fn every_rule_of_the_policy_is_in_the_profile() {
        let p = profile();
        assert_eq!(p["defaultAction"], "SCMP_ACT_ALLOW");
        for rule in policy() {
            assert!(!entries_named(&p, rule.name).is_empty(), "{}", rule.name);
        }
        let ptrace = entries_named(&p, "ptrace");
        assert_eq!(ptrace.len(), 1);
        assert_eq!(ptrace[0]["errnoRet"], libc::EPERM);
        assert!(ptrace[0].get("args").is_none());
        assert_eq!(entries_named(&p, "clone3")[0]["errnoRet"], libc::ENOSYS);
    }

    #[test]
    fn a_namespace_flag_of_clone_is_one_entry_per_bit() {
        let p = profile();
        let clone = entries_named(&p, "clone");
        let bits: Vec<u64> = clone
            .iter()
            .map(|e| {
                assert_eq!(e["args"].as_array().unwrap().len(), 1);
                assert_eq!(e["args"][0]["value"], e["args"][0]["valueTwo"]);
                e["args"][0]["value"].as_u64().unwrap()
            })
            .collect();
        let all = bits.iter().fold(0u64, |a, b| a | b);
        assert_eq!(all, u64::from(crate::process::seccomp::NAMESPACE_FLAGS));
        assert!(bits.iter().all(|b| b.count_ones() == 1));
    }

    #[test]
    fn conditions_on_two_arguments_stay_in_one_entry() {
        let p = profile();
        let raw_inet = entries_named(&p, "socket")
            .into_iter()
            .find(|e| e["args"][0]["valueTwo"] == libc::AF_INET)
            .unwrap();
        assert_eq!(
            raw_inet["args"],
            json!([
                {"index": 0, "value": u32::MAX, "valueTwo": libc::AF_INET, "op": "SCMP_CMP_MASKED_EQ"},
                {"index": 1, "value": 0xf, "valueTwo": libc::SOCK_RAW, "op": "SCMP_CMP_MASKED_EQ"},
            ])
        );
    }
}
