//! Outbound HTTP for WebAssembly tools: the host makes the request, the tool never holds a
//! socket.
//!
//! A module may import two functions from the module `slovo_http`:
//!
//! ```text
//! request(ptr: i32, len: i32) -> i32    ;; the request document (JSON) at ptr..ptr+len
//! response(ptr: i32, cap: i32) -> i32   ;; copies the pending response document to ptr
//! ```
//!
//! `request` performs the request and keeps its response document for `response`; it
//! returns that document's length, or a negative WASI errno when the guest's own call is
//! unusable (`-21` EFAULT: the bytes are outside its memory; `-1` E2BIG: the request is too
//! large). `response` returns the bytes written, `-1` (E2BIG, the document is kept) when `cap`
//! is too small, or `-44` (ENOENT) when nothing is pending.
//!
//! Request: `{"method": "GET", "url": "https://…", "headers": {"name": "value"}, "body": "…"}`
//! (`method`, `headers` and `body` optional; `body_base64` instead of `body` for bytes).
//! Response: `{"status": 200, "url": final URL, "headers": {lowercase name: value}, "body":
//! text}` (`body_base64` instead when the body is not UTF-8), or `{"error": reason, "denied":
//! bool}`.
//!
//! Every request — and every redirect it is sent on to — goes through the egress proxy's own
//! check ([`slovo_egress::Checker`]): the host and port must be granted by name before
//! anything is resolved, the proxy's resolver resolves the name once, every address must be
//! public by the proxy's policy, and the connection goes to exactly those addresses (a
//! resolver that refuses every other name stands behind it). A `Host` header naming another
//! host than the URL is refused. Refusals are recorded as the call's network denials. The
//! request is bounded by the call's remaining wall-clock time and the response body by
//! [`WasmConfig::http_response_limit`](super::WasmConfig::http_response_limit).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use slovo_egress::{CheckError, Checker};
use wasmtime::{Caller, Linker};
use wasmtime_wasi::runtime::in_tokio;

use super::wasi::CallState;

/// The import module of the host functions.
pub const MODULE: &str = "slovo_http";
/// Largest request document a tool may pass (bytes).
const MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;
/// Redirects followed at most, each checked like the first request.
const MAX_REDIRECTS: usize = 5;
/// Time to establish one connection (within the call's remaining time).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

const ERRNO_2BIG: i32 = 1;
const ERRNO_FAULT: i32 = 21;
const ERRNO_NOENT: i32 = 44;

/// One call's outbound HTTP: its check and the response the tool has not collected yet.
pub(crate) struct HttpCalls {
    checker: Checker,
    response_limit: usize,
    pending: Option<Vec<u8>>,
}

impl HttpCalls {
    pub(crate) fn new(checker: Checker, response_limit: usize) -> HttpCalls {
        HttpCalls {
            checker,
            response_limit,
            pending: None,
        }
    }

    /// What the check refused during the call.
    pub(crate) fn denials(&self) -> Vec<slovo_core::execution::NetworkDenial> {
        self.checker.denials()
    }
}

/// A request document from the tool.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    #[serde(default = "default_method")]
    method: String,
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    body_base64: Option<String>,
}

fn default_method() -> String {
    "GET".to_string()
}

/// Why a request produced no response.
struct Failure {
    reason: String,
    denied: bool,
}

impl Failure {
    fn other(reason: impl Into<String>) -> Failure {
        Failure {
            reason: reason.into(),
            denied: false,
        }
    }
}

impl From<CheckError> for Failure {
    fn from(e: CheckError) -> Failure {
        Failure {
            denied: matches!(e, CheckError::Denied(_)),
            reason: e.to_string(),
        }
    }
}

/// Adds `slovo_http::request` and `slovo_http::response` to the linker.
pub(crate) fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        MODULE,
        "request",
        |mut c: Caller<'_, CallState>, ptr: i32, len: i32| -> i32 {
            let Ok(len) = usize::try_from(len) else {
                return -ERRNO_FAULT;
            };
            if len > MAX_REQUEST_BYTES {
                return -ERRNO_2BIG;
            }
            let Some(bytes) = guest_bytes(&mut c, ptr, len) else {
                return -ERRNO_FAULT;
            };
            let budget = c.data().clock.remaining();
            let http = &c.data().http;
            let (checker, limit) = (http.checker.clone(), http.response_limit);
            let document = match serde_json::from_slice::<Request>(&bytes) {
                Ok(request) => in_tokio(perform(&checker, request, budget, limit)),
                Err(e) => {
                    json!({"error": format!("the request document is not valid: {e}"), "denied": false})
                }
            };
            let encoded = serde_json::to_vec(&document).unwrap_or_default();
            let len = i32::try_from(encoded.len()).unwrap_or(i32::MAX);
            c.data_mut().http.pending = Some(encoded);
            len
        },
    )?;
    linker.func_wrap(
        MODULE,
        "response",
        |mut c: Caller<'_, CallState>, ptr: i32, cap: i32| -> i32 {
            let Some(pending) = c.data_mut().http.pending.take() else {
                return -ERRNO_NOENT;
            };
            if usize::try_from(cap).map_or(true, |cap| cap < pending.len()) {
                c.data_mut().http.pending = Some(pending);
                return -ERRNO_2BIG;
            }
            let written = match (super::wasi::memory(&mut c), usize::try_from(ptr)) {
                (Some(memory), Ok(at)) => memory.write(&mut c, at, &pending).is_ok(),
                _ => false,
            };
            if !written {
                c.data_mut().http.pending = Some(pending);
                return -ERRNO_FAULT;
            }
            i32::try_from(pending.len()).unwrap_or(i32::MAX)
        },
    )?;
    Ok(())
}

/// A copy of `len` bytes of the guest's memory at `ptr`, if they are all inside it.
fn guest_bytes(c: &mut Caller<'_, CallState>, ptr: i32, len: usize) -> Option<Vec<u8>> {
    let memory = super::wasi::memory(c)?;
    let at = usize::try_from(ptr).ok()?;
    memory.data(&*c).get(at..at.checked_add(len)?).map(<[u8]>::to_vec)
}

/// Performs `request` within `budget` and describes what happened as the response document.
async fn perform(checker: &Checker, request: Request, budget: Duration, limit: usize) -> Value {
    if budget.is_zero() {
        return json!({"error": "the call has no time left", "denied": false});
    }
    match tokio::time::timeout(budget, send(checker, request, limit)).await {
        Ok(Ok(document)) => document,
        Ok(Err(f)) => json!({"error": f.reason, "denied": f.denied}),
        Err(_) => json!({
            "error": format!("no response within the call's remaining time ({budget:?})"),
            "denied": false
        }),
    }
}

async fn send(checker: &Checker, request: Request, limit: usize) -> Result<Value, Failure> {
    let mut method = reqwest::Method::from_bytes(request.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| Failure::other(format!("{:?} is not an HTTP method", request.method)))?;
    let mut url = reqwest::Url::parse(&request.url)
        .map_err(|e| Failure::other(format!("{:?} is not a URL: {e}", request.url)))?;
    let mut body: Option<Vec<u8>> = match (request.body, request.body_base64) {
        (Some(_), Some(_)) => return Err(Failure::other("give either body or body_base64, not both")),
        (Some(text), None) => Some(text.into_bytes()),
        (None, Some(encoded)) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|e| Failure::other(format!("body_base64 is not base64: {e}")))?,
        ),
        (None, None) => None,
    };
    let mut headers = reqwest::header::HeaderMap::new();
    let mut host_header = None;
    for (name, value) in &request.headers {
        if name.eq_ignore_ascii_case("host") {
            host_header = Some(value.clone());
            continue;
        }
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Failure::other(format!("{name:?} is not a header name")))?;
        let value = reqwest::header::HeaderValue::from_str(value)
            .map_err(|_| Failure::other(format!("the value of the header {name} is not valid")))?;
        headers.append(name, value);
    }
    if let Some(claimed) = &host_header {
        // The proxy refuses a Host that differs from the target; so does this.
        let (host, port) = destination(checker, &url)?;
        let expected = [host.clone(), format!("{host}:{port}")];
        if !expected.iter().any(|e| e.eq_ignore_ascii_case(claimed.trim())) {
            return Err(checker
                .deny(
                    &host,
                    port,
                    format!("the Host header names {claimed:?}, not the request's host {host}"),
                )
                .into());
        }
    }
    let mut redirects = 0;
    loop {
        let (host, port) = destination(checker, &url)?;
        let addrs = checker.check(&host, port).await?;
        let mut builder = client(&host, &addrs)?
            .request(method.clone(), url.clone())
            .headers(headers.clone());
        if let Some(body) = &body {
            builder = builder.body(body.clone());
        }
        let response = builder
            .send()
            .await
            .map_err(|e| Failure::other(format!("the request to {host}:{port} failed: {e}")))?;
        let status = response.status();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_string);
        let Some(location) = location.filter(|_| status.is_redirection()) else {
            return read(response, &url, limit).await;
        };
        if redirects == MAX_REDIRECTS {
            return Err(Failure::other(format!(
                "more than {MAX_REDIRECTS} redirects (the last to {location})"
            )));
        }
        let next = url
            .join(&location)
            .map_err(|e| Failure::other(format!("the redirect to {location:?} is not a URL: {e}")))?;
        if next.host_str() != url.host_str() {
            // Credentials meant for one host are not handed to the next.
            for name in ["authorization", "cookie", "proxy-authorization"] {
                headers.remove(name);
            }
        }
        url = next;
        let to_get = status == reqwest::StatusCode::SEE_OTHER
            || (method == reqwest::Method::POST && status.as_u16() <= 302);
        if to_get {
            method = reqwest::Method::GET;
            body = None;
        }
        redirects += 1;
    }
}

/// The host and port a URL points at (http and https only; a scheme the check cannot vouch
/// for is a denial, as in the proxy).
fn destination(checker: &Checker, url: &reqwest::Url) -> Result<(String, u16), Failure> {
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err(Failure::other(format!("{url} names no host")));
    };
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    let port = url.port_or_known_default().unwrap_or(0);
    if !matches!(url.scheme(), "http" | "https") {
        return Err(checker
            .deny(&host, port, format!("the scheme {} is not HTTP", url.scheme()))
            .into());
    }
    Ok((host, port))
}

/// A client that connects `host` to the checked `addrs` only, never resolves anything else,
/// never uses a proxy from the environment and follows no redirect by itself.
fn client(host: &str, addrs: &[SocketAddr]) -> Result<reqwest::Client, Failure> {
    crate::http::ensure_tls_provider();
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(NoResolver))
        .resolve_to_addrs(host, addrs)
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .map_err(|e| Failure::other(format!("the HTTP client could not be built: {e}")))
}

/// Refuses every name: the checked addresses are given to the client for its one host.
struct NoResolver;

impl reqwest::dns::Resolve for NoResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_string();
        Box::pin(async move {
            Err(format!("{name} was not checked by the egress policy; nothing else is resolved").into())
        })
    }
}

/// Reads the response, refusing a body past `limit`.
async fn read(mut response: reqwest::Response, url: &reqwest::Url, limit: usize) -> Result<Value, Failure> {
    let status = response.status().as_u16();
    let mut headers = Map::new();
    for (name, value) in response.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_string(), Value::String(value));
            }
        }
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Failure::other(format!("reading the response from {url} failed: {e}")))?
    {
        if body.len() + chunk.len() > limit {
            return Err(Failure::other(format!(
                "the response body from {url} exceeds the limit of {limit} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    let mut document = json!({"status": status, "url": url.as_str(), "headers": headers});
    match String::from_utf8(body) {
        Ok(text) => document["body"] = Value::String(text),
        Err(e) => {
            document["body_base64"] =
                Value::String(base64::engine::general_purpose::STANDARD.encode(e.into_bytes()))
        }
    }
    Ok(document)
}
