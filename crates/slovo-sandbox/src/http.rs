//! The HTTP backend (`execution.type: http`): runs no foreign code. It builds the request from
//! the capability (endpoint, method, and each argument's `x-slovo-in` binding), injects the
//! credential from the tool's secrets, and reaches only hosts the grant allows.
//!
//! Where each argument goes:
//! - a property with `x-slovo-in: {in: path|query|header|cookie, name}` goes there under
//!   `name` (the OpenAPI ingester writes these); `{in: body}` is the request body, sent as JSON
//!   or, when the schema's `x-slovo-body.content_type` is `application/x-www-form-urlencoded`,
//!   as a form;
//! - without bindings (hand-written manifests): a property named in the endpoint template
//!   (`/v1/items/{id}`) fills it; the rest go in the query string for GET, HEAD and DELETE and in
//!   a JSON body otherwise.
//!
//! Network rules, checked here and not left to the tool: the grant must allow the host (and
//! port); every address the name resolves to must be public by the same
//! [`PublicPolicy`] the egress proxy applies (globally routable, plus ranges the configuration
//! declares public), unless the configuration allows every address; a redirect is
//! followed only to a host that passes the same checks; the whole call has the grant's
//! timeout; the response body is capped.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use slovo_core::execution::{ExecutionStatus, NetworkPolicy, Outcome, SandboxSpec};
use slovo_core::net::PublicPolicy;

use crate::{Backend, BackendError, InstallRequest};

/// Response headers copied into the result.
const KEPT_HEADERS: [&str; 6] = [
    "content-type",
    "content-length",
    "location",
    "retry-after",
    "etag",
    "last-modified",
];

/// Configuration of the HTTP backend.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest response body accepted (bytes). By default, 4 MiB.
    pub max_response_bytes: usize,
    /// Let tools reach every address, loopback and private ones included (tests). By
    /// default, false. To allow one LAN device, prefer declaring its range in `public`.
    pub allow_private_addresses: bool,
    /// Which addresses count as public: the same policy the egress proxy applies to tools
    /// with a network grant. By default, globally routable addresses only.
    pub public: PublicPolicy,
    /// Redirects followed at most. By default, 5.
    pub max_redirects: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_response_bytes: 4 * 1024 * 1024,
            allow_private_addresses: false,
            public: PublicPolicy::strict(),
            max_redirects: 5,
        }
    }
}

/// Calls remote APIs on behalf of HTTP tools.
#[derive(Debug, Clone)]
pub struct HttpBackend {
    config: Arc<HttpConfig>,
}

impl HttpBackend {
    /// A backend with `config`.
    pub fn new(config: HttpConfig) -> Self {
        ensure_tls_provider();
        HttpBackend {
            config: Arc::new(config),
        }
    }
}

/// Installs the process-wide TLS provider (ring) that every reqwest client in this build
/// needs; installing twice is harmless. Call it before building any other reqwest client.
pub fn ensure_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Why a request was not sent or not accepted.
#[derive(Debug, thiserror::Error)]
enum HttpError {
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Request(String),
}

/// Which addresses requests may reach: the public policy, or everything.
#[derive(Debug, Clone)]
struct AddressRule {
    everything: bool,
    public: PublicPolicy,
}

impl AddressRule {
    fn allows(&self, ip: IpAddr) -> bool {
        self.everything || self.public.allows(ip)
    }
}

/// Resolves names, refusing any that resolves to a non-public address.
struct PublicOnlyResolver {
    rule: AddressRule,
}

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let rule = self.rule.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(bad) = addrs.iter().find(|a| !rule.allows(a.ip())) {
                return Err(format!("{host} resolves to {}, which is not a public address", bad.ip()).into());
            }
            if addrs.is_empty() {
                return Err(format!("{host} does not resolve").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Checks a URL's host against the grant (and, for IP literals, the public rule, since they
/// never pass through the resolver).
fn check_target(url: &reqwest::Url, network: &NetworkPolicy, rule: &AddressRule) -> Result<(), String> {
    let host = url.host_str().ok_or_else(|| format!("{url} has no host"))?;
    let port = url.port_or_known_default().unwrap_or(443);
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("scheme {} is not allowed", url.scheme()));
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>()
        && !rule.allows(ip)
    {
        return Err(format!("{ip} is not a public address"));
    }
    match network {
        NetworkPolicy::None => Err("the tool has no network grant".to_string()),
        NetworkPolicy::Public => Ok(()),
        NetworkPolicy::AllowList { hosts } => {
            if hosts.iter().any(|h| h.matches(bare, port)) {
                Ok(())
            } else {
                Err(format!("{bare}:{port} is not among the granted hosts"))
            }
        }
    }
}

fn binding(schema: &Value) -> Option<(&str, Option<&str>)> {
    let b = schema.get("x-slovo-in")?;
    Some((b.get("in")?.as_str()?, b.get("name").and_then(Value::as_str)))
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Percent-encodes one path segment (RFC 3986 unreserved characters kept).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The parts of a request, built from the capability and the arguments.
#[derive(Debug, Default, PartialEq)]
struct RequestParts {
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    cookies: Vec<(String, String)>,
    json_body: Option<Value>,
    form_body: Option<Vec<(String, String)>>,
}

fn build_parts(spec: &SandboxSpec) -> Result<RequestParts, String> {
    let cap = &spec.capability;
    let method = cap.method.as_deref().unwrap_or("GET");
    let args = spec
        .request
        .get("arguments")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let props = cap
        .parameters
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let endpoint = cap.endpoint.clone().unwrap_or_else(|| "/".to_string());
    let form = cap
        .parameters
        .pointer("/x-slovo-body/content_type")
        .and_then(Value::as_str)
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let mut parts = RequestParts::default();
    let mut path = endpoint.clone();
    let mut unbound = Map::new();
    let mut body_fields = Map::new();
    for (name, value) in &args {
        let schema = props.get(name).cloned().unwrap_or(Value::Null);
        let (location, wire) = match binding(&schema) {
            // One field of an object body: gathered below into the body object.
            Some(("body", Some(field))) => {
                body_fields.insert(field.to_string(), value.clone());
                continue;
            }
            Some((loc, wire)) => (loc.to_string(), wire.unwrap_or(name).to_string()),
            None if endpoint.contains(&format!("{{{name}}}")) => ("path".to_string(), name.clone()),
            None => {
                unbound.insert(name.clone(), value.clone());
                continue;
            }
        };
        match location.as_str() {
            "path" => {
                let placeholder = format!("{{{wire}}}");
                if !path.contains(&placeholder) {
                    return Err(format!("the endpoint {endpoint} has no {placeholder}"));
                }
                path = path.replace(&placeholder, &encode_segment(&scalar_text(value)));
            }
            "query" => match value {
                Value::Array(items) => parts
                    .query
                    .extend(items.iter().map(|i| (wire.clone(), scalar_text(i)))),
                Value::Null => {}
                v => parts.query.push((wire, scalar_text(v))),
            },
            "header" => {
                let text = scalar_text(value);
                if text.contains(['\r', '\n']) {
                    return Err(format!("header {wire} contains a line break"));
                }
                parts.headers.push((wire, text));
            }
            "cookie" => parts.cookies.push((wire, scalar_text(value))),
            "body" => {
                if form {
                    let fields = value.as_object().ok_or("a form body must be an object")?;
                    parts.form_body = Some(fields.iter().map(|(k, v)| (k.clone(), scalar_text(v))).collect());
                } else {
                    parts.json_body = Some(value.clone());
                }
            }
            other => return Err(format!("argument {name} is bound to unknown location {other:?}")),
        }
    }
    if !body_fields.is_empty() {
        if parts.json_body.is_some() || parts.form_body.is_some() {
            return Err("both a whole body and body fields are bound".to_string());
        }
        if form {
            parts.form_body = Some(
                body_fields
                    .iter()
                    .map(|(k, v)| (k.clone(), scalar_text(v)))
                    .collect(),
            );
        } else {
            parts.json_body = Some(Value::Object(body_fields));
        }
    }
    if path.contains('{') {
        return Err(format!("the endpoint {path} still has unfilled parameters"));
    }
    if !unbound.is_empty() {
        if matches!(method, "GET" | "HEAD" | "DELETE" | "OPTIONS") {
            for (k, v) in unbound {
                match v {
                    Value::Array(items) => parts
                        .query
                        .extend(items.iter().map(|i| (k.clone(), scalar_text(i)))),
                    v => parts.query.push((k, scalar_text(&v))),
                }
            }
        } else if parts.json_body.is_none() {
            parts.json_body = Some(Value::Object(unbound));
        }
    }
    parts.path = path;
    Ok(parts)
}

/// Adds the credential the API asks for, from the tool's secrets. Each kind has a
/// conventional secret name (`api_key`; `token`; `username` + `password`); a tool imported from
/// OpenAPI may instead name the secret after its security scheme (the first scheme of the
/// capability's `x-slovo-security`), which holds the key, the token, or `user:password`.
fn authenticate(spec: &SandboxSpec, parts: &mut RequestParts) -> Result<(), String> {
    let Some(api) = &spec.api else { return Ok(()) };
    let scheme = spec
        .capability
        .parameters
        .pointer("/x-slovo-security/0/0")
        .and_then(Value::as_str)
        .map(str::to_string);
    let lookup = |conventional: &str| {
        spec.secrets
            .get(conventional)
            .or_else(|| scheme.as_deref().and_then(|s| spec.secrets.get(s)))
            .map(str::to_string)
            .ok_or_else(|| {
                let name = scheme.as_deref().unwrap_or(conventional);
                format!(
                    "the tool needs the secret {name:?} (slovo secret set {} {name})",
                    spec.tool
                )
            })
    };
    match api.auth_type.as_deref() {
        None | Some("none") => {}
        Some("api_key") => {
            let header = api.auth_header.clone().unwrap_or_else(|| "X-Api-Key".to_string());
            parts.headers.push((header, lookup("api_key")?));
        }
        Some("bearer") => parts
            .headers
            .push(("Authorization".into(), format!("Bearer {}", lookup("token")?))),
        Some("basic") => {
            use base64::Engine;
            let pair = match (spec.secrets.get("username"), spec.secrets.get("password")) {
                (Some(u), Some(p)) => format!("{u}:{p}"),
                _ => {
                    let joined = lookup("basic")?;
                    if !joined.contains(':') {
                        return Err("a basic-auth secret must read user:password".into());
                    }
                    joined
                }
            };
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            parts
                .headers
                .push(("Authorization".into(), format!("Basic {encoded}")));
        }
        Some(other) => return Err(format!("unsupported auth_type {other:?}")),
    }
    Ok(())
}

impl HttpBackend {
    async fn send(&self, spec: &SandboxSpec) -> Result<Outcome, HttpError> {
        let api = spec
            .api
            .as_ref()
            .ok_or_else(|| HttpError::Refused("the tool has no api_requirements.base_url".into()))?;
        let mut parts = build_parts(spec).map_err(HttpError::Refused)?;
        authenticate(spec, &mut parts).map_err(HttpError::Refused)?;
        let base = api.base_url.trim_end_matches('/');
        let mut url = reqwest::Url::parse(&format!("{base}{}", parts.path))
            .map_err(|e| HttpError::Refused(format!("bad URL {base}{}: {e}", parts.path)))?;
        if !parts.query.is_empty() {
            url.query_pairs_mut().extend_pairs(parts.query.iter());
        }
        let rule = AddressRule {
            everything: self.config.allow_private_addresses,
            public: self.config.public.clone(),
        };
        check_target(&url, &spec.network, &rule).map_err(HttpError::Refused)?;

        let network = spec.network.clone();
        let redirect_rule = rule.clone();
        let max_redirects = self.config.max_redirects;
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= max_redirects {
                return attempt.error(format!("more than {max_redirects} redirects"));
            }
            match check_target(attempt.url(), &network, &redirect_rule) {
                Ok(()) => attempt.follow(),
                Err(why) => {
                    let to = attempt.url().to_string();
                    attempt.error(format!("redirect to {to} refused: {why}"))
                }
            }
        });
        let client = reqwest::Client::builder()
            .redirect(policy)
            .dns_resolver(Arc::new(PublicOnlyResolver { rule }))
            .no_proxy()
            .timeout(spec.limits.timeout)
            .connect_timeout(spec.limits.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| HttpError::Request(format!("failed to build the HTTP client: {e}")))?;
        let method =
            reqwest::Method::from_bytes(spec.capability.method.as_deref().unwrap_or("GET").as_bytes())
                .map_err(|e| HttpError::Refused(e.to_string()))?;
        let mut req = client.request(method, url.clone());
        for (k, v) in &parts.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if !parts.cookies.is_empty() {
            let cookie = parts
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            req = req.header("Cookie", cookie);
        }
        if let Some(body) = &parts.json_body {
            req = req.json(body);
        } else if let Some(form) = &parts.form_body {
            let encoded = form
                .iter()
                .map(|(k, v)| format!("{}={}", encode_segment(k), encode_segment(v)))
                .collect::<Vec<_>>()
                .join("&");
            req = req
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(encoded);
        }
        let mut resp = req.send().await.map_err(|e| HttpError::Request(describe(&e)))?;
        let status = resp.status();
        let mut headers = Map::new();
        for name in KEPT_HEADERS {
            if let Some(v) = resp.headers().get(name).and_then(|v| v.to_str().ok()) {
                headers.insert(name.to_string(), json!(v));
            }
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| HttpError::Request(describe(&e)))? {
            if body.len() + chunk.len() > self.config.max_response_bytes {
                return Err(HttpError::Request(format!(
                    "the response is larger than {} bytes",
                    self.config.max_response_bytes
                )));
            }
            body.extend_from_slice(&chunk);
        }
        let parsed = serde_json::from_slice::<Value>(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        let ok = status.is_success();
        Ok(Outcome {
            status: if ok {
                ExecutionStatus::Success
            } else {
                ExecutionStatus::Failure
            },
            output: Some(json!({"status": status.as_u16(), "headers": headers, "body": parsed})),
            error: (!ok).then(|| format!("{} answered HTTP {status}", url.host_str().unwrap_or("the API"))),
            exit_code: Some(i32::from(status.as_u16())),
            sandbox_id: Some(format!("http:{}", url.host_str().unwrap_or(""))),
            ..Outcome::default()
        })
    }
}

/// Downloads a document (an OpenAPI description, a catalogue entry) for an import: http(s)
/// only, the same public-address rule as tool calls (checked on every resolution and
/// redirect), a timeout, and a size cap. Returns the final URL and the bytes.
pub async fn fetch_document(
    url: &str,
    max_bytes: usize,
    allow_private_addresses: bool,
) -> Result<(reqwest::Url, Vec<u8>), String> {
    ensure_tls_provider();
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url}: not a URL: {e}"))?;
    let rule = AddressRule {
        everything: allow_private_addresses,
        public: PublicPolicy::strict(),
    };
    check_target(&parsed, &NetworkPolicy::Public, &rule).map_err(|e| format!("{url}: {e}"))?;
    let redirect_rule = rule.clone();
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 5 {
            return attempt.error("more than 5 redirects");
        }
        match check_target(attempt.url(), &NetworkPolicy::Public, &redirect_rule) {
            Ok(()) => attempt.follow(),
            Err(why) => attempt.error(why),
        }
    });
    let client = reqwest::Client::builder()
        .redirect(policy)
        .dns_resolver(Arc::new(PublicOnlyResolver { rule }))
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("failed to build the HTTP client: {e}"))?;
    let mut resp = client
        .get(parsed.clone())
        .send()
        .await
        .map_err(|e| format!("{url}: {}", describe(&e)))?;
    if !resp.status().is_success() {
        return Err(format!("{url}: HTTP {}", resp.status()));
    }
    let final_url = resp.url().clone();
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("{url}: {}", describe(&e)))?
    {
        if body.len() + chunk.len() > max_bytes {
            return Err(format!("{url}: the document is larger than {max_bytes} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((final_url, body))
}

fn describe(e: &reqwest::Error) -> String {
    use std::error::Error;
    if e.is_timeout() {
        return "timed out".to_string();
    }
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

#[async_trait]
impl Backend for HttpBackend {
    fn kind(&self) -> &'static str {
        "http"
    }

    async fn install(&self, request: &InstallRequest) -> Result<Value, BackendError> {
        Ok(json!({"runtime": "http", "tool": request.tool}))
    }

    async fn run(&self, spec: &SandboxSpec) -> Outcome {
        match self.send(spec).await {
            Ok(o) => o,
            Err(HttpError::Refused(why)) => Outcome::failed(format!("refused: {why}")),
            Err(HttpError::Request(why)) if why == "timed out" => Outcome {
                status: ExecutionStatus::Timeout,
                error: Some(format!("no answer within {} s", spec.limits.timeout.as_secs())),
                ..Outcome::default()
            },
            Err(HttpError::Request(why)) => Outcome::failed(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_declared_public_is_reachable_and_nothing_else_is() {
        let url = |u: &str| reqwest::Url::parse(u).unwrap_or_else(|e| panic!("{e}"));
        let strict = AddressRule {
            everything: false,
            public: PublicPolicy::strict(),
        };
        let lan = AddressRule {
            everything: false,
            public: PublicPolicy::with_ranges(["192.168.1.20/32".parse().unwrap_or_else(|e| panic!("{e}"))]),
        };
        let any = NetworkPolicy::Public;
        assert!(check_target(&url("http://192.168.1.20/"), &any, &strict).is_err());
        assert_eq!(check_target(&url("http://192.168.1.20/"), &any, &lan), Ok(()));
        assert!(check_target(&url("http://192.168.1.21/"), &any, &lan).is_err());
        assert!(check_target(&url("http://127.0.0.1/"), &any, &lan).is_err());
        assert!(check_target(&url("http://169.254.169.254/"), &any, &lan).is_err());
    }
}
