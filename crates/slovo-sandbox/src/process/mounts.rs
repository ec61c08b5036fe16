//! The tool's root file system, built fresh for every call in its own mount namespace.
//!
//! # Layout
//! | path | what | mode |
//! |------|------|------|
//! | `/` | a tiny tmpfs | read-only after setup |
//! | `/tool` | the bundle | read-only, nosuid, nodev |
//! | `/usr`, `/bin`, `/lib`, … | host system directories (only with `system_paths`) | read-only, nosuid, nodev |
//! | `/etc/ld.so.cache`, `/etc/alternatives` | what the dynamic loader and Debian's alternatives need | read-only |
//! | `/data` | the tool's state volume | read-write, nosuid, nodev (read-only and empty without a quota) |
//! | `/tmp` | a small tmpfs | read-write, nosuid, nodev |
//! | `/dev` | `null`, `zero`, `full`, `random`, `urandom` bound from the host, `fd`/`std*` links | read-only tmpfs |
//! | `/proc` | a fresh procfs of the tool's PID namespace | nosuid, nodev, noexec |
//!
//! Nothing else of the host exists: no `/etc/shadow`, no `/home`, no `/sys`, no data directory.
//!
//! # A private data directory
//! The bundle and the state volume live in the data directory, which is private (0700) to the
//! account running Slovo; the tool's uid cannot even traverse it. So their binds are
//! [`Op::BindPrivate`]: the child opens each source (`O_PATH`) while it still has the
//! parent's identity (right after `clone`, in its own mount namespace, before `setresuid`), and
//! binds it later through `/proc/self/fd/N`, which reaches the opened directory without walking
//! its parents again. The staging directory must therefore lie outside the data directory, on
//! a path every uid can traverse (see `ProcessConfig::staging_dir`).
//!
//! # Order ([`plan`])
//! 1. Make every inherited mount private, so nothing propagates to or from the host.
//! 2. Mount a tmpfs on the staging directory (the future root) and create the mount points.
//! 3. Bind the bundle, the system directories and the state volume; remount the read-only ones
//!    (keeping the flags the kernel locks in a user namespace).
//! 4. Mount `/tmp`, build `/dev`, mount `/proc`.
//! 5. `pivot_root` into the staging directory and detach the old root.
//! 6. Remount `/` read-only.
//!
//! [`plan`] is pure (tested on its whole output); [`Prepared`] turns it into C strings
//! before `clone`, and the child runs it with raw system calls only.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A host system entry visible in the sandbox with `system_paths`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemEntry {
    /// A directory bound read-only at the same path.
    Dir(PathBuf),
    /// A file bound read-only at the same path.
    File(PathBuf),
    /// A symbolic link recreated at the same path (`/bin -> usr/bin` on merged-/usr systems).
    Symlink {
        /// The link's path.
        path: PathBuf,
        /// Its target.
        target: PathBuf,
    },
}

/// The host paths visible with `system_paths`, as they exist on this host.
pub fn system_entries() -> Vec<SystemEntry> {
    let mut out = Vec::new();
    for p in [
        "/usr",
        "/bin",
        "/sbin",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/etc/alternatives",
        "/etc/ld.so.cache",
        // Public CA certificates, so that a program reaching a granted https host (a package
        // manager fetching from a registry, a tool calling an API) can verify it.
        "/etc/ssl/certs",
    ] {
        let path = PathBuf::from(p);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            if let Ok(target) = std::fs::read_link(&path) {
                out.push(SystemEntry::Symlink { path, target });
            }
        } else if meta.is_dir() {
            out.push(SystemEntry::Dir(path));
        } else if meta.is_file() {
            out.push(SystemEntry::File(path));
        }
    }
    out
}

/// The inputs of [`plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The staging directory on the host (any empty directory; a tmpfs is mounted over it).
    pub staging: PathBuf,
    /// The bundle (host path).
    pub bundle: PathBuf,
    /// The state volume (host path), or `None` for a read-only empty `/data`.
    pub data: Option<PathBuf>,
    /// System entries to expose (empty without `system_paths`).
    pub system: Vec<SystemEntry>,
    /// Size of `/tmp` (MiB).
    pub tmp_mb: u64,
}

/// Flags of a read-only bind.
const RO: u64 = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
/// Flags of a writable bind.
const RW: u64 = libc::MS_NOSUID | libc::MS_NODEV;

/// One setup operation. Paths are host paths before [`Op::PivotRoot`], sandbox paths after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `mount(NULL, "/", NULL, MS_REC|MS_PRIVATE)`.
    MakePrivate,
    /// `mount("tmpfs", target, "tmpfs", flags, options)`.
    Tmpfs {
        /// Where.
        target: PathBuf,
        /// `MS_*` flags.
        flags: u64,
        /// `size=…,mode=…`.
        options: String,
    },
    /// `mkdir(path, mode)`.
    Mkdir {
        /// Path.
        path: PathBuf,
        /// Mode.
        mode: u32,
    },
    /// An empty file to bind a file onto.
    Touch {
        /// Path.
        path: PathBuf,
    },
    /// `symlink(target, path)`.
    Symlink {
        /// Link.
        path: PathBuf,
        /// Target.
        target: PathBuf,
    },
    /// Like [`Op::Bind`], for a source in the private data directory: opened before the child
    /// changes identity and bound through its descriptor (see the module documentation).
    BindPrivate {
        /// Host path.
        source: PathBuf,
        /// Target.
        target: PathBuf,
        /// `MS_*` flags of the remount.
        flags: u64,
    },
    /// A non-recursive bind, then (unless `flags` is 0) a remount with `flags` (`MS_RDONLY`,
    /// `MS_NOSUID`, …) plus the flags the source has that a user namespace locks.
    Bind {
        /// Host path.
        source: PathBuf,
        /// Target.
        target: PathBuf,
        /// `MS_*` flags of the remount.
        flags: u64,
    },
    /// `mount("proc", target, "proc", nosuid|nodev|noexec)`.
    Proc {
        /// Where.
        target: PathBuf,
    },
    /// Remount a mount point read-only (`/dev` once populated).
    RemountReadOnly {
        /// The mount point.
        target: PathBuf,
    },
    /// `pivot_root` into `new_root`, detach the old root, `chdir("/")`.
    PivotRoot {
        /// The new root.
        new_root: PathBuf,
    },
}

/// Device nodes bound from the host.
pub const DEVICES: [&str; 5] = ["null", "zero", "full", "random", "urandom"];

/// The operations that build the root of [`Layout`], in order (see the module documentation).
pub fn plan(layout: &Layout) -> Vec<Op> {
    let root = &layout.staging;
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    let mut ops = vec![
        Op::MakePrivate,
        Op::Tmpfs {
            target: root.clone(),
            flags: libc::MS_NOSUID | libc::MS_NODEV,
            options: "size=1m,nr_inodes=256,mode=0755".to_string(),
        },
    ];
    for d in ["tool", "data", "tmp", "dev", "proc"] {
        ops.push(Op::Mkdir {
            path: at(d),
            mode: 0o755,
        });
    }
    ops.push(Op::BindPrivate {
        source: layout.bundle.clone(),
        target: at("tool"),
        flags: RO,
    });
    // The staging root is empty: a nested entry (`/etc/ssl/certs`) needs its parents made once.
    let mut made_parents = std::collections::BTreeSet::new();
    for entry in &layout.system {
        let path = match entry {
            SystemEntry::Dir(p) | SystemEntry::File(p) | SystemEntry::Symlink { path: p, .. } => p,
        };
        let target = at(&path.to_string_lossy());
        let mut parents: Vec<&Path> = path
            .ancestors()
            .skip(1)
            .filter(|a| a.parent().is_some())
            .collect();
        parents.reverse();
        for parent in parents {
            if made_parents.insert(parent.to_path_buf()) {
                ops.push(Op::Mkdir {
                    path: at(&parent.to_string_lossy()),
                    mode: 0o755,
                });
            }
        }
        match entry {
            SystemEntry::Dir(p) => {
                ops.push(Op::Mkdir {
                    path: target.clone(),
                    mode: 0o755,
                });
                ops.push(Op::Bind {
                    source: p.clone(),
                    target,
                    flags: RO,
                });
            }
            SystemEntry::File(p) => {
                ops.push(Op::Touch { path: target.clone() });
                ops.push(Op::Bind {
                    source: p.clone(),
                    target,
                    flags: RO,
                });
            }
            SystemEntry::Symlink { target: t, .. } => {
                ops.push(Op::Symlink {
                    path: target,
                    target: t.clone(),
                });
            }
        }
    }
    if let Some(data) = &layout.data {
        ops.push(Op::BindPrivate {
            source: data.clone(),
            target: at("data"),
            flags: RW,
        });
    }
    ops.push(Op::Tmpfs {
        target: at("tmp"),
        flags: libc::MS_NOSUID | libc::MS_NODEV,
        options: format!("size={}m,mode=1777", layout.tmp_mb.max(1)),
    });
    ops.push(Op::Tmpfs {
        target: at("dev"),
        flags: libc::MS_NOSUID | libc::MS_NOEXEC,
        options: "size=64k,nr_inodes=64,mode=0755".to_string(),
    });
    for d in DEVICES {
        let target = at(&format!("dev/{d}"));
        ops.push(Op::Touch { path: target.clone() });
        // The host's /dev is already nosuid; no remount needed (flags 0).
        ops.push(Op::Bind {
            source: PathBuf::from(format!("/dev/{d}")),
            target,
            flags: 0,
        });
    }
    for (link, target) in [
        ("dev/fd", "/proc/self/fd"),
        ("dev/stdin", "/proc/self/fd/0"),
        ("dev/stdout", "/proc/self/fd/1"),
        ("dev/stderr", "/proc/self/fd/2"),
    ] {
        ops.push(Op::Symlink {
            path: at(link),
            target: PathBuf::from(target),
        });
    }
    ops.push(Op::RemountReadOnly { target: at("dev") });
    ops.push(Op::Proc { target: at("proc") });
    ops.push(Op::PivotRoot {
        new_root: root.clone(),
    });
    ops.push(Op::RemountReadOnly {
        target: PathBuf::from("/"),
    });
    ops
}

/// An [`Op`] with C strings, ready for the child.
pub(crate) enum RawOp {
    MakePrivate,
    Mount {
        source: CString,
        target: CString,
        fstype: CString,
        flags: u64,
        data: CString,
    },
    Mkdir {
        path: CString,
        mode: u32,
    },
    Touch {
        path: CString,
    },
    Symlink {
        path: CString,
        target: CString,
    },
    Bind {
        source: CString,
        target: CString,
        flags: u64,
    },
    /// The source is opened by [`open_private_source`] before the child changes identity.
    BindPrivate {
        source: CString,
        target: CString,
        flags: u64,
    },
    RemountReadOnly {
        target: CString,
    },
    PivotRoot {
        new_root: CString,
    },
}

/// The whole plan as [`RawOp`]s; `None` if a path holds a NUL byte.
pub(crate) struct Prepared {
    pub(crate) ops: Vec<(RawOp, &'static str)>,
}

fn c(p: &Path) -> Option<CString> {
    CString::new(p.as_os_str().as_bytes()).ok()
}

fn cs(s: &str) -> Option<CString> {
    CString::new(s).ok()
}

impl Prepared {
    pub(crate) fn new(ops: &[Op]) -> Option<Prepared> {
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            out.push(match op {
                Op::MakePrivate => (RawOp::MakePrivate, "make mounts private"),
                Op::Tmpfs {
                    target,
                    flags,
                    options,
                } => (
                    RawOp::Mount {
                        source: cs("tmpfs")?,
                        target: c(target)?,
                        fstype: cs("tmpfs")?,
                        flags: *flags,
                        data: cs(options)?,
                    },
                    "mount tmpfs",
                ),
                Op::Mkdir { path, mode } => (
                    RawOp::Mkdir {
                        path: c(path)?,
                        mode: *mode,
                    },
                    "create mount point",
                ),
                Op::Touch { path } => (RawOp::Touch { path: c(path)? }, "create file mount point"),
                Op::Symlink { path, target } => (
                    RawOp::Symlink {
                        path: c(path)?,
                        target: c(target)?,
                    },
                    "create symlink",
                ),
                Op::Bind {
                    source,
                    target,
                    flags,
                } => (
                    RawOp::Bind {
                        source: c(source)?,
                        target: c(target)?,
                        flags: *flags,
                    },
                    "bind mount",
                ),
                Op::BindPrivate {
                    source,
                    target,
                    flags,
                } => (
                    RawOp::BindPrivate {
                        source: c(source)?,
                        target: c(target)?,
                        flags: *flags,
                    },
                    "bind mount from the data directory",
                ),
                Op::Proc { target } => (
                    RawOp::Mount {
                        source: cs("proc")?,
                        target: c(target)?,
                        fstype: cs("proc")?,
                        flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                        data: cs("")?,
                    },
                    "mount /proc",
                ),
                Op::RemountReadOnly { target } => {
                    (RawOp::RemountReadOnly { target: c(target)? }, "remount read-only")
                }
                Op::PivotRoot { new_root } => (
                    RawOp::PivotRoot {
                        new_root: c(new_root)?,
                    },
                    "pivot_root",
                ),
            });
        }
        Some(Prepared { ops: out })
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn check(r: libc::c_int) -> Result<(), i32> {
    if r < 0 { Err(errno()) } else { Ok(()) }
}

/// `struct statfs` of 64-bit kernels (the C library's lacks `f_flags` in the `libc` crate).
#[repr(C)]
struct KernelStatfs {
    f_type: i64,
    f_bsize: i64,
    f_blocks: u64,
    f_bfree: u64,
    f_bavail: u64,
    f_files: u64,
    f_ffree: u64,
    f_fsid: [i32; 2],
    f_namelen: i64,
    f_frsize: i64,
    f_flags: i64,
    f_spare: [i64; 4],
}

/// The flags a user namespace locks on a mount and a remount must keep.
fn locked_flags(target: &CString) -> Result<u64, i32> {
    // The raw system call: the C library's statvfs may read /proc/mounts (and allocate).
    // SAFETY: the kernel's struct statfs (64-bit layout), plain old data; a valid C string.
    let mut st: KernelStatfs = unsafe { std::mem::zeroed() };
    check(unsafe { libc::syscall(libc::SYS_statfs, target.as_ptr(), &mut st) } as libc::c_int)?;
    let f_flag = st.f_flags as u64;
    let mut flags = 0;
    for (st_flag, ms_flag) in [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
        (libc::ST_RDONLY, libc::MS_RDONLY),
    ] {
        if f_flag & st_flag != 0 {
            flags |= ms_flag;
        }
    }
    Ok(flags)
}

/// Opens the source of a [`RawOp::BindPrivate`] (`O_PATH`, closed at `execve`); other
/// operations need nothing opened. Runs in the child before it changes identity.
pub(crate) fn open_private_source(op: &RawOp) -> Result<Option<libc::c_int>, i32> {
    let RawOp::BindPrivate { source, .. } = op else {
        return Ok(None);
    };
    // SAFETY: a valid C string.
    let fd = unsafe { libc::open(source.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    check(fd)?;
    Ok(Some(fd))
}

/// `/proc/self/fd/<fd>` as a C string in `buf`, without allocating (the child may not).
fn fd_path(fd: libc::c_int, buf: &mut [u8; 32]) -> *const libc::c_char {
    const PREFIX: &[u8] = b"/proc/self/fd/";
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 10];
    let (mut n, mut len) = (fd.unsigned_abs(), 0);
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        buf[PREFIX.len() + i] = digits[len - 1 - i];
    }
    buf[PREFIX.len() + len] = 0;
    buf.as_ptr().cast()
}

/// Runs one operation; `opened` is what [`open_private_source`] returned for it.
pub(crate) fn run(op: &RawOp, opened: Option<libc::c_int>) -> Result<(), i32> {
    let null = std::ptr::null::<libc::c_char>();
    // SAFETY (whole function): every pointer is a valid C string owned by `op` or null where
    // the system call accepts null.
    unsafe {
        match op {
            RawOp::MakePrivate => check(libc::mount(
                null,
                c"/".as_ptr(),
                null,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )),
            RawOp::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => check(libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                *flags,
                data.as_ptr().cast(),
            )),
            RawOp::Mkdir { path, mode } => check(libc::mkdir(path.as_ptr(), *mode)),
            RawOp::Touch { path } => {
                let fd = libc::open(
                    path.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o644,
                );
                check(fd)?;
                libc::close(fd);
                Ok(())
            }
            RawOp::Symlink { path, target } => check(libc::symlink(target.as_ptr(), path.as_ptr())),
            RawOp::Bind {
                source,
                target,
                flags,
            } => bind(source.as_ptr(), target, *flags),
            RawOp::BindPrivate { target, flags, .. } => {
                let Some(fd) = opened else {
                    return Err(libc::EBADF);
                };
                let mut buf = [0u8; 32];
                let result = bind(fd_path(fd, &mut buf), target, *flags);
                libc::close(fd);
                result
            }
            RawOp::RemountReadOnly { target } => {
                let keep = locked_flags(target)?;
                check(libc::mount(
                    null,
                    target.as_ptr(),
                    null,
                    libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | keep,
                    std::ptr::null(),
                ))
            }
            RawOp::PivotRoot { new_root } => {
                check(libc::chdir(new_root.as_ptr()))?;
                let dot = c".".as_ptr();
                check(libc::syscall(libc::SYS_pivot_root, dot, dot) as libc::c_int)?;
                check(libc::umount2(dot, libc::MNT_DETACH))?;
                check(libc::chdir(c"/".as_ptr()))
            }
        }
    }
}

/// A non-recursive bind of `source` on `target`, then the remount with `flags` (none if 0).
///
/// # Safety
/// `source` is a valid C string.
unsafe fn bind(source: *const libc::c_char, target: &CString, flags: u64) -> Result<(), i32> {
    let null = std::ptr::null::<libc::c_char>();
    // SAFETY: valid C strings, per the caller.
    unsafe {
        check(libc::mount(
            source,
            target.as_ptr(),
            null,
            libc::MS_BIND,
            std::ptr::null(),
        ))?;
        if flags == 0 {
            return Ok(());
        }
        let keep = locked_flags(target)?;
        check(libc::mount(
            null,
            target.as_ptr(),
            null,
            libc::MS_REMOUNT | libc::MS_BIND | flags | keep,
            std::ptr::null(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn fd_paths_are_written_without_allocating() {
        for (fd, want) in [
            (0, "/proc/self/fd/0"),
            (7, "/proc/self/fd/7"),
            (1234, "/proc/self/fd/1234"),
        ] {
            let mut buf = [0u8; 32];
            let p = fd_path(fd, &mut buf);
            // SAFETY: fd_path wrote a NUL-terminated string into buf.
            let got = unsafe { std::ffi::CStr::from_ptr(p) };
            assert_eq!(got.to_str().ok(), Some(want));
        }
    }

    #[test]
    fn nested_system_entries_get_their_parents_made_once() {
        let layout = Layout {
            staging: "/w/root".into(),
            bundle: "/b".into(),
            data: None,
            system: vec![
                SystemEntry::File("/etc/ld.so.cache".into()),
                SystemEntry::Dir("/etc/ssl/certs".into()),
            ],
            tmp_mb: 8,
        };
        let made: Vec<PathBuf> = plan(&layout)
            .into_iter()
            .filter_map(|op| match op {
                Op::Mkdir { path, .. } if path.starts_with("/w/root/etc") => Some(path),
                _ => None,
            })
            .collect();
        let p = PathBuf::from;
        assert_eq!(
            made,
            [p("/w/root/etc"), p("/w/root/etc/ssl"), p("/w/root/etc/ssl/certs")]
        );
    }

    #[test]
    fn plan_with_system_paths_and_a_state_volume() {
        let layout = Layout {
            staging: "/w/root".into(),
            bundle: "/b".into(),
            data: Some("/s".into()),
            system: vec![
                SystemEntry::Dir("/usr".into()),
                SystemEntry::Symlink {
                    path: "/bin".into(),
                    target: "usr/bin".into(),
                },
                SystemEntry::File("/etc/ld.so.cache".into()),
            ],
            tmp_mb: 8,
        };
        let p = PathBuf::from;
        let mut expected = vec![
            Op::MakePrivate,
            Op::Tmpfs {
                target: p("/w/root"),
                flags: RW,
                options: "size=1m,nr_inodes=256,mode=0755".into(),
            },
            Op::Mkdir {
                path: p("/w/root/tool"),
                mode: 0o755,
            },
            Op::Mkdir {
                path: p("/w/root/data"),
                mode: 0o755,
            },
            Op::Mkdir {
                path: p("/w/root/tmp"),
                mode: 0o755,
            },
            Op::Mkdir {
                path: p("/w/root/dev"),
                mode: 0o755,
            },
            Op::Mkdir {
                path: p("/w/root/proc"),
                mode: 0o755,
            },
            Op::BindPrivate {
                source: p("/b"),
                target: p("/w/root/tool"),
                flags: RO,
            },
            Op::Mkdir {
                path: p("/w/root/usr"),
                mode: 0o755,
            },
            Op::Bind {
                source: p("/usr"),
                target: p("/w/root/usr"),
                flags: RO,
            },
            Op::Symlink {
                path: p("/w/root/bin"),
                target: p("usr/bin"),
            },
            Op::Mkdir {
                path: p("/w/root/etc"),
                mode: 0o755,
            },
            Op::Touch {
                path: p("/w/root/etc/ld.so.cache"),
            },
            Op::Bind {
                source: p("/etc/ld.so.cache"),
                target: p("/w/root/etc/ld.so.cache"),
                flags: RO,
            },
            Op::BindPrivate {
                source: p("/s"),
                target: p("/w/root/data"),
                flags: RW,
            },
            Op::Tmpfs {
                target: p("/w/root/tmp"),
                flags: RW,
                options: "size=8m,mode=1777".into(),
            },
            Op::Tmpfs {
                target: p("/w/root/dev"),
                flags: libc::MS_NOSUID | libc::MS_NOEXEC,
                options: "size=64k,nr_inodes=64,mode=0755".into(),
            },
        ];
        for d in DEVICES {
            expected.push(Op::Touch {
                path: PathBuf::from(format!("/w/root/dev/{d}")),
            });
            expected.push(Op::Bind {
                source: PathBuf::from(format!("/dev/{d}")),
                target: PathBuf::from(format!("/w/root/dev/{d}")),
                flags: 0,
            });
        }
        expected.extend([
            Op::Symlink {
                path: p("/w/root/dev/fd"),
                target: p("/proc/self/fd"),
            },
            Op::Symlink {
                path: p("/w/root/dev/stdin"),
                target: p("/proc/self/fd/0"),
            },
            Op::Symlink {
                path: p("/w/root/dev/stdout"),
                target: p("/proc/self/fd/1"),
            },
            Op::Symlink {
                path: p("/w/root/dev/stderr"),
                target: p("/proc/self/fd/2"),
            },
            Op::RemountReadOnly {
                target: p("/w/root/dev"),
            },
            Op::Proc {
                target: p("/w/root/proc"),
            },
            Op::PivotRoot {
                new_root: p("/w/root"),
            },
            Op::RemountReadOnly { target: p("/") },
        ]);
        assert_eq!(plan(&layout), expected);
    }

    #[test]
    fn without_system_paths_or_quota_only_the_minimal_root() {
        let layout = Layout {
            staging: "/r".into(),
            bundle: "/b".into(),
            data: None,
            system: vec![],
            tmp_mb: 4,
        };
        let ops = plan(&layout);
        assert!(
            !ops.iter()
                .any(|o| matches!(o, Op::BindPrivate { target, .. } if target == Path::new("/r/data")))
        );
        assert!(
            !ops.iter()
                .any(|o| matches!(o, Op::Bind { source, .. } if source.starts_with("/usr")))
        );
        assert!(Prepared::new(&ops).is_some());
    }
}
