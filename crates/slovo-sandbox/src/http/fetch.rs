//! Downloading a document for an import (an OpenAPI description, a catalogue entry) under the
//! same address rule as tool calls.

use std::time::Duration;

use reqwest::header::HeaderMap;
use slovo_core::execution::NetworkPolicy;

use super::address::resolver_refusal;
use super::{ExchangeError, HttpConfig, Outgoing, Refusal, check_target, client, describe, follow};

/// How long one download may take, every redirect and the body included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the document at a URL could not be downloaded.
#[derive(Debug)]
pub struct FetchError {
    /// The URL asked for, as given.
    pub url: String,
    /// What failed.
    pub failure: FetchFailure,
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "failed to fetch {}: {}", self.url, self.failure)
    }
}

/// The failure's text is part of this error's message, so the chain goes on with the
/// failure's own cause (the client's error), not with the failure again.
impl std::error::Error for FetchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.failure)
    }
}

impl FetchError {
    fn new(url: &str, failure: FetchFailure) -> FetchError {
        FetchError {
            url: url.to_string(),
            failure,
        }
    }

    /// What the address rule refused, when that is why the download failed: the URL itself,
    /// a name resolving to a refused address, or a redirect.
    pub fn refusal(&self) -> Option<&Refusal> {
        match &self.failure {
            FetchFailure::Refused(refusal) | FetchFailure::RedirectRefused { refusal, .. } => Some(refusal),
            _ => None,
        }
    }
}

/// What failed in a download; the message leaves the URL out ([`FetchError`] names it).
#[derive(Debug, thiserror::Error)]
pub enum FetchFailure {
    /// The text is not a URL.
    #[error("not a URL: {0}")]
    InvalidUrl(#[source] url::ParseError),
    /// The address rule refuses the URL, or an address its host resolves to; nothing was sent
    /// to that address.
    #[error("{0}")]
    Refused(Refusal),
    /// A redirect led to a URL the rule refuses (or from https down to http); it was not
    /// followed.
    #[error("redirect to {to} refused: {refusal}")]
    RedirectRefused {
        /// Where the redirect led (boxed: a URL is large).
        to: Box<reqwest::Url>,
        /// What the rule refuses.
        refusal: Refusal,
    },
    /// More redirects than the configuration follows.
    #[error("more than {max} redirects")]
    TooManyRedirects {
        /// The configured limit.
        max: usize,
    },
    /// The server answered with a status other than 2xx.
    #[error("HTTP {0}")]
    Status(reqwest::StatusCode),
    /// The document is larger than the configured cap; the rest was not read.
    #[error("the document is larger than {max_bytes} bytes")]
    TooLarge {
        /// The cap.
        max_bytes: usize,
    },
    /// No complete answer within the download's time limit.
    #[error("timed out")]
    TimedOut,
    /// Resolving, connecting, the TLS handshake, sending or reading failed.
    #[error("{}", describe(.0))]
    Transport(#[source] reqwest::Error),
    /// The HTTP client could not be built (its certificate authorities, mostly).
    #[error("failed to build the HTTP client: {}", describe(.0))]
    Client(#[source] reqwest::Error),
}

impl From<ExchangeError> for FetchFailure {
    fn from(e: ExchangeError) -> FetchFailure {
        // The resolver refuses names that resolve to a refused address; the client reports
        // that as a failure to connect, which is not what happened.
        if let ExchangeError::Transport(transport) = &e
            && let Some(refusal) = resolver_refusal(transport)
        {
            return FetchFailure::Refused(refusal.clone());
        }
        match e {
            ExchangeError::RedirectRefused { to, refusal } => FetchFailure::RedirectRefused { to, refusal },
            ExchangeError::TooManyRedirects(max) => FetchFailure::TooManyRedirects { max },
            ExchangeError::TooLarge(max_bytes) => FetchFailure::TooLarge { max_bytes },
            ExchangeError::TimedOut => FetchFailure::TimedOut,
            ExchangeError::Transport(source) if source.is_timeout() => FetchFailure::TimedOut,
            ExchangeError::Transport(source) => FetchFailure::Transport(source),
            ExchangeError::Client(source) => FetchFailure::Client(source),
        }
    }
}

/// Downloads a document (an OpenAPI description, a catalogue entry) for an import: http(s)
/// only, the same public-address rule as tool calls (checked on every resolution and
/// redirect), never from https down to http, a timeout, and a size cap. Returns the final URL
/// and the bytes.
pub async fn fetch_document(
    url: &str,
    max_bytes: usize,
    allow_private_addresses: bool,
) -> Result<(reqwest::Url, Vec<u8>), FetchError> {
    fetch_document_with(
        url,
        &HttpConfig {
            max_response_bytes: max_bytes,
            allow_private_addresses,
            ..HttpConfig::default()
        },
    )
    .await
}

/// [`fetch_document`] under a backend configuration: its public-address policy, redirect
/// limit, size cap (`max_response_bytes`) and extra certificate authorities.
pub async fn fetch_document_with(
    url: &str,
    config: &HttpConfig,
) -> Result<(reqwest::Url, Vec<u8>), FetchError> {
    super::ensure_tls_provider();
    download(url, config)
        .await
        .map_err(|failure| FetchError::new(url, failure))
}

async fn download(url: &str, config: &HttpConfig) -> Result<(reqwest::Url, Vec<u8>), FetchFailure> {
    let parsed = reqwest::Url::parse(url).map_err(FetchFailure::InvalidUrl)?;
    let rule = config.rule();
    check_target(&parsed, &NetworkPolicy::Public, &rule).map_err(FetchFailure::Refused)?;
    let client = client(rule.clone(), FETCH_TIMEOUT, &config.extra_roots)?;
    let first = Outgoing {
        method: reqwest::Method::GET,
        url: parsed,
        headers: HeaderMap::new(),
        credentials: HeaderMap::new(),
        body: None,
    };
    let exchange = async {
        let resp = follow(
            &client,
            first,
            &NetworkPolicy::Public,
            &rule,
            config.max_redirects,
        )
        .await?;
        if !resp.status().is_success() {
            return Err(FetchFailure::Status(resp.status()));
        }
        let final_url = resp.url().clone();
        let body = super::read_capped(resp, config.max_response_bytes).await?;
        Ok((final_url, body))
    };
    tokio::time::timeout(FETCH_TIMEOUT, exchange)
        .await
        .map_err(|_| FetchFailure::TimedOut)?
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{IpAddr, Ipv4Addr, TcpListener};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use slovo_core::net::PublicPolicy;

    use super::*;

    /// A loopback HTTP server with fixed answers: `/doc` a small document, `/big` 1000 bytes,
    /// `/away` a redirect to 127.0.0.2 (the same port), anything else 404. Counts requests.
    struct Server {
        port: u16,
        hits: Arc<AtomicUsize>,
    }

    impl Server {
        fn start() -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
            let port = listener.local_addr().unwrap_or_else(|e| panic!("{e}")).port();
            let hits = Arc::new(AtomicUsize::new(0));
            let counted = hits.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { continue };
                    counted.fetch_add(1, Ordering::SeqCst);
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                        head.push(byte[0]);
                    }
                    let head = String::from_utf8_lossy(&head).to_string();
                    let path = head.split(' ').nth(1).unwrap_or("").to_string();
                    let (status, extra, body) = match path.as_str() {
                        "/doc" => ("200 OK", String::new(), "{\"ok\":true}".to_string()),
                        "/big" => ("200 OK", String::new(), "x".repeat(1000)),
                        "/away" => (
                            "302 Found",
                            format!("Location: http://127.0.0.2:{port}/doc\r\n"),
                            String::new(),
                        ),
                        _ => ("404 Not Found", String::new(), String::new()),
                    };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
            });
            Server { port, hits }
        }

        fn url(&self, path: &str) -> String {
            format!("http://127.0.0.1:{}{path}", self.port)
        }

        fn hits(&self) -> usize {
            self.hits.load(Ordering::SeqCst)
        }
    }

    /// Loopback counts as public here, as a LAN device would with `egress.also_public`.
    fn loopback_public() -> HttpConfig {
        HttpConfig {
            public: PublicPolicy::with_ranges(["127.0.0.1/32".parse().unwrap_or_else(|e| panic!("{e}"))]),
            ..HttpConfig::default()
        }
    }

    #[tokio::test]
    async fn a_private_address_is_refused_before_anything_is_sent() {
        let server = Server::start();
        let url = server.url("/doc");
        let err = fetch_document_with(&url, &HttpConfig::default())
            .await
            .expect_err("loopback is not public");
        assert!(
            matches!(
                err.failure,
                FetchFailure::Refused(Refusal::NotPublic { address }) if address == IpAddr::V4(Ipv4Addr::LOCALHOST)
            ),
            "{err:?}"
        );
        assert_eq!(err.url, url);
        assert_eq!(
            err.to_string(),
            format!("failed to fetch {url}: 127.0.0.1 is not a public address")
        );
        assert!(err.refusal().is_some_and(Refusal::is_address));
        assert_eq!(server.hits(), 0);
    }

    #[tokio::test]
    async fn a_name_resolving_to_a_private_address_is_refused_not_a_connection_failure() {
        let server = Server::start();
        let url = format!("http://localhost:{}/doc", server.port);
        let err = fetch_document_with(&url, &HttpConfig::default())
            .await
            .expect_err("localhost resolves to loopback");
        match &err.failure {
            FetchFailure::Refused(Refusal::ResolvesToNonPublic { host, address }) => {
                assert_eq!(host, "localhost");
                assert!(address.is_loopback(), "{address}");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            err.to_string().contains("localhost resolves to ")
                && err.to_string().ends_with("which is not a public address"),
            "{err}"
        );
        assert_eq!(server.hits(), 0);
    }

    #[tokio::test]
    async fn a_redirect_to_a_refused_host_is_not_followed() {
        let server = Server::start();
        let url = server.url("/away");
        let err = fetch_document_with(&url, &loopback_public())
            .await
            .expect_err("127.0.0.2 is not declared public");
        match &err.failure {
            FetchFailure::RedirectRefused { to, refusal } => {
                assert_eq!(to.as_str(), format!("http://127.0.0.2:{}/doc", server.port));
                assert_eq!(
                    refusal,
                    &Refusal::NotPublic {
                        address: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))
                    }
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            err.to_string(),
            format!(
                "failed to fetch {url}: redirect to http://127.0.0.2:{}/doc refused: 127.0.0.2 is not a public address",
                server.port
            )
        );
        assert_eq!(server.hits(), 1, "only the first hop was asked");
        // The same server's own document is reachable under the same rule.
        let (_, bytes) = fetch_document_with(&server.url("/doc"), &loopback_public())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bytes, b"{\"ok\":true}");
    }

    #[tokio::test]
    async fn a_body_over_the_cap_is_too_large_and_an_error_status_is_a_status() {
        let server = Server::start();
        let capped = HttpConfig {
            max_response_bytes: 100,
            ..loopback_public()
        };
        let err = fetch_document_with(&server.url("/big"), &capped)
            .await
            .expect_err("1000 bytes > 100");
        assert!(
            matches!(err.failure, FetchFailure::TooLarge { max_bytes: 100 }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "failed to fetch {}: the document is larger than 100 bytes",
                server.url("/big")
            )
        );

        let err = fetch_document_with(&server.url("/nothing"), &capped)
            .await
            .expect_err("404");
        assert!(
            matches!(err.failure, FetchFailure::Status(s) if s == reqwest::StatusCode::NOT_FOUND),
            "{err:?}"
        );
        assert!(err.to_string().ends_with(": HTTP 404 Not Found"), "{err}");
        assert!(err.refusal().is_none());
    }

    #[tokio::test]
    async fn a_refused_connection_keeps_the_client_error_as_its_source() {
        let closed = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let port = closed.local_addr().unwrap_or_else(|e| panic!("{e}")).port();
        drop(closed);
        let err = fetch_document_with(&format!("http://127.0.0.1:{port}/doc"), &loopback_public())
            .await
            .expect_err("nothing listens");
        assert!(matches!(err.failure, FetchFailure::Transport(_)), "{err:?}");
        let source = std::error::Error::source(&err).expect("the client's error");
        assert!(source.downcast_ref::<reqwest::Error>().is_some(), "{source:?}");

        let err = fetch_document_with("not a url", &HttpConfig::default())
            .await
            .expect_err("not a URL");
        assert!(matches!(err.failure, FetchFailure::InvalidUrl(_)), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("failed to fetch not a url: not a URL: "),
            "{err}"
        );
    }
}
