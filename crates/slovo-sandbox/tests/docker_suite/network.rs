//! Network: a container without a grant has only its own loopback (`network none`). No packet
//! leaves this machine: targets are the host's loopback and a network namespace made here.

use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::process::Command;

use serde_json::json;

use super::support::*;
use crate::require_docker;

#[tokio::test]
async fn the_hosts_loopback_is_unreachable_but_its_own_works() {
    require_docker!();
    let sb = Sandbox::new().await;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let v = sb.probe("net", &["connect", "127.0.0.1", &port]).await;
    assert_eq!(v, json!({"errno": libc::ECONNREFUSED}));
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    assert_eq!(sb.probe("net", &["loopback"]).await, json!({"errno": 0}));
    // The daemon's default bridge gateway (if any) is not reachable either.
    let v = sb.probe("net", &["connect", "172.17.0.1", "2375"]).await;
    assert_eq!(v, json!({"errno": libc::ENETUNREACH}));
}

#[tokio::test]
async fn the_hosts_abstract_unix_sockets_are_unreachable() {
    require_docker!();
    let sb = Sandbox::new().await;
    let name = format!("slovo-docker-test-{}", std::process::id());
    let listener =
        UnixListener::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
    listener.set_nonblocking(true).unwrap();
    let v = sb.probe("net", &["abstract", &name]).await;
    assert_eq!(v, json!({"errno": libc::ECONNREFUSED}));
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
}

/// A test host at 10.252.<n>.2 in a network namespace reached from the host through a veth
/// pair; removed on drop.
struct TestHost {
    ns: String,
    veth: String,
    addr: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("iproute2 is needed (scripts/ci-sandbox-deps.sh)");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestHost {
    fn new() -> TestHost {
        let n = std::process::id() % 250;
        let ns = format!("slovo-d{}", std::process::id());
        let veth = format!("dv{}", std::process::id() % 100_000);
        let peer = format!("{veth}p");
        ip(&["netns", "add", &ns]);
        let host = TestHost {
            ns: ns.clone(),
            veth: veth.clone(),
            addr: format!("10.252.{n}.2"),
        };
        ip(&["link", "add", &veth, "type", "veth", "peer", "name", &peer]);
        ip(&["link", "set", &peer, "netns", &ns]);
        ip(&["addr", "add", &format!("10.252.{n}.1/30"), "dev", &veth]);
        ip(&["link", "set", &veth, "up"]);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("10.252.{n}.2/30"),
            "dev",
            &peer,
        ]);
        ip(&["-n", &ns, "link", "set", &peer, "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        host
    }

    fn listen(&self) -> TcpListener {
        let path = format!("/run/netns/{}", self.ns);
        let addr = format!("{}:0", self.addr);
        std::thread::spawn(move || {
            let f = std::fs::File::open(path).unwrap();
            use std::os::fd::AsRawFd;
            assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
            TcpListener::bind(addr).unwrap()
        })
        .join()
        .unwrap()
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.veth]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

#[tokio::test]
async fn a_test_host_reachable_from_the_host_is_unreachable_from_the_container() {
    require_docker!();
    let sb = Sandbox::new().await;
    let host = TestHost::new();
    let listener = host.listen();
    listener.set_nonblocking(true).unwrap();
    let target = listener.local_addr().unwrap();
    // Control: the host reaches it.
    TcpStream::connect(target).unwrap();
    let _ = listener.accept().unwrap();
    let port = target.port().to_string();
    let v = sb.probe("net", &["connect", &host.addr, &port]).await;
    assert_eq!(v, json!({"errno": libc::ENETUNREACH}));
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
}
