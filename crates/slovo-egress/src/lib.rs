//! The egress proxy: the only way out for a tool with a network grant.
//!
//! # Brief overview
//! An [`EgressProxy`] lives in the Slovo process. Each call with a network grant gets its own
//! listener and [`Session`]: every connection accepted there belongs to that call, so the
//! proxy always knows which grant to check, without trusting anything the tool sends.
//!
//! On each listener the proxy speaks
//! - HTTP `CONNECT host:port` (a tunnel; TLS stays end to end),
//! - plain HTTP forwarding (`GET http://host/path`), request by request, and
//! - SOCKS5 (`CONNECT` only, no authentication).
//!
//! Every request goes through the same [`check`](Session) before a byte leaves:
//! 1. the host and port must be permitted by the call's [`NetworkPolicy`], by name, before
//!    anything is resolved (so an ungranted name is never even looked up: no DNS exfiltration
//!    through the proxy's resolver);
//! 2. the proxy resolves the name itself ([`Resolver`]) and every address must be allowed by
//!    the [`PublicPolicy`] (no loopback, private, link-local, CGNAT, metadata, … unless a
//!    range was declared public);
//! 3. it connects to exactly those addresses: there is no second resolution that DNS
//!    rebinding could answer differently.
//!
//! A listener bound on an address of the host ([`EgressProxy::listen_for`]) can be reached by
//! anything that reaches that address, so it serves exactly one peer address, the call's
//! sandbox: a connection from any other address is closed as soon as it is accepted, before
//! a byte is read, and logged. A listener handed over from the tool's own network namespace
//! ([`EgressProxy::serve`]) has no other peers to tell apart.
//!
//! A `Host` header that names another host than the `CONNECT` target or the absolute URI is
//! refused, as is a request in origin form or for another scheme. Each refusal is kept as a
//! [`NetworkDenial`] that [`Session::finish`] returns for the execution record.
//!
//! How each backend makes sure the tool cannot go around the proxy is in `docs/egress.md`.
//!
//! # Example
//! ```no_run
//! # async fn demo() -> Result<(), slovo_egress::EgressError> {
//! use slovo_egress::{CallGrant, EgressConfig, EgressProxy};
//! use slovo_core::execution::NetworkPolicy;
//! let proxy = EgressProxy::new(EgressConfig::default());
//! let session = proxy
//!     .listen_for(
//!         "127.0.0.1:0".parse().unwrap(),
//!         "127.0.0.1".parse().unwrap(), // the one peer this call's listener serves
//!         CallGrant { execution_id: "e1".into(), policy: NetworkPolicy::Public },
//!     )
//!     .await?;
//! println!("HTTP_PROXY=http://{}", session.local_addr());
//! let denials = session.finish();
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod check;
#[doc(hidden)]
pub mod fuzzing;
mod http;
pub mod resolve;
mod socks;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
pub use slovo_core::execution::{NetworkDenial, NetworkPolicy};
pub use slovo_core::net::{IpRange, PublicPolicy};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::AbortHandle;

pub use resolve::{Resolver, StaticResolver, SystemResolver};

/// How the proxy decides and behaves, for every call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressConfig {
    /// Which resolved addresses count as public.
    #[serde(default)]
    pub public: PublicPolicy,
    /// Time to establish one upstream connection. By default, 10 s.
    #[serde(default = "default_connect_timeout", with = "millis")]
    pub connect_timeout: Duration,
    /// Connections one call may have open through the proxy at once. By default, 64.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_max_connections() -> usize {
    64
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis().try_into().unwrap_or(u64::MAX))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

impl Default for EgressConfig {
    fn default() -> Self {
        EgressConfig {
            public: PublicPolicy::strict(),
            connect_timeout: default_connect_timeout(),
            max_connections: default_max_connections(),
        }
    }
}

/// Whose connections a listener carries and what they may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallGrant {
    /// The execution record the call fills (for logs).
    pub execution_id: String,
    /// The call's network policy, from its grant.
    pub policy: NetworkPolicy,
}

/// The proxy could not start serving a call.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// Binding or adopting the call's listener failed.
    #[error("failed to {action} the egress listener: {source}")]
    Listener {
        /// What was attempted.
        action: &'static str,
        /// The system error.
        source: std::io::Error,
    },
    /// A call without any network grant needs no proxy.
    #[error("the grant allows no network access; no egress listener is opened")]
    NoNetwork,
}

/// The egress proxy. Cheap to clone; one per Slovo process is enough.
#[derive(Debug, Clone)]
pub struct EgressProxy {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: EgressConfig,
    resolver: Arc<dyn Resolver>,
}

impl EgressProxy {
    /// A proxy resolving names with the system resolver.
    pub fn new(config: EgressConfig) -> EgressProxy {
        EgressProxy::with_resolver(config, Arc::new(SystemResolver))
    }

    /// A proxy resolving names with `resolver` (tests use a [`StaticResolver`]).
    pub fn with_resolver(config: EgressConfig, resolver: Arc<dyn Resolver>) -> EgressProxy {
        EgressProxy {
            inner: Arc::new(Shared { config, resolver }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EgressConfig {
        &self.inner.config
    }

    /// Serves one call on a listener bound elsewhere — the process sandbox binds it inside
    /// the tool's network namespace and hands it over. Must be called within a Tokio runtime.
    pub fn serve(&self, listener: std::net::TcpListener, call: CallGrant) -> Result<Session, EgressError> {
        if !call.policy.allows_network() {
            return Err(EgressError::NoNetwork);
        }
        listener
            .set_nonblocking(true)
            .map_err(|source| EgressError::Listener {
                action: "configure",
                source,
            })?;
        let listener = TcpListener::from_std(listener).map_err(|source| EgressError::Listener {
            action: "adopt",
            source,
        })?;
        // The listener lives in the tool's own network namespace: nothing else can connect.
        Ok(self.start(listener, call, None))
    }

    /// Binds a new listener at `bind` and serves one call on it: for a backend that can route
    /// its sandbox to an address of the host (Docker: the gateway of an internal network).
    /// Only connections from `peer` (the sandbox's address) are served: the listener is on
    /// the host, where other processes and other networks' containers can reach it too, and
    /// whoever connects uses the call's grant. Must be called within a Tokio runtime.
    pub async fn listen_for(
        &self,
        bind: SocketAddr,
        peer: IpAddr,
        call: CallGrant,
    ) -> Result<Session, EgressError> {
        if !call.policy.allows_network() {
            return Err(EgressError::NoNetwork);
        }
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|source| EgressError::Listener {
                action: "bind",
                source,
            })?;
        Ok(self.start(listener, call, Some(peer.to_canonical())))
    }

    /// The check of one call without a listener, for a backend that makes the connections
    /// itself on the tool's behalf (WebAssembly's outbound HTTP): the same grant check,
    /// resolver and address policy as the listeners', denials collected the same way. A call
    /// without a network grant gets a checker too: every destination is denied and recorded.
    pub fn checker(&self, call: CallGrant) -> Checker {
        Checker {
            ctx: Arc::new(self.context(call)),
        }
    }

    fn context(&self, call: CallGrant) -> CallContext {
        CallContext {
            shared: self.inner.clone(),
            call,
            denials: Mutex::new(Vec::new()),
            tasks: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(self.inner.config.max_connections)),
        }
    }

    /// Serves `call` on `listener`; with `peer`, only connections from that address.
    fn start(&self, listener: TcpListener, call: CallGrant, peer: Option<IpAddr>) -> Session {
        let local_addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let ctx = Arc::new(self.context(call));
        let acceptor = ctx.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, from)) = listener.accept().await else {
                    // EMFILE and friends: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                if let Some(allowed) = peer
                    && from.ip().to_canonical() != allowed
                {
                    // Not the call's sandbox: closed unread, before it takes a connection
                    // slot. Logged, not recorded as a denial of the call: the call did not
                    // ask for anything, and a stranger could otherwise grow its record.
                    tracing::warn!(
                        execution = %acceptor.call.execution_id,
                        peer = %from,
                        allowed = %allowed,
                        listener = %local_addr,
                        "egress: a connection from another address than the call's sandbox was closed"
                    );
                    drop(stream);
                    continue;
                }
                let Ok(permit) = acceptor.slots.clone().try_acquire_owned() else {
                    tracing::warn!(execution = %acceptor.call.execution_id, "egress: too many connections, dropping one");
                    continue;
                };
                let conn = acceptor.clone();
                acceptor.spawn(async move {
                    conn.serve_connection(stream).await;
                    drop(permit);
                });
            }
        });
        Session {
            local_addr,
            ctx,
            accept: accept.abort_handle(),
        }
    }
}

/// One call's listener. Dropping it (or [`Session::finish`]) stops the listener and cuts
/// every connection it carried.
#[derive(Debug)]
pub struct Session {
    local_addr: SocketAddr,
    ctx: Arc<CallContext>,
    accept: AbortHandle,
}

impl Session {
    /// Where the listener is bound (in the namespace it was bound in).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The denials so far.
    pub fn denials(&self) -> Vec<NetworkDenial> {
        lock(&self.ctx.denials).clone()
    }

    /// Stops serving the call, cuts its open connections and returns its denials.
    pub fn finish(self) -> Vec<NetworkDenial> {
        self.denials()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.accept.abort();
        for task in lock(&self.ctx.tasks).drain(..) {
            task.abort();
        }
    }
}

/// Why a [`Checker`] refused a destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// The grant or the address policy forbids it; recorded as a denial.
    #[error("{0}")]
    Denied(String),
    /// Allowed, but the name does not resolve.
    #[error("{0}")]
    Unreachable(String),
}

/// One call's check without a listener ([`EgressProxy::checker`]).
#[derive(Debug, Clone)]
pub struct Checker {
    ctx: Arc<CallContext>,
}

impl Checker {
    /// Checks `host:port` — by name against the grant before anything is resolved, then
    /// every address the proxy's resolver gives against the address policy — and returns
    /// the checked addresses: connect to these and nothing else (no second resolution).
    pub async fn check(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, CheckError> {
        self.ctx.checked_addrs(host, port).await.map_err(|r| match r {
            check::Refusal::Unreachable(m) => CheckError::Unreachable(m),
            check::Refusal::Denied(m) | check::Refusal::BadRequest(m) => CheckError::Denied(m),
        })
    }

    /// Records a refusal the caller decided (a request that is malformed or ambiguous about
    /// its destination) as a denial, and returns it.
    pub fn deny(&self, host: &str, port: u16, reason: impl Into<String>) -> CheckError {
        CheckError::Denied(
            self.ctx
                .deny(&check::normalize_host(host), port, reason.into())
                .message()
                .to_string(),
        )
    }

    /// The denials so far.
    pub fn denials(&self) -> Vec<NetworkDenial> {
        lock(&self.ctx.denials).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means a task panicked while pushing; the data is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Everything a connection of one call needs.
#[derive(Debug)]
struct CallContext {
    shared: Arc<Shared>,
    call: CallGrant,
    denials: Mutex<Vec<NetworkDenial>>,
    /// Every task serving this call (connections, tunnels, upstream drivers): aborted when
    /// the session ends, so nothing outlives the call.
    tasks: Mutex<Vec<AbortHandle>>,
    slots: Arc<Semaphore>,
}

impl CallContext {
    fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(fut).abort_handle();
        let mut tasks = lock(&self.tasks);
        tasks.retain(|t| !t.is_finished());
        tasks.push(handle);
    }

    /// Serves one accepted connection: SOCKS5 if its first byte says so, HTTP otherwise.
    async fn serve_connection(self: Arc<Self>, stream: TcpStream) {
        let mut first = [0u8; 1];
        match stream.peek(&mut first).await {
            Ok(1) if first[0] == socks::VERSION => socks::serve(self, stream).await,
            Ok(_) => http::serve(self, stream).await,
            Err(_) => {}
        }
    }

    fn deny(&self, host: &str, port: u16, reason: String) -> check::Refusal {
        tracing::info!(execution = %self.call.execution_id, host, port, reason = %reason, "egress denied");
        lock(&self.denials).push(NetworkDenial {
            host: host.to_string(),
            port,
            reason: reason.clone(),
        });
        check::Refusal::Denied(reason)
    }
}
