//! Which addresses a request may reach: the grant's hosts and the public-address rule, checked
//! on the URL (address literals), on every name resolution and on every redirect.

use std::net::{IpAddr, SocketAddr};

use slovo_core::execution::NetworkPolicy;
use slovo_core::net::PublicPolicy;

/// Why a URL may not be reached, whatever the server would answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The URL names no host.
    #[error("{url} has no host")]
    NoHost {
        /// The URL.
        url: String,
    },
    /// Neither http nor https.
    #[error("scheme {scheme} is not allowed")]
    Scheme {
        /// The URL's scheme.
        scheme: String,
    },
    /// An address literal the public rule refuses (loopback, private, link-local, …).
    #[error("{address} is not a public address")]
    NotPublic {
        /// The address.
        address: IpAddr,
    },
    /// A name that resolves to an address the public rule refuses.
    #[error("{host} resolves to {address}, which is not a public address")]
    ResolvesToNonPublic {
        /// The name.
        host: String,
        /// The first refused address it resolves to.
        address: IpAddr,
    },
    /// The tool may not use the network at all.
    #[error("the tool has no network grant")]
    NoNetworkGrant,
    /// A host and port the grant does not list.
    #[error("{host}:{port} is not among the granted hosts")]
    NotGranted {
        /// The host.
        host: String,
        /// The port.
        port: u16,
    },
    /// A redirect from https down to plain http (or another scheme).
    #[error("it leaves https for {scheme}")]
    Downgrade {
        /// The scheme the redirect leads to.
        scheme: String,
    },
}

impl Refusal {
    /// Whether the refusal is the public-address rule's (rather than the grant's or the
    /// scheme's): the one a configuration setting (`http.allow_private`,
    /// `egress.also_public`) can lift.
    pub fn is_address(&self) -> bool {
        matches!(
            self,
            Refusal::NotPublic { .. } | Refusal::ResolvesToNonPublic { .. }
        )
    }
}

/// The resolver's refusal inside a transport error, if that is why it failed.
pub(super) fn resolver_refusal(e: &reqwest::Error) -> Option<&Refusal> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(refusal) = c.downcast_ref::<Refusal>() {
            return Some(refusal);
        }
        cause = c.source();
    }
    None
}

/// Which addresses requests may reach: the public policy, or everything.
#[derive(Debug, Clone)]
pub(crate) struct AddressRule {
    pub(crate) everything: bool,
    pub(crate) public: PublicPolicy,
}

impl AddressRule {
    fn allows(&self, ip: IpAddr) -> bool {
        self.everything || self.public.allows(ip)
    }
}

/// Resolves names, refusing any that resolves to a non-public address.
pub(super) struct PublicOnlyResolver {
    pub(super) rule: AddressRule,
}

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let rule = self.rule.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(bad) = addrs.iter().find(|a| !rule.allows(a.ip())) {
                return Err(Box::new(Refusal::ResolvesToNonPublic {
                    host,
                    address: bad.ip(),
                }) as Box<dyn std::error::Error + Send + Sync>);
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
pub(crate) fn check_target(
    url: &reqwest::Url,
    network: &NetworkPolicy,
    rule: &AddressRule,
) -> Result<(), Refusal> {
    let host = url
        .host_str()
        .ok_or_else(|| Refusal::NoHost { url: url.to_string() })?;
    let port = url.port_or_known_default().unwrap_or(443);
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refusal::Scheme {
            scheme: url.scheme().to_string(),
        });
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>()
        && !rule.allows(ip)
    {
        return Err(Refusal::NotPublic { address: ip });
    }
    match network {
        NetworkPolicy::None => Err(Refusal::NoNetworkGrant),
        NetworkPolicy::Public => Ok(()),
        NetworkPolicy::AllowList { hosts } => {
            if hosts.iter().any(|h| h.matches(bare, port)) {
                Ok(())
            } else {
                Err(Refusal::NotGranted {
                    host: bare.to_string(),
                    port,
                })
            }
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
