//! HTTP/1.1 on a call's listener: `CONNECT` tunnels and plain forwarding, request by request.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::CallContext;
use crate::check::{Refusal, split_authority};

pub(crate) type Body = BoxBody<Bytes, hyper::Error>;

/// Serves HTTP/1.1 on one accepted connection until the client closes it or it is upgraded
/// into a tunnel.
pub(crate) async fn serve(ctx: Arc<CallContext>, stream: TcpStream) {
    let service_ctx = ctx.clone();
    let service = hyper::service::service_fn(move |req| {
        let ctx = service_ctx.clone();
        async move { Ok::<_, Infallible>(handle(ctx, req).await) }
    });
    let served = server()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
    if let Err(e) = served {
        tracing::debug!(execution = %ctx.call.execution_id, error = %e, "egress connection ended with an error");
    }
}

/// How the proxy speaks HTTP/1.1 to a tool (shared with the fuzz targets, which drive the
/// same parser from bytes in memory).
pub(crate) fn server() -> hyper::server::conn::http1::Builder {
    hyper::server::conn::http1::Builder::new()
}

async fn handle(ctx: Arc<CallContext>, req: Request<Incoming>) -> Response<Body> {
    let result = if req.method() == Method::CONNECT {
        connect(&ctx, req).await
    } else {
        forward(&ctx, req).await
    };
    result.unwrap_or_else(|r| refusal_response(&r))
}

pub(crate) fn empty() -> Body {
    Empty::<Bytes>::new().map_err(|never| match never {}).boxed()
}

pub(crate) fn refusal_response(r: &Refusal) -> Response<Body> {
    let status = match r {
        Refusal::Denied(_) => StatusCode::FORBIDDEN,
        Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
        Refusal::Unreachable(_) => StatusCode::BAD_GATEWAY,
    };
    let text = format!("slovo egress: {}\n", r.message());
    let mut resp = Response::new(
        Full::new(Bytes::from(text))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    // A refused client starts over on a new connection: nothing of this one is reused.
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// Where a `CONNECT` request asks to go, once its `Host` header (if any) agrees.
pub(crate) fn connect_target<B>(ctx: &CallContext, req: &Request<B>) -> Result<(String, u16), Refusal> {
    let target = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_default();
    let Some((host, Some(port))) = split_authority(&target) else {
        return Err(Refusal::BadRequest(format!(
            "CONNECT needs a target host:port, not {target:?}"
        )));
    };
    host_header_agrees(ctx, req.headers(), &host, port, None)?;
    Ok((host, port))
}

/// `CONNECT host:port`: checks, connects, answers 200 and splices the two connections.
async fn connect(ctx: &Arc<CallContext>, req: Request<Incoming>) -> Result<Response<Body>, Refusal> {
    let (host, port) = connect_target(ctx, &req)?;
    let mut upstream = ctx.open(&host, port).await?;
    let on_upgrade = hyper::upgrade::on(req);
    ctx.spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let mut client = TokioIo::new(upgraded);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
    });
    Ok(Response::new(empty()))
}

/// Where a forwarded request goes and what is sent there.
#[derive(Debug)]
pub(crate) struct ForwardTarget {
    /// The normalized host of the absolute URI.
    pub(crate) host: String,
    /// Its port (80 when the URI has none).
    pub(crate) port: u16,
    /// The authority as written in the URI, for a `Host` header the request lacks.
    authority: String,
    /// The request target in origin form (`/path?query`), as sent upstream.
    origin: Uri,
}

/// Where a request in absolute form (`GET http://host/path`) goes, once its `Host` header (if
/// any) agrees; refused before anything is resolved or connected otherwise.
pub(crate) fn forward_target<B>(ctx: &CallContext, req: &Request<B>) -> Result<ForwardTarget, Refusal> {
    let uri = req.uri();
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(Refusal::BadRequest(format!(
                "only http:// URLs are forwarded; use CONNECT for {other}://"
            )));
        }
        None => {
            return Err(Refusal::BadRequest(
                "a request to the proxy needs an absolute URI (http://host/path) or CONNECT".to_string(),
            ));
        }
    }
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    let Some((host, port)) = split_authority(authority) else {
        return Err(Refusal::BadRequest(format!("bad host in the URL: {authority:?}")));
    };
    let port = port.unwrap_or(80);
    host_header_agrees(ctx, req.headers(), &host, port, Some(80))?;
    let origin = uri.path_and_query().map_or("/", |p| p.as_str());
    let origin = origin
        .parse::<Uri>()
        .map_err(|_| Refusal::BadRequest(format!("bad path {origin:?}")))?;
    Ok(ForwardTarget {
        host,
        port,
        authority: authority.to_string(),
        origin,
    })
}

/// `GET http://host/path` and the like: checks, then sends the request in origin form over a
/// fresh upstream connection and streams the answer back.
async fn forward(ctx: &Arc<CallContext>, mut req: Request<Incoming>) -> Result<Response<Body>, Refusal> {
    let ForwardTarget {
        host,
        port,
        authority,
        origin,
    } = forward_target(ctx, &req)?;
    let upstream = ctx.open(&host, port).await?;
    *req.uri_mut() = origin;
    strip_hop_by_hop(req.headers_mut());
    if !req.headers().contains_key(header::HOST)
        && let Ok(v) = HeaderValue::from_str(&authority)
    {
        req.headers_mut().insert(header::HOST, v);
    }
    let unreachable = |e: hyper::Error| Refusal::Unreachable(format!("{host}:{port}: {e}"));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(upstream))
        .await
        .map_err(unreachable)?;
    ctx.spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await.map_err(unreachable)?;
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, body.boxed()))
}

/// A `Host` header, if present, must name the target: otherwise the request would be checked
/// for one host and served (by a shared front end or virtual host) as another.
fn host_header_agrees(
    ctx: &CallContext,
    headers: &HeaderMap,
    host: &str,
    port: u16,
    default_port: Option<u16>,
) -> Result<(), Refusal> {
    let mut values = headers.get_all(header::HOST).iter();
    let Some(value) = values.next() else {
        return Ok(());
    };
    if values.next().is_some() {
        return Err(ctx.deny(
            host,
            port,
            "the request has more than one Host header".to_string(),
        ));
    }
    let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
    let agrees = split_authority(&text).is_some_and(|(h, p)| {
        h == host
            && match p {
                Some(p) => p == port,
                None => default_port.is_none_or(|d| d == port),
            }
    });
    if agrees {
        Ok(())
    } else {
        Err(ctx.deny(
            host,
            port,
            format!("the Host header {text:?} differs from the target {host}:{port}"),
        ))
    }
}

/// Removes the headers that describe one hop (and those the `Connection` header names).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        "connection",
        "proxy-connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "upgrade",
    ] {
        headers.remove(name);
    }
}
