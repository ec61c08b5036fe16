//! SOCKS5 (RFC 1928) on a call's listener: `CONNECT` without authentication, nothing else.
//! Names are sent to the proxy (`socks5h://`), so the proxy resolves them as for HTTP.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::CallContext;
use crate::check::Refusal;

/// The first byte of a SOCKS5 greeting.
pub(crate) const VERSION: u8 = 5;

const NO_AUTH: u8 = 0;
const NO_ACCEPTABLE_METHOD: u8 = 0xff;
pub(crate) const CMD_CONNECT: u8 = 1;
const REP_OK: u8 = 0;
const REP_FAILURE: u8 = 1;
const REP_NOT_ALLOWED: u8 = 2;
const REP_HOST_UNREACHABLE: u8 = 4;
const REP_COMMAND_NOT_SUPPORTED: u8 = 7;
const REP_ADDRESS_NOT_SUPPORTED: u8 = 8;

pub(crate) async fn serve(ctx: Arc<CallContext>, mut stream: TcpStream) {
    // The handshake is a handful of bytes; a client that dawdles loses its slot.
    let request = tokio::time::timeout(Duration::from_secs(10), handshake(&mut stream)).await;
    let Ok(Ok(Some((cmd, host, port)))) = request else {
        return;
    };
    if cmd != CMD_CONNECT {
        refuse_command(&ctx, cmd, &host, port);
        let _ = reply(&mut stream, REP_COMMAND_NOT_SUPPORTED).await;
        return;
    }
    match ctx.open(&host, port).await {
        Ok(mut upstream) => {
            if reply(&mut stream, REP_OK).await.is_ok() {
                let _ = tokio::io::copy_bidirectional(&mut stream, &mut upstream).await;
            }
        }
        Err(r) => {
            let code = match r {
                Refusal::Denied(_) => REP_NOT_ALLOWED,
                Refusal::Unreachable(_) => REP_HOST_UNREACHABLE,
                Refusal::BadRequest(_) => REP_FAILURE,
            };
            let _ = reply(&mut stream, code).await;
        }
    }
}

/// Records the denial of a command other than `CONNECT`.
pub(crate) fn refuse_command(ctx: &CallContext, cmd: u8, host: &str, port: u16) {
    let what = if cmd == 3 { "UDP ASSOCIATE" } else { "BIND" };
    ctx.deny(
        host,
        port,
        format!("SOCKS5 {what} is not supported; only CONNECT is"),
    );
}

/// Reads the greeting and the request; `None` after answering a request we cannot serve.
/// Generic over the stream so that the fuzz targets can drive it from bytes in memory.
pub(crate) async fn handshake<S>(s: &mut S) -> std::io::Result<Option<(u8, String, u16)>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut head = [0u8; 2];
    s.read_exact(&mut head).await?;
    let mut methods = vec![0u8; usize::from(head[1])];
    s.read_exact(&mut methods).await?;
    if !methods.contains(&NO_AUTH) {
        s.write_all(&[VERSION, NO_ACCEPTABLE_METHOD]).await?;
        return Ok(None);
    }
    s.write_all(&[VERSION, NO_AUTH]).await?;
    let mut req = [0u8; 4];
    s.read_exact(&mut req).await?;
    if req[0] != VERSION {
        return Ok(None);
    }
    let host = match req[3] {
        1 => {
            let mut a = [0u8; 4];
            s.read_exact(&mut a).await?;
            Ipv4Addr::from(a).to_string()
        }
        3 => {
            let mut len = [0u8; 1];
            s.read_exact(&mut len).await?;
            let mut name = vec![0u8; usize::from(len[0])];
            s.read_exact(&mut name).await?;
            match String::from_utf8(name) {
                Ok(n) => n,
                Err(_) => {
                    reply(s, REP_ADDRESS_NOT_SUPPORTED).await?;
                    return Ok(None);
                }
            }
        }
        4 => {
            let mut a = [0u8; 16];
            s.read_exact(&mut a).await?;
            Ipv6Addr::from(a).to_string()
        }
        _ => {
            reply(s, REP_ADDRESS_NOT_SUPPORTED).await?;
            return Ok(None);
        }
    };
    let mut port = [0u8; 2];
    s.read_exact(&mut port).await?;
    Ok(Some((req[1], host, u16::from_be_bytes(port))))
}

async fn reply<S: AsyncWrite + Unpin>(s: &mut S, code: u8) -> std::io::Result<()> {
    // The bound address is not meaningful to the tool; zeros, as many proxies answer.
    s.write_all(&[VERSION, code, 0, 1, 0, 0, 0, 0, 0, 0]).await
}
