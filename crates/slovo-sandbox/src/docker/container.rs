//! The container of one call, as plain data: every hardening flag is decided here, by pure
//! functions, so that what a call runs with can be read (and tested) in one place.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, HostConfig, HostConfigLogConfig, Mount, MountBindOptions,
    MountBindOptionsPropagationEnum, MountType,
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

/// The seam of network access: the Docker network mode for `policy`, or why the call is
/// refused. Today only `none` exists: a tool with a network grant is refused until the egress
/// proxy gives containers their only route (then this function returns the proxy's network,
/// and nothing else changes). A bridge network is never attached.
pub fn network_mode(policy: &NetworkPolicy) -> Result<&'static str, String> {
    if policy.allows_network() {
        return Err(
            "the grant allows network access, but the egress proxy that enforces it is not \
                    available yet; a docker container is never attached to a bridge network"
                .to_string(),
        );
    }
    Ok("none")
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
    /// `uid:gid` the tool runs as.
    pub user: &'a str,
    /// The host directory mounted at `/data` (the quota-enforced state volume), if any.
    pub data: Option<&'a std::path::Path>,
    /// Size of `/tmp` and `/dev/shm` (MiB).
    pub tmp_mb: u64,
    /// The network mode ([`network_mode`]).
    pub network_mode: &'a str,
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
    let host_config = HostConfig {
        network_mode: Some(plan.network_mode.to_string()),
        readonly_rootfs: Some(true),
        cap_drop: Some(vec!["ALL".to_string()]),
        cap_add: Some(vec![]),
        security_opt: Some(vec!["no-new-privileges".to_string()]),
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
        user: Some(plan.user.to_string()),
        hostname: Some("slovo".to_string()),
        env: Some(vec![
            format!("HOME={home}"),
            "TMPDIR=/tmp".to_string(),
            "LANG=C.UTF-8".to_string(),
            format!("SLOVO_CAPABILITY={}", spec.capability.name),
            format!("SLOVO_EXECUTION_ID={}", spec.execution_id),
        ]),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        open_stdin: Some(true),
        stdin_once: Some(true),
        tty: Some(false),
        network_disabled: Some(plan.network_mode == "none"),
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
    fn network_is_none_or_refused() {
        assert_eq!(network_mode(&NetworkPolicy::None), Ok("none"));
        assert!(
            network_mode(&NetworkPolicy::Public)
                .unwrap_err()
                .contains("egress proxy")
        );
        assert!(
            network_mode(&NetworkPolicy::AllowList { hosts: vec![] })
                .unwrap_err()
                .contains("bridge")
        );
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
