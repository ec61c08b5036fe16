//! Entry points for the fuzz targets in `fuzz/` (not a stable API): the code that reads the
//! first bytes a tool sends on a proxy connection, driven from bytes in memory.
//!
//! Each function feeds `bytes` to the same parser a connection gets (hyper's HTTP/1.1 server
//! with the proxy's settings, or the SOCKS5 handshake), then takes the target it names through
//! the call's check: grant by name, resolution by a fixed table, address policy. Nothing here
//! opens a socket or asks the system's resolver: where the real proxy would connect, these
//! stop after the check and report the addresses that passed.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use slovo_core::HostPattern;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::http::{Body, connect_target, empty, forward_target, refusal_response, server};
use crate::{
    CallContext, CallGrant, EgressConfig, EgressProxy, IpRange, NetworkDenial, NetworkPolicy, PublicPolicy,
    StaticResolver, lock, socks,
};

/// Largest input the targets read: a request head larger than this is not what they explore.
pub const MAX_INPUT: usize = 64 * 1024;

/// What the proxy made of one connection's bytes.
#[derive(Debug, Default)]
pub struct Outcome {
    /// What it answered (HTTP only).
    pub answer: Vec<u8>,
    /// The denials it recorded.
    pub denials: Vec<NetworkDenial>,
    /// The addresses that passed the check: where the real proxy would have connected.
    pub passed: Vec<SocketAddr>,
}

/// A call allowed to reach a few names, with a resolver that knows some of them: one resolves
/// to an address declared public (a documentation range), one to loopback (refused by the
/// address policy), the others not at all.
fn context() -> Arc<CallContext> {
    let public = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
    let resolver = StaticResolver::new()
        .with("api.example.org", &[public])
        .with("inside.example.org", &[IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    let config = EgressConfig {
        public: PublicPolicy::with_ranges("198.51.100.0/24".parse::<IpRange>()),
        ..EgressConfig::default()
    };
    let hosts = [
        "api.example.org",
        "*.example.org:443",
        "198.51.100.7:8080",
        "missing.example.net",
    ]
    .iter()
    .filter_map(|h| h.parse::<HostPattern>().ok())
    .collect();
    let proxy = EgressProxy::with_resolver(config, Arc::new(resolver));
    Arc::new(proxy.context(CallGrant {
        execution_id: "fuzz".to_string(),
        policy: NetworkPolicy::AllowList { hosts },
    }))
}

/// What the proxy decides for one HTTP request, up to the point where it would connect.
async fn decide(
    ctx: &CallContext,
    req: &Request<Incoming>,
    passed: &Mutex<Vec<SocketAddr>>,
) -> Response<Body> {
    let target = if req.method() == Method::CONNECT {
        connect_target(ctx, req)
    } else {
        forward_target(ctx, req).map(|t| (t.host, t.port))
    };
    let checked = match target {
        Ok((host, port)) => ctx.checked_addrs(&host, port).await,
        Err(r) => Err(r),
    };
    match checked {
        Ok(addrs) => {
            lock(passed).extend(addrs);
            Response::new(empty())
        }
        Err(r) => refusal_response(&r),
    }
}

/// Serves `bytes` as one HTTP/1.1 connection (requests, possibly several, then the end of the
/// input).
pub async fn http(bytes: &[u8]) -> Outcome {
    let bytes = &bytes[..bytes.len().min(MAX_INPUT)];
    let ctx = context();
    let passed = Arc::new(Mutex::new(Vec::new()));
    let (mut client, proxy_side) = tokio::io::duplex(MAX_INPUT);
    let (service_ctx, service_passed) = (ctx.clone(), passed.clone());
    let service = hyper::service::service_fn(move |req| {
        let (ctx, passed) = (service_ctx.clone(), service_passed.clone());
        async move { Ok::<_, Infallible>(decide(&ctx, &req, &passed).await) }
    });
    // The input ends with the sending half closed; a real client waits for its answer instead.
    // Supporting the half-close lets the requests already sent be answered rather than dropped.
    let serve = server()
        .half_close(true)
        .serve_connection(TokioIo::new(proxy_side), service)
        .with_upgrades();
    let talk = async {
        let mut answer = Vec::new();
        // Everything is sent, then the sending half closed; the proxy answers as it reads.
        if client.write_all(bytes).await.is_ok() {
            let _ = client.shutdown().await;
        }
        let _ = client.read_to_end(&mut answer).await;
        answer
    };
    let (_, answer) = tokio::join!(serve, talk);
    let passed = lock(&passed).clone();
    Outcome {
        answer,
        denials: lock(&ctx.denials).clone(),
        passed,
    }
}

/// Runs the SOCKS5 handshake on `bytes` (everything the tool sends) and checks the target it
/// names.
pub async fn socks5(bytes: &[u8]) -> Outcome {
    let bytes = &bytes[..bytes.len().min(MAX_INPUT)];
    let ctx = context();
    let mut outcome = Outcome::default();
    // A connection only gets the SOCKS5 handshake when its first byte says so.
    if bytes.first() != Some(&socks::VERSION) {
        return outcome;
    }
    let mut stream = tokio::io::join(bytes, Vec::new());
    if let Ok(Some((cmd, host, port))) = socks::handshake(&mut stream).await {
        if cmd == socks::CMD_CONNECT {
            if let Ok(addrs) = ctx.checked_addrs(&host, port).await {
                outcome.passed = addrs;
            }
        } else {
            socks::refuse_command(&ctx, cmd, &host, port);
        }
    }
    let (_, answer) = stream.into_inner();
    outcome.answer = answer;
    outcome.denials = lock(&ctx.denials).clone();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public() -> SocketAddr {
        SocketAddr::from(([198, 51, 100, 7], 443))
    }

    #[tokio::test]
    async fn http_requests_are_checked_without_connecting() {
        let ok = http(b"CONNECT api.example.org:443 HTTP/1.1\r\nHost: api.example.org:443\r\n\r\n").await;
        assert_eq!(ok.passed, vec![public()]);
        assert!(
            ok.answer.starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&ok.answer)
        );
        assert!(ok.denials.is_empty());

        // Refused by the address policy (loopback), by name, and by a disagreeing Host header.
        let inside = http(b"CONNECT inside.example.org:443 HTTP/1.1\r\n\r\n").await;
        assert!(inside.passed.is_empty());
        assert!(inside.answer.starts_with(b"HTTP/1.1 403"));
        assert!(
            inside.denials[0].reason.contains("not a public address"),
            "{:?}",
            inside.denials
        );
        // Requests are answered in turn; a refusal closes the connection, so what follows it is
        // not read.
        let pipelined = http(
            b"GET http://api.example.org/a HTTP/1.1\r\n\r\n\
              GET http://api.example.org/b HTTP/1.1\r\nHost: inside.example.org\r\n\r\n\
              GET http://api.example.org/c HTTP/1.1\r\n\r\n",
        )
        .await;
        assert_eq!(pipelined.passed, vec![SocketAddr::from(([198, 51, 100, 7], 80))]);
        assert_eq!(pipelined.denials.len(), 1, "{:?}", pipelined.denials);
        assert!(
            pipelined.denials[0].reason.contains("Host header"),
            "{:?}",
            pipelined.denials
        );
    }

    #[tokio::test]
    async fn socks_handshakes_are_checked_without_connecting() {
        let mut connect = vec![5, 1, 0, 5, 1, 0, 3, 15];
        connect.extend_from_slice(b"api.example.org");
        connect.extend_from_slice(&443u16.to_be_bytes());
        let ok = socks5(&connect).await;
        assert_eq!(ok.passed, vec![public()]);
        // The method choice was answered; the request is answered by the caller after the check.
        assert_eq!(ok.answer, [5, 0]);

        let loopback = socks5(&[5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 22]).await;
        assert!(loopback.passed.is_empty());
        assert_eq!(loopback.denials.len(), 1, "{:?}", loopback.denials);
        let udp = socks5(&[5, 1, 0, 5, 3, 0, 1, 198, 51, 100, 7, 0, 53]).await;
        assert!(udp.passed.is_empty());
        assert!(
            udp.denials[0].reason.contains("UDP ASSOCIATE"),
            "{:?}",
            udp.denials
        );
    }
}
