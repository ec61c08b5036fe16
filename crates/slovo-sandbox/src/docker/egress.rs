//! Network grants for containers: the only route out of a container is its call's own
//! listener of the egress proxy.
//!
//! # Brief overview
//! A call with a network grant gets, besides its container:
//! - a place on Slovo's **internal** Docker network ([`EgressNetwork`]: no default route, no
//!   NAT, inter-container communication disabled), at an address the backend chooses and
//!   leases for the call ([`Lease`]: a lock file per address, so concurrent Slovo processes
//!   never hand out the same one);
//! - its own proxy listener ([`slovo_egress::EgressProxy::listen_for`]) on the network's
//!   gateway (the host's address on the bridge), on a port of its own: the listener is the
//!   call's identity, and its [`Session`] collects the call's denials. The listener serves
//!   only the container's address: a connection from any other address is closed unread;
//! - one firewall rule ([`firewall`]) in Slovo's own chain that lets exactly that container
//!   address, arriving on the bridge, reach exactly that listener. The chain rejects
//!   everything else the bridge sends to the host, and everything sent to the gateway address
//!   from anywhere else (host processes over `lo`, containers of other Docker networks). So
//!   neither another container nor a host process can use this call's listener (and grant),
//!   and no container reaches any other service of the host.
//!
//! The container has no usable resolver: its `dns` is the gateway, where nothing but the
//! rejecting chain answers, so the network's embedded DNS cannot forward a query anywhere.
//! IPv6 is disabled in the container (`net.ipv6.conf.*.disable_ipv6`), so no link-local
//! address gives it a way to the host either.
//!
//! Whatever cannot be set up (no `iptables`, a network of the same name that is not ours, no
//! free address) refuses the call with the reason: nothing runs with a network grant that is
//! not enforced.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use bollard::Docker;
use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use slovo_core::execution::{NetworkDenial, NetworkPolicy};
use slovo_egress::{CallGrant, EgressProxy, Session};

use super::container::{LABEL_MANAGED, LABEL_PID, LABEL_PID_START};
use super::daemon;
use super::error::{DockerError, Result, is_not_found};

/// The label that marks Slovo's egress network (value `egress`), besides [`LABEL_MANAGED`].
pub const LABEL_NETWORK: &str = "dev.slovo.network";

/// Where containers with a network grant are attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressNetwork {
    /// The Docker network's name. By default, `slovo-egress`.
    pub name: String,
    /// The name of its bridge interface on the host (at most 15 bytes): the firewall hook
    /// matches it. By default, `slovo-egress0`.
    pub bridge: String,
    /// The network's address range; the gateway (the host's address, where the proxy
    /// listeners are bound) is its first address. By default `172.31.240.0/20`, inside the
    /// ranges the daemon already uses for its own networks, so the daemon notices overlaps.
    pub subnet: Ipv4Addr,
    /// The prefix length of `subnet` (at most 30).
    pub prefix: u8,
    /// The iptables chain holding the per-call rules. By default, `SLOVO-EGRESS`.
    pub chain: String,
    /// Where the per-address lock files live (shared by every Slovo process of this host).
    /// By default, `/run/slovo/docker-egress`.
    pub lock_dir: PathBuf,
}

impl Default for EgressNetwork {
    fn default() -> Self {
        EgressNetwork {
            name: "slovo-egress".to_string(),
            bridge: "slovo-egress0".to_string(),
            subnet: Ipv4Addr::new(172, 31, 240, 0),
            prefix: 20,
            chain: "SLOVO-EGRESS".to_string(),
            lock_dir: PathBuf::from("/run/slovo/docker-egress"),
        }
    }
}

impl EgressNetwork {
    fn mask(&self) -> u32 {
        u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0)
    }

    /// The first address: the host's side of the bridge.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from((u32::from(self.subnet) & self.mask()) + 1)
    }

    /// `subnet/prefix`.
    pub fn cidr(&self) -> String {
        format!(
            "{}/{}",
            Ipv4Addr::from(u32::from(self.subnet) & self.mask()),
            self.prefix
        )
    }

    /// The addresses containers may get: after the gateway, before the broadcast address.
    fn hosts(&self) -> std::ops::RangeInclusive<u32> {
        let base = u32::from(self.subnet) & self.mask();
        (base + 2)..=(base | !self.mask()).saturating_sub(1)
    }

    fn check(&self) -> Result<()> {
        if !(8..=30).contains(&self.prefix) || self.bridge.is_empty() || self.bridge.len() > 15 {
            return Err(DockerError::refused(format!(
                "the egress network's configuration is invalid (subnet {}, bridge {:?}): the prefix must be \
                 8 to 30 and the bridge name 1 to 15 bytes",
                self.cidr(),
                self.bridge
            )));
        }
        Ok(())
    }
}

/// A refusal for a network grant that cannot be enforced.
fn unenforceable(reason: impl std::fmt::Display) -> DockerError {
    DockerError::refused(format!(
        "the grant allows network access, but it cannot be enforced for a container on this host: {reason}; \
         the call is refused rather than run with another route out"
    ))
}

/// Makes sure Slovo's internal network exists, as configured: creates it, or checks that the
/// one of that name is ours (internal, no inter-container traffic, our bridge and subnet).
/// Returns the addresses containers hold on it now (running or being removed), from the same
/// inspection.
pub async fn ensure_network(docker: &Docker, net: &EgressNetwork) -> Result<HashSet<Ipv4Addr>> {
    net.check()?;
    for _ in 0..2 {
        match docker.inspect_network(&net.name, None).await {
            Ok(found) => {
                verify_network(&found, net)?;
                return Ok(addresses_in_use(found));
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(DockerError::api("inspect the egress network")(e)),
        }
        let mut options = HashMap::new();
        // Containers of different calls must not talk to each other.
        options.insert(
            "com.docker.network.bridge.enable_icc".to_string(),
            "false".to_string(),
        );
        options.insert("com.docker.network.bridge.name".to_string(), net.bridge.clone());
        options.insert(
            "com.docker.network.bridge.enable_ip_masquerade".to_string(),
            "false".to_string(),
        );
        let mut labels = HashMap::new();
        labels.insert(LABEL_MANAGED.to_string(), "1".to_string());
        labels.insert(LABEL_NETWORK.to_string(), "egress".to_string());
        let request = NetworkCreateRequest {
            name: net.name.clone(),
            driver: Some("bridge".to_string()),
            internal: Some(true),
            attachable: Some(false),
            enable_ipv6: Some(false),
            ipam: Some(Ipam {
                driver: Some("default".to_string()),
                config: Some(vec![IpamConfig {
                    subnet: Some(net.cidr()),
                    gateway: Some(net.gateway().to_string()),
                    ..Default::default()
                }]),
                options: None,
            }),
            options: Some(options),
            labels: Some(labels),
            ..Default::default()
        };
        match docker.create_network(request).await {
            Ok(_) => {
                tracing::info!(network = %net.name, subnet = %net.cidr(), "created the Docker egress network");
                return Ok(HashSet::new());
            }
            // Another Slovo process created it meanwhile: inspect it again.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => continue,
            Err(e) => {
                return Err(unenforceable(format!(
                    "the internal network {} ({}) could not be created: {e}",
                    net.name,
                    net.cidr()
                )));
            }
        }
    }
    Err(unenforceable(format!(
        "the internal network {} keeps appearing and disappearing",
        net.name
    )))
}

fn verify_network(found: &bollard::models::NetworkInspect, net: &EgressNetwork) -> Result<()> {
    let option = |k: &str| found.options.as_ref().and_then(|o| o.get(k)).map(String::as_str);
    let label = |k: &str| found.labels.as_ref().and_then(|l| l.get(k)).map(String::as_str);
    let subnets: Vec<&str> = found
        .ipam
        .as_ref()
        .and_then(|i| i.config.as_ref())
        .map(|c| c.iter().filter_map(|c| c.subnet.as_deref()).collect())
        .unwrap_or_default();
    let problems: Vec<&str> = [
        (found.internal != Some(true), "it is not internal"),
        (
            option("com.docker.network.bridge.enable_icc") != Some("false"),
            "inter-container traffic is enabled",
        ),
        (
            option("com.docker.network.bridge.name") != Some(net.bridge.as_str()),
            "its bridge is not the configured one",
        ),
        (
            subnets != [net.cidr().as_str()],
            "its subnet is not the configured one",
        ),
        (
            label(LABEL_NETWORK) != Some("egress"),
            "it is not labelled as Slovo's",
        ),
    ]
    .into_iter()
    .filter_map(|(bad, why)| bad.then_some(why))
    .collect();
    if problems.is_empty() {
        return Ok(());
    }
    Err(unenforceable(format!(
        "a Docker network named {} exists but is not Slovo's internal egress network ({}); remove it \
         (it is re-created as needed) or configure another name",
        net.name,
        problems.join(", ")
    )))
}

/// The addresses containers hold on an inspected network.
fn addresses_in_use(found: bollard::models::NetworkInspect) -> HashSet<Ipv4Addr> {
    found
        .containers
        .unwrap_or_default()
        .values()
        .filter_map(|c| c.ipv4_address.as_deref())
        .filter_map(|a| a.split('/').next()?.parse().ok())
        .collect()
}

/// A container address held for one call: a lock file per address, locked with `flock`, so
/// that neither another call of this process nor another Slovo process takes it. The kernel
/// drops the lock when the holder dies.
#[derive(Debug)]
pub struct Lease {
    /// The address.
    pub address: Ipv4Addr,
    _lock: std::fs::File,
}

impl Lease {
    /// Leases a free address of `net`, skipping `in_use`; `seed` spreads the search.
    fn take(net: &EgressNetwork, in_use: &HashSet<Ipv4Addr>, seed: u64) -> Result<Lease> {
        std::fs::create_dir_all(&net.lock_dir).map_err(|e| DockerError::Io {
            action: "create",
            path: net.lock_dir.clone(),
            source: e,
        })?;
        let hosts = net.hosts();
        let count = u64::from(hosts.end() - hosts.start() + 1);
        for i in 0..count {
            let offset = u32::try_from((seed + i) % count).unwrap_or(0);
            let address = Ipv4Addr::from(hosts.start() + offset);
            if in_use.contains(&address) {
                continue;
            }
            let path = net.lock_dir.join(format!("{}-{address}", net.name));
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| DockerError::Io {
                    action: "open",
                    path: path.clone(),
                    source: e,
                })?;
            // SAFETY: flock on a descriptor this function owns.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(Lease { address, _lock: file });
            }
        }
        Err(unenforceable(format!(
            "no free address is left on the internal network {} ({})",
            net.name,
            net.cidr()
        )))
    }
}

/// The host firewall for the egress network, through the `iptables` command (there is no
/// well-kept Rust crate for iptables; the command works with both the legacy and the
/// nf_tables back end, and `-w` waits for the lock other programs hold).
///
/// Slovo's chain is jumped to from the first rules of `INPUT` (and of `FORWARD`), for packets
/// arriving on the egress bridge and, in `INPUT`, for packets to the gateway address from
/// anywhere else; it holds one `ACCEPT` per running call (its container's address, on the
/// bridge, to its listener) and then rejects everything else: TCP with a reset, the rest with
/// an ICMP "administratively prohibited". Other traffic of the host is never matched.
pub mod firewall {
    use super::*;

    /// The comment of a call's rule: `slovo-call:<pid>:<pid start time>:<call>`.
    pub fn tag(call: &str) -> String {
        let pid = std::process::id();
        format!("slovo-call:{pid}:{}:{call}", daemon::start_time(pid).unwrap_or(0))
    }

    async fn iptables(args: &[&str]) -> std::result::Result<String, String> {
        let out = tokio::process::Command::new("iptables")
            .arg("-w")
            .args(args)
            .output()
            .await
            .map_err(|e| format!("iptables could not be run ({e})"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "iptables {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Serialises the check-then-change sequences of this process (`-w` only serialises
    /// single commands).
    static SETUP: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    /// The hooks of the chain, per built-in chain, in the order they must open it (each as
    /// `iptables -S` prints it, and as the arguments that add or delete it).
    fn hooks(net: &EgressNetwork) -> [(&'static str, Vec<Vec<String>>); 2] {
        let chain = net.chain.as_str();
        let from_bridge = vec!["-i", net.bridge.as_str(), "-j", chain];
        let gateway = format!("{}/32", net.gateway());
        // Only what opens a connection (or is not part of one): replies to the host's own
        // connections arrive over `lo` addressed to the gateway too — among them the reset
        // this chain sends a host process, which would otherwise be dropped and leave the
        // process waiting instead of refused.
        let to_gateway = vec![
            "-d",
            gateway.as_str(),
            "-m",
            "conntrack",
            "!",
            "--ctstate",
            "RELATED,ESTABLISHED",
            "-j",
            chain,
        ];
        let owned = |v: Vec<&str>| v.into_iter().map(str::to_string).collect::<Vec<_>>();
        [
            // INPUT: what the bridge sends to the host itself (the gateway, and every other
            // address of the host); then what anything else sends to the gateway, where the
            // calls' listeners are: host processes (over `lo`) and containers of other
            // networks (over their own bridges) must not reach them, and none of the chain's
            // `ACCEPT`s matches them (each names the bridge), so they are rejected.
            ("INPUT", vec![owned(from_bridge.clone()), owned(to_gateway)]),
            // FORWARD: what the bridge sends anywhere else, including other containers on the
            // bridge (the daemon gives containers on an internal network a default route
            // through the gateway and relies on its own rules to drop what follows it; this
            // chain rejects it first, whatever those rules are). Nothing to the gateway is
            // forwarded: it is the host's own address.
            ("FORWARD", vec![owned(from_bridge)]),
        ]
    }

    /// Creates the chain, its final rejections and its hooks, each only if missing, and makes
    /// sure the hooks are the first rules of `INPUT` and `FORWARD`, in order (an `ACCEPT`
    /// before them would bypass them).
    pub async fn ensure(net: &EgressNetwork) -> Result<()> {
        let _guard = SETUP.lock().await;
        let chain = net.chain.as_str();
        if iptables(&["-S", chain]).await.is_err() {
            iptables(&["-N", chain]).await.map_err(unenforceable)?;
        }
        // The final rules first: the chain must never be hooked without them.
        for rule in [
            &["-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"][..],
            &["-j", "REJECT", "--reject-with", "icmp-admin-prohibited"][..],
        ] {
            let mut check = vec!["-C", chain];
            check.extend_from_slice(rule);
            if iptables(&check).await.is_err() {
                let mut add = vec!["-A", chain];
                add.extend_from_slice(rule);
                iptables(&add).await.map_err(unenforceable)?;
            }
        }
        for (hook_chain, hooks) in hooks(net) {
            let printed: Vec<String> = hooks
                .iter()
                .map(|h| format!("-A {hook_chain} {}", h.join(" ")))
                .collect();
            let listed = iptables(&["-S", hook_chain]).await.map_err(unenforceable)?;
            let rules: Vec<&str> = listed.lines().filter(|l| l.starts_with("-A ")).collect();
            let jumps: Vec<Vec<&str>> = rules
                .iter()
                .map(|l| words_of(l))
                .filter(|w| w.ends_with(&["-j", chain]))
                .collect();
            if rules.iter().take(printed.len()).ne(printed.iter()) || jumps.len() != printed.len() {
                // Not first, not in order, absent, or other jumps to the chain (an older
                // version's hooks, another bridge's): remove every jump, then insert the
                // hooks at the top in order.
                for words in &jumps {
                    let mut delete = vec!["-D"];
                    delete.extend_from_slice(&words[1..]);
                    iptables(&delete).await.map_err(unenforceable)?;
                }
                for (position, hook) in hooks.iter().enumerate() {
                    let position = (position + 1).to_string();
                    let mut insert = vec!["-I", hook_chain, position.as_str()];
                    insert.extend(hook.iter().map(String::as_str));
                    iptables(&insert).await.map_err(unenforceable)?;
                }
            }
        }
        Ok(())
    }

    /// The rule letting `from`, arriving on the egress bridge, reach `to` (TCP), tagged with
    /// `tag`, without the command. The interface matters as much as the source: the chain
    /// also sees what other interfaces send to the gateway, and only on the bridge does the
    /// container's address come from the container (a host process may send from an address
    /// that is not its own: `IP_FREEBIND` needs no privilege).
    pub fn rule(net: &EgressNetwork, from: Ipv4Addr, to: SocketAddr, tag: &str) -> Vec<String> {
        let (source, destination, port) = (
            format!("{from}/32"),
            format!("{}/32", to.ip()),
            to.port().to_string(),
        );
        [
            net.chain.as_str(),
            "-s",
            &source,
            "-d",
            &destination,
            "-i",
            net.bridge.as_str(),
            "-p",
            "tcp",
            "-m",
            "tcp",
            "--dport",
            &port,
            "-m",
            "comment",
            "--comment",
            tag,
            "-j",
            "ACCEPT",
        ]
        .into_iter()
        .map(str::to_string)
        .collect()
    }

    /// Deletes every rule of the chain whose source is `address` (left by a call of a
    /// process that died while holding it), so that a new lease starts clean.
    pub async fn purge_source(net: &EgressNetwork, address: Ipv4Addr) -> Result<()> {
        let source = format!("{address}/32");
        let listed = iptables(&["-S", &net.chain]).await.map_err(unenforceable)?;
        for line in listed.lines() {
            let words = words_of(line);
            if words.first() == Some(&"-A") && words.windows(2).any(|w| w == ["-s", source.as_str()]) {
                let mut delete = vec!["-D"];
                delete.extend_from_slice(&words[1..]);
                iptables(&delete).await.map_err(unenforceable)?;
            }
        }
        Ok(())
    }

    /// The words of a rule as `iptables -S` prints it, which quotes comments (ours contain
    /// no spaces, so removing the quotes gives back the arguments).
    fn words_of(line: &str) -> Vec<&str> {
        line.split_whitespace().map(|w| w.trim_matches('"')).collect()
    }

    /// Inserts a call's rule at the top of the chain.
    pub async fn allow(rule: &[String]) -> Result<()> {
        let mut args = vec!["-I", rule[0].as_str(), "1"];
        args.extend(rule[1..].iter().map(String::as_str));
        iptables(&args).await.map_err(unenforceable)?;
        Ok(())
    }

    /// Deletes a call's rule.
    pub async fn revoke(rule: &[String]) -> std::result::Result<(), String> {
        let mut args = vec!["-D"];
        args.extend(rule.iter().map(String::as_str));
        iptables(&args).await.map(|_| ())
    }

    /// The same, blocking (for `Drop`).
    pub fn revoke_blocking(rule: &[String]) {
        let status = std::process::Command::new("iptables")
            .args(["-w", "-D"])
            .args(rule)
            .output();
        if !status.is_ok_and(|o| o.status.success()) {
            tracing::warn!(rule = ?rule, "failed to delete a call's egress rule; start-up cleanup will");
        }
    }

    /// Deletes the rules of calls of Slovo processes that are gone. Returns how many.
    pub async fn remove_leftovers(net: &EgressNetwork) -> usize {
        let Ok(listed) = iptables(&["-S", &net.chain]).await else {
            return 0;
        };
        let mut removed = 0;
        for line in listed.lines() {
            let words = words_of(line);
            let Some(tag) = words.windows(2).find(|w| w[0] == "--comment").map(|w| w[1]) else {
                continue;
            };
            let mut parts = tag.split(':');
            if parts.next() != Some("slovo-call") {
                continue;
            }
            let mut labels = HashMap::new();
            labels.insert(LABEL_PID.to_string(), parts.next().unwrap_or("").to_string());
            labels.insert(
                LABEL_PID_START.to_string(),
                parts.next().unwrap_or("").to_string(),
            );
            if daemon::owner_alive(&labels) || words.first() != Some(&"-A") {
                continue;
            }
            let mut delete = vec!["-D"];
            delete.extend_from_slice(&words[1..]);
            if iptables(&delete).await.is_ok() {
                removed += 1;
            }
        }
        removed
    }
}

/// Everything one call with a network grant holds: its address, its proxy session and its
/// firewall rule. [`CallEgress::finish`] (or dropping it) deletes the rule and ends the
/// session; the lease goes last.
#[derive(Debug)]
pub struct CallEgress {
    /// The container's address.
    pub address: Ipv4Addr,
    /// The call's proxy listener (on the gateway).
    pub proxy: SocketAddr,
    session: Option<Session>,
    rule: Vec<String>,
    revoked: bool,
    _lease: Lease,
}

impl CallEgress {
    /// Sets up the network side of one call: network, firewall, address, listener, rule.
    pub async fn open(
        docker: &Docker,
        net: &EgressNetwork,
        proxy: &EgressProxy,
        execution_id: &str,
        policy: &NetworkPolicy,
        call: &str,
        seed: u64,
    ) -> Result<CallEgress> {
        // The network first: a name that is not Slovo's network is refused before the
        // firewall hooks anything to its bridge.
        let in_use = ensure_network(docker, net).await?;
        firewall::ensure(net).await?;
        let lease = Lease::take(net, &in_use, seed)?;
        firewall::purge_source(net, lease.address).await?;
        let session = proxy
            .listen_for(
                SocketAddr::new(IpAddr::V4(net.gateway()), 0),
                IpAddr::V4(lease.address),
                CallGrant {
                    execution_id: execution_id.to_string(),
                    policy: policy.clone(),
                },
            )
            .await
            .map_err(|e| unenforceable(format!("the call's proxy listener: {e}")))?;
        let listener = session.local_addr();
        let rule = firewall::rule(net, lease.address, listener, &firewall::tag(call));
        firewall::allow(&rule).await?;
        tracing::debug!(address = %lease.address, proxy = %listener, "egress prepared for a container");
        Ok(CallEgress {
            address: lease.address,
            proxy: listener,
            session: Some(session),
            rule,
            revoked: false,
            _lease: lease,
        })
    }

    /// Ends the call's proxy session now (its listener closed, every connection cut) and
    /// returns what it refused; the firewall rule goes with [`CallEgress::finish`] or the drop.
    /// A warm MCP server's call is recorded at its answer, before its container is removed.
    pub fn end_session(&mut self) -> Vec<NetworkDenial> {
        self.session.take().map(Session::finish).unwrap_or_default()
    }

    /// Deletes the call's rule, ends its session (cutting every connection) and returns the
    /// denials. Call it after the container is gone.
    pub async fn finish(mut self) -> Vec<NetworkDenial> {
        if let Err(e) = firewall::revoke(&self.rule).await {
            tracing::warn!(error = %e, "failed to delete a call's egress rule; start-up cleanup will");
        }
        self.revoked = true;
        self.session.take().map(Session::finish).unwrap_or_default()
    }
}

impl Drop for CallEgress {
    fn drop(&mut self) {
        if !self.revoked {
            firewall::revoke_blocking(&self.rule);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_of_the_default_network() {
        let net = EgressNetwork::default();
        assert_eq!(net.cidr(), "172.31.240.0/20");
        assert_eq!(net.gateway(), Ipv4Addr::new(172, 31, 240, 1));
        let hosts = net.hosts();
        assert_eq!(Ipv4Addr::from(*hosts.start()), Ipv4Addr::new(172, 31, 240, 2));
        assert_eq!(Ipv4Addr::from(*hosts.end()), Ipv4Addr::new(172, 31, 255, 254));
    }

    #[test]
    fn a_call_rule_names_source_listener_and_call() {
        let rule = firewall::rule(
            &EgressNetwork::default(),
            Ipv4Addr::new(172, 31, 240, 9),
            "172.31.240.1:4321".parse().unwrap(),
            "slovo-call:1:2:3",
        );
        assert_eq!(
            rule.join(" "),
            "SLOVO-EGRESS -s 172.31.240.9/32 -d 172.31.240.1/32 -i slovo-egress0 -p tcp -m tcp --dport 4321 \
             -m comment --comment slovo-call:1:2:3 -j ACCEPT"
        );
    }

    #[test]
    fn invalid_networks_are_refused() {
        let net = EgressNetwork {
            prefix: 31,
            ..EgressNetwork::default()
        };
        assert!(net.check().is_err());
        let net = EgressNetwork {
            bridge: "a-very-long-bridge-name".into(),
            ..EgressNetwork::default()
        };
        assert!(net.check().is_err());
    }
}
