//! Network: a tool without a grant has only its own loopback.

use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::process::Command;

use serde_json::json;

use super::support::*;
use crate::require_root;

#[tokio::test]
async fn the_hosts_loopback_is_unreachable_but_its_own_works() {
    require_root!();
    let sb = Sandbox::new();
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
}

#[tokio::test]
async fn the_hosts_abstract_unix_sockets_are_unreachable() {
    require_root!();
    let sb = Sandbox::new();
    let name = format!("slovo-test-{}", std::process::id());
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

/// A test host at 10.251.<n>.2 in a network namespace reached from the host through a veth
/// pair; removed on drop. No packet leaves this machine.
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
        let ns = format!("slovo-t{}", std::process::id());
        let veth = format!("sv{}", std::process::id() % 100_000);
        let peer = format!("{veth}p");
        ip(&["netns", "add", &ns]);
        let host = TestHost {
            ns: ns.clone(),
            veth: veth.clone(),
            addr: format!("10.251.{n}.2"),
        };
        ip(&["link", "add", &veth, "type", "veth", "peer", "name", &peer]);
        ip(&["link", "set", &peer, "netns", &ns]);
        ip(&["addr", "add", &format!("10.251.{n}.1/30"), "dev", &veth]);
        ip(&["link", "set", &veth, "up"]);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("10.251.{n}.2/30"),
            "dev",
            &peer,
        ]);
        ip(&["-n", &ns, "link", "set", &peer, "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        host
    }

    /// A listener inside the namespace.
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
async fn a_test_host_reachable_from_the_host_is_unreachable_from_the_tool() {
    require_root!();
    let sb = Sandbox::new();
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

/// Every call gets a network namespace of its own, never the host's and never another call's,
/// holding only a loopback that is up and that the tool cannot take down or reconfigure.
#[tokio::test]
async fn each_call_gets_a_fresh_network_namespace_it_cannot_reconfigure() {
    require_root!();
    let sb = Sandbox::new();
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    let check = |v: &serde_json::Value| {
        assert_eq!(v["interfaces"], json!(["lo"]), "{v}");
        assert_eq!(v["lo_down_errno"], json!(libc::EPERM), "{v}");
        let ns = v["netns"].as_str().unwrap().to_string();
        assert!(ns.starts_with("net:["), "{v}");
        assert_ne!(
            std::path::Path::new(&ns),
            host,
            "the tool ran in the host's namespace"
        );
        ns
    };
    for _ in 0..4 {
        check(&sb.probe("net", &["netif"]).await);
        assert_eq!(sb.probe("net", &["loopback"]).await, json!({"errno": 0}));
    }
    // Calls alive at the same time (each stays 300 ms) are in distinct namespaces. (Sequential
    // calls could show the same number: the kernel reuses a freed namespace's.)
    let spec = sb.spec("net", &["netif", "300"]);
    let (a, b, c, d) = tokio::join!(sb.run(&spec), sb.run(&spec), sb.run(&spec), sb.run(&spec));
    let outcomes = [a, b, c, d];
    let mut seen = std::collections::BTreeSet::new();
    for o in outcomes {
        assert_eq!(o.status.as_str(), "success", "{o:#?}");
        let ns = check(o.output.as_ref().unwrap());
        assert!(seen.insert(ns), "a network namespace served two calls: {seen:?}");
    }
    // Threads that entered a call's namespace for its `clone` are back in the host's; only
    // the thread that makes namespaces ahead of time lives outside it.
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == "slovo-netns" {
            continue;
        }
        if let Ok(ns) = std::fs::read_link(task.path().join("ns/net")) {
            assert_eq!(
                ns,
                host,
                "thread {} ({}) is outside the host's namespace",
                task.path().display(),
                comm.trim()
            );
        }
    }
}
