//! `slovo doctor`: what this host provides for sandboxing, and what each backend will do.
//!
//! Backends never run silently weaker: where a feature is missing, the report says which
//! backend refuses, or which protection a configured weaker tier leaves off.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// A backend's verdict on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Runs with every protection it promises.
    Ready,
    /// Runs only because a weaker tier is configured; `cannot_enforce` lists what is off.
    Weaker,
    /// Refuses every call; `detail` says why.
    Refuses,
    /// Not available on this host (no daemon, not built, …).
    Unavailable,
}

/// What one backend will do here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendReport {
    /// `process`, `wasm`, `docker` or `http`.
    pub kind: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, for a person.
    pub detail: String,
    /// Protections that are not enforced on this host (with a weaker tier) or would not be.
    pub cannot_enforce: Vec<String>,
}

/// What this host provides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostReport {
    /// `uname -r`.
    pub kernel: String,
    /// Running as uid 0.
    pub root: bool,
    /// `user.max_user_namespaces`, if readable.
    pub max_user_namespaces: Option<u64>,
    /// User namespaces can be created.
    pub user_namespaces: bool,
    /// seccomp filters are available.
    pub seccomp: bool,
    /// Landlock ABI version (0: none).
    pub landlock_abi: u32,
    /// `v1`, `v2`, `hybrid` (v1 controllers plus a v2 mount) or `none`.
    pub cgroup_version: String,
    /// Controllers mounted on v1 hierarchies.
    pub cgroup_v1_controllers: Vec<String>,
    /// Controllers available on the v2 hierarchy.
    pub cgroup_v2_controllers: Vec<String>,
    /// `/dev/loop-control` exists.
    pub loop_devices: bool,
    /// `mkfs.ext4` exists.
    pub mkfs_ext4: bool,
    /// The Docker daemon's socket, if present.
    pub docker_socket: Option<PathBuf>,
    /// `bwrap` (bubblewrap), for reference.
    pub bubblewrap: Option<PathBuf>,
    /// What each backend will do.
    pub backends: Vec<BackendReport>,
}

fn first_existing(paths: &[&str]) -> Option<PathBuf> {
    paths.iter().map(PathBuf::from).find(|p| p.exists())
}

/// Probes this host, for a process backend with the default configuration (no weaker tier)
/// and the Docker daemon at its default socket.
pub fn probe() -> HostReport {
    probe_with(false, None, DEFAULT_DOCKER_HOST)
}

/// The Docker daemon [`probe`] asks.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// Probes this host, for a process backend with `allow_weaker` and `cgroup_parent`, and the
/// Docker daemon at `docker_host`.
pub fn probe_with(allow_weaker: bool, cgroup_parent: Option<&Path>, docker_host: &str) -> HostReport {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let max_user_namespaces = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v1 = Vec::new();
    let mut v2_mount = None;
    #[cfg(target_os = "linux")]
    for (mp, fstype, opts) in crate::linux::mountinfo::cgroup_mounts(&mountinfo) {
        if fstype == "cgroup2" {
            v2_mount.get_or_insert(mp);
        } else {
            for o in opts {
                if !matches!(o.as_str(), "rw" | "ro") && !o.starts_with("name=") && !o.contains('=') {
                    v1.push(o);
                }
            }
        }
    }
    v1.sort();
    v1.dedup();
    let v2_controllers: Vec<String> = v2_mount
        .as_ref()
        .and_then(|m| std::fs::read_to_string(m.join("cgroup.controllers")).ok())
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let cgroup_version = match (v1.is_empty(), v2_mount.is_some()) {
        (false, true) => "hybrid",
        (false, false) => "v1",
        (true, true) => "v2",
        (true, false) => "none",
    }
    .to_string();
    let docker_socket = first_existing(&["/var/run/docker.sock", "/run/docker.sock"]);
    let mut backends = Vec::new();

    #[cfg(target_os = "linux")]
    let (root, user_namespaces, seccomp, landlock_abi, process) = {
        let support = crate::process::Support::probe(cgroup_parent);
        let report = process_report(&support, allow_weaker);
        (
            support.root,
            support.user_namespaces,
            support.seccomp,
            support.landlock_abi,
            report,
        )
    };
    #[cfg(not(target_os = "linux"))]
    let (root, user_namespaces, seccomp, landlock_abi, process) = {
        let _ = (allow_weaker, cgroup_parent);
        let report = BackendReport {
            kind: "process".into(),
            verdict: Verdict::Unavailable,
            detail: "the process sandbox needs Linux".into(),
            cannot_enforce: vec![],
        };
        (false, false, false, 0, report)
    };
    backends.push(process);
    backends.push(wasm_report());
    backends.push(docker_report(docker_host));
    HostReport {
        kernel,
        root,
        max_user_namespaces,
        user_namespaces,
        seccomp,
        landlock_abi,
        cgroup_version,
        cgroup_v1_controllers: v1,
        cgroup_v2_controllers: v2_controllers,
        loop_devices: Path::new("/dev/loop-control").exists(),
        mkfs_ext4: first_existing(&["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"]).is_some(),
        docker_socket,
        bubblewrap: first_existing(&["/usr/bin/bwrap", "/usr/local/bin/bwrap"]),
        backends,
    }
}

/// The WebAssembly backend needs nothing from the host beyond this build: wasmtime runs in
/// process, and its limits are enforced by the engine, not the kernel.
fn wasm_report() -> BackendReport {
    if cfg!(feature = "wasm") {
        BackendReport {
            kind: "wasm".into(),
            verdict: Verdict::Ready,
            detail: "wasmtime, in process: WASI preview 1 modules precompiled at install; memory, table, \
                     CPU share (epochs) and timeout from the grant; /data with its quota; no sockets"
                .into(),
            cannot_enforce: vec![],
        }
    } else {
        BackendReport {
            kind: "wasm".into(),
            verdict: Verdict::Unavailable,
            detail: "this build has no WebAssembly backend (feature `wasm`)".into(),
            cannot_enforce: vec![],
        }
    }
}

/// The Docker backend's verdict: whether the daemon at `host`
/// answers, asked once, without an async runtime.
fn docker_report(host: &str) -> BackendReport {
    #[cfg(all(feature = "docker", target_os = "linux"))]
    {
        match crate::docker::daemon::probe_blocking(host) {
            Ok(facts) => BackendReport {
                kind: "docker".into(),
                verdict: Verdict::Ready,
                detail: format!(
                    "daemon at {host}: Docker Engine {} (API {}); no network, read-only root, no capabilities, \
                     no-new-privileges, non-root user, memory/CPU/pids limits, /data quota",
                    facts.version, facts.api_version
                ),
                cannot_enforce: vec![],
            },
            Err(reason) => BackendReport {
                kind: "docker".into(),
                verdict: Verdict::Unavailable,
                detail: format!(
                    "no Docker daemon answers at {host} ({reason}); docker tools fail until one runs, \
                     other backends are unaffected"
                ),
                cannot_enforce: vec![],
            },
        }
    }
    #[cfg(not(all(feature = "docker", target_os = "linux")))]
    BackendReport {
        kind: "docker".into(),
        verdict: Verdict::Unavailable,
        detail: "this build has no Docker backend (feature `docker`, Linux only)".into(),
        cannot_enforce: vec![],
    }
}

#[cfg(target_os = "linux")]
fn process_report(support: &crate::process::Support, allow_weaker: bool) -> BackendReport {
    let mut cannot: Vec<String> = support.weaker_missing().into_iter().map(str::to_string).collect();
    if !support.root {
        cannot.push(
            "running as non-root: tools run as the invoking user's uid on the host (inside a user \
             namespace), not as a dedicated unprivileged uid"
                .to_string(),
        );
    }
    let (verdict, detail) = match support.refusal(allow_weaker) {
        Some(r) => (Verdict::Refuses, r),
        None if cannot.is_empty() => (
            Verdict::Ready,
            format!(
                "user, mount, PID, network, IPC, UTS and cgroup namespaces; pivot_root; seccomp; \
                 landlock ABI {}; cgroup {} limits; storage quota",
                support.landlock_abi,
                match &support.cgroups {
                    Some(crate::process::cgroups::Hierarchy::V1 { .. }) => "v1",
                    Some(crate::process::cgroups::Hierarchy::V2 { .. }) => "v2",
                    None => "no",
                }
            ),
        ),
        None => (
            Verdict::Weaker,
            "running a weaker tier, as configured (allow_weaker)".to_string(),
        ),
    };
    BackendReport {
        kind: "process".into(),
        verdict,
        detail,
        cannot_enforce: cannot,
    }
}

impl HostReport {
    /// A human rendering, one fact per line.
    pub fn render(&self) -> String {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        let mut s = String::new();
        s.push_str("Host\n");
        s.push_str(&format!("  kernel:            {}\n", self.kernel));
        s.push_str(&format!("  running as root:   {}\n", yes(self.root)));
        s.push_str(&format!(
            "  user namespaces:   {}{}\n",
            yes(self.user_namespaces),
            self.max_user_namespaces
                .map(|n| format!(" (max {n})"))
                .unwrap_or_default()
        ));
        s.push_str(&format!("  seccomp:           {}\n", yes(self.seccomp)));
        s.push_str(&format!(
            "  landlock:          {}\n",
            if self.landlock_abi == 0 {
                "no".to_string()
            } else {
                format!("ABI {}", self.landlock_abi)
            }
        ));
        s.push_str(&format!("  cgroups:           {}\n", self.cgroup_version));
        s.push_str(&format!(
            "    v1 controllers:  {}\n",
            list(&self.cgroup_v1_controllers)
        ));
        s.push_str(&format!(
            "    v2 controllers:  {}\n",
            list(&self.cgroup_v2_controllers)
        ));
        s.push_str(&format!("  loop devices:      {}\n", yes(self.loop_devices)));
        s.push_str(&format!("  mkfs.ext4:         {}\n", yes(self.mkfs_ext4)));
        s.push_str(&format!(
            "  docker socket:     {}\n",
            self.docker_socket
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "absent".into())
        ));
        s.push_str(&format!(
            "  bubblewrap:        {}\n",
            self.bubblewrap
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "absent".into())
        ));
        s.push_str("Backends\n");
        for b in &self.backends {
            let v = match b.verdict {
                Verdict::Ready => "ready",
                Verdict::Weaker => "WEAKER",
                Verdict::Refuses => "REFUSES",
                Verdict::Unavailable => "unavailable",
            };
            s.push_str(&format!("  {:<8} {v}: {}\n", b.kind, b.detail));
            for c in &b.cannot_enforce {
                s.push_str(&format!("           cannot enforce: {c}\n"));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_renders_every_backend() {
        let r = probe();
        let text = r.render();
        println!("{text}");
        assert!(text.contains("process"), "{text}");
        assert!(text.contains("docker"), "{text}");
        assert!(serde_json::to_value(&r).is_ok());
    }
}
