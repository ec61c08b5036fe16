//! Network grants: the tool reaches granted hosts through the egress proxy and nothing else.
//!
//! The "outside" is a test host in a network namespace this test creates, reached over a
//! veth pair at a TEST-NET-2 address (198.51.100.0/24) that the proxy is told to treat as
//! public. The host's own services are listeners on 127.0.0.1. Nothing leaves this machine.

use std::net::{TcpListener, UdpSocket};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use slovo_core::HostPattern;
use slovo_core::execution::{NetworkDenial, NetworkPolicy, Outcome};
use slovo_core::manifest::Execution;
use slovo_egress::StaticResolver;

use super::support::*;
use crate::netns_support::{Outside, Scene, no_datagram, nothing_arrived};
use crate::require_root;

/// The world of one test: an outside host with an HTTP server and a DNS-port UDP socket, the
/// host's own loopback services, and a sandbox whose proxy knows the test names.
struct World {
    sb: Sandbox,
    outside: Outside,
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
    outside_udp: UdpSocket,
    host_tcp: TcpListener,
    host_udp: UdpSocket,
    resolver: Arc<StaticResolver>,
}

impl World {
    fn new() -> World {
        let Scene {
            outside,
            port,
            heads,
            outside_udp,
            host_tcp,
            host_udp,
            resolver,
            proxy,
        } = Scene::new(Outside::new('p', 0, 32), "127.0.0.1", "198.51.100.0/24");
        let mut sb = Sandbox::new();
        sb.backend.set_egress(proxy);
        World {
            sb,
            outside,
            port,
            heads,
            outside_udp,
            host_tcp,
            host_udp,
            resolver,
        }
    }

    fn granted(&self) -> NetworkPolicy {
        NetworkPolicy::AllowList {
            hosts: vec!["granted.test".parse::<HostPattern>().unwrap()],
        }
    }

    /// Runs `hostile ARGS…` with `policy`; the call must succeed.
    async fn run(&self, policy: NetworkPolicy, args: &[&str]) -> (Value, Vec<NetworkDenial>) {
        let mut spec = self.sb.spec("net", args);
        spec.network = policy;
        let o: Outcome = self.sb.run(&spec).await;
        assert_eq!(o.status.as_str(), "success", "{args:?}: {o:#?}");
        (o.output.unwrap_or(Value::Null), o.network_denials)
    }

    /// Sends `request` through the proxy from inside the sandbox; returns the proxy's answer.
    async fn through_proxy(&self, policy: NetworkPolicy, request: &str) -> (String, Vec<NetworkDenial>) {
        let (v, d) = self.run(policy, &["proxy", request]).await;
        assert_eq!(v["errno"], json!(0), "{v}");
        (v["response"].as_str().unwrap_or_default().to_string(), d)
    }

    fn requests(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn a_granted_host_is_reached_through_the_proxy() {
    require_root!();
    let w = World::new();
    let p = w.port;
    // Plain HTTP forwarding.
    let req = format!(
        "GET http://granted.test:{p}/hello HTTP/1.1\r\nHost: granted.test:{p}\r\nConnection: close\r\n\r\n"
    );
    let (resp, denials) = w.through_proxy(w.granted(), &req).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.ends_with("outside says /hello"), "{resp}");
    assert_eq!(denials, vec![]);
    // A CONNECT tunnel.
    let req = format!(
        "CONNECT granted.test:{p} HTTP/1.1\r\nHost: granted.test:{p}\r\n\r\nGET /tunnel HTTP/1.1\r\nHost: granted.test:{p}\r\nConnection: close\r\n\r\n"
    );
    let (resp, _) = w.through_proxy(w.granted(), &req).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.ends_with("outside says /tunnel"), "{resp}");
    assert_eq!(w.requests().len(), 2);
}

#[tokio::test]
async fn a_granted_tool_has_no_route_around_the_proxy() {
    require_root!();
    let w = World::new();
    let port = w.port.to_string();
    // Raw TCP to the very host it is granted, by address, ignoring the proxy variables.
    let (v, _) = w.run(w.granted(), &["connect", &w.outside.addr, &port]).await;
    assert_eq!(v, json!({"errno": libc::ENETUNREACH}));
    // The host's own services.
    let host_port = w.host_tcp.local_addr().unwrap().port().to_string();
    let (v, _) = w
        .run(NetworkPolicy::Public, &["connect", "127.0.0.1", &host_port])
        .await;
    assert_eq!(v, json!({"errno": libc::ECONNREFUSED}));
    nothing_arrived(&w.host_tcp);
    // UDP: a DNS query carrying data, to a resolver outside and to one on the host.
    let (v, _) = w
        .run(w.granted(), &["udp", &w.outside.addr, "53", "secret.exfil.test"])
        .await;
    assert_eq!(v, json!({"errno": libc::ENETUNREACH}));
    let host_udp = w.host_udp.local_addr().unwrap().port().to_string();
    let (v, _) = w
        .run(
            NetworkPolicy::Public,
            &["udp", "127.0.0.1", &host_udp, "secret.exfil.test"],
        )
        .await;
    // Sent on the sandbox's own loopback, where nothing listens: it never reaches the host.
    assert_eq!(v["errno"], json!(0), "{v}");
    no_datagram(&w.outside_udp);
    no_datagram(&w.host_udp);
    assert_eq!(w.requests().len(), 0);
}

#[tokio::test]
async fn ungranted_and_inside_hosts_and_a_mismatched_host_header_are_refused_and_recorded() {
    require_root!();
    let w = World::new();
    let p = w.port;
    let host_port = w.host_tcp.local_addr().unwrap().port();
    let connect = |target: &str, host: &str| format!("CONNECT {target} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let cases = [
        // Not in the allow list (and so never resolved).
        connect(&format!("other.test:{p}"), &format!("other.test:{p}")),
        // Granted name, but the Host header names another host.
        connect(&format!("granted.test:{p}"), &format!("other.test:{p}")),
        // Plain HTTP: absolute URI for the granted host, Host header for another.
        format!("GET http://granted.test:{p}/ HTTP/1.1\r\nHost: other.test:{p}\r\nConnection: close\r\n\r\n"),
    ];
    for req in &cases {
        let (resp, _) = w.through_proxy(w.granted(), req).await;
        assert!(resp.starts_with("HTTP/1.1 403"), "{req}: {resp}");
    }
    // With internet access: a name resolving to the host's loopback, and the address itself.
    let inside_grant = NetworkPolicy::Public;
    for target in [
        format!("inside.test:{host_port}"),
        format!("127.0.0.1:{host_port}"),
    ] {
        let (resp, denials) = w
            .through_proxy(inside_grant.clone(), &connect(&target, &target))
            .await;
        assert!(resp.starts_with("HTTP/1.1 403"), "{target}: {resp}");
        assert_eq!(denials.len(), 1, "{denials:?}");
        assert!(denials[0].reason.contains("not a public address"), "{denials:?}");
    }
    nothing_arrived(&w.host_tcp);
    assert_eq!(w.requests().len(), 0);
    assert!(!w.resolver.asked().contains(&"other.test".to_string()));

    // Every refusal of one call is on its outcome, with host, port and reason.
    let mut spec = w.sb.spec("net", &["proxy", &cases[0]]);
    spec.network = w.granted();
    let o = w.sb.run(&spec).await;
    assert_eq!(
        o.network_denials,
        vec![NetworkDenial {
            host: "other.test".into(),
            port: p,
            reason: format!("other.test:{p} is not in the grant's allow list (granted.test)"),
        }]
    );
}

#[tokio::test]
async fn a_tool_following_a_redirect_to_an_ungranted_host_is_refused() {
    require_root!();
    let w = World::new();
    let p = w.port;
    // Debian's python3 urllib: honours http_proxy and follows redirects by itself.
    let script = format!(
        "import json, urllib.request, urllib.error\n\
         try:\n    r = urllib.request.urlopen('http://granted.test:{p}/redirect?to=http://other.test:{p}/stolen', timeout=5)\n    \
         print(json.dumps({{'status': r.status, 'body': r.read().decode()}}))\n\
         except urllib.error.HTTPError as e:\n    print(json.dumps({{'status': e.code, 'url': e.url}}))\n"
    );
    let mut spec = w.sb.spec("py", &[]);
    spec.execution = Execution::Process {
        command: vec![
            "hostile".into(),
            "exec".into(),
            "/usr/bin/python3".into(),
            "-c".into(),
            script,
        ],
        system_paths: true,
    };
    spec.network = w.granted();
    let o = w.sb.run(&spec).await;
    assert_eq!(o.status.as_str(), "success", "{o:#?}");
    assert_eq!(
        o.output,
        Some(json!({"status": 403, "url": format!("http://other.test:{p}/stolen")}))
    );
    assert_eq!(o.network_denials.len(), 1, "{o:#?}");
    assert_eq!(o.network_denials[0].host, "other.test");
    // The outside host saw the first request only.
    let requests = w.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].starts_with("GET /redirect?to="), "{requests:?}");
}

#[tokio::test]
async fn without_a_grant_there_is_no_proxy_listener() {
    require_root!();
    let w = World::new();
    let (v, _) = w
        .run(NetworkPolicy::None, &["connect", "127.0.0.1", "3128"])
        .await;
    assert_eq!(v, json!({"errno": libc::ECONNREFUSED}));
    let (v, _) = w
        .run(NetworkPolicy::None, &["proxy", "GET / HTTP/1.1\r\n\r\n"])
        .await;
    assert_eq!(v, json!({"errno": libc::ENOENT}));
}
