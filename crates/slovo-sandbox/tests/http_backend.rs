//! The HTTP backend against a real HTTP server on loopback.
#![cfg(feature = "http")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{any, get};
use serde_json::{Value, json};
use slovo_core::execution::{CallTarget, ExecutionStatus, NetworkPolicy, SandboxSpec};
use slovo_core::manifest::{ApiRequirements, Capability, Execution};
use slovo_core::permissions::Grant;
use slovo_core::secrets::Secrets;
use slovo_sandbox::Backend;
use slovo_sandbox::http::{HttpBackend, HttpConfig};

#[derive(Clone, Default)]
struct Hits(Arc<AtomicUsize>);

async fn echo(
    State(hits): State<Hits>,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: String,
) -> axum::Json<Value> {
    hits.0.fetch_add(1, Ordering::SeqCst);
    let h: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    axum::Json(json!({"id": id, "query": q, "headers": h, "body": body}))
}

async fn start() -> (u16, Hits) {
    let hits = Hits::default();
    let app = Router::new()
        .route("/items/{id}", any(echo))
        .route(
            "/away",
            get(|| async { Redirect::temporary("http://127.0.0.2:9/stolen") }),
        )
        .route("/hop", get(|| async { Redirect::temporary("/items/after-hop") }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route("/big", get(|| async { "x".repeat(200_000) }))
        .route(
            "/missing",
            get(|| async {
                (
                    StatusCode::NOT_FOUND,
                    axum::Json(json!({"error": "no such thing"})),
                )
                    .into_response()
            }),
        )
        .with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, hits)
}

fn spec(
    port: u16,
    endpoint: &str,
    method: &str,
    parameters: Value,
    args: Value,
    network: NetworkPolicy,
) -> SandboxSpec {
    let grant = Grant {
        internet_access: false,
        network_allow: Vec::new(),
        storage_quota_mb: 0,
        cpu_limit_percent: 50,
        memory_limit_mb: 64,
        timeout_s: 2,
        pids_limit: 8,
        expires_at: None,
    };
    let capability = Capability {
        name: "op".into(),
        description: "d".into(),
        parameters,
        returns: None,
        endpoint: Some(endpoint.into()),
        method: Some(method.into()),
        examples: vec![],
        read_only: None,
        destructive: None,
    };
    let api = ApiRequirements {
        base_url: format!("http://localhost:{port}"),
        auth_type: Some("api_key".into()),
        auth_header: Some("X-Api-Key".into()),
    };
    let mut spec = SandboxSpec::from_grant(
        &grant,
        CallTarget {
            execution_id: "e",
            tool: "api",
            version: "1.0.0",
            capability: &capability,
            execution: &Execution::Http,
            api: Some(&api),
            bundle_dir: None,
            state_dir: PathBuf::from("/nonexistent"),
            arguments: &args,
        },
    );
    // Each test names the policy it probes (none, allow list, public) directly.
    spec.network = network;
    spec.secrets = Secrets::new([("api_key".to_string(), "k-123456".to_string())].into());
    spec
}

fn allow(port: u16) -> NetworkPolicy {
    NetworkPolicy::AllowList {
        hosts: vec![format!("localhost:{port}").parse().unwrap()],
    }
}

fn loopback_ok() -> HttpBackend {
    HttpBackend::new(HttpConfig {
        allow_private_addresses: true,
        max_response_bytes: 100_000,
        ..HttpConfig::default()
    })
}

/// An OpenAPI object body becomes one argument per field (`{"in": "body", "name": field}`);
/// the fields travel together as one JSON object, or one form.
#[tokio::test]
async fn body_fields_are_sent_as_one_object() {
    let (port, _hits) = start().await;
    let params = json!({
        "type": "object",
        "properties": {
            "id": {"type": "string", "x-slovo-in": {"in": "path", "name": "id"}},
            "on": {"type": "boolean", "x-slovo-in": {"in": "body", "name": "on"}},
            "level": {"type": "integer", "x-slovo-in": {"in": "body", "name": "brightness"}}
        },
        "x-slovo-body": {"content_type": "application/json"}
    });
    let out = loopback_ok()
        .run(&spec(
            port,
            "/items/{id}",
            "PUT",
            params.clone(),
            json!({"id": "kitchen", "on": true, "level": 40}),
            allow(port),
        ))
        .await;
    assert_eq!(out.status, ExecutionStatus::Success, "{out:?}");
    let got = &out.output.as_ref().unwrap()["body"];
    let sent: Value = serde_json::from_str(got["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent, json!({"on": true, "brightness": 40}));
    assert_eq!(got["headers"]["content-type"], "application/json");

    let mut form = params;
    form["x-slovo-body"]["content_type"] = json!("application/x-www-form-urlencoded");
    let out = loopback_ok()
        .run(&spec(
            port,
            "/items/{id}",
            "PUT",
            form,
            json!({"id": "hall", "on": false, "level": 5}),
            allow(port),
        ))
        .await;
    let got = &out.output.as_ref().unwrap()["body"];
    assert_eq!(got["body"], "on=false&brightness=5");
}

#[tokio::test]
async fn request_is_built_from_bindings_and_the_credential_injected() {
    let (port, hits) = start().await;
    let params = json!({
        "type": "object",
        "properties": {
            "id": {"type": "string", "x-slovo-in": {"in": "path", "name": "id"}},
            "tags": {"type": "array", "x-slovo-in": {"in": "query", "name": "tag"}},
            "trace": {"type": "string", "x-slovo-in": {"in": "header", "name": "X-Trace"}},
            "session": {"type": "string", "x-slovo-in": {"in": "cookie", "name": "sid"}},
            "body": {"type": "object", "x-slovo-in": {"in": "body"}}
        }
    });
    let args =
        json!({"id": "a/b c?", "tags": ["x", "y&z"], "trace": "t1", "session": "s9", "body": {"n": 1}});
    let out = loopback_ok()
        .run(&spec(port, "/items/{id}", "POST", params, args, allow(port)))
        .await;
    assert_eq!(out.status, ExecutionStatus::Success, "{out:?}");
    let got = &out.output.as_ref().unwrap()["body"];
    assert_eq!(
        got["id"], "a/b c?",
        "the path segment is escaped, not split: {got}"
    );
    assert_eq!(got["query"], json!([["tag", "x"], ["tag", "y&z"]]));
    assert_eq!(got["headers"]["x-trace"], "t1");
    assert_eq!(got["headers"]["cookie"], "sid=s9");
    assert_eq!(got["headers"]["x-api-key"], "k-123456");
    assert_eq!(got["body"], "{\"n\":1}");
    assert_eq!(out.output.as_ref().unwrap()["status"], 200);
    assert_eq!(hits.0.load(Ordering::SeqCst), 1);

    // Without bindings: template from the name, the rest as query for GET.
    let plain =
        json!({"type": "object", "properties": {"id": {"type": "string"}, "lat": {"type": "number"}}});
    let out = loopback_ok()
        .run(&spec(
            port,
            "/items/{id}",
            "GET",
            plain,
            json!({"id": "7", "lat": 45.7}),
            allow(port),
        ))
        .await;
    let got = &out.output.as_ref().unwrap()["body"];
    assert_eq!(got["id"], "7");
    assert_eq!(got["query"], json!([["lat", "45.7"]]));

    // A missing credential is a clear failure, and nothing is sent.
    let mut s = spec(
        port,
        "/items/1",
        "GET",
        json!({"type": "object"}),
        json!({}),
        allow(port),
    );
    s.secrets = Secrets::default();
    let before = hits.0.load(Ordering::SeqCst);
    let out = loopback_ok().run(&s).await;
    assert_eq!(out.status, ExecutionStatus::Failure);
    assert!(out.error.unwrap().contains("slovo secret set api api_key"));
    assert_eq!(hits.0.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn only_granted_public_hosts_are_reached() {
    let (port, hits) = start().await;
    let obj = json!({"type": "object"});
    let cases = [
        (NetworkPolicy::None, "no network grant"),
        (
            NetworkPolicy::AllowList {
                hosts: vec!["api.example.org".parse().unwrap()],
            },
            "not among the granted hosts",
        ),
        (
            NetworkPolicy::AllowList {
                hosts: vec![format!("localhost:{}", port + 1).parse().unwrap()],
            },
            "not among the granted hosts",
        ),
    ];
    for (network, why) in cases {
        let out = loopback_ok()
            .run(&spec(port, "/items/1", "GET", obj.clone(), json!({}), network))
            .await;
        assert_eq!(out.status, ExecutionStatus::Failure);
        assert!(out.error.as_deref().unwrap_or("").contains(why), "{out:?}");
    }
    // With the default configuration, a granted name that resolves to loopback is refused,
    // and so is a loopback IP literal, even with an any-host grant.
    let strict = HttpBackend::new(HttpConfig::default());
    let out = strict
        .run(&spec(
            port,
            "/items/1",
            "GET",
            obj.clone(),
            json!({}),
            allow(port),
        ))
        .await;
    assert!(
        out.error
            .as_deref()
            .unwrap_or("")
            .contains("not a public address"),
        "{out:?}"
    );
    let mut literal = spec(
        port,
        "/items/1",
        "GET",
        obj.clone(),
        json!({}),
        NetworkPolicy::Public,
    );
    literal.api.as_mut().unwrap().base_url = format!("http://127.0.0.1:{port}");
    let out = strict.run(&literal).await;
    assert!(
        out.error
            .as_deref()
            .unwrap_or("")
            .contains("127.0.0.1 is not a public address"),
        "{out:?}"
    );
    let mut metadata = literal.clone();
    metadata.api.as_mut().unwrap().base_url = "http://169.254.169.254".into();
    let out = strict.run(&metadata).await;
    assert!(
        out.error
            .as_deref()
            .unwrap_or("")
            .contains("not a public address"),
        "{out:?}"
    );
    assert_eq!(
        hits.0.load(Ordering::SeqCst),
        0,
        "no request may reach the server"
    );

    // A redirect to a host outside the grant is refused; one inside is followed.
    let out = loopback_ok()
        .run(&spec(port, "/away", "GET", obj.clone(), json!({}), allow(port)))
        .await;
    assert_eq!(out.status, ExecutionStatus::Failure);
    assert!(
        out.error
            .as_deref()
            .unwrap_or("")
            .contains("redirect to http://127.0.0.2:9/stolen refused"),
        "{out:?}"
    );
    let out = loopback_ok()
        .run(&spec(port, "/hop", "GET", obj, json!({}), allow(port)))
        .await;
    assert_eq!(out.status, ExecutionStatus::Success, "{out:?}");
    assert_eq!(out.output.unwrap()["body"]["id"], "after-hop");
}

#[tokio::test]
async fn timeouts_caps_and_error_statuses() {
    let (port, _) = start().await;
    let obj = json!({"type": "object"});
    let out = loopback_ok()
        .run(&spec(port, "/slow", "GET", obj.clone(), json!({}), allow(port)))
        .await;
    assert_eq!(out.status, ExecutionStatus::Timeout, "{out:?}");
    let out = loopback_ok()
        .run(&spec(port, "/big", "GET", obj.clone(), json!({}), allow(port)))
        .await;
    assert_eq!(out.status, ExecutionStatus::Failure);
    assert!(out.error.unwrap().contains("larger than 100000 bytes"));
    let out = loopback_ok()
        .run(&spec(port, "/missing", "GET", obj, json!({}), allow(port)))
        .await;
    assert_eq!(out.status, ExecutionStatus::Failure);
    assert_eq!(out.exit_code, Some(404));
    assert_eq!(out.output.unwrap()["body"], json!({"error": "no such thing"}));
}

// ---------------------------------------------------------------------------------------------
// What reaches the wire: servers that record the raw request head they receive.

/// One request as a raw server received it.
#[derive(Debug, Clone)]
struct Seen {
    tls: bool,
    /// The request line, e.g. `GET /api/items/x HTTP/1.1`.
    line: String,
    /// The whole head (request line and headers) as received.
    head: String,
}

impl Seen {
    /// The values of header `name` (case-insensitive).
    fn header(&self, name: &str) -> Vec<String> {
        self.head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }
}

/// How a raw server answers a request: from whether it came over TLS and its target.
type Answer = Arc<dyn Fn(bool, &str) -> String + Send + Sync>;

/// A server on 127.0.0.1 that records every request head and answers from `answer`, one
/// request per connection. With a certificate it speaks TLS and plain HTTP on the same port
/// (told apart by the first byte: 0x16 opens a TLS handshake), so a redirect can change the
/// scheme and nothing else.
struct RawServer {
    port: u16,
    seen: Arc<std::sync::Mutex<Vec<Seen>>>,
}

impl RawServer {
    fn start(tls: Option<Arc<rustls::ServerConfig>>, answer: Answer) -> RawServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        // The accept loop lives as long as the test process; each connection has its own
        // thread and a read timeout, so nothing waits forever.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (tls, answer, record) = (tls.clone(), answer.clone(), record.clone());
                std::thread::spawn(move || serve_one(stream, tls, &answer, &record));
            }
        });
        RawServer { port, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve_one(
    stream: std::net::TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    answer: &Answer,
    record: &std::sync::Mutex<Vec<Seen>>,
) {
    use std::io::{Read, Write};
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut first = [0u8; 1];
    if stream.peek(&mut first).unwrap_or(0) == 0 {
        return;
    }
    let mut io: Box<dyn ReadWrite> = match tls {
        Some(config) if first[0] == 0x16 => Box::new(rustls::StreamOwned::new(
            rustls::ServerConnection::new(config).unwrap(),
            stream,
        )),
        _ => Box::new(stream),
    };
    let is_tls = first[0] == 0x16;
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") && buf.len() < 65_536 {
        match io.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let line = head.lines().next().unwrap_or("").to_string();
    let target = line.split(' ').nth(1).unwrap_or("").to_string();
    let seen = Seen {
        tls: is_tls,
        line,
        head,
    };
    let length: usize = seen
        .header("content-length")
        .first()
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length.min(1 << 20)];
    let _ = io.read_exact(&mut body);
    record.lock().unwrap().push(seen);
    let _ = io.write_all(answer(is_tls, &target).as_bytes());
    let _ = io.flush();
}

trait ReadWrite: std::io::Read + std::io::Write {}
impl<T: std::io::Read + std::io::Write> ReadWrite for T {}

fn redirect(status: u16, location: &str) -> String {
    format!(
        "HTTP/1.1 {status} Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
}

fn ok_json() -> String {
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{\"ok\":true}"
        .to_string()
}

/// A self-signed certificate for 127.0.0.1: the server's configuration and the certificate
/// the client is told to trust.
fn tls_pair() -> (Arc<rustls::ServerConfig>, reqwest::Certificate) {
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = key.cert.der().clone();
    let private = rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], private)
            .unwrap();
    (Arc::new(config), reqwest::Certificate::from_der(&cert).unwrap())
}

/// A tool on `base_url` calling `endpoint` with GET, its credential of the given kind, a cookie
/// argument `sid` and a header argument `X-Trace`; granted the 127.0.0.1 ports `ports`.
fn wire_spec(base_url: &str, endpoint: &str, auth: &Auth, ports: &[u16]) -> SandboxSpec {
    let params = json!({
        "type": "object",
        "properties": {
            "session": {"type": "string", "x-slovo-in": {"in": "cookie", "name": "sid"}},
            "trace": {"type": "string", "x-slovo-in": {"in": "header", "name": "X-Trace"}}
        }
    });
    let network = NetworkPolicy::AllowList {
        hosts: ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}").parse().unwrap())
            .collect(),
    };
    let mut s = spec(
        0,
        endpoint,
        "GET",
        params,
        json!({"session": "s9", "trace": "t1"}),
        network,
    );
    let api = s.api.as_mut().unwrap();
    api.base_url = base_url.to_string();
    api.auth_type = Some(auth.kind.to_string());
    api.auth_header = auth.header.map(str::to_string);
    s.secrets = Secrets::new(
        auth.secrets
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    s
}

/// One way the backend injects a credential, and the header it lands in.
struct Auth {
    kind: &'static str,
    header: Option<&'static str>,
    secrets: Vec<(&'static str, &'static str)>,
    /// The header that carries it on the wire, and the text that must never reach another
    /// origin.
    wire: &'static str,
    secret_text: String,
}

fn auth_forms() -> Vec<Auth> {
    use base64::Engine;
    vec![
        Auth {
            kind: "api_key",
            header: None,
            secrets: vec![("api_key", "key-SECRET-1")],
            wire: "x-api-key",
            secret_text: "key-SECRET-1".into(),
        },
        Auth {
            kind: "api_key",
            header: Some("X-Tenant-Token"),
            secrets: vec![("api_key", "key-SECRET-2")],
            wire: "x-tenant-token",
            secret_text: "key-SECRET-2".into(),
        },
        Auth {
            kind: "bearer",
            header: None,
            secrets: vec![("token", "tok-SECRET-3")],
            wire: "authorization",
            secret_text: "tok-SECRET-3".into(),
        },
        Auth {
            kind: "basic",
            header: None,
            secrets: vec![("username", "user"), ("password", "pw-SECRET-4")],
            wire: "authorization",
            secret_text: base64::engine::general_purpose::STANDARD.encode("user:pw-SECRET-4"),
        },
    ]
}

/// Asserts that `seen` carries none of the origin-bound parts of the request.
fn assert_no_credential(seen: &Seen, auth: &Auth) {
    assert!(
        !seen.head.contains(&auth.secret_text),
        "the secret reached {}: {}",
        seen.line,
        seen.head
    );
    for name in [auth.wire, "authorization", "cookie"] {
        assert!(
            seen.header(name).is_empty(),
            "{name} reached {}: {}",
            seen.line,
            seen.head
        );
    }
}

#[tokio::test]
async fn credentials_do_not_follow_a_redirect_to_another_origin() {
    let first: Arc<std::sync::Mutex<u16>> = Arc::default();
    let other = {
        let first = first.clone();
        RawServer::start(
            None,
            Arc::new(move |_, target| match target {
                // The second origin tries to steer the request back to the first.
                "/bounce" => redirect(307, &format!("http://127.0.0.1:{}/again", first.lock().unwrap())),
                _ => ok_json(),
            }),
        )
    };
    let other_port = other.port;
    let origin = RawServer::start(
        None,
        Arc::new(move |_, target| match target {
            "/start" => redirect(307, &format!("http://127.0.0.1:{other_port}/landing")),
            "/round" => redirect(302, &format!("http://127.0.0.1:{other_port}/bounce")),
            "/hop" => redirect(302, "/again"),
            _ => ok_json(),
        }),
    );
    *first.lock().unwrap() = origin.port;
    let base = format!("http://127.0.0.1:{}", origin.port);
    let ports = [origin.port, other.port];
    for auth in auth_forms() {
        for endpoint in ["/start", "/round", "/hop"] {
            let out = loopback_ok()
                .run(&wire_spec(&base, endpoint, &auth, &ports))
                .await;
            assert_eq!(
                out.status,
                ExecutionStatus::Success,
                "{} {endpoint}: {out:?}",
                auth.kind
            );
        }
        let at_origin = origin.seen();
        let at_other = other.seen();
        let find = |seen: &[Seen], path: &str| {
            seen.iter()
                .rev()
                .find(|s| s.line.starts_with(&format!("GET {path} ")))
                .cloned()
                .unwrap_or_else(|| panic!("no request for {path}: {seen:?}"))
        };
        // The first request carries the credential and the cookie.
        let start = find(&at_origin, "/start");
        assert!(start.head.contains(&auth.secret_text), "{}", start.head);
        assert_eq!(start.header(auth.wire).len(), 1, "{}", start.head);
        assert_eq!(start.header("cookie"), ["sid=s9"]);
        // Another granted origin (another port) sees neither; the plain argument header
        // still travels with the request.
        let landing = find(&at_other, "/landing");
        assert_no_credential(&landing, &auth);
        assert_eq!(landing.header("x-trace"), ["t1"]);
        assert_no_credential(&find(&at_other, "/bounce"), &auth);
        // Sent back to the first origin by the second: still without the credential.
        let again: Vec<_> = at_origin
            .iter()
            .filter(|s| s.line.starts_with("GET /again "))
            .collect();
        assert_eq!(again.len(), 2, "{at_origin:?}");
        // A redirect within the origin keeps it (the `/hop` call came last).
        assert!(again[1].head.contains(&auth.secret_text), "{}", again[1].head);
        assert_no_credential(again[0], &auth);
        origin.seen.lock().unwrap().clear();
        other.seen.lock().unwrap().clear();
    }
}

#[tokio::test]
async fn a_change_of_scheme_on_the_same_host_and_port_drops_the_credential() {
    let (tls, cert) = tls_pair();
    let port: Arc<std::sync::Mutex<u16>> = Arc::default();
    let server = {
        let port = port.clone();
        RawServer::start(
            Some(tls),
            Arc::new(move |is_tls, target| match (is_tls, target) {
                (false, "/start") => {
                    redirect(301, &format!("https://127.0.0.1:{}/secure", port.lock().unwrap()))
                }
                _ => ok_json(),
            }),
        )
    };
    *port.lock().unwrap() = server.port;
    let backend = HttpBackend::new(HttpConfig {
        allow_private_addresses: true,
        extra_roots: vec![cert],
        ..HttpConfig::default()
    });
    let base = format!("http://127.0.0.1:{}", server.port);
    for auth in auth_forms() {
        server.seen.lock().unwrap().clear();
        let out = backend
            .run(&wire_spec(&base, "/start", &auth, &[server.port]))
            .await;
        assert_eq!(out.status, ExecutionStatus::Success, "{} {out:?}", auth.kind);
        let seen = server.seen();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(!seen[0].tls && seen[0].head.contains(&auth.secret_text));
        assert!(seen[1].tls, "{seen:?}");
        assert_eq!(seen[1].line, "GET /secure HTTP/1.1");
        assert_no_credential(&seen[1], &auth);
    }
}

#[tokio::test]
async fn https_never_redirects_to_http() {
    let (tls, cert) = tls_pair();
    let plain = RawServer::start(None, Arc::new(|_, _| ok_json()));
    let plain_port = plain.port;
    let port: Arc<std::sync::Mutex<u16>> = Arc::default();
    let server = {
        let port = port.clone();
        RawServer::start(
            Some(tls),
            Arc::new(move |is_tls, target| match (is_tls, target) {
                (true, "/same") => redirect(302, &format!("http://127.0.0.1:{}/plain", port.lock().unwrap())),
                (true, "/other") => redirect(307, &format!("http://127.0.0.1:{plain_port}/plain")),
                (true, "/doc") => redirect(302, "/doc.json"),
                (true, "/doc-down") => redirect(
                    302,
                    &format!("http://127.0.0.1:{}/doc.json", port.lock().unwrap()),
                ),
                _ => ok_json(),
            }),
        )
    };
    *port.lock().unwrap() = server.port;
    let config = HttpConfig {
        allow_private_addresses: true,
        extra_roots: vec![cert],
        ..HttpConfig::default()
    };
    let backend = HttpBackend::new(config.clone());
    let base = format!("https://127.0.0.1:{}", server.port);
    let auth = &auth_forms()[0];
    for endpoint in ["/same", "/other"] {
        let out = backend
            .run(&wire_spec(&base, endpoint, auth, &[server.port, plain.port]))
            .await;
        assert_eq!(out.status, ExecutionStatus::Failure, "{out:?}");
        assert!(
            out.error
                .as_deref()
                .unwrap_or("")
                .contains("refused: it leaves https for http"),
            "{out:?}"
        );
    }
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen.iter().all(|s| s.tls && s.head.contains("key-SECRET-1")),
        "{seen:?}"
    );
    assert!(plain.seen().is_empty(), "{:?}", plain.seen());

    // Documents fetched for an import follow the same rule.
    let (url, bytes) = slovo_sandbox::http::fetch_document_with(&format!("{base}/doc"), &config)
        .await
        .unwrap();
    assert_eq!(url.path(), "/doc.json");
    assert_eq!(bytes, b"{\"ok\":true}");
    let err = slovo_sandbox::http::fetch_document_with(&format!("{base}/doc-down"), &config)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err.failure,
            slovo_sandbox::http::FetchFailure::RedirectRefused {
                refusal: slovo_sandbox::http::Refusal::Downgrade { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("refused: it leaves https for http"),
        "{err}"
    );
    assert!(server.seen().iter().all(|s| s.tls), "{:?}", server.seen());
}

#[tokio::test]
async fn path_cookie_and_header_values_cannot_reshape_the_request() {
    let server = RawServer::start(None, Arc::new(|_, _| ok_json()));
    let base = format!("http://127.0.0.1:{}/api/tenants/t1", server.port);
    let auth = &auth_forms()[0];
    let call = |endpoint: &str, params: Value, args: Value| {
        let mut s = wire_spec(&base, endpoint, auth, &[server.port]);
        s.capability.parameters = params;
        s.request = json!({"capability": "op", "arguments": args});
        s
    };
    let path_params = json!({
        "type": "object",
        "properties": {"id": {"type": "string", "x-slovo-in": {"in": "path", "name": "id"}}}
    });
    // Values that would leave the item: refused, nothing sent.
    for id in ["..", ".", ""] {
        let out = loopback_ok()
            .run(&call("/items/{id}", path_params.clone(), json!({"id": id})))
            .await;
        assert_eq!(out.status, ExecutionStatus::Failure, "{id:?}: {out:?}");
        assert!(
            out.error
                .as_deref()
                .unwrap_or("")
                .contains("would change the path"),
            "{id:?}: {out:?}"
        );
    }
    // A dot segment written into the endpoint itself is refused too (the URL parser would
    // resolve it silently).
    let out = loopback_ok()
        .run(&call("/items/{id}/..", path_params.clone(), json!({"id": "7"})))
        .await;
    assert!(
        out.error.as_deref().unwrap_or("").contains("up the path"),
        "{out:?}"
    );
    assert!(server.seen().is_empty(), "{:?}", server.seen());

    // Everything else stays one segment, escaped as sent.
    for (id, wire) in [
        ("%2e%2e", "/api/tenants/t1/items/%252e%252e"),
        ("%2E%2E", "/api/tenants/t1/items/%252E%252E"),
        ("a/../../x", "/api/tenants/t1/items/a%2F..%2F..%2Fx"),
        ("..%2f..", "/api/tenants/t1/items/..%252f.."),
        ("...", "/api/tenants/t1/items/..."),
        ("x?admin=1", "/api/tenants/t1/items/x%3Fadmin%3D1"),
        ("x#frag", "/api/tenants/t1/items/x%23frag"),
        ("x\\..\\y", "/api/tenants/t1/items/x%5C..%5Cy"),
    ] {
        server.seen.lock().unwrap().clear();
        let out = loopback_ok()
            .run(&call("/items/{id}", path_params.clone(), json!({"id": id})))
            .await;
        assert_eq!(out.status, ExecutionStatus::Success, "{id:?}: {out:?}");
        let seen = server.seen();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].line, format!("GET {wire} HTTP/1.1"), "{id:?}");
    }

    // A cookie value cannot end its cookie and add another.
    server.seen.lock().unwrap().clear();
    let cookie_params = json!({
        "type": "object",
        "properties": {"session": {"type": "string", "x-slovo-in": {"in": "cookie", "name": "sid"}}}
    });
    let out = loopback_ok()
        .run(&call(
            "/items/1",
            cookie_params,
            json!({"session": "s9; admin=1, \"x\\%"}),
        ))
        .await;
    assert_eq!(out.status, ExecutionStatus::Success, "{out:?}");
    assert_eq!(
        server.seen()[0].header("cookie"),
        ["sid=s9%3B%20admin=1%2C%20%22x%5C%25"]
    );

    // A header value with a control character fails the call; nothing is sent.
    server.seen.lock().unwrap().clear();
    let header_params = json!({
        "type": "object",
        "properties": {"trace": {"type": "string", "x-slovo-in": {"in": "header", "name": "X-Trace"}}}
    });
    for value in [
        "t1\r\nX-Injected: 1",
        "t1\nX-Injected: 1",
        "t1\rX",
        "t1\u{0}",
        "t1\u{7f}",
    ] {
        let out = loopback_ok()
            .run(&call("/items/1", header_params.clone(), json!({"trace": value})))
            .await;
        assert_eq!(out.status, ExecutionStatus::Failure, "{value:?}: {out:?}");
        assert!(
            out.error
                .as_deref()
                .unwrap_or("")
                .contains("the value of header X-Trace contains the control character"),
            "{value:?}: {out:?}"
        );
    }
    // So does a credential with a line break, and the error does not quote it.
    let mut s = call("/items/1", json!({"type": "object"}), json!({}));
    s.secrets = Secrets::new([("api_key".to_string(), "key-SECRET\r\nX-Injected: 1".to_string())].into());
    let out = loopback_ok().run(&s).await;
    assert_eq!(out.status, ExecutionStatus::Failure, "{out:?}");
    let error = out.error.unwrap_or_default();
    assert!(
        error.contains("header X-Api-Key contains the control character"),
        "{error}"
    );
    assert!(!error.contains("key-SECRET"), "{error}");
    assert!(server.seen().is_empty(), "{:?}", server.seen());
}
