//! A test host in a network namespace the test creates, and a small HTTP server for it:
//! shared by the egress tests of the process sandbox and of Docker. Nothing leaves this machine.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slovo_egress::{EgressConfig, EgressProxy, PublicPolicy, StaticResolver};

pub fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("iproute2 is needed (scripts/ci-egress-deps.sh)");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test host in its own network namespace, reachable from the host (and so from the proxy)
/// over a veth pair, at 198.51.100.<base+4n+2> (TEST-NET-2: never routed anywhere); removed on
/// drop.
pub struct Outside {
    ns: String,
    veth: String,
    pub addr: String,
}

impl Outside {
    /// The next test host of this process; `suite` (one letter) keeps the names and `base`
    /// the addresses of different test binaries apart; at most `slots` hosts.
    pub fn new(suite: char, base: u32, slots: u32) -> Outside {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < slots && base + 4 * n + 3 < 256, "out of test subnets");
        let tag = format!("{}{suite}{n}", std::process::id() % 100_000);
        let ns = format!("slovo-e{suite}{tag}");
        let veth = format!("s{suite}{tag}");
        let peer = format!("{veth}p");
        ip(&["netns", "add", &ns]);
        let o = Outside {
            ns: ns.clone(),
            veth: veth.clone(),
            addr: format!("198.51.100.{}", base + 4 * n + 2),
        };
        ip(&["link", "add", &veth, "type", "veth", "peer", "name", &peer]);
        ip(&["link", "set", &peer, "netns", &ns]);
        ip(&[
            "addr",
            "add",
            &format!("198.51.100.{}/30", base + 4 * n + 1),
            "dev",
            &veth,
        ]);
        ip(&["link", "set", &veth, "up"]);
        ip(&["-n", &ns, "addr", "add", &format!("{}/30", o.addr), "dev", &peer]);
        ip(&["-n", &ns, "link", "set", &peer, "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        o
    }

    /// Runs `f` on a thread inside the namespace (sockets it creates stay there).
    pub fn inside<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.ns);
        std::thread::spawn(move || {
            let file = std::fs::File::open(path).unwrap();
            assert_eq!(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
            f()
        })
        .join()
        .unwrap()
    }

    pub fn ip(&self) -> IpAddr {
        self.addr.parse().unwrap()
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.veth]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// An HTTP server on `listener`: `/redirect?to=URL` answers 302, anything else 200 with a
/// body naming the path. Records each request head.
pub fn http_server(listener: TcpListener) -> Arc<Mutex<Vec<String>>> {
    let heads = Arc::new(Mutex::new(Vec::new()));
    let h = heads.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let head = String::from_utf8_lossy(&buf).into_owned();
            h.lock().unwrap().push(head.clone());
            let path = head.split(' ').nth(1).unwrap_or("/").to_string();
            let resp = match path.strip_prefix("/redirect?to=") {
                Some(to) => format!(
                    "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                ),
                None => {
                    let body = format!("outside says {path}");
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                }
            };
            let _ = s.write_all(resp.as_bytes());
        }
    });
    heads
}

/// Asserts that no connection is waiting on a non-blocking `listener`.
pub fn nothing_arrived(listener: &TcpListener) {
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        ErrorKind::WouldBlock,
        "a connection arrived"
    );
}

/// Asserts that no datagram arrived on a non-blocking `sock` (after a moment to let one land).
pub fn no_datagram(sock: &UdpSocket) {
    std::thread::sleep(Duration::from_millis(100));
    let mut buf = [0u8; 512];
    assert_eq!(
        sock.recv_from(&mut buf).map(|_| ()).unwrap_err().kind(),
        ErrorKind::WouldBlock,
        "a datagram arrived"
    );
}

/// What an egress test needs around a sandbox: a test host with an HTTP server and a socket on
/// its DNS port, the host's own TCP and UDP services, names resolving to both, and a proxy that
/// treats `public` (the test hosts' range) as public.
pub struct Scene {
    pub outside: Outside,
    /// The test host's HTTP port.
    pub port: u16,
    /// The request heads its HTTP server saw.
    pub heads: Arc<Mutex<Vec<String>>>,
    /// A UDP socket on the test host's port 53 (non-blocking).
    pub outside_udp: UdpSocket,
    /// A host service (non-blocking) bound on `host_bind`.
    pub host_tcp: TcpListener,
    /// A host UDP service (non-blocking) bound on `host_bind`.
    pub host_udp: UdpSocket,
    /// `granted.test` and `other.test` → the test host, `inside.test` → 127.0.0.1.
    pub resolver: Arc<StaticResolver>,
    pub proxy: EgressProxy,
}

impl Scene {
    pub fn new(outside: Outside, host_bind: &str, public: &str) -> Scene {
        let addr = outside.addr.clone();
        let listener = outside.inside(move || TcpListener::bind((addr.as_str(), 0)).unwrap());
        let port = listener.local_addr().unwrap().port();
        let heads = http_server(listener);
        let addr = outside.addr.clone();
        let outside_udp = outside.inside(move || UdpSocket::bind((addr.as_str(), 53)).unwrap());
        outside_udp.set_nonblocking(true).unwrap();
        let host_tcp = TcpListener::bind((host_bind, 0)).unwrap();
        host_tcp.set_nonblocking(true).unwrap();
        let host_udp = UdpSocket::bind((host_bind, 0)).unwrap();
        host_udp.set_nonblocking(true).unwrap();
        let resolver = Arc::new(
            StaticResolver::new()
                .with("granted.test", &[outside.ip()])
                .with("other.test", &[outside.ip()])
                .with("inside.test", &["127.0.0.1".parse().unwrap()]),
        );
        let proxy = EgressProxy::with_resolver(
            EgressConfig {
                public: PublicPolicy::with_ranges([public.parse().unwrap()]),
                ..EgressConfig::default()
            },
            resolver.clone(),
        );
        Scene {
            outside,
            port,
            heads,
            outside_udp,
            host_tcp,
            host_udp,
            resolver,
            proxy,
        }
    }
}
