//! The container of one call, as plain data: every hardening flag is decided here, by pure
//! functions, so that what a call runs with can be read (and tested) in one place.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, HostConfigLogConfig, Mount,
    MountBindOptions, MountBindOptionsPropagationEnum, MountType, NetworkingConfig,
};

use crate::{NetworkPolicy, SandboxSpec};

/// The label every container of this backend carries (value `1`).
pub const LABEL_MANAGED: &str = "dev.slovo.managed";
/// The label with the pid of the process that created the container.
pub const LABEL_PID: &str = "dev.slovo.pid";
/// The label with that process's start time (clock ticks since boot), against pid reuse.
pub const LABEL_PID_START: &str = "dev.slovo.pid-start";
/// The label with the tool's name.
pub const LABEL_TOOL: &str = "dev.slovo.tool";
/// The label with the execution id.
pub const LABEL_EXECUTION: &str = "dev.slovo.execution";

/// CFS period of every container (µs); the quota is `cpu_percent` of it.
pub const CPU_PERIOD_US: i64 = 100_000;

/// How a call's container is connected, decided from the grant by [`network_for`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    /// `network none`: only the container's own loopback.
    None,
    /// Slovo's internal egress network ([`super::egress`]): the container's only route is
    /// its call's proxy listener.
    Egress {
        /// The Docker network's name.
        network: String,
        /// The container's address on it (leased for the call; the firewall rule names it).
        address: std::net::Ipv4Addr,
        /// The call's proxy listener, on the network's gateway.
        proxy: std::net::SocketAddr,
    },
}

/// Whether a call with `policy` needs the egress network: any grant that allows network
/// access. Without one, the container gets `network none`; a bridge with a route out is
/// never attached.
pub fn needs_egress(policy: &NetworkPolicy) -> bool {
    policy.allows_network()
}

/// The CFS quota (µs per [`CPU_PERIOD_US`]) for `cpu_percent` of one CPU (at least 1 ms).
pub fn cpu_quota_us(cpu_percent: u32) -> i64 {
    (i64::from(cpu_percent) * CPU_PERIOD_US / 100).max(1000)
}

/// What the container of one call is made of, besides the spec.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    /// The image to run, by id (the pinned digest, never a tag that may have moved).
    pub image_id: &'a str,
    /// The manifest's entrypoint override.
    pub entrypoint: Option<&'a [String]>,
    /// The container's command (Docker's `CMD`) instead of the image's, if any.
    pub cmd: Option<&'a [String]>,
    /// Variables for the program besides Slovo's own (`NAME=value`; never `SLOVO_*`: the
    /// manifest's validation refuses them).
    pub env: &'a [String],
    /// The call's capability and execution id are in the environment (`SLOVO_CAPABILITY`,
    /// `SLOVO_EXECUTION_ID`): a docker tool serves one capability of one call; an MCP server
    /// serves whatever `tools/call` asks, and gets neither (as in the process sandbox).
    pub call_env: bool,
    /// `uid:gid` the tool runs as.
    pub user: &'a str,
    /// The host directory mounted at `/data` (the quota-enforced state volume), if any.
    pub data: Option<&'a std::path::Path>,
    /// Size of `/tmp` and `/dev/shm` (MiB).
    pub tmp_mb: u64,
    /// How the container is connected.
    pub network: &'a Network,
    /// The cgroup parent (cgroupfs driver): the call's own accounting cgroup.
    pub cgroup_parent: Option<&'a str>,
    /// Whether the host's cgroups are v1 (`memory.swappiness` exists only there).
    pub cgroup_v1: bool,
    /// The labels.
    pub labels: HashMap<String, String>,
}

/// The create request of one call's container.
pub fn body(spec: &SandboxSpec, plan: &Plan<'_>) -> ContainerCreateBody {
    let limits = &spec.limits;
    let memory = i64::try_from(limits.memory_mb.saturating_mul(1024 * 1024)).unwrap_or(i64::MAX);
    let home = if plan.data.is_some() { "/data" } else { "/tmp" };
    let mut tmpfs = HashMap::new();
    tmpfs.insert(
        "/tmp".to_string(),
        format!("rw,nosuid,nodev,noexec,size={}m,mode=1777", plan.tmp_mb),
    );
    let mounts = plan.data.map(|dir| {
        vec![Mount {
            target: Some("/data".to_string()),
            source: Some(dir.to_string_lossy().into_owned()),
            typ: Some(MountType::BIND),
            read_only: Some(false),
            bind_options: Some(MountBindOptions {
                propagation: Some(MountBindOptionsPropagationEnum::RPRIVATE),
                ..Default::default()
            }),
            ..Default::default()
        }]
    });
    let mut env = vec![
        format!("HOME={home}"),
        "TMPDIR=/tmp".to_string(),
        "LANG=C.UTF-8".to_string(),
    ];
    if plan.call_env {
        env.push(format!("SLOVO_CAPABILITY={}", spec.capability.name));
        env.push(format!("SLOVO_EXECUTION_ID={}", spec.execution_id));
    }
    env.extend(plan.env.iter().cloned());
    let (network_mode, networking_config, dns, sysctls) = match plan.network {
        Network::None => ("none".to_string(), None, None, None),
        Network::Egress {
            network,
            address,
            proxy,
        } => {
            env.extend(crate::proxy_env(*proxy));
            let mut endpoints = HashMap::new();
            endpoints.insert(
                network.clone(),
                EndpointSettings {
                    ipam_config: Some(EndpointIpamConfig {
                        ipv4_address: Some(address.to_string()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            );
            // The embedded DNS forwards names it does not know to these servers: the
            // gateway, where the firewall rejects everything but the proxy port. The tool
            // resolves nothing; the proxy resolves for it.
            let dns = vec![proxy.ip().to_string()];
            // No IPv6 at all: not even a link-local address towards the host's bridge.
            let mut sysctls = HashMap::new();
            sysctls.insert("net.ipv6.conf.all.disable_ipv6".to_string(), "1".to_string());
            sysctls.insert("net.ipv6.conf.default.disable_ipv6".to_string(), "1".to_string());
            (
                network.clone(),
                Some(NetworkingConfig {
                    endpoints_config: Some(endpoints),
                }),
                Some(dns),
                Some(sysctls),
            )
        }
    };
    let host_config = HostConfig {
        network_mode: Some(network_mode.clone()),
        dns,
        sysctls,
        readonly_rootfs: Some(true),
        cap_drop: Some(vec!["ALL".to_string()]),
        cap_add: Some(vec![]),
        security_opt: Some(vec![
            "no-new-privileges".to_string(),
            format!("seccomp={}", super::seccomp::profile_json()),
        ]),
        privileged: Some(false),
        memory: Some(memory),
        // Memory + swap = memory: no swap at all.
        memory_swap: Some(memory),
        memory_swappiness: plan.cgroup_v1.then_some(0),
        cpu_period: Some(CPU_PERIOD_US),
        cpu_quota: Some(cpu_quota_us(limits.cpu_percent)),
        pids_limit: Some(i64::from(limits.pids.max(1))),
        tmpfs: Some(tmpfs),
        shm_size: Some(i64::try_from(plan.tmp_mb.saturating_mul(1024 * 1024)).unwrap_or(i64::MAX)),
        ipc_mode: Some("private".to_string()),
        mounts,
        cgroup_parent: plan.cgroup_parent.map(str::to_string),
        // Output goes to the caller only, never to a log file on the host.
        log_config: Some(HostConfigLogConfig {
            typ: Some("none".to_string()),
            config: None,
        }),
        auto_remove: Some(false),
        init: Some(false),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(plan.image_id.to_string()),
        entrypoint: plan.entrypoint.map(<[String]>::to_vec),
        cmd: plan.cmd.map(<[String]>::to_vec),
        user: Some(plan.user.to_string()),
        hostname: Some("slovo".to_string()),
        env: Some(env),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        open_stdin: Some(true),
        stdin_once: Some(true),
        tty: Some(false),
        network_disabled: Some(network_mode == "none"),
        networking_config,
        labels: Some(plan.labels.clone()),
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// The registry an image reference is pulled from (`docker.io` when it names none).
pub fn registry_of(reference: &str) -> &str {
    match reference.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => first,
        _ => "docker.io",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_grant_needs_the_egress_network() {
        assert!(!needs_egress(&NetworkPolicy::None));
        assert!(needs_egress(&NetworkPolicy::Public));
        assert!(needs_egress(&NetworkPolicy::AllowList { hosts: vec![] }));
    }

    #[test]
    fn cpu_quota_maps_percent_of_one_cpu() {
        assert_eq!(cpu_quota_us(50), 50_000);
        assert_eq!(cpu_quota_us(200), 200_000);
        assert_eq!(cpu_quota_us(0), 1000);
    }

    #[test]
    fn registries() {
        assert_eq!(registry_of("alpine"), "docker.io");
        assert_eq!(registry_of("example/dictionary:2"), "docker.io");
        assert_eq!(registry_of("registry.example.com/a/b:1"), "registry.example.com");
        assert_eq!(registry_of("localhost:5000/x"), "localhost:5000");
    }
}
