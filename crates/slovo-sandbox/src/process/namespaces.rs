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
//!
//! # Network namespaces made ahead of time
//! Creating a network namespace is most of what `clone` costs here (about 0.33 ms of 0.45 ms
//! for all six on the reference machine: the kernel sets up every per-namespace network
//! subsystem). When the backend runs as root, [`NetnsKeeper`] makes a few ahead of time on a
//! thread of its own, each with its loopback up and nothing else, and a call takes one: the
//! parent's thread enters it just for the `clone` (without `CLONE_NEWNET`, so the child
//! inherits it) and returns to the host's at once. Each namespace still serves exactly one
//! call; it ends with the call's last process. Such a namespace belongs to the host's user
//! namespace rather than the tool's, so the tool holds no capability over it at all (it cannot
//! even bring its loopback down). Unprivileged, `clone` creates the namespace as before.

use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};

use super::error::{ProcessError, Result};
use super::keeper::Keeper;

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

/// How many network namespaces the keeper holds ready.
const READY_NETNS: usize = 2;

/// Makes network namespaces ahead of time (see the module documentation). Root only.
#[derive(Debug)]
pub struct NetnsKeeper {
    /// The network namespace of the thread that started the keeper: where a thread returns
    /// after a `clone`.
    host: OwnedFd,
    keeper: Keeper<OwnedFd>,
}

impl NetnsKeeper {
    /// Starts the keeper's thread. Fails if this process cannot create network namespaces.
    pub fn start() -> Result<NetnsKeeper> {
        let host = open_netns()?;
        // Prove that it works before any call depends on it, on a thread that ends after.
        std::thread::spawn(make_netns)
            .join()
            .map_err(|_| ProcessError::sys("make a network namespace"))??;
        // The keeper's thread moves into each namespace it makes and serves nothing else.
        let keeper = Keeper::start("slovo-netns", READY_NETNS, make_netns, drop)
            .map_err(|e| ProcessError::io("start", "the network namespace keeper thread", e))?;
        Ok(NetnsKeeper { host, keeper })
    }

    /// A fresh network namespace for one call, if one is ready (otherwise the call's `clone`
    /// makes its own).
    pub fn take(&self) -> Option<OwnedFd> {
        self.keeper.take()
    }

    /// Runs `f` (a `clone`) on this thread while it is in the network namespace `ns`, then
    /// returns the thread to the host's. The thread must not stay in a tool's namespace: if it
    /// cannot return, the process aborts rather than serve anything from there.
    pub fn clone_in<T>(&self, ns: &OwnedFd, f: impl FnOnce() -> T) -> Result<T> {
        // SAFETY: setns on valid namespace fds; affects only this thread.
        unsafe {
            if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) < 0 {
                return Err(ProcessError::sys("enter the call's network namespace"));
            }
            let out = f();
            if libc::setns(self.host.as_raw_fd(), libc::CLONE_NEWNET) < 0 {
                tracing::error!(error = %std::io::Error::last_os_error(), "cannot return to the host's network namespace");
                std::process::abort();
            }
            Ok(out)
        }
    }
}

fn open_netns() -> Result<OwnedFd> {
    fs::File::open("/proc/thread-self/ns/net")
        .map(OwnedFd::from)
        .map_err(|e| ProcessError::io("open", "/proc/thread-self/ns/net", e))
}

/// Moves the calling thread into a new network namespace, brings its loopback up and returns
/// a handle to it. Only for threads that serve nothing else (the keeper's).
fn make_netns() -> Result<OwnedFd> {
    // SAFETY: unshare of the network namespace affects only the calling thread.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } < 0 {
        return Err(ProcessError::sys("create a network namespace"));
    }
    loopback_up().map_err(|errno| ProcessError::Sys {
        action: "bring a network namespace's loopback up",
        source: std::io::Error::from_raw_os_error(errno),
    })?;
    open_netns()
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
