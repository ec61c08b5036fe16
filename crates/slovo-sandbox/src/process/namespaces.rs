//! Namespaces: what the tool sees of the machine.
//!
//! Every call gets a new user, mount, PID, network, IPC, UTS and cgroup namespace:
//! - **user**: the tool's uid/gid inside ([`TOOL_ID`]) map to one unprivileged host id and
//!   nothing else; uid 0 inside is unmapped, so nothing in the sandbox is ever root on the host
//!   and the capabilities the child holds while it builds the sandbox are worthless outside;
//! - **mount**: the root file system of [`super::mounts`];
//! - **PID**: the tool is PID 1 of its own namespace. It sees no host process, and when it
//!   exits (or is killed) the kernel kills every process left in the namespace, daemons
//!   included;
//! - **network**: only a loopback of its own; the host's `127.0.0.1`, its interfaces and its
//!   abstract Unix sockets are not reachable;
//! - **IPC**, **UTS**: its own System V IPC and hostname;
//! - **cgroup**: entered after the parent moved the child into its call cgroup, so
//!   `/proc/self/cgroup` shows `/` and nothing of the host's hierarchy.
//!
//! The first six are created by one `clone`; the uid/gid maps are written by the parent
//! while the child waits on a pipe.

use std::fs;
use std::io::Write;

use super::error::{ProcessError, Result};

/// The uid and gid of the tool inside its user namespace.
pub const TOOL_ID: u32 = 1000;

/// The namespaces created by `clone`, in the order documented above.
pub const ORDERED_NAMESPACES: [(libc::c_int, &str); 6] = [
    (libc::CLONE_NEWUSER, "user"),
    (libc::CLONE_NEWNS, "mount"),
    (libc::CLONE_NEWPID, "pid"),
    (libc::CLONE_NEWNET, "network"),
    (libc::CLONE_NEWIPC, "ipc"),
    (libc::CLONE_NEWUTS, "uts"),
];

/// The `clone` flags of a sandbox.
pub fn clone_flags() -> u64 {
    ORDERED_NAMESPACES
        .iter()
        .fold(0u64, |acc, (f, _)| acc | *f as u64)
}

/// The line written to `uid_map` and `gid_map`: [`TOOL_ID`] inside, `host_id` outside.
pub fn id_map(host_id: u32) -> String {
    format!("{TOOL_ID} {host_id} 1\n")
}

/// Writes the child's uid and gid maps (parent side).
pub fn write_id_maps(pid: i32, host_uid: u32, host_gid: u32) -> Result<()> {
    for (file, id) in [("uid_map", host_uid), ("gid_map", host_gid)] {
        let path = format!("/proc/{pid}/{file}");
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(id_map(id).as_bytes()))
            .map_err(|e| {
                tracing::error!(?e, path, "failed to write id map");
                ProcessError::io("write", path, e)
            })?;
    }
    Ok(())
}

/// Brings the namespace's loopback up (raw system calls; called after `clone`).
pub(crate) fn loopback_up() -> Result<(), i32> {
    // SAFETY: a zeroed ifreq with a NUL-terminated name; ioctl on our own socket.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return Err(errno());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        req.ifr_name[0] = b'l' as libc::c_char;
        req.ifr_name[1] = b'o' as libc::c_char;
        req.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        let r = libc::ioctl(sock, libc::SIOCSIFFLAGS, &req);
        let e = errno();
        libc::close(sock);
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

    #[test]
    fn clone_creates_six_namespaces_and_maps_one_id() {
        assert_eq!(
            clone_flags(),
            (libc::CLONE_NEWUSER
                | libc::CLONE_NEWNS
                | libc::CLONE_NEWPID
                | libc::CLONE_NEWNET
                | libc::CLONE_NEWIPC
                | libc::CLONE_NEWUTS) as u64
        );
        assert_eq!(id_map(1_900_000), "1000 1900000 1\n");
    }
}
