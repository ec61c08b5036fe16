//! Where a document comes from, how its bytes become a JSON value, and the policy for the
//! documents its `$ref`s point to.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};
use url::Url;

use crate::error::IngestError;

/// Largest document accepted by default, in bytes (20 MiB).
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 20 * 1024 * 1024;

/// An OpenAPI document as read: its bytes, a name for messages, and where it lives (which
/// decides how relative `$ref`s resolve).
#[derive(Debug, Clone)]
pub struct Source {
    /// A name for messages: the path or URL it was read from, `-`, …
    pub name: String,
    /// The raw document, JSON or YAML.
    pub bytes: Vec<u8>,
    /// Where the document lives.
    pub location: Location,
}

/// Where a document lives, the base of its relative references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local file; relative references are files next to it (inside the file root).
    File(PathBuf),
    /// A remote document; relative references are remote too (subject to the remote policy).
    Url(Url),
    /// Bytes with no location (standard input, a request body): relative references fail.
    Memory,
}

impl Source {
    /// Reads a local file (at most `max_bytes`).
    pub fn from_path(path: impl AsRef<Path>, max_bytes: usize) -> Result<Source, IngestError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let bytes = read_capped(path, max_bytes).map_err(|reason| IngestError::Read {
            source_name: name.clone(),
            reason,
        })?;
        Ok(Source {
            name,
            bytes,
            location: Location::File(path.to_path_buf()),
        })
    }

    /// A document with no location: relative `$ref`s cannot be followed.
    pub fn from_bytes(name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Source {
        Source {
            name: name.into(),
            bytes: bytes.into(),
            location: Location::Memory,
        }
    }

    /// A document fetched from `url` by the caller.
    pub fn from_url(url: Url, bytes: impl Into<Vec<u8>>) -> Source {
        Source {
            name: url.to_string(),
            bytes: bytes.into(),
            location: Location::Url(url),
        }
    }
}

fn read_capped(path: &Path, max: usize) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    // Sized from the file's length (when known) so that the read does not grow the buffer
    // step by step; the cap still comes from `take`, not from the length.
    let hint = file.metadata().map(|m| m.len()).unwrap_or(0).min(max as u64 + 1);
    let mut bytes = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() > max {
        return Err(format!("larger than the {max}-byte limit"));
    }
    Ok(bytes)
}

/// Fetches remote documents for `$ref`s. The ingester calls it only for URLs its policy allows
/// (http or https, and not a loopback, private or link-local address unless
/// [`RemotePolicy::allow_private`]); an implementation must still re-check the address it
/// actually connects to (a public name can resolve to a private address) and cap the size.
pub trait RemoteFetcher: Send + Sync {
    /// The document at `url`, or why not.
    fn fetch(&self, url: &Url) -> Result<Vec<u8>, RemoteFetchError>;
}

/// Why a [`RemoteFetcher`] could not fetch a document. The messages leave the URL out: whoever
/// asked for it names it.
#[derive(Debug, thiserror::Error)]
pub enum RemoteFetchError {
    /// The fetcher's address policy refuses the URL, an address its host resolves to, or a
    /// redirect; nothing was fetched from there.
    #[error("{reason}")]
    Refused {
        /// What the policy refuses, and what setting would allow it if one would.
        reason: String,
    },
    /// The document is larger than the fetcher accepts.
    #[error("the document is larger than {max_bytes} bytes")]
    TooLarge {
        /// The fetcher's cap.
        max_bytes: usize,
    },
    /// The server answered with an error status.
    #[error("HTTP {status}")]
    Status {
        /// The status and its reason phrase (`404 Not Found`).
        status: String,
    },
    /// No complete answer in time.
    #[error("timed out")]
    TimedOut,
    /// Anything else between asking and receiving (resolving, connecting, TLS, reading).
    #[error(transparent)]
    Transport(Box<dyn std::error::Error + Send + Sync>),
}

/// What remote `$ref`s may do. The default refuses them all.
#[derive(Clone, Default)]
pub struct RemotePolicy {
    /// The fetcher; `None` refuses every remote reference.
    pub fetcher: Option<Arc<dyn RemoteFetcher>>,
    /// Allow loopback, private, link-local and unspecified addresses and `localhost`.
    pub allow_private: bool,
}

impl fmt::Debug for RemotePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemotePolicy")
            .field("fetcher", &self.fetcher.as_ref().map(|_| "…"))
            .field("allow_private", &self.allow_private)
            .finish()
    }
}

impl RemotePolicy {
    /// Why `url` may not be fetched, if it may not.
    pub(crate) fn refusal(&self, url: &Url) -> Option<RemoteRefusal> {
        if !matches!(url.scheme(), "http" | "https") {
            return Some(RemoteRefusal::Scheme);
        }
        if self.fetcher.is_none() {
            return Some(RemoteRefusal::NoFetcher);
        }
        if !self.allow_private && is_private_host(url) {
            return Some(RemoteRefusal::PrivateAddress);
        }
        None
    }
}

/// Why the [`RemotePolicy`] refuses a remote reference before anything is fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RemoteRefusal {
    /// Neither http nor https.
    #[error("only http and https references can be fetched")]
    Scheme,
    /// The policy has no fetcher.
    #[error("remote references are not allowed (no remote fetcher configured)")]
    NoFetcher,
    /// `localhost`, or a loopback, private or link-local address literal.
    #[error("refusing a loopback, private or link-local address")]
    PrivateAddress,
}

fn is_private_host(url: &Url) -> bool {
    match url.host() {
        None => true,
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost") || d.ends_with(".local")
        }
        Some(url::Host::Ipv4(ip)) => is_private_ip(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => is_private_ip(IpAddr::V6(ip)),
    }
}

/// Loopback, private, link-local, shared, unspecified, multicast or documentation addresses.
pub fn is_private_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_private_ip(IpAddr::V4(v4)))
        }
    }
}

/// Deepest nesting of a YAML document.
const MAX_YAML_DEPTH: usize = 256;

/// Why a document's bytes are not a JSON or YAML value.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SyntaxError {
    /// Not UTF-8.
    #[error("not UTF-8 text (invalid byte at offset {offset})")]
    NotUtf8 {
        /// Where the first invalid byte is.
        offset: usize,
    },
    /// Nothing but white space.
    #[error("the document is empty")]
    Empty,
    /// Looks like JSON and is not.
    #[error("JSON syntax error: {0}")]
    Json(#[source] serde_json::Error),
    /// Not YAML.
    #[error("YAML syntax error: {0}")]
    Yaml(#[source] yaml_serde::Error),
    /// Deeper than [`MAX_YAML_DEPTH`].
    #[error("the document is nested more than {MAX_YAML_DEPTH} levels deep")]
    TooDeep,
    /// A mapping key that has no JSON form (a sequence, a mapping).
    #[error("unsupported mapping key {key}")]
    UnsupportedKey {
        /// The key, as the YAML parser shows it.
        key: String,
    },
}

/// Parses a document's text: JSON when it starts with `{` or `[`, YAML otherwise. YAML keys
/// that are not strings (`200:`) become strings; aliases are bounded by the YAML parser.
pub(crate) fn parse_value(bytes: &[u8]) -> Result<Value, SyntaxError> {
    let text = std::str::from_utf8(bytes).map_err(|e| SyntaxError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(SyntaxError::Empty);
    }
    let first = text.trim_start().as_bytes().first().copied();
    if matches!(first, Some(b'{' | b'[')) {
        match serde_json::from_str(text) {
            Ok(v) => return Ok(v),
            // JSON-looking YAML flow mappings exist; fall through to YAML only for those.
            Err(e) if first == Some(b'[') => return Err(SyntaxError::Json(e)),
            Err(e) => {
                return yaml_to_json(text).map_err(|_| SyntaxError::Json(e));
            }
        }
    }
    yaml_to_json(text)
}

fn yaml_to_json(text: &str) -> Result<Value, SyntaxError> {
    let yaml: yaml_serde::Value = yaml_serde::from_str(text).map_err(SyntaxError::Yaml)?;
    convert_yaml(yaml, 0)
}

fn convert_yaml(v: yaml_serde::Value, depth: usize) -> Result<Value, SyntaxError> {
    use yaml_serde::Value as Y;
    if depth > MAX_YAML_DEPTH {
        return Err(SyntaxError::TooDeep);
    }
    Ok(match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(seq) => Value::Array(
            seq.into_iter()
                .map(|x| convert_yaml(x, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    Y::Null => "null".to_string(),
                    other => {
                        return Err(SyntaxError::UnsupportedKey {
                            key: format!("{other:?}"),
                        });
                    }
                };
                out.insert(key, convert_yaml(v, depth + 1)?);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => convert_yaml(t.value, depth + 1)?,
    })
}
