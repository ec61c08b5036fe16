//! Landlock: a second, independent file-system fence, and signal/abstract-socket scoping.
//!
//! # Why, on top of the mount tree
//! The mount tree already shows the tool nothing but its bundle, system directories, `/data`,
//! `/tmp`, `/dev` and `/proc`, and everything but `/data` and `/tmp` is read-only. Landlock
//! restates that policy in a different kernel subsystem, so a single mistake in one layer (a
//! writable bind mount, a device left writable) does not open the host. With ABI 6 it also
//! *scopes* the tool: it cannot signal processes outside its Landlock domain nor connect to
//! abstract Unix sockets created outside it.
//!
//! # Policy ([`plan`])
//! - handled: every file-system right the running kernel's ABI knows;
//! - `/` (everything visible): read files, list directories, execute;
//! - `/dev`: also write and device ioctls (`/dev/null`, `/dev/zero`, …);
//! - `/data` (when writable) and `/tmp`: every right;
//! - scoped (ABI ≥ 6): signals and abstract Unix sockets.
//!
//! TCP is not restricted with Landlock's network rights: the tool's network namespace has only
//! its own loopback, which a tool may use between its own processes.
//!
//! The rules are applied in the child after `pivot_root` (the paths are the sandbox's) with
//! raw system calls: no allocation after `clone`.

use std::ffi::CString;

/// `LANDLOCK_ACCESS_FS_*`.
pub mod fs {
    /// Execute a file.
    pub const EXECUTE: u64 = 1 << 0;
    /// Open a file for writing.
    pub const WRITE_FILE: u64 = 1 << 1;
    /// Open a file for reading.
    pub const READ_FILE: u64 = 1 << 2;
    /// List a directory.
    pub const READ_DIR: u64 = 1 << 3;
    /// Remove a directory.
    pub const REMOVE_DIR: u64 = 1 << 4;
    /// Remove a file.
    pub const REMOVE_FILE: u64 = 1 << 5;
    /// Create a character device.
    pub const MAKE_CHAR: u64 = 1 << 6;
    /// Create a directory.
    pub const MAKE_DIR: u64 = 1 << 7;
    /// Create a regular file.
    pub const MAKE_REG: u64 = 1 << 8;
    /// Create a Unix socket.
    pub const MAKE_SOCK: u64 = 1 << 9;
    /// Create a FIFO.
    pub const MAKE_FIFO: u64 = 1 << 10;
    /// Create a block device.
    pub const MAKE_BLOCK: u64 = 1 << 11;
    /// Create a symbolic link.
    pub const MAKE_SYM: u64 = 1 << 12;
    /// Link or rename across directories (ABI 2).
    pub const REFER: u64 = 1 << 13;
    /// Truncate (ABI 3).
    pub const TRUNCATE: u64 = 1 << 14;
    /// ioctl on devices (ABI 5).
    pub const IOCTL_DEV: u64 = 1 << 15;
}

/// `LANDLOCK_SCOPE_*` (ABI 6).
pub mod scope {
    /// Abstract Unix sockets created outside the domain.
    pub const ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
    /// Signals to processes outside the domain.
    pub const SIGNAL: u64 = 1 << 1;
}

/// The file-system rights known to `abi`.
pub fn handled_fs(abi: u32) -> u64 {
    let mut all = (fs::MAKE_SYM << 1) - 1;
    if abi >= 2 {
        all |= fs::REFER;
    }
    if abi >= 3 {
        all |= fs::TRUNCATE;
    }
    if abi >= 5 {
        all |= fs::IOCTL_DEV;
    }
    all
}

/// The Landlock ABI of the running kernel, 0 when it has none (or it is disabled).
pub fn abi() -> u32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: querying the version takes no pointer.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if v < 0 { 0 } else { v as u32 }
}

/// What the child applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Handled file-system rights.
    pub handled_fs: u64,
    /// Scopes (0 before ABI 6).
    pub scoped: u64,
    /// `(path inside the sandbox, rights beneath it)`.
    pub rules: Vec<(String, u64)>,
}

/// The policy of the module documentation for a kernel with `abi` (> 0).
pub fn plan(abi: u32, data_writable: bool) -> Plan {
    let handled = handled_fs(abi);
    let read = fs::READ_FILE | fs::READ_DIR | fs::EXECUTE;
    let dev = read | fs::WRITE_FILE | fs::TRUNCATE | fs::IOCTL_DEV;
    let mut rules = vec![("/".to_string(), read), ("/dev".to_string(), dev & handled)];
    if data_writable {
        rules.push(("/data".to_string(), handled));
    }
    rules.push(("/tmp".to_string(), handled));
    let scoped = if abi >= 6 {
        scope::ABSTRACT_UNIX_SOCKET | scope::SIGNAL
    } else {
        0
    };
    Plan {
        handled_fs: handled,
        scoped,
        rules,
    }
}

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The plan in the form the child uses without allocating.
pub(crate) struct Prepared {
    attr: RulesetAttr,
    attr_size: usize,
    rules: Vec<(CString, u64)>,
}

impl Prepared {
    pub(crate) fn new(plan: &Plan) -> Option<Prepared> {
        let rules = plan
            .rules
            .iter()
            .map(|(p, a)| CString::new(p.as_str()).ok().map(|c| (c, *a)))
            .collect::<Option<Vec<_>>>()?;
        // The kernel accepts the size of the struct it knows; pass only what the ABI has.
        let attr_size = if plan.scoped != 0 { 24 } else { 8 };
        Some(Prepared {
            attr: RulesetAttr {
                handled_access_fs: plan.handled_fs,
                handled_access_net: 0,
                scoped: plan.scoped,
            },
            attr_size,
            rules,
        })
    }

    /// Applies the rules to the calling process (the child, after `no_new_privs`). Only raw
    /// system calls. Returns the errno of the first failure.
    pub(crate) fn apply(&self) -> Result<(), i32> {
        const LANDLOCK_RULE_PATH_BENEATH: libc::c_int = 1;
        // SAFETY: the attribute outlives the call and its size is what we pass.
        let ruleset = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &self.attr as *const RulesetAttr,
                self.attr_size,
                0u32,
            )
        };
        if ruleset < 0 {
            return Err(errno());
        }
        let ruleset = ruleset as libc::c_int;
        for (path, access) in &self.rules {
            // SAFETY: a valid C string.
            let fd = unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
            if fd < 0 {
                let e = errno();
                // SAFETY: our own fd.
                unsafe { libc::close(ruleset) };
                return Err(e);
            }
            let attr = PathBeneathAttr {
                allowed_access: *access,
                parent_fd: fd,
            };
            // SAFETY: the attribute outlives the call.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_landlock_add_rule,
                    ruleset,
                    LANDLOCK_RULE_PATH_BENEATH,
                    &attr as *const PathBeneathAttr,
                    0u32,
                )
            };
            let e = errno();
            // SAFETY: our own fd.
            unsafe { libc::close(fd) };
            if r < 0 {
                // SAFETY: our own fd.
                unsafe { libc::close(ruleset) };
                return Err(e);
            }
        }
        // SAFETY: a ruleset fd we own.
        let r = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32) };
        let e = errno();
        // SAFETY: our own fd.
        unsafe { libc::close(ruleset) };
        if r < 0 { Err(e) } else { Ok(()) }
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn plan_for_abi_7_with_writable_data() {
        let all = 0xffff;
        assert_eq!(
            plan(7, true),
            Plan {
                handled_fs: all,
                scoped: scope::ABSTRACT_UNIX_SOCKET | scope::SIGNAL,
                rules: vec![
                    ("/".into(), fs::READ_FILE | fs::READ_DIR | fs::EXECUTE),
                    (
                        "/dev".into(),
                        fs::READ_FILE
                            | fs::READ_DIR
                            | fs::EXECUTE
                            | fs::WRITE_FILE
                            | fs::TRUNCATE
                            | fs::IOCTL_DEV
                    ),
                    ("/data".into(), all),
                    ("/tmp".into(), all),
                ],
            }
        );
    }

    #[test]
    fn plan_for_abi_1_without_data() {
        let all = (1 << 13) - 1;
        assert_eq!(
            plan(1, false),
            Plan {
                handled_fs: all,
                scoped: 0,
                rules: vec![
                    ("/".into(), fs::READ_FILE | fs::READ_DIR | fs::EXECUTE),
                    (
                        "/dev".into(),
                        fs::READ_FILE | fs::READ_DIR | fs::EXECUTE | fs::WRITE_FILE
                    ),
                    ("/tmp".into(), all),
                ],
            }
        );
    }
}
