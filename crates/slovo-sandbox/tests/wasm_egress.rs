//! Outbound HTTP of WebAssembly tools (`slovo_http`) against real servers on this machine's
//! loopback: each request and redirect goes through the egress proxy's check, and what it
//! refuses never reaches a server and is recorded on the outcome.
//!
//! "Outside" hosts are servers on 127.0.0.2, declared public through the proxy's
//! `PublicPolicy`; 127.0.0.1 stays non-public and plays the host's own services. Names resolve
//! through a `StaticResolver`, which records every lookup. No traffic leaves this machine.
#![cfg(feature = "wasm")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "wasm_support/mod.rs"]
mod wasm_support;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use slovo_core::HostPattern;
use slovo_core::execution::{ExecutionStatus, NetworkPolicy, Outcome};
use slovo_egress::{EgressConfig, EgressProxy, PublicPolicy, StaticResolver};
use slovo_sandbox::Backend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wasm_support::{World, tool_wasm, wat};

const OUTSIDE: &str = "127.0.0.2";
const INSIDE: &str = "127.0.0.1";

/// A tiny HTTP server. `/redirect?to=URL` answers 302, `/big` a 5000-byte body, `/binary`
/// three bytes that are not UTF-8, `/silent`
/// nothing at all; everything else 200 with a body naming the server, the path and the
/// request body. It records each request (head and body) and counts connections.
struct Server {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    async fn start(ip: &str) -> Server {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (c, r) = (connections.clone(), requests.clone());
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                c.fetch_add(1, Ordering::SeqCst);
                let r = r.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().to_string())
                        })
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + length {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
                    r.lock().unwrap().push(format!("{head}{body}"));
                    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                    let resp = if let Some(to) = path.strip_prefix("/redirect?to=") {
                        format!(
                            "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        )
                    } else if path == "/big" {
                        let body = "x".repeat(5000);
                        format!("HTTP/1.1 200 OK\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n{body}")
                    } else if path == "/binary" {
                        let mut resp =
                            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n".to_vec();
                        resp.extend_from_slice(&[0xff, 0x00, 0x41]);
                        let _ = s.write_all(&resp).await;
                        return;
                    } else if path == "/silent" {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        return;
                    } else {
                        let body = format!("hello from {addr}{path} body={body}");
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    };
                    let _ = s.write_all(resp.as_bytes()).await;
                });
            }
        });
        Server {
            addr,
            connections,
            requests,
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

fn allow(list: &[&str]) -> NetworkPolicy {
    NetworkPolicy::AllowList {
        hosts: list.iter().map(|h| h.parse::<HostPattern>().unwrap()).collect(),
    }
}

/// A world whose backend checks with 127.0.0.2 declared public and a fixed name table.
struct Fixture {
    world: World,
    resolver: Arc<StaticResolver>,
}

async fn fixture(adjust: impl FnOnce(&mut slovo_sandbox::wasm::WasmConfig)) -> Fixture {
    let resolver = Arc::new(
        StaticResolver::new()
            .with("granted.test", &[ip(OUTSIDE)])
            .with("other.test", &[ip(OUTSIDE)])
            .with("inside.test", &[ip(INSIDE)])
            .with("mixed.test", &[ip(OUTSIDE), ip(INSIDE)]),
    );
    let world = World::with(adjust);
    world.backend.set_egress(EgressProxy::with_resolver(
        EgressConfig {
            public: PublicPolicy::with_ranges([format!("{OUTSIDE}/32").parse().unwrap()]),
            connect_timeout: Duration::from_secs(2),
            ..EgressConfig::default()
        },
        resolver.clone(),
    ));
    world.install("fetch", &tool_wasm("fetch")).await;
    Fixture { world, resolver }
}

impl Fixture {
    /// Runs the fetch tool with `policy` on `requests`; returns the outcome and the response
    /// documents.
    async fn fetch(&self, policy: NetworkPolicy, requests: Vec<Value>) -> (Outcome, Vec<Value>) {
        let mut spec = self.world.spec("fetch", json!({"requests": requests}));
        spec.network = policy;
        let out = self.world.backend.run(&spec).await;
        assert_eq!(out.status, ExecutionStatus::Success, "{out:#?}");
        let responses = out.output.as_ref().unwrap()["responses"]
            .as_array()
            .unwrap()
            .clone();
        (out, responses)
    }
}

fn denied(response: &Value) -> bool {
    response["denied"] == json!(true) && response.get("status").is_none()
}

#[tokio::test]
async fn a_granted_host_is_reached_with_the_tools_method_headers_and_body() {
    let f = fixture(|_| {}).await;
    let outside = Server::start(OUTSIDE).await;
    let port = outside.port();
    let (out, r) = f
        .fetch(
            allow(&["granted.test"]),
            vec![
                json!({"url": format!("http://granted.test:{port}/hi")}),
                json!({"method": "post", "url": format!("http://granted.test:{port}/form"),
                       "headers": {"X-Test": "1", "Content-Type": "text/plain"}, "body": "payload"}),
            ],
        )
        .await;
    assert_eq!(r[0]["status"], 200, "{r:?}");
    assert_eq!(r[0]["body"], format!("hello from {OUTSIDE}:{port}/hi body="));
    assert_eq!(r[0]["headers"]["content-type"], "text/plain");
    assert_eq!(
        r[1]["body"],
        format!("hello from {OUTSIDE}:{port}/form body=payload")
    );
    let seen = outside.requests.lock().unwrap().clone();
    assert!(seen[1].starts_with("POST /form HTTP/1.1\r\n"), "{seen:?}");
    assert!(seen[1].to_ascii_lowercase().contains("x-test: 1"), "{seen:?}");
    assert!(
        seen[1]
            .to_ascii_lowercase()
            .contains(&format!("host: granted.test:{port}")),
        "{seen:?}"
    );
    assert_eq!(out.network_denials, vec![]);
    // With internet access, an address literal declared public works too.
    let (out, r) = f
        .fetch(
            NetworkPolicy::Public,
            vec![json!({"url": format!("http://{OUTSIDE}:{port}/lit")})],
        )
        .await;
    assert_eq!(r[0]["status"], 200, "{r:?}");
    assert_eq!(out.network_denials, vec![]);
}

#[tokio::test]
async fn ungranted_names_and_inside_addresses_are_refused_and_recorded() {
    let f = fixture(|_| {}).await;
    let outside = Server::start(OUTSIDE).await;
    let inside = Server::start(INSIDE).await;
    let (op, ip_) = (outside.port(), inside.port());
    // An allow list: a name not on it is never even resolved.
    let (out, r) = f
        .fetch(
            allow(&["granted.test"]),
            vec![json!({"url": format!("http://other.test:{op}/")})],
        )
        .await;
    assert!(denied(&r[0]), "{r:?}");
    assert!(!f.resolver.asked().contains(&"other.test".to_string()));
    assert_eq!(out.network_denials.len(), 1);
    assert_eq!(out.network_denials[0].host, "other.test");
    assert!(out.network_denials[0].reason.contains("allow list"), "{out:?}");
    // Internet access: names and literals that are not public are refused.
    let (out, r) = f
        .fetch(
            NetworkPolicy::Public,
            vec![
                json!({"url": format!("http://inside.test:{ip_}/")}),
                json!({"url": format!("http://{INSIDE}:{ip_}/")}),
                json!({"url": format!("http://mixed.test:{op}/")}),
                json!({"url": "http://169.254.169.254/latest/meta-data/"}),
                json!({"url": format!("http://[::1]:{ip_}/")}),
                json!({"url": format!("ftp://granted.test:{op}/")}),
            ],
        )
        .await;
    assert!(r.iter().all(denied), "{r:#?}");
    let hosts: Vec<&str> = out.network_denials.iter().map(|d| d.host.as_str()).collect();
    assert_eq!(
        hosts,
        [
            "inside.test",
            INSIDE,
            "mixed.test",
            "169.254.169.254",
            "::1",
            "granted.test"
        ]
    );
    assert!(
        out.network_denials[0].reason.contains("not a public address"),
        "{out:?}"
    );
    assert_eq!((outside.connections(), inside.connections()), (0, 0));
}

#[tokio::test]
async fn redirects_are_followed_only_where_the_grant_reaches() {
    let f = fixture(|_| {}).await;
    let outside = Server::start(OUTSIDE).await;
    let inside = Server::start(INSIDE).await;
    let (op, ip_) = (outside.port(), inside.port());
    let via = |to: String| json!({"url": format!("http://granted.test:{op}/redirect?to={to}")});
    let (out, r) = f
        .fetch(
            allow(&["granted.test"]),
            vec![
                via(format!("http://granted.test:{op}/landed")),
                via(format!("http://other.test:{op}/")),
                via(format!("http://{INSIDE}:{ip_}/")),
            ],
        )
        .await;
    assert_eq!(r[0]["status"], 200, "{r:?}");
    assert_eq!(r[0]["url"], format!("http://granted.test:{op}/landed"));
    assert!(denied(&r[1]) && denied(&r[2]), "{r:?}");
    let hosts: Vec<&str> = out.network_denials.iter().map(|d| d.host.as_str()).collect();
    assert_eq!(hosts, ["other.test", INSIDE]);
    // Internet access does not make an inside address reachable by redirect either.
    let (_, r) = f
        .fetch(
            NetworkPolicy::Public,
            vec![via(format!("http://inside.test:{ip_}/"))],
        )
        .await;
    assert!(denied(&r[0]), "{r:?}");
    assert_eq!(inside.connections(), 0);
    // Only the granted server saw requests: three redirects and the landing.
    assert_eq!(outside.connections(), 5);
}

#[tokio::test]
async fn a_host_header_naming_another_host_is_refused_before_connecting() {
    let f = fixture(|_| {}).await;
    let outside = Server::start(OUTSIDE).await;
    let port = outside.port();
    let (out, r) = f
        .fetch(
            allow(&["granted.test", "other.test"]),
            vec![
                json!({"url": format!("http://granted.test:{port}/"), "headers": {"Host": "inside.test"}}),
                json!({"url": format!("http://granted.test:{port}/"), "headers": {"host": format!("other.test:{port}")}}),
                json!({"url": format!("http://granted.test:{port}/ok"), "headers": {"Host": format!("granted.test:{port}")}}),
            ],
        )
        .await;
    assert!(denied(&r[0]) && denied(&r[1]), "{r:?}");
    assert_eq!(r[2]["status"], 200, "{r:?}");
    assert_eq!(out.network_denials.len(), 2);
    assert!(out.network_denials[0].reason.contains("Host header"), "{out:?}");
    assert_eq!(outside.connections(), 1);
}

#[tokio::test]
async fn without_a_grant_every_request_is_refused_and_recorded() {
    let f = fixture(|_| {}).await;
    let outside = Server::start(OUTSIDE).await;
    let (out, r) = f
        .fetch(
            NetworkPolicy::None,
            vec![json!({"url": format!("http://granted.test:{}/", outside.port())})],
        )
        .await;
    assert!(denied(&r[0]), "{r:?}");
    assert_eq!(out.network_denials.len(), 1);
    assert!(f.resolver.asked().is_empty());
    assert_eq!(outside.connections(), 0);
}

#[tokio::test]
async fn bad_documents_and_oversized_responses_are_errors_not_crashes() {
    let f = fixture(|c| c.http_response_limit = 1000).await;
    let outside = Server::start(OUTSIDE).await;
    let port = outside.port();
    let (out, r) = f
        .fetch(
            allow(&["granted.test"]),
            vec![
                json!({"url": format!("http://granted.test:{port}/big")}),
                json!({"url": "not a url"}),
                json!({"url": format!("http://granted.test:{port}/"), "socket": true}),
                json!({"method": "NOT A METHOD", "url": format!("http://granted.test:{port}/")}),
            ],
        )
        .await;
    let errors: Vec<&str> = r.iter().map(|d| d["error"].as_str().unwrap_or("")).collect();
    assert!(errors[0].contains("exceeds the limit of 1000 bytes"), "{r:?}");
    assert!(errors[1].contains("is not a URL"), "{r:?}");
    assert!(errors[2].contains("unknown field `socket`"), "{r:?}");
    assert!(errors[3].contains("not an HTTP method"), "{r:?}");
    assert!(r.iter().all(|d| d["denied"] == json!(false)), "{r:?}");
    assert_eq!(out.network_denials, vec![]);
}

#[tokio::test]
async fn a_request_that_gets_no_answer_ends_with_the_calls_timeout() {
    let f = fixture(|_| {}).await;
    let outside = Server::start(OUTSIDE).await;
    let mut spec = f.world.spec(
        "fetch",
        json!({"requests": [{"url": format!("http://granted.test:{}/silent", outside.port())}]}),
    );
    spec.network = allow(&["granted.test"]);
    spec.limits.timeout = Duration::from_millis(800);
    let clock = Instant::now();
    let out = f.world.backend.run(&spec).await;
    let took = clock.elapsed();
    assert_eq!(out.status, ExecutionStatus::Timeout, "{out:#?}");
    assert!(took < Duration::from_millis(3000), "{took:?}");
    assert_eq!(outside.connections(), 1);
}

#[tokio::test]
async fn hostile_pointers_and_lengths_get_errnos_not_host_memory() {
    let f = fixture(|_| {}).await;
    // Each check exits with its own code if the host answers anything else.
    let module = wat(r#"
        (module
          (import "slovo_http" "request" (func $req (param i32 i32) (result i32)))
          (import "slovo_http" "response" (func $resp (param i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory (export "memory") 1)
          (data (i32.const 16) "not json")
          (func (export "_start")
            ;; request bytes outside the memory: EFAULT
            (if (i32.ne (call $req (i32.const 0xFFFF0) (i32.const 100)) (i32.const -21))
              (then (call $exit (i32.const 1))))
            ;; a negative length: EFAULT
            (if (i32.ne (call $req (i32.const 0) (i32.const -5)) (i32.const -21))
              (then (call $exit (i32.const 2))))
            ;; an absurd length: E2BIG
            (if (i32.ne (call $req (i32.const 0) (i32.const 0x7FFFFFFF)) (i32.const -1))
              (then (call $exit (i32.const 3))))
            ;; nothing pending: ENOENT
            (if (i32.ne (call $resp (i32.const 0) (i32.const 100)) (i32.const -44))
              (then (call $exit (i32.const 4))))
            ;; a document that is not JSON: an error document comes back
            (if (i32.le_s (call $req (i32.const 16) (i32.const 8)) (i32.const 0))
              (then (call $exit (i32.const 5))))
            ;; too small a buffer: E2BIG, and the document is kept
            (if (i32.ne (call $resp (i32.const 100) (i32.const 1)) (i32.const -1))
              (then (call $exit (i32.const 6))))
            ;; a destination outside the memory: EFAULT, kept
            (if (i32.ne (call $resp (i32.const 65530) (i32.const 1000)) (i32.const -21))
              (then (call $exit (i32.const 7))))
            ;; then it is delivered, once
            (if (i32.le_s (call $resp (i32.const 100) (i32.const 1000)) (i32.const 0))
              (then (call $exit (i32.const 8))))
            (if (i32.ne (call $resp (i32.const 100) (i32.const 1000)) (i32.const -44))
              (then (call $exit (i32.const 9))))
            (call $exit (i32.const 0))))
    "#);
    f.world.install("pointers", &module).await;
    let mut spec = f.world.spec("pointers", json!({}));
    spec.network = NetworkPolicy::Public;
    let out = f.world.backend.run(&spec).await;
    assert_eq!(
        (out.status, out.exit_code),
        (ExecutionStatus::Success, Some(0)),
        "{out:#?}"
    );
}

#[tokio::test]
async fn bytes_that_are_not_text_travel_as_base64() {
    let f = fixture(|_| {}).await;
    let outside = Server::start(OUTSIDE).await;
    let port = outside.port();
    let url = |path: &str| format!("http://granted.test:{port}{path}");
    let (_, r) = f
        .fetch(
            allow(&["granted.test"]),
            vec![
                json!({"url": url("/binary")}),
                json!({"method": "POST", "url": url("/bytes"), "body_base64": "AQJhYmM="}),
                json!({"url": url("/"), "body": "a", "body_base64": "YQ=="}),
                json!({"url": url("/"), "body_base64": "not base64!"}),
            ],
        )
        .await;
    // 0xff 0x00 0x41: not UTF-8, so base64 and no text body.
    assert_eq!(r[0]["body_base64"], "/wBB", "{r:?}");
    assert!(r[0].get("body").is_none(), "{r:?}");
    // The request body arrives as the bytes given.
    assert_eq!(
        r[1]["body"],
        format!("hello from {OUTSIDE}:{port}/bytes body=\u{1}\u{2}abc")
    );
    assert!(r[2]["error"].as_str().unwrap().contains("not both"), "{r:?}");
    assert!(r[3]["error"].as_str().unwrap().contains("not base64"), "{r:?}");
    assert_eq!(outside.connections(), 2);
}
