//! CPU time and peak memory of one container, kept after it exits.
//!
//! # Why a parent cgroup per call
//! The daemon's cgroup of a container disappears the moment the container exits, and the
//! stats API of a stopped container reports nothing, so figures read "after the call" would be
//! empty. Each call's container is therefore created under a cgroup parent of its own
//! (`<root>/<call>`, cgroupfs driver). The kernel charges CPU time and memory hierarchically,
//! so the parent still holds the container's total CPU time and memory high-water mark after
//! the container is gone; the backend reads them, then removes the parent in every hierarchy.
//!
//! The parent carries no limits of its own (the container's cgroup does), so this changes no
//! enforcement. With the systemd cgroup driver, or where the cgroup file system cannot be
//! written, accounting is off and the figures are absent.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the per-call parents live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// cgroup v1: each hierarchy's mount point; memory and cpuacct locate the figures.
    V1 {
        /// Mount points of every v1 hierarchy (cleanup removes the parent in each).
        hierarchies: Vec<PathBuf>,
        /// The memory hierarchy.
        memory: PathBuf,
        /// The cpuacct hierarchy.
        cpuacct: PathBuf,
    },
    /// cgroup v2: the unified mount point.
    V2 {
        /// The mount point.
        mount: PathBuf,
    },
}

impl Layout {
    /// The host's layout, for a daemon that reported cgroup `version` ("1" or "2").
    pub fn detect(version: &str) -> Option<Layout> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let mounts = crate::linux::mountinfo::cgroup_mounts(&mountinfo);
        if version == "2" {
            let mount = mounts.into_iter().find(|(_, t, _)| t == "cgroup2")?.0;
            return Some(Layout::V2 { mount });
        }
        let mut hierarchies = Vec::new();
        let (mut memory, mut cpuacct) = (None, None);
        for (mp, fstype, opts) in mounts {
            if fstype == "cgroup2" {
                // Hybrid hosts: runc creates the container's directory in the v2 mount too.
                if !hierarchies.contains(&mp) {
                    hierarchies.push(mp);
                }
                continue;
            }
            if fstype != "cgroup" {
                continue;
            }
            if opts.iter().any(|o| o == "memory") {
                memory = Some(mp.clone());
            }
            if opts.iter().any(|o| o == "cpuacct") {
                cpuacct = Some(mp.clone());
            }
            if !hierarchies.contains(&mp) {
                hierarchies.push(mp);
            }
        }
        Some(Layout::V1 {
            hierarchies,
            memory: memory?,
            cpuacct: cpuacct?,
        })
    }

    fn dirs(&self, rel: &str) -> Vec<PathBuf> {
        match self {
            Layout::V1 { hierarchies, .. } => hierarchies.iter().map(|h| h.join(rel)).collect(),
            Layout::V2 { mount } => vec![mount.join(rel)],
        }
    }
}

/// The figures of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    /// CPU time (ms).
    pub cpu_ms: Option<u64>,
    /// Memory high-water mark (bytes).
    pub peak_memory_bytes: Option<u64>,
}

/// One call's parent cgroup: `cgroup_parent` for the daemon, figures and removal afterwards.
#[derive(Debug)]
pub struct CallCgroup {
    layout: Layout,
    rel: String,
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn read_keyed(path: &Path, key: &str) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
}

impl CallCgroup {
    /// The parent `<root>/<name>` (relative to each hierarchy's root, e.g. `/slovo-docker/x`).
    /// Directories are created by the runtime (runc) with the container; this only names them.
    pub fn new(layout: &Layout, root: &str, name: &str) -> CallCgroup {
        CallCgroup {
            layout: layout.clone(),
            rel: format!("{}/{}", root.trim_matches('/'), name),
        }
    }

    /// The value of `HostConfig.CgroupParent`.
    pub fn parent(&self) -> String {
        format!("/{}", self.rel)
    }

    /// Reads the figures (after the container has exited).
    pub fn figures(&self) -> Figures {
        match &self.layout {
            Layout::V1 { memory, cpuacct, .. } => Figures {
                cpu_ms: read_u64(&cpuacct.join(&self.rel).join("cpuacct.usage")).map(|ns| ns / 1_000_000),
                peak_memory_bytes: read_u64(&memory.join(&self.rel).join("memory.max_usage_in_bytes")),
            },
            Layout::V2 { mount } => {
                let dir = mount.join(&self.rel);
                Figures {
                    cpu_ms: read_keyed(&dir.join("cpu.stat"), "usage_usec ").map(|us| us / 1000),
                    peak_memory_bytes: read_u64(&dir.join("memory.peak")),
                }
            }
        }
    }

    /// Kills every process still in the parent (the container's cgroup included), then
    /// removes the parent in every hierarchy, deepest directories first. Returns how many
    /// processes had to be killed: a process the container runtime lost track of survives the
    /// container's removal (a tool that made itself traced by the runtime's shim is one), and
    /// only its cgroup still knows it.
    pub async fn remove(self) -> usize {
        let killed = kill_tree(&self.layout, &self.rel).await;
        for dir in self.layout.dirs(&self.rel) {
            remove_tree(&dir).await;
        }
        killed
    }

    /// Kills the processes and removes the parents left under `root` by calls of processes
    /// that are gone (`<pid>-…` names whose pid is not alive); returns how many parents.
    pub async fn remove_leftovers(layout: &Layout, root: &str) -> usize {
        let root = root.trim_matches('/');
        let mut names = Vec::new();
        for base in layout.dirs(root) {
            let Ok(entries) = std::fs::read_dir(&base) else {
                continue;
            };
            for e in entries.flatten() {
                if !e.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let name = e.file_name().to_string_lossy().into_owned();
                // Only the names this backend gives: `<pid>-<call number>`.
                let Some((pid, n)) = name.split_once('-') else {
                    continue;
                };
                if n.parse::<u64>().is_err() {
                    continue;
                }
                let pid = pid.parse::<u32>().ok();
                let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
                if !alive && !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        for name in &names {
            CallCgroup::new(layout, root, name).remove().await;
        }
        names.len()
    }
}

/// The directory whose `cgroup.procs` files list the processes (any v1 hierarchy holds them
/// all; memory is always there).
fn procs_root(layout: &Layout, rel: &str) -> PathBuf {
    match layout {
        Layout::V1 { memory, .. } => memory.join(rel),
        Layout::V2 { mount } => mount.join(rel),
    }
}

fn procs_in(dir: &Path, out: &mut Vec<i32>) {
    if let Ok(s) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                procs_in(&e.path(), out);
            }
        }
    }
}

async fn kill_tree(layout: &Layout, rel: &str) -> usize {
    let root = procs_root(layout, rel);
    let mut killed = 0;
    for _ in 0..200 {
        let mut pids = Vec::new();
        procs_in(&root, &mut pids);
        if pids.is_empty() {
            break;
        }
        for pid in &pids {
            // SAFETY: kill(2) on a pid read from the call's own cgroup.
            if unsafe { libc::kill(*pid, libc::SIGKILL) } == 0 {
                killed += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if killed > 0 {
        tracing::warn!(
            cgroup = rel,
            killed,
            "killed processes that outlived their container"
        );
    }
    killed
}

/// Removes `dir` and the cgroups below it, deepest first (retrying while the kernel lets go).
async fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                Box::pin(remove_tree(&e.path())).await;
            }
        }
    }
    for attempt in 0..100 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) if attempt == 99 || e.raw_os_error() != Some(libc::EBUSY) => {
                tracing::warn!(dir = %dir.display(), error = %e, "failed to remove a call's cgroup");
                return;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}
