//! Control groups: memory (no swap), CPU share and pids limits, and the accounting of one call.
//!
//! # Why one cgroup per call
//! A fresh cgroup makes the figures exact (CPU time and peak memory of this call only), an
//! out-of-memory kill attributable (`oom_kill` counter of this cgroup), and cleanup certain:
//! when the directory can be removed, nothing of the call is left running.
//!
//! # v1 and v2
//! Both sit behind [`CallCgroup`]. cgroup v1 (this project's reference machine) has one
//! hierarchy per controller, so a call has a directory in each of `memory`, `cpu`, `cpuacct`
//! and `pids`; v2 has one directory. Per-call directories are created under the cgroup of the
//! process running the backend (or an explicitly configured parent), never at the root, so
//! the limits of whoever runs Slovo also bound its tools. The settings are the pure functions
//! [`v1_settings`] and [`v2_settings`].

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use super::error::{ProcessError, Result};
use super::keeper::Keeper;
use crate::ResourceLimits;

/// A v1 controller the backend uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Controller {
    /// Memory limit, peak, OOM kills.
    Memory,
    /// CPU bandwidth (quota/period).
    Cpu,
    /// CPU time used.
    Cpuacct,
    /// Number of tasks.
    Pids,
}

impl Controller {
    /// Every controller, in the order directories are created.
    pub const ALL: [Controller; 4] = [
        Controller::Memory,
        Controller::Cpu,
        Controller::Cpuacct,
        Controller::Pids,
    ];

    /// The kernel's name.
    pub fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Cpu => "cpu",
            Controller::Cpuacct => "cpuacct",
            Controller::Pids => "pids",
        }
    }
}

const CPU_PERIOD_US: u64 = 100_000;

/// The files written to a v1 call cgroup, in order.
pub fn v1_settings(
    limits: &ResourceLimits,
    swap_accounting: bool,
) -> Vec<(Controller, &'static str, String)> {
    let bytes = limits.memory_mb.saturating_mul(1024 * 1024).to_string();
    let mut out = vec![
        (Controller::Memory, "memory.limit_in_bytes", bytes.clone()),
        (Controller::Memory, "memory.swappiness", "0".to_string()),
    ];
    if swap_accounting {
        out.push((Controller::Memory, "memory.memsw.limit_in_bytes", bytes));
    }
    // cpu.cfs_period_us of a new cgroup is the kernel's default, CPU_PERIOD_US.
    out.push((
        Controller::Cpu,
        "cpu.cfs_quota_us",
        cpu_quota_us(limits.cpu_percent).to_string(),
    ));
    out.push((Controller::Pids, "pids.max", limits.pids.max(1).to_string()));
    out
}

/// The files written to a v2 call cgroup, in order.
pub fn v2_settings(limits: &ResourceLimits) -> Vec<(&'static str, String)> {
    vec![
        (
            "memory.max",
            limits.memory_mb.saturating_mul(1024 * 1024).to_string(),
        ),
        ("memory.swap.max", "0".to_string()),
        ("memory.oom.group", "1".to_string()),
        (
            "cpu.max",
            format!("{} {CPU_PERIOD_US}", cpu_quota_us(limits.cpu_percent)),
        ),
        ("pids.max", limits.pids.max(1).to_string()),
    ]
}

fn cpu_quota_us(percent: u32) -> u64 {
    // 1% is the smallest share the kernel's minimum quota (1 ms) allows comfortably.
    u64::from(percent.max(1)) * CPU_PERIOD_US / 100
}

/// What the cgroup measured for one call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// CPU time (ms).
    pub cpu_ms: Option<u64>,
    /// Peak memory (bytes).
    pub peak_memory_bytes: Option<u64>,
    /// Processes killed by the OOM killer.
    pub oom_kills: u64,
    /// Times a fork failed on the pids limit.
    pub pids_max_hits: u64,
}

/// Where per-call cgroups are created on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "version", rename_all = "lowercase")]
pub enum Hierarchy {
    /// cgroup v1: one parent directory per controller.
    V1 {
        /// `(controller, parent directory)`.
        parents: Vec<(Controller, PathBuf)>,
        /// `memory.memsw.*` exists, so swap can be limited.
        swap_accounting: bool,
    },
    /// cgroup v2: one parent directory with memory, cpu and pids delegated.
    V2 {
        /// The parent directory.
        parent: PathBuf,
    },
}

/// `/proc/self/cgroup` as `(controllers, path)`; v2 has empty controllers.
pub fn parse_proc_cgroup(text: &str) -> Vec<(Vec<String>, String)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            let ctrls = it.next()?;
            let path = it.next()?;
            let ctrls = if ctrls.is_empty() {
                Vec::new()
            } else {
                ctrls.split(',').map(str::to_string).collect()
            };
            Some((ctrls, path.to_string()))
        })
        .collect()
}

/// Finds the hierarchy from the texts of `/proc/self/mountinfo` and `/proc/self/cgroup`.
/// `parent_override` (relative to each hierarchy's root) replaces the process's own cgroup.
pub fn detect_from(mountinfo: &str, proc_cgroup: &str, parent_override: Option<&Path>) -> Option<Hierarchy> {
    let mounts = crate::linux::mountinfo::cgroup_mounts(mountinfo);
    let own = parse_proc_cgroup(proc_cgroup);
    let rel = |p: &str| -> PathBuf {
        let p = parent_override
            .map(|o| o.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.to_string());
        PathBuf::from(p.trim_start_matches('/'))
    };
    let mut parents = Vec::new();
    for c in Controller::ALL {
        let Some((mp, _, _)) = mounts
            .iter()
            .find(|(_, t, opts)| t == "cgroup" && opts.iter().any(|o| o == c.name()))
        else {
            break;
        };
        let Some((_, path)) = own.iter().find(|(ctrls, _)| ctrls.iter().any(|x| x == c.name())) else {
            break;
        };
        parents.push((c, mp.join(rel(path))));
    }
    if parents.len() == Controller::ALL.len() {
        let swap_accounting = parents
            .iter()
            .find(|(c, _)| *c == Controller::Memory)
            .is_some_and(|(_, p)| p.join("memory.memsw.limit_in_bytes").exists());
        return Some(Hierarchy::V1 {
            parents,
            swap_accounting,
        });
    }
    let (mp, _, _) = mounts.iter().find(|(_, t, _)| t == "cgroup2")?;
    let (_, path) = own.iter().find(|(ctrls, _)| ctrls.is_empty())?;
    let parent = mp.join(rel(path));
    let controllers = fs::read_to_string(parent.join("cgroup.controllers")).unwrap_or_default();
    let have: Vec<&str> = controllers.split_whitespace().collect();
    if ["memory", "cpu", "pids"].iter().all(|c| have.contains(c)) {
        Some(Hierarchy::V2 { parent })
    } else {
        None
    }
}

/// Finds the hierarchy of this host (see [`detect_from`]).
pub fn detect(parent_override: Option<&Path>) -> Option<Hierarchy> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let cgroup = fs::read_to_string("/proc/self/cgroup").ok()?;
    detect_from(&mountinfo, &cgroup, parent_override)
}

impl Hierarchy {
    /// Prepares the parent for per-call children (v2: enables the controllers for children).
    pub fn prepare(&self) -> Result<()> {
        match self {
            Hierarchy::V1 { .. } => Ok(()),
            Hierarchy::V2 { parent } => {
                let path = parent.join("cgroup.subtree_control");
                write_file(&path, "+memory +cpu +pids").map_err(|e| {
                    ProcessError::refused(format!(
                        "cgroup v2 controllers cannot be delegated under {} ({e}); run Slovo in its own \
                         cgroup (e.g. a systemd unit with Delegate=yes) or configure a delegated parent",
                        parent.display()
                    ))
                })
            }
        }
    }

    /// Creates an empty call cgroup called `name`, without limits yet.
    fn make(&self, name: &str) -> Result<CallCgroup> {
        let mut cg = CallCgroup {
            v2: matches!(self, Hierarchy::V2 { .. }),
            dirs: Vec::new(),
        };
        let parents: Vec<(Controller, &Path)> = match self {
            Hierarchy::V1 { parents, .. } => parents.iter().map(|(c, p)| (*c, p.as_path())).collect(),
            Hierarchy::V2 { parent } => vec![(Controller::Memory, parent.as_path())],
        };
        for (c, parent) in parents {
            let dir = parent.join(name);
            // On failure `cg` is dropped, which removes the directories made so far.
            fs::create_dir(&dir).map_err(|e| {
                tracing::error!(?e, dir = %dir.display(), "failed to create cgroup");
                ProcessError::io("create cgroup", &dir, e)
            })?;
            cg.dirs.push((c, dir));
        }
        Ok(cg)
    }

    /// Writes `limits` into a call cgroup made by this hierarchy.
    fn apply(&self, cg: &CallCgroup, limits: &ResourceLimits) -> Result<()> {
        let settings: Vec<(Controller, &str, String)> = match self {
            Hierarchy::V1 { swap_accounting, .. } => v1_settings(limits, *swap_accounting),
            Hierarchy::V2 { .. } => v2_settings(limits)
                .into_iter()
                .map(|(f, v)| (Controller::Memory, f, v))
                .collect(),
        };
        for (c, file, value) in settings {
            let Some(dir) = cg.dir(c) else {
                continue;
            };
            let path = dir.join(file);
            write_file(&path, &value).map_err(|e| ProcessError::io("write", &path, e))?;
        }
        Ok(())
    }

    /// The parent directories under which call cgroups are made (one per v1 hierarchy).
    pub fn parents(&self) -> Vec<&Path> {
        match self {
            Hierarchy::V1 { parents, .. } => parents.iter().map(|(_, p)| p.as_path()).collect(),
            Hierarchy::V2 { parent } => vec![parent.as_path()],
        }
    }

    /// Removes the empty call cgroups that a process no longer running left behind (a crash,
    /// or a kill before its keeper could clean up). A cgroup that still holds a process is
    /// not empty, so `rmdir` refuses it and it stays.
    pub fn remove_stale(&self) {
        for parent in self.parents() {
            let Ok(entries) = fs::read_dir(parent) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(pid) = name.to_str().and_then(owner_pid) else {
                    continue;
                };
                // SAFETY: kill with signal 0 only checks whether the process exists.
                let alive = unsafe { libc::kill(pid, 0) } == 0
                    || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
                if !alive && fs::remove_dir(entry.path()).is_ok() {
                    tracing::info!(dir = %entry.path().display(), "removed a stale call cgroup");
                }
            }
        }
    }
}

/// The pid in a call cgroup's name (`slovo-<pid>-…`).
fn owner_pid(name: &str) -> Option<i32> {
    name.strip_prefix("slovo-")?.split('-').next()?.parse().ok()
}

/// Keeps a few empty call cgroups made ahead of time and removes used ones, on a thread of its
/// own (see [`super::keeper`]), so that neither `mkdir` nor `rmdir` of cgroup directories
/// (about a tenth of a millisecond each for the four v1 hierarchies, more when the kernel is
/// busy) is on a call's path. Each cgroup still serves exactly one call: it is made empty,
/// given that call's limits, and removed after it.
#[derive(Debug)]
pub struct CgroupKeeper {
    hierarchy: Hierarchy,
    names: std::sync::Arc<Names>,
    keeper: Keeper<CallCgroup>,
}

/// How many empty call cgroups the keeper holds ready.
const READY_CGROUPS: usize = 2;

/// Numbers the keepers of this process, so that their cgroups' names never collide.
static KEEPERS: AtomicU64 = AtomicU64::new(0);

/// Names the cgroups of one keeper: `slovo-<pid>-k<keeper>-<n>`.
#[derive(Debug)]
struct Names {
    prefix: String,
    made: AtomicU64,
}

impl Names {
    fn next(&self) -> String {
        format!("{}{}", self.prefix, self.made.fetch_add(1, Ordering::Relaxed))
    }
}

impl CgroupKeeper {
    /// Starts the keeper's thread; removes what earlier processes left behind first.
    pub fn start(hierarchy: Hierarchy) -> Result<CgroupKeeper> {
        hierarchy.remove_stale();
        let names = std::sync::Arc::new(Names {
            prefix: format!(
                "slovo-{}-k{}-",
                std::process::id(),
                KEEPERS.fetch_add(1, Ordering::Relaxed)
            ),
            made: AtomicU64::new(0),
        });
        let (maker, namer) = (hierarchy.clone(), names.clone());
        let keeper = Keeper::start(
            "slovo-cgroups",
            READY_CGROUPS,
            move || maker.make(&namer.next()),
            |cg: CallCgroup| {
                if let Err(e) = cg.remove() {
                    tracing::warn!(error = %e, "failed to remove a call cgroup");
                }
            },
        )
        .map_err(|e| ProcessError::io("start", "the cgroup keeper thread", e))?;
        Ok(CgroupKeeper {
            hierarchy,
            names,
            keeper,
        })
    }

    /// A fresh cgroup for one call, with `limits` applied: made ahead of time if one is ready,
    /// otherwise now.
    pub fn take(&self, limits: &ResourceLimits) -> Result<CallCgroup> {
        let cg = match self.keeper.take() {
            Some(cg) => cg,
            None => self.hierarchy.make(&self.names.next())?,
        };
        self.hierarchy.apply(&cg, limits)?;
        Ok(cg)
    }

    /// The start of the names of this keeper's cgroups (`slovo-<pid>-k<n>-`), for diagnostics.
    pub fn name_prefix(&self) -> &str {
        &self.names.prefix
    }

    /// Hands a call's cgroup over for removal once the call is over (its processes are gone:
    /// the caller reaped the PID namespace's first process, whose exit ends every other).
    pub fn retire(&self, cg: CallCgroup) {
        self.keeper.dispose(cg);
    }
}

/// The cgroup(s) of one call. Removed by [`CallCgroup::remove`] (or on drop, best effort).
#[derive(Debug)]
pub struct CallCgroup {
    v2: bool,
    dirs: Vec<(Controller, PathBuf)>,
}

impl CallCgroup {
    /// The name of the call's directory (its sandbox id).
    pub fn name(&self) -> String {
        self.dirs
            .first()
            .and_then(|(_, d)| d.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// cgroup v1: the `tasks` files of the call's cgroups, opened for writing, so that the child
    /// can move itself (see `child.rs`). Empty on v2.
    pub fn task_files(&self) -> Result<Vec<std::os::fd::OwnedFd>> {
        if self.v2 {
            return Ok(Vec::new());
        }
        self.dirs
            .iter()
            .map(|(_, dir)| {
                let path = dir.join("tasks");
                fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map(std::os::fd::OwnedFd::from)
                    .map_err(|e| ProcessError::io("open", &path, e))
            })
            .collect()
    }

    /// cgroup v2: moves `pid` into the call's cgroup (v1 children move themselves).
    pub fn add_if_v2(&self, pid: i32) -> Result<()> {
        if self.v2 { self.add(pid) } else { Ok(()) }
    }

    /// Moves `pid` into the call's cgroup(s).
    pub fn add(&self, pid: i32) -> Result<()> {
        let pid = pid.to_string();
        for (_, dir) in &self.dirs {
            let path = dir.join("cgroup.procs");
            write_file(&path, &pid).map_err(|e| ProcessError::io("write", &path, e))?;
        }
        Ok(())
    }

    fn dir(&self, c: Controller) -> Option<&Path> {
        if self.v2 {
            return self.dirs.first().map(|(_, d)| d.as_path());
        }
        self.dirs.iter().find(|(x, _)| *x == c).map(|(_, d)| d.as_path())
    }

    fn read(&self, c: Controller, file: &str) -> Option<String> {
        fs::read_to_string(self.dir(c)?.join(file)).ok()
    }

    /// The accounting of the call so far. `events`: also read the OOM-kill and pids-limit
    /// counters (only needed to explain a call that did not succeed).
    pub fn stats(&self, events: bool) -> Stats {
        if self.v2 {
            let cpu_ms = self
                .read(Controller::Cpu, "cpu.stat")
                .and_then(|t| keyed(&t, "usage_usec"))
                .map(|us| us / 1000);
            let peak = self
                .read(Controller::Memory, "memory.peak")
                .and_then(|t| t.trim().parse().ok());
            Stats {
                cpu_ms,
                peak_memory_bytes: peak,
                oom_kills: events
                    .then(|| self.read(Controller::Memory, "memory.events"))
                    .flatten()
                    .and_then(|t| keyed(&t, "oom_kill"))
                    .unwrap_or(0),
                pids_max_hits: events
                    .then(|| self.read(Controller::Pids, "pids.events"))
                    .flatten()
                    .and_then(|t| keyed(&t, "max"))
                    .unwrap_or(0),
            }
        } else {
            let cpu_ms = self
                .read(Controller::Cpuacct, "cpuacct.usage")
                .and_then(|t| t.trim().parse::<u64>().ok())
                .map(|ns| ns / 1_000_000);
            let peak = self
                .read(Controller::Memory, "memory.max_usage_in_bytes")
                .and_then(|t| t.trim().parse().ok());
            Stats {
                cpu_ms,
                peak_memory_bytes: peak,
                oom_kills: events
                    .then(|| self.read(Controller::Memory, "memory.oom_control"))
                    .flatten()
                    .and_then(|t| keyed(&t, "oom_kill"))
                    .unwrap_or(0),
                pids_max_hits: events
                    .then(|| self.read(Controller::Pids, "pids.events"))
                    .flatten()
                    .and_then(|t| keyed(&t, "max"))
                    .unwrap_or(0),
            }
        }
    }

    /// Kills every process left in the cgroup (normally none: the PID namespace died with its
    /// first process).
    pub fn kill_all(&self) {
        if self.v2 {
            if let Some(d) = self.dir(Controller::Pids) {
                let _ = write_file(&d.join("cgroup.kill"), "1");
            }
            return;
        }
        for _ in 0..100 {
            let procs = self.read(Controller::Pids, "cgroup.procs").unwrap_or_default();
            let pids: Vec<i32> = procs.lines().filter_map(|l| l.trim().parse().ok()).collect();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                // SAFETY: plain kill(2).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Removes the directories; kills leftovers first if a directory is busy.
    pub fn remove(mut self) -> Result<()> {
        self.remove_dirs()
    }

    fn remove_dirs(&mut self) -> Result<()> {
        let mut last = None;
        for attempt in 0..200 {
            self.dirs.retain(|(_, d)| match fs::remove_dir(d) {
                Ok(()) => false,
                Err(e) if e.kind() == io::ErrorKind::NotFound => false,
                Err(e) => {
                    last = Some((d.clone(), e));
                    true
                }
            });
            if self.dirs.is_empty() {
                return Ok(());
            }
            if attempt == 0 {
                self.kill_all();
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        match last {
            Some((d, e)) => {
                tracing::error!(?e, dir = %d.display(), "failed to remove cgroup");
                Err(ProcessError::io("remove cgroup", d, e))
            }
            None => Ok(()),
        }
    }
}

impl Drop for CallCgroup {
    fn drop(&mut self) {
        if !self.dirs.is_empty() {
            let _ = self.remove_dirs();
        }
    }
}

fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        if k == key { v.trim().parse().ok() } else { None }
    })
}

fn write_file(path: &Path, value: &str) -> io::Result<()> {
    let mut f = fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(value.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn limits() -> ResourceLimits {
        ResourceLimits {
            memory_mb: 64,
            cpu_percent: 50,
            pids: 32,
            storage_mb: 10,
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn v1_settings_limit_memory_and_swap_cpu_and_pids() {
        assert_eq!(
            v1_settings(&limits(), true),
            vec![
                (
                    Controller::Memory,
                    "memory.limit_in_bytes",
                    "67108864".to_string()
                ),
                (Controller::Memory, "memory.swappiness", "0".to_string()),
                (
                    Controller::Memory,
                    "memory.memsw.limit_in_bytes",
                    "67108864".to_string()
                ),
                (Controller::Cpu, "cpu.cfs_quota_us", "50000".to_string()),
                (Controller::Pids, "pids.max", "32".to_string()),
            ]
        );
    }

    #[test]
    fn v2_settings_limit_memory_and_swap_cpu_and_pids() {
        assert_eq!(
            v2_settings(&limits()),
            vec![
                ("memory.max", "67108864".to_string()),
                ("memory.swap.max", "0".to_string()),
                ("memory.oom.group", "1".to_string()),
                ("cpu.max", "50000 100000".to_string()),
                ("pids.max", "32".to_string()),
            ]
        );
    }

    const MOUNTINFO_V1: &str = "\
25 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 29 0:26 / /sys/fs/cgroup/cpu rw,relatime shared:5 - cgroup cgroup rw,cpu
31 29 0:27 / /sys/fs/cgroup/cpuacct rw,relatime shared:6 - cgroup cgroup rw,cpuacct
32 29 0:28 / /sys/fs/cgroup/memory rw,relatime shared:7 - cgroup cgroup rw,memory
33 29 0:29 / /sys/fs/cgroup/pids rw,relatime shared:8 - cgroup cgroup rw,pids
34 29 0:30 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw
";
    const CGROUP_V1: &str = "8:pids:/\n4:memory:/api/abc\n2:cpuacct:/\n1:cpu:/\n0::/\n";

    #[test]
    fn detects_v1_under_the_own_cgroup() {
        assert_eq!(
            detect_from(MOUNTINFO_V1, CGROUP_V1, None),
            Some(Hierarchy::V1 {
                parents: vec![
                    (Controller::Memory, "/sys/fs/cgroup/memory/api/abc".into()),
                    (Controller::Cpu, "/sys/fs/cgroup/cpu/".into()),
                    (Controller::Cpuacct, "/sys/fs/cgroup/cpuacct/".into()),
                    (Controller::Pids, "/sys/fs/cgroup/pids/".into()),
                ],
                swap_accounting: false,
            })
        );
    }

    #[test]
    fn reads_keyed_files() {
        assert_eq!(
            keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", "oom_kill"),
            Some(3)
        );
        assert_eq!(keyed("max 0\n", "max"), Some(0));
    }
}
