//! The tool's only way out: a listener on its own loopback, served by the egress proxy.
//!
//! A tool with a network grant still gets a network namespace with nothing but a loopback:
//! no interface, no route, no resolver. Before `execve`, the child binds a TCP listener at
//! [`PROXY_ADDR`] *inside that namespace* and passes it to the parent over a Unix socket pair
//! (`SCM_RIGHTS`), then closes its own copy. The parent (the Slovo process) accepts on it and
//! hands every connection to the [`slovo_egress::EgressProxy`], which opens the upstream
//! connection from the host's namespace after checking the call's grant.
//!
//! So the listener is the call's identity (one per call, nothing the tool sends decides whose
//! grant applies), and ignoring `HTTP_PROXY` gains nothing: a direct connection has no route.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::error::{ProcessError, Result};

/// Where the tool finds the proxy, on its own loopback.
pub const PROXY_ADDR: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 3128);

/// The proxy variables of a call with a network grant: the listener on its own loopback.
pub fn proxy_env() -> Vec<String> {
    crate::proxy_env(PROXY_ADDR.into())
}

/// The child's part, prepared by the parent: the socket to send the listener on and the
/// address to bind.
#[derive(Debug)]
pub(crate) struct ChildEgress {
    pub(crate) sock: RawFd,
    pub(crate) addr: libc::sockaddr_in,
}

/// The parent's end of the hand-over socket, with the child's end to put into its plan.
pub(crate) struct HandOver {
    parent: OwnedFd,
    child: Option<OwnedFd>,
}

impl HandOver {
    /// A fresh socket pair (datagram-preserving, close-on-exec).
    pub(crate) fn new() -> Result<HandOver> {
        let mut fds = [0; 2];
        // SAFETY: socketpair fills two fds.
        let r = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if r < 0 {
            return Err(ProcessError::sys("create the egress hand-over socket"));
        }
        // SAFETY: fresh fds we own.
        Ok(unsafe {
            HandOver {
                parent: OwnedFd::from_raw_fd(fds[0]),
                child: Some(OwnedFd::from_raw_fd(fds[1])),
            }
        })
    }

    /// What the child needs.
    pub(crate) fn child_plan(&self) -> ChildEgress {
        let ip = PROXY_ADDR.ip().octets();
        // SAFETY: sockaddr_in is plain data; zero is a valid value for every field.
        let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_port = PROXY_ADDR.port().to_be();
        addr.sin_addr.s_addr = u32::from_ne_bytes(ip);
        ChildEgress {
            sock: self.child.as_ref().map_or(-1, |c| c.as_raw_fd()),
            addr,
        }
    }

    /// Closes the parent's copy of the child's end (after `clone`, which copied it).
    pub(crate) fn close_child_end(&mut self) {
        self.child = None;
    }

    /// Receives the listener the child sent (after its `execve`, so it has been sent).
    pub(crate) fn receive(mut self) -> Result<std::net::TcpListener> {
        self.close_child_end();
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut cbuf = [0u64; 4];
        // SAFETY: msghdr is plain data; the pointers set below outlive the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cbuf);
        // SAFETY: recvmsg into the buffers above; the control data is read only within them.
        let fd = unsafe {
            let n = libc::recvmsg(
                self.parent.as_raw_fd(),
                &mut msg,
                libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
            );
            if n < 0 {
                return Err(ProcessError::sys("receive the egress listener"));
            }
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            if cmsg.is_null()
                || (*cmsg).cmsg_level != libc::SOL_SOCKET
                || (*cmsg).cmsg_type != libc::SCM_RIGHTS
            {
                return Err(ProcessError::refused(
                    "the sandbox did not hand over its egress listener",
                ));
            }
            std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>())
        };
        // SAFETY: the kernel installed a fresh fd for us.
        Ok(std::net::TcpListener::from(unsafe { OwnedFd::from_raw_fd(fd) }))
    }
}

/// The child's side: binds the listener in the sandbox's namespace and sends it to the
/// parent. Raw system calls only (runs after `clone`).
pub(crate) fn send_listener(plan: &ChildEgress) -> std::result::Result<(), i32> {
    let errno = || {
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    };
    // SAFETY: raw system calls on our own fds and stack buffers.
    unsafe {
        let l = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if l < 0 {
            return Err(errno());
        }
        let addr_len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        if libc::bind(l, (&plan.addr as *const libc::sockaddr_in).cast(), addr_len) < 0
            || libc::listen(l, 128) < 0
        {
            let e = errno();
            libc::close(l);
            return Err(e);
        }
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut cbuf = [0u64; 4];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) as usize;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), l);
        let sent = libc::sendmsg(plan.sock, &msg, libc::MSG_NOSIGNAL);
        let e = errno();
        // The tool keeps no handle on the listener: only the parent accepts on it.
        libc::close(l);
        libc::close(plan.sock);
        if sent < 0 { Err(e) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_environment_names_the_loopback_listener() {
        let env = proxy_env();
        assert!(env.contains(&"HTTP_PROXY=http://127.0.0.1:3128".to_string()));
        assert!(env.contains(&"https_proxy=http://127.0.0.1:3128".to_string()));
        assert_eq!(env.len(), 6);
    }
}
