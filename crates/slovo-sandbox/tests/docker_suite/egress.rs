//! Network grants for containers: a granted container reaches granted hosts through its call's
//! own proxy listener, and nothing else — not the granted host directly, not the host's other
//! services, not another call's listener or container, not a resolver.
//!
//! The "outside" is a test host in a network namespace this test creates, reached over a veth
//! pair at a TEST-NET-2 address (198.51.100.128/25, apart from the process sandbox's suite)
//! that the proxy is told to treat as public. The host's own services are listeners on the
//! host (loopback and the egress network's gateway). Nothing leaves this machine.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::query_parameters::ListContainersOptions;
use serde_json::{Value, json};
use slovo_core::HostPattern;
use slovo_core::execution::{NetworkDenial, NetworkPolicy, Outcome};
use slovo_egress::StaticResolver;
use slovo_sandbox::docker::daemon;
use slovo_sandbox::docker::egress::{EgressNetwork, ensure_network, firewall};

use super::support::*;
use crate::netns_support::{Outside, Scene, no_datagram, nothing_arrived};
use crate::require_docker;

/// The world of one test: an outside host with an HTTP server and a DNS-port UDP socket,
/// host services (TCP and UDP on every address, so on the egress gateway too), and a sandbox
/// whose proxy knows the test names.
struct World {
    sb: Sandbox,
    outside: Outside,
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
    outside_udp: UdpSocket,
    host_tcp: TcpListener,
    host_udp: UdpSocket,
    gateway: String,
    resolver: Arc<StaticResolver>,
}

impl World {
    async fn new() -> World {
        // The host's services like `slovo serve` on 0.0.0.0 or a database: reachable on every
        // host address, the egress gateway included.
        let Scene {
            outside,
            port,
            heads,
            outside_udp,
            host_tcp,
            host_udp,
            resolver,
            proxy,
        } = Scene::new(Outside::new('d', 128, 30), "0.0.0.0", "198.51.100.128/25");
        let sb = Sandbox::new().await;
        sb.backend.set_egress(proxy);
        let gateway = sb.backend.config().egress.gateway().to_string();
        World {
            sb,
            outside,
            port,
            heads,
            outside_udp,
            host_tcp,
            host_udp,
            gateway,
            resolver,
        }
    }

    fn granted(&self) -> NetworkPolicy {
        NetworkPolicy::AllowList {
            hosts: vec!["granted.test".parse::<HostPattern>().unwrap()],
        }
    }

    /// Runs `hostile ARGS…` as `tool` with `policy`; the call must succeed.
    async fn run_as(&self, tool: &str, policy: NetworkPolicy, args: &[&str]) -> (Value, Vec<NetworkDenial>) {
        let mut spec = self.sb.spec(tool, args);
        spec.network = policy;
        let o: Outcome = self.sb.run(&spec).await;
        assert_eq!(o.status.as_str(), "success", "{args:?}: {o:#?}");
        (o.output.unwrap_or(Value::Null), o.network_denials)
    }

    async fn run(&self, policy: NetworkPolicy, args: &[&str]) -> (Value, Vec<NetworkDenial>) {
        self.run_as("net", policy, args).await
    }

    /// Sends `request` through the proxy from inside the container; returns the answer.
    async fn through_proxy(&self, policy: NetworkPolicy, request: &str) -> (String, Vec<NetworkDenial>) {
        let (v, d) = self.run(policy, &["proxy", request]).await;
        assert_eq!(v["errno"], json!(0), "{v}");
        (v["response"].as_str().unwrap_or_default().to_string(), d)
    }

    fn requests(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// The rules of Slovo's egress chain.
fn chain_rules() -> String {
    let out = Command::new("iptables")
        .args(["-w", "-S", &EgressNetwork::default().chain])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The environment of the running container of `execution_id`, waiting (bounded) for it.
async fn env_of_running(execution_id: &str) -> HashMap<String, String> {
    let docker = daemon::connect(daemon::DEFAULT_HOST).await.unwrap();
    let mut filters = HashMap::new();
    filters.insert(
        "label".to_string(),
        vec![format!("dev.slovo.execution={execution_id}")],
    );
    for _ in 0..200 {
        let found = docker
            .list_containers(Some(ListContainersOptions {
                filters: Some(filters.clone()),
                ..Default::default()
            }))
            .await
            .unwrap();
        if let Some(id) = found.first().and_then(|c| c.id.clone()) {
            let inspected = docker.inspect_container(&id, None).await.unwrap();
            let mut env: HashMap<String, String> = inspected
                .config
                .and_then(|c| c.env)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
                .collect();
            if let Some(ip) = inspected
                .network_settings
                .and_then(|n| n.networks)
                .and_then(|n| n.get("slovo-egress").and_then(|e| e.ip_address.clone()))
            {
                env.insert("ADDRESS".into(), ip);
            }
            return env;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the container of {execution_id} never ran");
}

#[tokio::test]
async fn a_granted_host_is_reached_through_the_calls_own_proxy() {
    require_docker!();
    let w = World::new().await;
    let p = w.port;
    // Plain HTTP forwarding.
    let req = format!(
        "GET http://granted.test:{p}/hello HTTP/1.1\r\nHost: granted.test:{p}\r\nConnection: close\r\n\r\n"
    );
    let (resp, denials) = w.through_proxy(w.granted(), &req).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.ends_with("outside says /hello"), "{resp}");
    assert_eq!(denials, vec![]);
    // A CONNECT tunnel, with internet access.
    let req = format!(
        "CONNECT granted.test:{p} HTTP/1.1\r\nHost: granted.test:{p}\r\n\r\nGET /tunnel HTTP/1.1\r\nHost: granted.test:{p}\r\nConnection: close\r\n\r\n"
    );
    let (resp, _) = w.through_proxy(NetworkPolicy::Public, &req).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.ends_with("outside says /tunnel"), "{resp}");
    assert_eq!(w.requests().len(), 2);
    // The proxy variables name the gateway; the container has no IPv6 at all.
    let (v, _) = w
        .run(w.granted(), &["read", "/proc/sys/net/ipv6/conf/all/disable_ipv6"])
        .await;
    assert_eq!(v, json!({"errno": 0, "data": "1."})); // print_safe shows the newline as "."
    w.sb.assert_nothing_left().await;
}

#[tokio::test]
async fn ungranted_and_inside_hosts_are_refused_and_recorded() {
    require_docker!();
    let w = World::new().await;
    let p = w.port;
    let host_port = w.host_tcp.local_addr().unwrap().port();
    let connect = |target: &str| format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    // Not in the allow list (and so never resolved).
    let (resp, denials) = w
        .through_proxy(w.granted(), &connect(&format!("other.test:{p}")))
        .await;
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
    assert_eq!(
        denials,
        vec![NetworkDenial {
            host: "other.test".into(),
            port: p,
            reason: format!("other.test:{p} is not in the grant's allow list (granted.test)"),
        }]
    );
    assert!(!w.resolver.asked().contains(&"other.test".to_string()));
    // With internet access: a name resolving to 127.0.0.1, the address itself, and the
    // egress gateway (the host) by address.
    for target in [
        format!("inside.test:{host_port}"),
        format!("127.0.0.1:{host_port}"),
        format!("{}:{host_port}", w.gateway),
    ] {
        let (resp, denials) = w.through_proxy(NetworkPolicy::Public, &connect(&target)).await;
        assert!(resp.starts_with("HTTP/1.1 403"), "{target}: {resp}");
        assert_eq!(denials.len(), 1, "{denials:?}");
        assert!(denials[0].reason.contains("not a public address"), "{denials:?}");
    }
    nothing_arrived(&w.host_tcp);
    assert_eq!(w.requests().len(), 0);
    w.sb.assert_nothing_left().await;
}

#[tokio::test]
async fn a_granted_container_has_no_route_around_the_proxy() {
    require_docker!();
    let w = World::new().await;
    let port = w.port.to_string();
    // Raw TCP to the very host it is granted, by address, ignoring the proxy variables: the
    // host forwards nothing from the bridge (Slovo's chain answers with a reset).
    let (v, _) = w.run(w.granted(), &["tcp", &w.outside.addr, &port, "3000"]).await;
    assert_eq!(v, json!({"errno": libc::ECONNREFUSED}));
    // A service of the host on the gateway address (not the proxy port): rejected.
    let host_port = w.host_tcp.local_addr().unwrap().port().to_string();
    let (v, _) = w
        .run(NetworkPolicy::Public, &["tcp", &w.gateway, &host_port, "3000"])
        .await;
    assert_eq!(v, json!({"errno": libc::ECONNREFUSED}));
    // The host's loopback is the container's own; the host's address on the daemon's default
    // bridge is the host too.
    let (v, _) = w
        .run(NetworkPolicy::Public, &["connect", "127.0.0.1", &host_port])
        .await;
    assert_eq!(v, json!({"errno": libc::ECONNREFUSED}));
    let (v, _) = w
        .run(NetworkPolicy::Public, &["tcp", "172.17.0.1", &host_port, "3000"])
        .await;
    assert_eq!(v, json!({"errno": libc::ECONNREFUSED}));
    nothing_arrived(&w.host_tcp);
    // UDP carrying data: to a resolver outside, and to a host service on the gateway.
    let (v, _) = w
        .run(w.granted(), &["udp", &w.outside.addr, "53", "secret.exfil.test"])
        .await;
    assert_eq!(v["errno"], json!(0), "{v}"); // sent; the host rejects it
    let host_udp = w.host_udp.local_addr().unwrap().port().to_string();
    let (v, _) = w
        .run(w.granted(), &["udp", &w.gateway, &host_udp, "secret.exfil.test"])
        .await;
    assert_eq!(v["errno"], json!(0), "{v}"); // sent; the firewall rejects it on the host
    no_datagram(&w.outside_udp);
    no_datagram(&w.host_udp);
    assert_eq!(w.requests().len(), 0);
    w.sb.assert_nothing_left().await;
}

#[tokio::test]
async fn dns_queries_reach_no_resolver() {
    require_docker!();
    let w = World::new().await;
    // The gateway is the container's configured DNS server (where the embedded DNS would
    // forward names it does not know): listen there, as a resolver on the host would.
    let docker = daemon::connect(daemon::DEFAULT_HOST).await.unwrap();
    ensure_network(&docker, &w.sb.backend.config().egress)
        .await
        .unwrap();
    let gateway_dns = UdpSocket::bind((w.gateway.as_str(), 53)).unwrap();
    gateway_dns.set_nonblocking(true).unwrap();
    // Through the network's embedded DNS: an outside name, and a name carrying data.
    for name in ["granted.test", "secret-data.exfil.test"] {
        let (v, _) = w
            .run(NetworkPolicy::Public, &["dns", "127.0.0.11", "53", name])
            .await;
        // No answer at all, or an error without any record: never an address.
        let unanswered = v == json!({"errno": libc::EAGAIN});
        let failed = v["errno"] == json!(0) && v["rcode"] != json!(0) && v["answers"] == json!(0);
        assert!(unanswered || failed, "{name}: {v}");
    }
    // Straight to the gateway, and straight to the outside host.
    let (v, _) = w
        .run(
            NetworkPolicy::Public,
            &["dns", &w.gateway, "53", "secret-data.exfil.test"],
        )
        .await;
    // (connected UDP sockets see the firewall's ICMP "administratively prohibited")
    assert_eq!(v, json!({"errno": libc::EHOSTUNREACH}), "the gateway answered");
    let (v, _) = w
        .run(
            w.granted(),
            &["dns", &w.outside.addr, "53", "secret-data.exfil.test"],
        )
        .await;
    assert_eq!(v, json!({"errno": libc::EHOSTUNREACH}));
    no_datagram(&gateway_dns);
    no_datagram(&w.outside_udp);
    w.sb.assert_nothing_left().await;
}

#[tokio::test]
async fn a_container_cannot_use_another_calls_listener_or_reach_its_container() {
    require_docker!();
    let w = World::new().await;
    let mut first = w.sb.spec("first", &["listen", "8080", "10"]);
    first.network = w.granted();
    let first_id = first.execution_id.clone();
    let (first_outcome, (stolen, direct, own)) = tokio::join!(w.sb.run(&first), async {
        let env = env_of_running(&first_id).await;
        let proxy = env["HTTP_PROXY"].trim_start_matches("http://").to_string();
        let (gw, port) = proxy.rsplit_once(':').unwrap();
        assert_eq!(gw, w.gateway);
        // Another call, granted too, connects to the first call's listener…
        let (stolen, _) = w.run_as("second", w.granted(), &["tcp", gw, port, "3000"]).await;
        // …and to the first call's container itself.
        let (direct, _) = w
            .run_as("second", w.granted(), &["tcp", &env["ADDRESS"], "8080", "2000"])
            .await;
        // Control: its own listener works.
        let req = format!(
            "GET http://granted.test:{0}/own HTTP/1.1\r\nHost: granted.test:{0}\r\nConnection: close\r\n\r\n",
            w.port
        );
        let (own, _) = w.run_as("second", w.granted(), &["proxy", &req]).await;
        (stolen, direct, (own, port.to_string()))
    });
    assert_eq!(stolen, json!({"errno": libc::ECONNREFUSED}));
    assert_eq!(direct, json!({"errno": libc::ECONNREFUSED}));
    let (own, first_port) = own;
    assert!(
        own["response"]
            .as_str()
            .unwrap_or_default()
            .starts_with("HTTP/1.1 200"),
        "{own}"
    );
    assert_eq!(first_outcome.status.as_str(), "success", "{first_outcome:#?}");
    assert_eq!(first_outcome.output, Some(json!({"errno": 0, "accepted": 0})));
    // The first call's rule went with it.
    assert!(
        !chain_rules().contains(&format!("--dport {first_port} ")),
        "{}",
        chain_rules()
    );
    w.sb.assert_nothing_left().await;
}

/// Slovo's chain loosened for one listener port as it was before its rules named the bridge:
/// host processes (`lo`) and the daemon's default bridge (`docker0`) reach the listener, so
/// only the proxy's own peer check stands in the way. At the top of Slovo's chain (which
/// `firewall::ensure` leaves in place: it only moves the hooks), for this port alone, so
/// concurrent tests are not affected; deleted on drop.
struct Loosened {
    rules: Vec<Vec<String>>,
}

impl Loosened {
    fn listener(gateway: &str, port: &str) -> Loosened {
        let chain = EgressNetwork::default().chain;
        let destination = format!("{gateway}/32");
        let rules: Vec<Vec<String>> = ["lo", "docker0"]
            .into_iter()
            .map(|interface| {
                [
                    chain.as_str(),
                    "-i",
                    interface,
                    "-d",
                    &destination,
                    "-p",
                    "tcp",
                    "--dport",
                    port,
                    "-j",
                    "ACCEPT",
                ]
                .map(str::to_string)
                .to_vec()
            })
            .collect();
        for rule in &rules {
            let out = Command::new("iptables")
                .args(["-w", "-I", &rule[0], "1"])
                .args(&rule[1..])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        Loosened { rules }
    }
}

impl Drop for Loosened {
    fn drop(&mut self) {
        for rule in &self.rules {
            let _ = Command::new("iptables").args(["-w", "-D"]).args(rule).output();
        }
    }
}

/// From the host's own namespace: connects to `gateway:port` and sends `request`; returns
/// what came back until the connection closed, or why the connection was not made.
fn from_the_host(gateway: &str, port: &str, request: &str) -> Result<String, std::io::ErrorKind> {
    use std::io::{Read, Write};
    let to: SocketAddr = format!("{gateway}:{port}").parse().unwrap();
    let mut s = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(3)).map_err(|e| e.kind())?;
    // Closed already: a failed write is an answer too.
    let _ = s.write_all(request.as_bytes());
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => panic!("the listener kept {to} open"),
            Err(_) => break,
        }
    }
    Ok(String::from_utf8_lossy(&got).into_owned())
}

/// From a container on the daemon's default bridge (`docker0`), another network than Slovo's:
/// `hostile proxy REQUEST` with `HTTP_PROXY` naming the listener.
fn from_the_default_bridge(proxy: &str, request: &str) -> Value {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!(
        "slovo-test-peer-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let out = Command::new("docker")
        .args(["run", "--rm", "--network", "bridge", "--name", &name, "-e"])
        .arg(format!("HTTP_PROXY={proxy}"))
        .args([image(), "/hostile", "proxy", request])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What strangers got from a running call's listener.
struct Strangers {
    host: Result<String, std::io::ErrorKind>,
    default_bridge: Value,
}

/// Runs a granted call that waits until strangers (a host process, a container on the default
/// bridge) have tried its listener, each with a `CONNECT` to the granted host, then asks its
/// own listener for `/own`. With `loosen`, the firewall lets the strangers' packets reach the
/// listener. Checks that nothing of theirs reached the granted host and that the call's own
/// container still did.
async fn strangers_try_a_running_calls_listener(w: &World, loosen: bool) -> Strangers {
    let p = w.port;
    let own = format!(
        "GET http://granted.test:{p}/own HTTP/1.1\r\nHost: granted.test:{p}\r\nConnection: close\r\n\r\n"
    );
    // The call's container waits (bounded) for the host to write /data/go, then uses its proxy.
    let script = r#"export PATH=/shell
i=0
while [ ! -e /data/go ] && [ "$i" -lt 150 ]; do sleep 0.1; i=$((i+1)); done
exec /hostile proxy "$1""#;
    let mut victim = w.sb.spec("victim", &[]);
    victim.execution = slovo_core::manifest::Execution::Docker {
        image: image().to_string(),
        entrypoint: Some(vec![
            "/shell/bash".to_string(),
            "-c".to_string(),
            script.to_string(),
            "victim".to_string(),
            own,
        ]),
    };
    victim.network = w.granted();
    let go = w.sb.state("victim").join("go");
    let id = victim.execution_id.clone();
    let stolen = |path: &str| {
        format!(
            "CONNECT granted.test:{p} HTTP/1.1\r\nHost: granted.test:{p}\r\n\r\nGET /{path} HTTP/1.1\r\nHost: granted.test:{p}\r\nConnection: close\r\n\r\n"
        )
    };
    let (outcome, strangers) = tokio::join!(w.sb.run(&victim), async {
        let env = env_of_running(&id).await;
        let proxy = env["HTTP_PROXY"].clone();
        let (gateway, port) = proxy.trim_start_matches("http://").rsplit_once(':').unwrap();
        assert_eq!(gateway, w.gateway);
        let (gateway, port) = (gateway.to_string(), port.to_string());
        let _loosened = loosen.then(|| Loosened::listener(&gateway, &port));
        let (g, pt, req) = (gateway.clone(), port.clone(), stolen("stolen-by-the-host"));
        let host = tokio::task::spawn_blocking(move || from_the_host(&g, &pt, &req))
            .await
            .unwrap();
        let req = stolen("stolen-from-docker0");
        let default_bridge = tokio::task::spawn_blocking(move || from_the_default_bridge(&proxy, &req))
            .await
            .unwrap();
        std::fs::write(&go, "go").unwrap();
        Strangers { host, default_bridge }
    });
    assert_eq!(outcome.status.as_str(), "success", "{outcome:#?}");
    let output = outcome.output.unwrap_or(Value::Null);
    let response = output["response"].as_str().unwrap_or_default();
    assert!(response.starts_with("HTTP/1.1 200"), "{output}");
    assert!(response.ends_with("outside says /own"), "{output}");
    let requests = w.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].starts_with("GET /own "), "{requests:?}");
    w.sb.assert_nothing_left().await;
    strangers
}

#[tokio::test]
async fn host_processes_and_other_networks_containers_cannot_use_a_calls_listener() {
    require_docker!();
    let w = World::new().await;
    let s = strangers_try_a_running_calls_listener(&w, false).await;
    // Slovo's chain answers both with a reset before the proxy sees them.
    assert_eq!(s.host, Err(std::io::ErrorKind::ConnectionRefused));
    assert_eq!(s.default_bridge, json!({"errno": libc::ECONNREFUSED}));
}

#[tokio::test]
async fn with_the_firewall_loosened_the_listener_still_serves_only_its_container() {
    require_docker!();
    let w = World::new().await;
    let s = strangers_try_a_running_calls_listener(&w, true).await;
    // Connected (the loosened chain let them through), then closed unanswered by the proxy.
    assert_eq!(s.host, Ok(String::new()));
    assert_eq!(s.default_bridge, json!({"errno": 0, "response": ""}));
}

#[tokio::test]
async fn without_a_grant_the_container_has_no_network() {
    require_docker!();
    let w = World::new().await;
    let (v, _) = w
        .run(NetworkPolicy::None, &["proxy", "GET / HTTP/1.1\r\n\r\n"])
        .await;
    assert_eq!(v, json!({"errno": libc::ENOENT}));
    let (v, _) = w
        .run(NetworkPolicy::None, &["tcp", &w.gateway, "53", "2000"])
        .await;
    assert_eq!(v, json!({"errno": libc::ENETUNREACH}));
    let (v, _) = w
        .run(NetworkPolicy::None, &["dns", "127.0.0.11", "53", "granted.test"])
        .await;
    assert_eq!(v, json!({"errno": libc::ECONNREFUSED}));
}

#[tokio::test]
async fn a_network_of_that_name_that_is_not_slovos_refuses_the_call() {
    require_docker!();
    // The daemon's default bridge: not internal, containers talk to each other.
    let sb = Sandbox::with_config(|c| {
        c.egress.name = "bridge".into();
        c.egress.bridge = "docker0".into();
    })
    .await;
    let mut spec = sb.spec("net", &["info"]);
    spec.network = NetworkPolicy::Public;
    let o = sb.run(&spec).await;
    assert_eq!(o.status.as_str(), "failure");
    let error = o.error.unwrap_or_default();
    assert!(
        error.contains("is not Slovo's internal egress network"),
        "{error}"
    );
    assert!(error.contains("it is not internal"), "{error}");
    assert_eq!(o.sandbox_id, None);
    sb.assert_nothing_left().await;
}

#[tokio::test]
async fn rules_of_dead_processes_are_removed() {
    require_docker!();
    let sb = Sandbox::new().await;
    let net = &sb.backend.config().egress;
    firewall::ensure(net).await.unwrap();
    // A pid that cannot exist (above pid_max's ceiling), as a crashed process would leave.
    let tag = "slovo-call:4194305:1:left";
    let rule = firewall::rule(
        net,
        "172.31.255.250".parse().unwrap(),
        SocketAddr::new(net.gateway().into(), 9),
        tag,
    );
    firewall::allow(&rule).await.unwrap();
    assert!(chain_rules().contains(tag));
    sb.backend.remove_leftovers().await.unwrap();
    assert!(!chain_rules().contains(tag), "{}", chain_rules());
}

/// The first rules of a built-in chain and how many of its rules jump to Slovo's chain.
fn hooks_of(builtin: &str, chain: &str) -> (Vec<String>, usize) {
    let out = Command::new("iptables")
        .args(["-w", "-S", builtin])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    let rules: Vec<String> = listed
        .lines()
        .filter(|l| l.starts_with("-A "))
        .map(str::to_string)
        .collect();
    let jumps = rules
        .iter()
        .filter(|l| l.ends_with(&format!(" -j {chain}")))
        .count();
    (rules.into_iter().take(2).collect(), jumps)
}

#[tokio::test]
async fn the_hooks_are_put_back_on_top_once_and_stale_jumps_removed() {
    require_docker!();
    let sb = Sandbox::new().await;
    let net = &sb.backend.config().egress;
    let (chain, bridge, gateway) = (net.chain.as_str(), net.bridge.as_str(), net.gateway());
    let expected_input = vec![
        format!("-A INPUT -i {bridge} -j {chain}"),
        format!("-A INPUT -d {gateway}/32 -m conntrack ! --ctstate RELATED,ESTABLISHED -j {chain}"),
    ];
    firewall::ensure(net).await.unwrap();
    firewall::ensure(net).await.unwrap();
    assert_eq!(hooks_of("INPUT", chain), (expected_input.clone(), 2));
    assert_eq!(hooks_of("FORWARD", chain).1, 1);
    // Something inserted before the hooks, and a stale jump to the chain further down (both
    // for a documentation address that sends nothing here).
    let before = ["-s", "192.0.2.2/32", "-j", "ACCEPT"];
    let stale = ["-s", "192.0.2.1/32", "-j", chain];
    let iptables = |args: &[&str]| {
        let out = Command::new("iptables").arg("-w").args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    iptables(&[&["-I", "INPUT", "1"][..], &before].concat());
    iptables(&[&["-A", "INPUT"][..], &stale].concat());
    firewall::ensure(net).await.unwrap();
    let repaired = hooks_of("INPUT", chain);
    iptables(&[&["-D", "INPUT"][..], &before].concat());
    assert_eq!(repaired, (expected_input, 2));
}
