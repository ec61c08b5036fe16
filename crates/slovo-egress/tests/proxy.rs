//! The egress proxy against real TCP servers on this machine's loopback.
//!
//! "Outside" hosts are servers on 127.0.0.2, which each test declares public through the
//! proxy's `PublicPolicy`; 127.0.0.1 stays non-public and plays the host's own services.
//! Names resolve through a `StaticResolver`, which records every lookup. No traffic leaves
//! this machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slovo_core::HostPattern;
use slovo_egress::{
    CallGrant, EgressConfig, EgressProxy, NetworkPolicy, PublicPolicy, Session, StaticResolver,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const OUTSIDE: &str = "127.0.0.2";
const INSIDE: &str = "127.0.0.1";

/// A tiny HTTP server: `/redirect?to=URL` answers 302, everything else 200 with a body naming
/// the server. It records each request head.
struct Server {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Server {
    async fn start(ip: &str) -> Server {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (c, h) = (connections.clone(), heads.clone());
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                c.fetch_add(1, Ordering::SeqCst);
                let h = h.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
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
                            let body = format!("hello from {addr}{path}");
                            format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                body.len()
                            )
                        }
                    };
                    let _ = s.write_all(resp.as_bytes()).await;
                });
            }
        });
        Server {
            addr,
            connections,
            heads,
        }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn hosts(list: &[&str]) -> NetworkPolicy {
    NetworkPolicy::AllowList {
        hosts: list.iter().map(|h| h.parse::<HostPattern>().unwrap()).collect(),
    }
}

struct Fixture {
    proxy: EgressProxy,
    resolver: Arc<StaticResolver>,
}

fn fixture() -> Fixture {
    let resolver = Arc::new(
        StaticResolver::new()
            .with("granted.test", &[ip(OUTSIDE)])
            .with("api.granted.test", &[ip(OUTSIDE)])
            .with("other.test", &[ip(OUTSIDE)])
            .with("inside.test", &[ip(INSIDE)])
            .with("mixed.test", &[ip(OUTSIDE), ip(INSIDE)])
            .with("metadata.test", &[ip("169.254.169.254")]),
    );
    let config = EgressConfig {
        public: PublicPolicy::with_ranges([format!("{OUTSIDE}/32").parse().unwrap()]),
        connect_timeout: Duration::from_secs(2),
        ..EgressConfig::default()
    };
    Fixture {
        proxy: EgressProxy::with_resolver(config, resolver.clone()),
        resolver,
    }
}

impl Fixture {
    async fn session(&self, policy: NetworkPolicy) -> Session {
        self.proxy
            .listen_for(
                "127.0.0.1:0".parse().unwrap(),
                ip(INSIDE),
                CallGrant {
                    execution_id: "test".into(),
                    policy,
                },
            )
            .await
            .unwrap()
    }
}

/// Sends `request` to the proxy and reads until the connection closes.
async fn exchange(session: &Session, request: &[u8]) -> String {
    let mut s = TcpStream::connect(session.local_addr()).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the proxy closes the connection")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn get(url: &str, host: &str) -> Vec<u8> {
    format!("GET {url} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").into_bytes()
}

fn connect(target: &str, host: &str, inner: &str) -> Vec<u8> {
    format!("CONNECT {target} HTTP/1.1\r\nHost: {host}\r\n\r\n{inner}").into_bytes()
}

#[tokio::test]
async fn a_granted_host_is_reached_by_plain_http_and_by_connect() {
    let f = fixture();
    let server = Server::start(OUTSIDE).await;
    let p = server.port();
    let session = f.session(hosts(&["granted.test"])).await;

    let out = exchange(
        &session,
        &get(
            &format!("http://granted.test:{p}/x?y=1"),
            &format!("granted.test:{p}"),
        ),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.ends_with(&format!("hello from {}/x?y=1", server.addr)),
        "{out}"
    );
    // The server got the request in origin form, with its own Host header, and no proxy
    // headers.
    let head = server.heads.lock().unwrap()[0].clone();
    assert!(head.starts_with("GET /x?y=1 HTTP/1.1\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("host: granted.test:{p}")),
        "{head}"
    );

    let inner = format!("GET /tunnel HTTP/1.1\r\nHost: granted.test:{p}\r\nConnection: close\r\n\r\n");
    let out = exchange(
        &session,
        &connect(&format!("granted.test:{p}"), &format!("granted.test:{p}"), &inner),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.ends_with("/tunnel"), "{out}");
    assert_eq!(server.connections(), 2);
    assert_eq!(session.finish(), vec![]);
}

#[tokio::test]
async fn an_ungranted_host_is_refused_recorded_and_never_resolved() {
    let f = fixture();
    let server = Server::start(OUTSIDE).await;
    let p = server.port();
    let session = f.session(hosts(&["granted.test"])).await;
    let t = format!("other.test:{p}");
    let out = exchange(&session, &connect(&t, &t, "")).await;
    assert!(out.starts_with("HTTP/1.1 403"), "{out}");
    let out = exchange(&session, &get(&format!("http://{t}/"), &t)).await;
    assert!(out.starts_with("HTTP/1.1 403"), "{out}");
    // An address literal of the same (public) server is not a granted name either.
    let lit = format!("{OUTSIDE}:{p}");
    let out = exchange(&session, &connect(&lit, &lit, "")).await;
    assert!(out.starts_with("HTTP/1.1 403"), "{out}");
    assert_eq!(server.connections(), 0);
    assert!(!f.resolver.asked().contains(&"other.test".to_string()));
    let denials = session.finish();
    assert_eq!(denials.len(), 3, "{denials:?}");
    assert_eq!((denials[0].host.as_str(), denials[0].port), ("other.test", p));
    assert!(
        denials[0].reason.contains("not in the grant's allow list"),
        "{denials:?}"
    );
}

#[tokio::test]
async fn ports_and_suffix_patterns_are_honoured() {
    let f = fixture();
    let server = Server::start(OUTSIDE).await;
    let p = server.port();
    let session = f.session(hosts(&["granted.test:1", "*.granted.test"])).await;
    // granted.test is granted on port 1 only; *.granted.test does not cover granted.test.
    let t = format!("granted.test:{p}");
    assert!(
        exchange(&session, &connect(&t, &t, ""))
            .await
            .starts_with("HTTP/1.1 403")
    );
    let t = format!("api.granted.test:{p}");
    let out = exchange(
        &session,
        &connect(
            &t,
            &t,
            &format!("GET /sub HTTP/1.1\r\nHost: {t}\r\nConnection: close\r\n\r\n"),
        ),
    )
    .await;
    assert!(out.ends_with("/sub"), "{out}");
    assert_eq!(server.connections(), 1);
    assert_eq!(session.finish().len(), 1);
}

#[tokio::test]
async fn names_and_addresses_inside_are_refused_even_with_internet_access() {
    let f = fixture();
    let inside = Server::start(INSIDE).await;
    let p = inside.port();
    let session = f.session(NetworkPolicy::Public).await;
    for target in [
        format!("inside.test:{p}"),
        format!("mixed.test:{p}"),
        format!("{INSIDE}:{p}"),
        format!("[::ffff:127.0.0.1]:{p}"),
        "metadata.test:80".to_string(),
        "169.254.169.254:80".to_string(),
        "[::1]:80".to_string(),
        "10.0.0.1:80".to_string(),
        "100.64.0.1:80".to_string(),
    ] {
        let out = exchange(&session, &connect(&target, &target, "")).await;
        assert!(out.starts_with("HTTP/1.1 403"), "{target}: {out}");
    }
    let out = exchange(
        &session,
        &get(&format!("http://inside.test:{p}/"), &format!("inside.test:{p}")),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 403"), "{out}");
    assert_eq!(inside.connections(), 0);
    let denials = session.finish();
    assert!(
        denials[0]
            .reason
            .contains("resolves to 127.0.0.1, which is not a public address"),
        "{denials:?}"
    );
    assert!(denials.iter().any(|d| d.host == "169.254.169.254"), "{denials:?}");
}

#[tokio::test]
async fn a_host_header_that_differs_from_the_target_is_refused() {
    let f = fixture();
    let server = Server::start(OUTSIDE).await;
    let p = server.port();
    let session = f.session(hosts(&["granted.test", "other.test"])).await;
    let t = format!("granted.test:{p}");
    // CONNECT to a granted host, Host header naming another one.
    let out = exchange(&session, &connect(&t, &format!("evil.test:{p}"), "")).await;
    assert!(out.starts_with("HTTP/1.1 403"), "{out}");
    // Same host, another port.
    let out = exchange(&session, &connect(&t, "granted.test:1", "")).await;
    assert!(out.starts_with("HTTP/1.1 403"), "{out}");
    // Plain HTTP: absolute URI for one granted host, Host header for another.
    let out = exchange(
        &session,
        &get(&format!("http://{t}/"), &format!("other.test:{p}")),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 403"), "{out}");
    // Two Host headers.
    let req =
        format!("GET http://{t}/ HTTP/1.1\r\nHost: {t}\r\nHost: evil.test\r\nConnection: close\r\n\r\n");
    let out = exchange(&session, req.as_bytes()).await;
    assert!(out.starts_with("HTTP/1.1 4"), "{out}");
    assert_eq!(server.connections(), 0);
    let denials = session.finish();
    assert!(denials.len() >= 3, "{denials:?}");
    assert!(
        denials[0].reason.contains("differs from the target"),
        "{denials:?}"
    );
}

#[tokio::test]
async fn a_redirect_to_an_ungranted_host_is_refused_at_the_next_request() {
    let f = fixture();
    let server = Server::start(OUTSIDE).await;
    let p = server.port();
    let session = f.session(hosts(&["granted.test"])).await;
    let t = format!("granted.test:{p}");
    let out = exchange(
        &session,
        &get(
            &format!("http://{t}/redirect?to=http://other.test:{p}/stolen"),
            &t,
        ),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 302"), "{out}");
    assert!(out.contains(&format!("http://other.test:{p}/stolen")), "{out}");
    // A client following it sends a new request, which the proxy checks like any other.
    let out = exchange(
        &session,
        &get(
            &format!("http://other.test:{p}/stolen"),
            &format!("other.test:{p}"),
        ),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 403"), "{out}");
    assert_eq!(server.connections(), 1);
    assert_eq!(session.finish()[0].host, "other.test");
}

#[tokio::test]
async fn requests_that_are_not_proxy_requests_are_refused() {
    let f = fixture();
    let server = Server::start(OUTSIDE).await;
    let p = server.port();
    let session = f.session(NetworkPolicy::Public).await;
    // Origin form (a transparent-proxy guess from the Host header): refused.
    let out = exchange(&session, &get("/", &format!("granted.test:{p}"))).await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    // https:// in absolute form: the proxy does not originate TLS.
    let out = exchange(
        &session,
        &get(
            &format!("https://granted.test:{p}/"),
            &format!("granted.test:{p}"),
        ),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    // CONNECT without a port.
    let out = exchange(&session, &connect("granted.test", "granted.test", "")).await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    // Not HTTP at all.
    let out = exchange(&session, b"\x16\x03\x01garbage\r\n\r\n").await;
    assert!(!out.contains("hello"), "{out}");
    assert_eq!(server.connections(), 0);
}

async fn socks(session: &Session, cmd: u8, host: &str, port: u16, then: &[u8]) -> (u8, Vec<u8>) {
    let mut s = TcpStream::connect(session.local_addr()).await.unwrap();
    s.write_all(&[5, 1, 0]).await.unwrap();
    let mut greet = [0u8; 2];
    s.read_exact(&mut greet).await.unwrap();
    assert_eq!(greet, [5, 0]);
    let mut req = vec![5, cmd, 0, 3, host.len() as u8];
    req.extend_from_slice(host.as_bytes());
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).await.unwrap();
    let mut rep = [0u8; 10];
    s.read_exact(&mut rep).await.unwrap();
    let mut rest = Vec::new();
    if rep[1] == 0 {
        s.write_all(then).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
    }
    (rep[1], rest)
}

#[tokio::test]
async fn socks5_goes_through_the_same_check() {
    let f = fixture();
    let server = Server::start(OUTSIDE).await;
    let inside = Server::start(INSIDE).await;
    let p = server.port();
    let session = f.session(hosts(&["granted.test", "inside.test"])).await;
    let inner = format!("GET /socks HTTP/1.1\r\nHost: granted.test:{p}\r\nConnection: close\r\n\r\n");
    let (code, rest) = socks(&session, 1, "granted.test", p, inner.as_bytes()).await;
    assert_eq!(code, 0);
    assert!(String::from_utf8_lossy(&rest).ends_with("/socks"));
    assert_eq!(socks(&session, 1, "other.test", p, b"").await.0, 2);
    assert_eq!(socks(&session, 1, "inside.test", inside.port(), b"").await.0, 2);
    // UDP ASSOCIATE (what a DNS-over-SOCKS client would ask for) is refused and recorded.
    assert_eq!(socks(&session, 3, "granted.test", 53, b"").await.0, 7);
    assert_eq!(server.connections(), 1);
    assert_eq!(inside.connections(), 0);
    let denials = session.finish();
    assert_eq!(denials.len(), 3, "{denials:?}");
    assert!(denials[2].reason.contains("UDP ASSOCIATE"), "{denials:?}");
}

#[tokio::test]
async fn ending_the_session_cuts_open_tunnels_and_closes_the_listener() {
    let f = fixture();
    // A server that accepts and holds the connection open.
    let hold = TcpListener::bind((OUTSIDE, 0)).await.unwrap();
    let p = hold.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let (mut s, _) = hold.accept().await.unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
    });
    let session = f.session(hosts(&["granted.test"])).await;
    let addr = session.local_addr();
    let mut c = TcpStream::connect(addr).await.unwrap();
    let t = format!("granted.test:{p}");
    c.write_all(&connect(&t, &t, "")).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        c.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"));
    drop(session);
    // The tunnel is gone: the client reads end-of-file (or a reset), and the upstream side
    // sees its connection closed.
    let mut rest = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut rest)).await;
    assert!(r.is_ok(), "the tunnel must be cut");
    tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .unwrap()
        .unwrap();
    // And nothing listens any more.
    assert!(TcpStream::connect(addr).await.is_err());
}

/// Connects to `to` from the local address `from`, sends `request` and reads what comes back
/// until the proxy closes the connection (a reset counts as closed).
async fn exchange_from(from: &str, to: SocketAddr, request: &[u8]) -> Vec<u8> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(ip(from), 0)).unwrap();
    let mut s = socket.connect(to).await.unwrap();
    // The proxy may have closed already: a failed write is an answer too.
    let _ = s.write_all(request).await;
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .expect("the proxy closes the connection")
        {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test]
async fn a_listener_on_the_host_serves_only_its_sandboxs_address() {
    // The attack: a listener bound on a host address (Docker's gateway) is reachable by any
    // process of the host; another process connects to it to use the call's grant.
    let f = fixture();
    let server = Server::start(OUTSIDE).await;
    let p = server.port();
    let sandbox = "127.0.0.3";
    let session = f
        .proxy
        .listen_for(
            "127.0.0.1:0".parse().unwrap(),
            ip(sandbox),
            CallGrant {
                execution_id: "peer".into(),
                policy: hosts(&["granted.test"]),
            },
        )
        .await
        .unwrap();
    let t = format!("granted.test:{p}");
    let inner = format!("GET /stolen HTTP/1.1\r\nHost: {t}\r\nConnection: close\r\n\r\n");
    // Strangers, from the listener's own address and from another one: closed unanswered.
    for stranger in [INSIDE, "127.0.0.4"] {
        let out = exchange_from(stranger, session.local_addr(), &connect(&t, &t, &inner)).await;
        assert_eq!(String::from_utf8_lossy(&out), "", "{stranger} was served");
        // A SOCKS5 greeting gets no choice of method either.
        let out = exchange_from(stranger, session.local_addr(), &[5, 1, 0]).await;
        assert_eq!(out, Vec::<u8>::new(), "{stranger} was served");
    }
    assert_eq!(server.connections(), 0);
    // The sandbox's own address is served as usual.
    let inner = format!("GET /own HTTP/1.1\r\nHost: {t}\r\nConnection: close\r\n\r\n");
    let out = exchange_from(sandbox, session.local_addr(), &connect(&t, &t, &inner)).await;
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.ends_with("/own"), "{out}");
    assert_eq!(server.connections(), 1);
    // Strangers asked for nothing: the call's record holds no denial for them.
    assert_eq!(session.finish(), vec![]);
}

#[tokio::test]
async fn a_call_without_a_network_grant_gets_no_listener() {
    let f = fixture();
    let r = f
        .proxy
        .listen_for(
            "127.0.0.1:0".parse().unwrap(),
            ip(INSIDE),
            CallGrant {
                execution_id: "none".into(),
                policy: NetworkPolicy::None,
            },
        )
        .await;
    assert!(matches!(r, Err(slovo_egress::EgressError::NoNetwork)));
}

/// A rebinding resolver: the first answer is the public server, every later one the host's
/// loopback.
#[derive(Debug, Default)]
struct Rebinding {
    asked: AtomicUsize,
}

#[async_trait::async_trait]
impl slovo_egress::Resolver for Rebinding {
    async fn resolve(&self, _host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        let ip = if self.asked.fetch_add(1, Ordering::SeqCst) == 0 {
            OUTSIDE
        } else {
            INSIDE
        };
        Ok(vec![SocketAddr::new(ip.parse().unwrap(), port)])
    }
}

#[tokio::test]
async fn a_rebinding_name_is_resolved_once_and_connected_where_it_was_checked() {
    // The same port on both addresses: a second resolution would land on the inside server.
    let outside = TcpListener::bind((OUTSIDE, 0)).await.unwrap();
    let port = outside.local_addr().unwrap().port();
    let inside = match TcpListener::bind((INSIDE, port)).await {
        Ok(l) => l,
        Err(_) => return, // the port is taken on 127.0.0.1; nothing to show on this run
    };
    let resolver = Arc::new(Rebinding::default());
    let proxy = EgressProxy::with_resolver(
        EgressConfig {
            public: PublicPolicy::with_ranges([format!("{OUTSIDE}/32").parse().unwrap()]),
            ..EgressConfig::default()
        },
        resolver.clone(),
    );
    let session = proxy
        .listen_for(
            "127.0.0.1:0".parse().unwrap(),
            ip(INSIDE),
            CallGrant {
                execution_id: "rebind".into(),
                policy: hosts(&["rebind.test"]),
            },
        )
        .await
        .unwrap();
    let t = format!("rebind.test:{port}");
    let mut c = TcpStream::connect(session.local_addr()).await.unwrap();
    c.write_all(&connect(&t, &t, "")).await.unwrap();
    let accepted = tokio::time::timeout(Duration::from_secs(5), outside.accept()).await;
    assert!(
        accepted.is_ok(),
        "the checked (outside) address is the one connected"
    );
    assert_eq!(resolver.asked.load(Ordering::SeqCst), 1);
    let leaked = tokio::time::timeout(Duration::from_millis(200), inside.accept()).await;
    assert!(leaked.is_err(), "nothing reaches the inside address");
    assert_eq!(session.finish(), vec![]);
}
