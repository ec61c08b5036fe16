//! Name resolution, done by the proxy and never by the tool.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use async_trait::async_trait;

/// Resolves a host name to the addresses the proxy will connect to.
#[async_trait]
pub trait Resolver: Send + Sync + std::fmt::Debug {
    /// The addresses of `host` (a lowercase name, never an address literal) on `port`.
    async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>>;
}

/// The system resolver (`getaddrinfo` on a blocking thread).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

#[async_trait]
impl Resolver for SystemResolver {
    async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host((host, port)).await?.collect())
    }
}

/// A fixed table of names, for tests: every lookup is recorded, so a test can show that an
/// ungranted name was never resolved.
#[derive(Debug, Default)]
pub struct StaticResolver {
    names: HashMap<String, Vec<IpAddr>>,
    asked: Mutex<Vec<String>>,
}

impl StaticResolver {
    /// An empty table: every name fails to resolve.
    pub fn new() -> StaticResolver {
        StaticResolver::default()
    }

    /// Adds `name` with `addrs`.
    pub fn with(mut self, name: &str, addrs: &[IpAddr]) -> StaticResolver {
        self.names.insert(name.to_ascii_lowercase(), addrs.to_vec());
        self
    }

    /// Every name asked for so far, in order.
    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[async_trait]
impl Resolver for StaticResolver {
    async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        self.asked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(host.to_string());
        match self.names.get(host) {
            Some(a) => Ok(a.iter().map(|ip| SocketAddr::new(*ip, port)).collect()),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host}: unknown name"),
            )),
        }
    }
}
