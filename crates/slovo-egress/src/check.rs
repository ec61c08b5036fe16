//! The check every connection goes through, and the connection it allows.

use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpStream;

use crate::CallContext;

/// Why a request was not carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The grant or the address policy forbids it (recorded as a denial).
    Denied(String),
    /// The request is malformed or ambiguous (recorded as a denial too when it names a host).
    BadRequest(String),
    /// Allowed, but the name did not resolve or the host did not answer.
    Unreachable(String),
}

impl Refusal {
    pub(crate) fn message(&self) -> &str {
        match self {
            Refusal::Denied(m) | Refusal::BadRequest(m) | Refusal::Unreachable(m) => m,
        }
    }
}

/// A host as compared and matched: lowercase, no trailing dot, no IPv6 brackets.
pub(crate) fn normalize_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// Splits `host[:port]` (with `[v6]` brackets) into a normalized host and an optional port.
pub(crate) fn split_authority(text: &str) -> Option<(String, Option<u16>)> {
    let text = text.trim();
    if text.is_empty() || text.contains(['@', '/', ' ']) {
        return None;
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return None,
        }
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p != 0)?),
        None => None,
    };
    let host = normalize_host(host);
    if host.is_empty() {
        return None;
    }
    Some((host, port))
}

impl CallContext {
    /// Checks `host:port` against the call's grant and the address policy and returns the
    /// addresses that passed: the only ones a connection for it may go to. Denials are
    /// recorded.
    pub(crate) async fn checked_addrs(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Refusal> {
        let host = normalize_host(host);
        // 1. By name, before any resolution: an ungranted name is never looked up.
        if let Err(reason) = self.call.policy.permits(&host, port) {
            return Err(self.deny(&host, port, reason.to_string()));
        }
        // 2. Resolve here, once.
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => match self.shared.resolver.resolve(&host, port).await {
                Ok(a) if !a.is_empty() => a,
                Ok(_) => return Err(Refusal::Unreachable(format!("{host} has no address"))),
                Err(e) => return Err(Refusal::Unreachable(format!("failed to resolve {host}: {e}"))),
            },
        };
        // 3. Every address must be allowed: a name that also points inside is refused whole,
        //    rather than hoping the connection picks the outside one.
        let public = &self.shared.config.public;
        if let Some(bad) = addrs.iter().find(|a| !public.allows(a.ip())) {
            let reason = if host.parse::<IpAddr>().is_ok() {
                format!("{} is not a public address", bad.ip())
            } else {
                format!("{host} resolves to {}, which is not a public address", bad.ip())
            };
            return Err(self.deny(&host, port, reason));
        }
        Ok(addrs)
    }

    /// Checks `host:port` ([`CallContext::checked_addrs`]) and connects to the addresses that
    /// were checked: there is no second resolution that DNS rebinding could answer differently.
    pub(crate) async fn open(&self, host: &str, port: u16) -> Result<TcpStream, Refusal> {
        let addrs = self.checked_addrs(host, port).await?;
        let timeout = self.shared.config.connect_timeout;
        let mut last = None;
        for addr in &addrs {
            match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Ok(Err(e)) => last = Some(e.to_string()),
                Err(_) => last = Some(format!("no answer within {timeout:?}")),
            }
        }
        Err(Refusal::Unreachable(format!(
            "failed to connect to {}:{port}: {}",
            normalize_host(host),
            last.unwrap_or_default()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_split_and_normalize() {
        assert_eq!(
            split_authority("Example.ORG."),
            Some(("example.org".into(), None))
        );
        assert_eq!(split_authority("a.org:443"), Some(("a.org".into(), Some(443))));
        assert_eq!(split_authority("[::1]:80"), Some(("::1".into(), Some(80))));
        assert_eq!(split_authority("[::1]"), Some(("::1".into(), None)));
        for bad in ["", "a.org:0", "a.org:x", "user@a.org", "[::1]x", ":80", "a b"] {
            assert_eq!(split_authority(bad), None, "{bad}");
        }
    }
}
