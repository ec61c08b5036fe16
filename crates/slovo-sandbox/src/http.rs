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
//! Values are escaped for where they go: a path value is one segment (`/`, `?`, `#`, `%`
//! escaped; empty, `.` and `..` refused, since the URL standard resolves dot segments even when
//! escaped), cookie values cannot end their cookie, and a header value with a control character
//! fails the call before anything is sent.
//!
//! Network rules, checked here and not left to the tool: the grant must allow the host (and
//! port); every address the name resolves to must be public by the same
//! [`PublicPolicy`] the egress proxy applies (globally routable, plus ranges the configuration
//! declares public), unless the configuration allows every address; redirects are followed by
//! hand (`follow`), each only to a target that passes the same checks, never from https to
//! http, and the credential stays with the origin (scheme, host, port) of the base URL; the
//! whole call has the grant's timeout; the response body is capped.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};
use slovo_core::execution::{ExecutionStatus, NetworkPolicy, Outcome, SandboxSpec};
use slovo_core::install::{HttpFacts, InstallFacts};
use slovo_core::net::PublicPolicy;

use crate::{Backend, BackendError, InstallRequest};

mod address;
mod fetch;

use address::PublicOnlyResolver;
pub use address::Refusal;
pub(crate) use address::{AddressRule, check_target};
pub use fetch::{FetchError, FetchFailure, fetch_document, fetch_document_with};

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
    /// Certificate authorities trusted for https in addition to the platform's (a private CA
    /// in front of a LAN device; a test server's own certificate). By default, none.
    pub extra_roots: Vec<reqwest::Certificate>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_response_bytes: 4 * 1024 * 1024,
            allow_private_addresses: false,
            public: PublicPolicy::strict(),
            max_redirects: 5,
            extra_roots: Vec::new(),
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

/// Why a tool's request was not sent or not accepted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    /// The request was not sent: its arguments, the grant or the address rule refuse it.
    #[error("{0}")]
    Refused(String),
    /// The exchange failed after the request was built.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
}

/// Why an exchange (the request, its redirects and the response body) failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExchangeError {
    /// A redirect led where the exchange may not go.
    #[error("redirect to {to} refused: {refusal}")]
    RedirectRefused {
        /// The `Location`, resolved against the request's URL (boxed: a URL is large, and
        /// this error travels in every exchange's result).
        to: Box<reqwest::Url>,
        /// Why it may not be followed.
        refusal: Refusal,
    },
    /// More redirects than the configuration follows.
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    /// The response body is larger than the cap.
    #[error("the response is larger than {0} bytes")]
    TooLarge(usize),
    /// The whole exchange took longer than allowed.
    #[error("timed out")]
    TimedOut,
    /// Resolving, connecting, sending or reading failed.
    #[error("{}", describe(.0))]
    Transport(#[source] reqwest::Error),
    /// The HTTP client could not be built (its certificate authorities, mostly).
    #[error("failed to build the HTTP client: {}", describe(.0))]
    Client(#[source] reqwest::Error),
}

impl ExchangeError {
    /// Whether the exchange ran out of time (the whole-exchange limit or the client's own).
    pub(crate) fn is_timeout(&self) -> bool {
        match self {
            ExchangeError::TimedOut => true,
            ExchangeError::Transport(e) => e.is_timeout(),
            _ => false,
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

/// Percent-encodes one path segment (RFC 3986 unreserved characters kept). `/`, `?`, `#` and
/// `%` are encoded, so a value cannot add a segment, start the query or fragment, or smuggle an
/// escape of its own (`%2e%2e` given literally travels as `%252e%252e`).
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

/// True for a segment that the URL standard resolves away (`.`) or lets climb one level
/// (`..`), escaped forms included: the URL parser treats `%2e%2e` as `..` too, so escaping the
/// dots cannot carry such a value, and servers that decode before they route would climb anyway.
fn is_dot_segment(segment: &str) -> bool {
    matches!(
        segment.to_ascii_lowercase().as_str(),
        "." | ".." | "%2e" | ".%2e" | "%2e." | "%2e%2e"
    )
}

/// Percent-encodes a cookie value: RFC 6265 allows visible ASCII except `"`, `,`, `;` and `\`
/// in a value; `%` is encoded too so the encoding can be undone. A value therefore cannot end
/// its cookie and start another.
fn encode_cookie_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x21..=0x7e).contains(&b) && !matches!(b, b'"' | b',' | b';' | b'\\' | b'%') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A header name and value checked for the wire. Control characters (CR and LF above all,
/// which would end the header and start another) are refused rather than stripped, so the call
/// fails and nothing is sent; the value is never quoted in the error, since it may be a secret.
pub(crate) fn header_pair(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let header = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not a valid HTTP header name"))?;
    if let Some(c) = value.chars().find(|c| c.is_ascii_control() && *c != '\t') {
        return Err(format!(
            "the value of header {name} contains the control character {c:?}"
        ));
    }
    let value = HeaderValue::from_str(value)
        .map_err(|_| format!("the value of header {name} is not a valid HTTP header value"))?;
    Ok((header, value))
}

/// The parts of a request, built from the capability and the arguments.
#[derive(Debug, Default, PartialEq)]
struct RequestParts {
    path: String,
    query: Vec<(String, String)>,
    /// Headers from the arguments.
    headers: Vec<(String, String)>,
    cookies: Vec<(String, String)>,
    /// The credential from the tool's secrets: sent only to the origin of the base URL.
    credentials: Vec<(String, String)>,
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
                let text = scalar_text(value);
                // An empty value would address the collection instead of the item, and `.` or
                // `..` would move the request up the path (with the tool's credential). Escaped
                // dots given literally are harmless: their `%` is escaped in turn.
                if matches!(text.as_str(), "" | "." | "..") {
                    return Err(format!(
                        "the path parameter {name} is {text:?}, which would change the path \
                         rather than name one item"
                    ));
                }
                path = path.replace(&placeholder, &encode_segment(&text));
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
                header_pair(&wire, &text)?;
                parts.headers.push((wire, text));
            }
            "cookie" => {
                if HeaderName::from_bytes(wire.as_bytes()).is_err() {
                    return Err(format!("{wire:?} is not a valid cookie name"));
                }
                parts
                    .cookies
                    .push((wire, encode_cookie_value(&scalar_text(value))));
            }
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
    // Values next to each other or to template text can still form a dot segment
    // (`/{a}{b}` with `.` and `.`); the URL parser would resolve it, so it is refused here.
    if let Some(segment) = path.split(['/', '?', '#']).find(|s| is_dot_segment(s)) {
        return Err(format!(
            "the path {path} has the segment {segment:?}, which would move the request up the path"
        ));
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
            parts.credentials.push((header, lookup("api_key")?));
        }
        Some("bearer") => parts
            .credentials
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
                .credentials
                .push(("Authorization".into(), format!("Basic {encoded}")));
        }
        Some(other) => return Err(format!("unsupported auth_type {other:?}")),
    }
    Ok(())
}

/// The first request of an exchange.
pub(crate) struct Outgoing {
    pub(crate) method: reqwest::Method,
    pub(crate) url: reqwest::Url,
    /// Headers from the arguments, the Cookie header built from cookie arguments among them.
    pub(crate) headers: HeaderMap,
    /// The credential from the tool's secrets.
    pub(crate) credentials: HeaderMap,
    /// Content type and bytes.
    pub(crate) body: Option<(HeaderValue, Vec<u8>)>,
}

/// Whether two URLs share an origin: scheme, host and port.
fn same_origin(a: &reqwest::Url, b: &reqwest::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Why a redirect from `from` to `to` may not be followed at all, whatever the grant says:
/// a step from https down to http would hand the request, and every later answer, to anyone
/// on the path.
fn downgrade(from: &reqwest::Url, to: &reqwest::Url) -> Option<Refusal> {
    (from.scheme() == "https" && to.scheme() != "https").then(|| Refusal::Downgrade {
        scheme: to.scheme().to_string(),
    })
}

/// Headers that belong to the origin the exchange started on: the credential's own header
/// and whatever else carries authority (Authorization, Proxy-Authorization, cookies), even
/// when an argument filled it.
fn origin_bound(name: &HeaderName, credentials: &HeaderMap) -> bool {
    credentials.contains_key(name)
        || [
            reqwest::header::AUTHORIZATION,
            reqwest::header::PROXY_AUTHORIZATION,
            reqwest::header::COOKIE,
        ]
        .contains(name)
        || name.as_str() == "cookie2"
}

/// Sends `first` and follows redirects by hand, so that every hop is decided here rather than
/// inside the HTTP client: each target must pass the grant and address checks; a step from
/// https to http is refused; a step to another origin (scheme, host or port) drops the
/// credential and every origin-bound header for the rest of the exchange (a second origin must
/// not be able to steer an authenticated request back to the first); user information in a
/// `Location` is removed. 301, 302 and 303 continue as GET without a body (HEAD stays HEAD),
/// 307 and 308 repeat the method and body. Returns the last response.
pub(crate) async fn follow(
    client: &reqwest::Client,
    first: Outgoing,
    network: &NetworkPolicy,
    rule: &AddressRule,
    max_redirects: usize,
) -> Result<reqwest::Response, ExchangeError> {
    let Outgoing {
        mut method,
        mut url,
        mut headers,
        credentials,
        mut body,
    } = first;
    let mut carry_credentials = true;
    let mut redirects = 0;
    loop {
        let mut request = client
            .request(method.clone(), url.clone())
            .headers(headers.clone());
        if carry_credentials {
            request = request.headers(credentials.clone());
        }
        if let Some((content_type, bytes)) = &body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, content_type.clone())
                .body(bytes.clone());
        }
        let response = request.send().await.map_err(ExchangeError::Transport)?;
        let status = response.status().as_u16();
        if !matches!(status, 301 | 302 | 303 | 307 | 308) {
            return Ok(response);
        }
        let Some(mut next) = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| std::str::from_utf8(l.as_bytes()).ok())
            .and_then(|l| url.join(l).ok())
        else {
            // No usable Location: the redirect is the answer, as with any HTTP client.
            return Ok(response);
        };
        if redirects >= max_redirects {
            return Err(ExchangeError::TooManyRedirects(max_redirects));
        }
        redirects += 1;
        // Credentials are never taken from a Location (nor copied from the base URL onto a
        // later hop by a relative one).
        let _ = next.set_username("");
        let _ = next.set_password(None);
        let refusal = downgrade(&url, &next).map_or_else(|| check_target(&next, network, rule), Err);
        if let Err(refusal) = refusal {
            return Err(ExchangeError::RedirectRefused {
                to: Box::new(next),
                refusal,
            });
        }
        if !same_origin(&url, &next) && carry_credentials {
            carry_credentials = false;
            headers = headers
                .iter()
                .filter(|(name, _)| !origin_bound(name, &credentials))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect();
        }
        if matches!(status, 301..=303) {
            body = None;
            if method != reqwest::Method::HEAD {
                method = reqwest::Method::GET;
            }
        }
        url = next;
    }
}

/// A client that resolves through the address rule, ignores proxies from the environment and
/// follows no redirect by itself ([`follow`] does).
pub(crate) fn client(
    rule: AddressRule,
    timeout: Duration,
    roots: &[reqwest::Certificate],
) -> Result<reqwest::Client, ExchangeError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(PublicOnlyResolver { rule }))
        .no_proxy()
        .tls_certs_merge(roots.iter().cloned())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .build()
        .map_err(ExchangeError::Client)
}

impl HttpConfig {
    /// The addresses this configuration lets requests reach.
    pub(crate) fn rule(&self) -> AddressRule {
        AddressRule {
            everything: self.allow_private_addresses,
            public: self.public.clone(),
        }
    }
}

impl HttpBackend {
    fn rule(&self) -> AddressRule {
        AddressRule {
            everything: self.config.allow_private_addresses,
            public: self.config.public.clone(),
        }
    }

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
        let rule = self.rule();
        check_target(&url, &spec.network, &rule)
            .map_err(|refusal| HttpError::Refused(refusal.to_string()))?;

        let mut headers = HeaderMap::new();
        for (k, v) in &parts.headers {
            let (name, value) = header_pair(k, v).map_err(HttpError::Refused)?;
            headers.append(name, value);
        }
        if !parts.cookies.is_empty() {
            let cookie = parts
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            let (name, value) = header_pair("Cookie", &cookie).map_err(HttpError::Refused)?;
            headers.append(name, value);
        }
        let mut credentials = HeaderMap::new();
        for (k, v) in &parts.credentials {
            let (name, value) = header_pair(k, v).map_err(HttpError::Refused)?;
            credentials.append(name, value);
        }
        let body = if let Some(json) = &parts.json_body {
            let bytes = serde_json::to_vec(json)
                .map_err(|e| HttpError::Refused(format!("the body is not JSON: {e}")))?;
            Some((HeaderValue::from_static("application/json"), bytes))
        } else {
            parts.form_body.as_ref().map(|form| {
                let encoded = form
                    .iter()
                    .map(|(k, v)| format!("{}={}", encode_segment(k), encode_segment(v)))
                    .collect::<Vec<_>>()
                    .join("&");
                (
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                    encoded.into_bytes(),
                )
            })
        };
        let method =
            reqwest::Method::from_bytes(spec.capability.method.as_deref().unwrap_or("GET").as_bytes())
                .map_err(|e| HttpError::Refused(e.to_string()))?;
        let client = client(rule.clone(), spec.limits.timeout, &self.config.extra_roots)?;
        let first = Outgoing {
            method,
            url: url.clone(),
            headers,
            credentials,
            body,
        };
        // The grant's timeout covers the whole exchange: every hop and the body.
        let exchange = async {
            let resp = follow(&client, first, &spec.network, &rule, self.config.max_redirects).await?;
            let status = resp.status();
            let kept = kept_headers(resp.headers());
            let body = read_capped(resp, self.config.max_response_bytes).await?;
            Ok::<_, ExchangeError>((status, kept, body))
        };
        let (status, headers, body) = tokio::time::timeout(spec.limits.timeout, exchange)
            .await
            .map_err(|_| ExchangeError::TimedOut)??;
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

fn kept_headers(headers: &HeaderMap) -> Map<String, Value> {
    let mut kept = Map::new();
    for name in KEPT_HEADERS {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            kept.insert(name.to_string(), json!(v));
        }
    }
    kept
}

/// Reads a body of at most `max_bytes`.
pub(crate) async fn read_capped(
    mut resp: reqwest::Response,
    max_bytes: usize,
) -> Result<Vec<u8>, ExchangeError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(ExchangeError::Transport)? {
        if body.len() + chunk.len() > max_bytes {
            return Err(ExchangeError::TooLarge(max_bytes));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

pub(crate) fn describe(e: &reqwest::Error) -> String {
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

    async fn install(&self, request: &InstallRequest) -> Result<InstallFacts, BackendError> {
        Ok(InstallFacts::Http(HttpFacts {
            tool: request.tool.clone(),
        }))
    }

    async fn run(&self, spec: &SandboxSpec) -> Outcome {
        match self.send(spec).await {
            Ok(o) => o,
            Err(HttpError::Refused(why)) => Outcome::failed(format!("refused: {why}")),
            Err(HttpError::Exchange(e)) if e.is_timeout() => Outcome {
                status: ExecutionStatus::Timeout,
                error: Some(format!("no answer within {} s", spec.limits.timeout.as_secs())),
                ..Outcome::default()
            },
            Err(HttpError::Exchange(e)) => Outcome::failed(e.to_string()),
        }
    }
}
