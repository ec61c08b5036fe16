//! The process backend: each call runs a native program from the tool's bundle in a fresh
//! sandbox built directly from Linux primitives, with no daemon and no helper binary.
//!
//! # Brief overview
//! [`ProcessBackend`] implements [`Backend`] for `execution.type: process`. One call:
//! 1. refuse what cannot be enforced (a missing host feature);
//! 2. mount the tool's state volume if needed ([`volume`]);
//! 3. create the call's cgroup with its limits ([`cgroups`]);
//! 4. prepare the child's whole plan: mounts ([`mounts`]), rlimits ([`rlimits`]), the Landlock
//!    rules ([`landlock`]) and the seccomp program ([`seccomp`]);
//! 5. `clone` into new namespaces ([`namespaces`]), write the id maps, join the cgroup, let the
//!    child build the sandbox, drop its capabilities ([`caps`]) and `execve` the tool;
//! 6. with a network grant, serve the listener the child bound on its own loopback with the
//!    egress proxy ([`egress`]), for this call's grant only;
//! 7. talk to the tool ([`dialogue`]: the request on stdin for a process tool, MCP for an MCP
//!    server), capture capped stdout/stderr, enforce the wall-clock timeout, and turn the exit
//!    status (or the protocol's verdict), the cgroup's accounting and the proxy's denials into
//!    an [`Outcome`].
//!
//! The policy — what each mechanism enforces and why — is in `docs/sandbox.md`.
//!
//! # Example
//! ```no_run
//! use slovo_sandbox::process::{ProcessBackend, ProcessConfig};
//! let backend = ProcessBackend::new(ProcessConfig::new("/var/lib/slovo/sandbox")).unwrap();
//! println!("{}", backend.support().render());
//! ```

pub mod caps;
pub mod cgroups;
mod child;
mod dialogue;
pub mod egress;
pub mod error;
mod keeper;
pub mod landlock;
pub mod mounts;
pub mod namespaces;
pub mod rlimits;
pub(crate) mod run;
pub mod seccomp;

use std::ffi::CString;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::AtomicU64;

use async_trait::async_trait;
use serde::Serialize;
use slovo_core::install::{InstallFacts, ProcessFacts};
use slovo_core::manifest::Execution;
use slovo_egress::{EgressConfig, EgressProxy};

use crate::linux::volume::Volumes;
use crate::{Backend, BackendError, InstallRequest, Outcome, SandboxSpec};
use dialogue::StdinRequest;
pub(crate) use dialogue::{Conversed, Dialogue, Program, ToolIo, Verdict, kill};
pub use error::ProcessError;
use error::Result;

/// The default host uid and gid of sandboxed tools: unprivileged and owned by no account.
pub const DEFAULT_HOST_ID: u32 = 1_900_000;

/// How the process backend is set up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessConfig {
    /// The backend's own directory (under the data directory): state volume images and the
    /// staging directory of sandbox roots.
    pub work_dir: PathBuf,
    /// Run even where an isolation feature is missing (no Landlock, no cgroup controllers, no
    /// storage quota), with exactly those features off. By default, `false`: such a host
    /// refuses every call.
    pub allow_weaker: bool,
    /// The host uid tools run as (as root). By default, [`DEFAULT_HOST_ID`].
    pub host_uid: u32,
    /// The host gid tools run as (as root). By default, [`DEFAULT_HOST_ID`].
    pub host_gid: u32,
    /// Size of `/tmp` (MiB). By default, 16.
    pub tmp_mb: u64,
    /// Bytes of stdout kept; more kills the call. By default, 4 MiB.
    pub stdout_limit: usize,
    /// Bytes of stderr kept; more is discarded. By default, 256 KiB.
    pub stderr_limit: usize,
    /// Parent of per-call cgroups, relative to each hierarchy's root. By default, the cgroup
    /// of the running process.
    pub cgroup_parent: Option<PathBuf>,
    /// The empty directory each call's root is built on (in the call's own mount namespace,
    /// so calls share it without seeing each other). Tools must be able to traverse its
    /// parents, so it must not lie in the private data directory. By default,
    /// [`DEFAULT_ROOT_STAGING`] as root and `<work_dir>/root` otherwise (where tools run as
    /// the invoking user, who can traverse the data directory).
    pub staging_dir: Option<PathBuf>,
}

/// Where the roots of calls are built when Slovo runs as root: on `/run`, which every uid can
/// traverse and only root can write.
pub const DEFAULT_ROOT_STAGING: &str = "/run/slovo/sandbox-root";

impl ProcessConfig {
    /// The defaults, with `work_dir`.
    pub fn new(work_dir: impl Into<PathBuf>) -> ProcessConfig {
        ProcessConfig {
            work_dir: work_dir.into(),
            allow_weaker: false,
            host_uid: DEFAULT_HOST_ID,
            host_gid: DEFAULT_HOST_ID,
            tmp_mb: 16,
            stdout_limit: 4 * 1024 * 1024,
            stderr_limit: 256 * 1024,
            cgroup_parent: None,
            staging_dir: None,
        }
    }
}

/// What this host offers the process backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Support {
    /// Running as root (uid 0).
    pub root: bool,
    /// User namespaces can be created (`user.max_user_namespaces` > 0).
    pub user_namespaces: bool,
    /// seccomp filters are available.
    pub seccomp: bool,
    /// Landlock ABI (0 = none).
    pub landlock_abi: u32,
    /// Where per-call cgroups go, if memory, cpu and pids controllers are usable.
    pub cgroups: Option<cgroups::Hierarchy>,
    /// Loop devices and `mkfs.ext4` exist (and we are root): storage quotas are enforceable.
    pub quota: bool,
}

impl Support {
    /// Probes this host.
    pub fn probe(cgroup_parent: Option<&Path>) -> Support {
        // SAFETY: plain getters.
        let root = unsafe { libc::geteuid() } == 0;
        let user_namespaces = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0);
        // SAFETY: PR_GET_SECCOMP takes no pointer.
        let seccomp = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) } >= 0;
        let cgroups = cgroups::detect(cgroup_parent).filter(|h| root || writable_cgroup(h));
        let mkfs = ["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"]
            .iter()
            .any(|p| Path::new(p).exists());
        let quota = root && mkfs && Path::new("/dev/loop-control").exists();
        Support {
            root,
            user_namespaces,
            seccomp,
            landlock_abi: landlock::abi(),
            cgroups,
            quota,
        }
    }

    /// Features whose absence refuses every call (no weaker tier exists without them).
    pub fn essential_missing(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if !self.user_namespaces {
            out.push("user namespaces (user.max_user_namespaces is 0)");
        }
        if !self.seccomp {
            out.push("seccomp");
        }
        out
    }

    /// Features whose absence refuses calls unless a weaker tier is configured.
    pub fn weaker_missing(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.landlock_abi == 0 {
            out.push("landlock (no second file-system fence, no signal scoping)");
        }
        if self.cgroups.is_none() {
            out.push("cgroup memory/cpu/pids controllers (no memory, CPU or process limits; no CPU or memory accounting)");
        }
        if !self.quota {
            out.push("storage quota (needs root, loop devices and mkfs.ext4; /data would be an unbounded directory)");
        }
        out
    }

    /// Why calls are refused with `allow_weaker`, if they are.
    pub fn refusal(&self, allow_weaker: bool) -> Option<String> {
        let essential = self.essential_missing();
        if !essential.is_empty() {
            return Some(format!("this host lacks {}", essential.join(", ")));
        }
        let weaker = self.weaker_missing();
        if !weaker.is_empty() && !allow_weaker {
            return Some(format!(
                "this host lacks {}; set allow_weaker in the process backend's configuration to run with \
                 exactly these protections off",
                weaker.join("; ")
            ));
        }
        None
    }

    /// A human rendering.
    pub fn render(&self) -> String {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let mut s = String::new();
        s.push_str(&format!("running as root: {}\n", yes(self.root)));
        s.push_str(&format!("user namespaces: {}\n", yes(self.user_namespaces)));
        s.push_str(&format!("seccomp: {}\n", yes(self.seccomp)));
        s.push_str(&format!(
            "landlock: {}\n",
            if self.landlock_abi == 0 {
                "no".to_string()
            } else {
                format!("ABI {}", self.landlock_abi)
            }
        ));
        s.push_str(&format!(
            "cgroups: {}\n",
            match &self.cgroups {
                Some(cgroups::Hierarchy::V1 { swap_accounting, .. }) => format!(
                    "v1 (memory, cpu, cpuacct, pids; swap accounting: {})",
                    yes(*swap_accounting)
                ),
                Some(cgroups::Hierarchy::V2 { parent }) => format!("v2 under {}", parent.display()),
                None => "no usable memory/cpu/pids controllers".to_string(),
            }
        ));
        s.push_str(&format!(
            "storage quota (loop-mounted ext4): {}\n",
            yes(self.quota)
        ));
        s
    }
}

fn writable_cgroup(h: &cgroups::Hierarchy) -> bool {
    let dir = match h {
        cgroups::Hierarchy::V1 { parents, .. } => parents.first().map(|(_, p)| p.clone()),
        cgroups::Hierarchy::V2 { parent } => Some(parent.clone()),
    };
    dir.and_then(|d| CString::new(d.as_os_str().as_encoded_bytes()).ok())
        // SAFETY: a valid C string.
        .is_some_and(|c| unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0)
}

/// The process backend. See the module documentation.
#[derive(Debug)]
pub struct ProcessBackend {
    config: ProcessConfig,
    support: Support,
    refusal: Option<String>,
    volumes: Volumes,
    system: Vec<mounts::SystemEntry>,
    seccomp: Vec<libc::sock_filter>,
    last_cap: u32,
    host_uid: u32,
    host_gid: u32,
    staging: PathBuf,
    egress: EgressProxy,
    /// Makes call cgroups ahead of time and removes used ones off the call path.
    cgroups: Option<cgroups::CgroupKeeper>,
    /// Makes network namespaces ahead of time (root only).
    netns: Option<namespaces::NetnsKeeper>,
}

/// Creates `dir` (and missing parents) with mode 0755, so that the tool's uid can traverse it.
fn create_traversable_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| ProcessError::io("create", dir, e))
}

/// Calls started by this process: makes sandbox ids unique.
static CALLS: AtomicU64 = AtomicU64::new(0);

impl ProcessBackend {
    /// A backend with `config`. Fails only if its work directory cannot be created; a host that
    /// lacks an isolation feature gives a backend that refuses every call and says why
    /// ([`ProcessBackend::refusal`]).
    pub fn new(config: ProcessConfig) -> Result<ProcessBackend> {
        let support = Support::probe(config.cgroup_parent.as_deref());
        ProcessBackend::with_support(config, support)
    }

    /// A backend for a host described by `support` (tests use it to simulate weaker hosts).
    pub fn with_support(config: ProcessConfig, mut support: Support) -> Result<ProcessBackend> {
        let staging = match &config.staging_dir {
            Some(dir) => dir.clone(),
            None if support.root => PathBuf::from(DEFAULT_ROOT_STAGING),
            None => config.work_dir.join("root"),
        };
        create_traversable_dir(&staging)?;
        let mut refusal = support.refusal(config.allow_weaker);
        if let Some(h) = &support.cgroups
            && let Err(e) = h.prepare()
        {
            if config.allow_weaker {
                support.cgroups = None;
            } else {
                refusal.get_or_insert(e.to_string());
            }
        }
        let (host_uid, host_gid) = if support.root {
            (config.host_uid, config.host_gid)
        } else {
            // SAFETY: plain getters.
            unsafe { (libc::geteuid(), libc::getegid()) }
        };
        if let Some(r) = &refusal {
            tracing::warn!(reason = %r, "process backend refuses calls on this host");
        } else if !support.weaker_missing().is_empty() {
            tracing::warn!(missing = ?support.weaker_missing(), "process backend runs a weaker tier, as configured");
        }
        let cgroups = match (&support.cgroups, &refusal) {
            (Some(h), None) => Some(cgroups::CgroupKeeper::start(h.clone())?),
            _ => None,
        };
        // Root only: an unprivileged process cannot create a network namespace outside a user
        // namespace of its own, so there `clone` makes it.
        let netns = match (support.root, &refusal) {
            (true, None) => match namespaces::NetnsKeeper::start() {
                Ok(k) => Some(k),
                Err(e) => {
                    tracing::warn!(error = %e, "network namespaces are made per call instead of ahead of time");
                    None
                }
            },
            _ => None,
        };
        let volumes = Volumes::new(config.work_dir.join("volumes"), host_uid, host_gid);
        volumes.reclaim_unused();
        Ok(ProcessBackend {
            cgroups,
            netns,
            volumes,
            system: mounts::system_entries(),
            seccomp: seccomp::compile(&seccomp::policy(), seccomp::AUDIT_ARCH),
            last_cap: caps::last_cap(),
            config,
            support,
            refusal,
            host_uid,
            host_gid,
            staging,
            egress: EgressProxy::new(EgressConfig::default()),
        })
    }

    /// Uses `proxy` for calls with a network grant (by default, a proxy with the strict
    /// public-address policy and the system resolver).
    pub fn set_egress(&mut self, proxy: EgressProxy) {
        self.egress = proxy;
    }

    /// The egress proxy that serves calls with a network grant.
    pub fn egress(&self) -> &EgressProxy {
        &self.egress
    }

    /// The start of the names of this backend's call cgroups, if it uses cgroups (for
    /// diagnostics: `slovo-<pid>-k<n>-`).
    pub fn call_cgroup_prefix(&self) -> Option<&str> {
        self.cgroups.as_ref().map(|k| k.name_prefix())
    }

    /// What the host offers.
    pub fn support(&self) -> &Support {
        &self.support
    }

    /// Why every call is refused, if it is.
    pub fn refusal(&self) -> Option<&str> {
        self.refusal.as_deref()
    }

    /// The configuration.
    pub fn config(&self) -> &ProcessConfig {
        &self.config
    }

    /// Unmounts the state volume of `state_dir` (before the runtime removes the directory);
    /// with `purge`, deletes the state for good.
    pub fn release_state(&self, state_dir: &Path, purge: bool) -> Result<()> {
        Ok(self.volumes.release(state_dir, purge)?)
    }

    async fn prepare_data(&self, spec: &SandboxSpec) -> Result<Option<PathBuf>> {
        if spec.limits.storage_mb == 0 {
            return Ok(None);
        }
        if self.support.quota {
            self.volumes
                .ensure(&spec.state_dir, spec.limits.storage_mb)
                .await?;
        } else {
            // Weaker tier, as configured: a plain directory without a quota.
            std::fs::create_dir_all(&spec.state_dir)
                .map_err(|e| ProcessError::io("create", &spec.state_dir, e))?;
        }
        Ok(Some(spec.state_dir.clone()))
    }

    fn child_plan(
        &self,
        spec: &SandboxSpec,
        bundle: &Path,
        data: Option<PathBuf>,
        tool: &Program,
    ) -> Result<child::ChildPlan> {
        let command = &tool.command;
        let program = match command.first() {
            // A system program (MCP servers run by the system's node or python3): it resolves
            // inside the sandbox, where only the read-only system directories exist.
            Some(first) if tool.system_program_allowed && tool.system_paths && first.starts_with('/') => {
                first.clone()
            }
            _ => tool_program(command)?,
        };
        let layout = mounts::Layout {
            staging: self.staging.clone(),
            bundle: bundle.to_path_buf(),
            data: data.clone(),
            system: if tool.system_paths {
                self.system.clone()
            } else {
                Vec::new()
            },
            tmp_mb: self.config.tmp_mb,
        };
        let nul = |what: &str| ProcessError::refused(format!("{what} holds a NUL byte"));
        let mounts = mounts::Prepared::new(&mounts::plan(&layout)).ok_or_else(|| nul("a path"))?;
        let landlock = match self.support.landlock_abi {
            0 => None,
            abi => Some(
                landlock::Prepared::new(&landlock::plan(abi, data.is_some())).ok_or_else(|| nul("a path"))?,
            ),
        };
        let mut argv = vec![CString::new(program.clone()).map_err(|_| nul("the command"))?];
        for a in &command[1..] {
            argv.push(CString::new(a.as_str()).map_err(|_| nul("an argument"))?);
        }
        let home = if data.is_some() { "/data" } else { "/tmp" };
        let mut env = vec![
            "PATH=/usr/local/bin:/usr/bin:/bin".to_string(),
            format!("HOME={home}"),
            "TMPDIR=/tmp".to_string(),
            "LANG=C.UTF-8".to_string(),
        ];
        if tool.call_env {
            env.push(format!("SLOVO_CAPABILITY={}", spec.capability.name));
            env.push(format!("SLOVO_EXECUTION_ID={}", spec.execution_id));
        }
        // The program's own variables replace the defaults above (one entry per name: a
        // duplicate would be read as the first by some programs and the last by others). They
        // cannot replace Slovo's (validation refuses SLOVO_*).
        env.retain(|entry| {
            let name = entry.split_once('=').map_or(entry.as_str(), |(n, _)| n);
            !tool.env.iter().any(|(k, _)| k == name)
        });
        env.extend(tool.env.iter().map(|(k, v)| format!("{k}={v}")));
        if spec.network.allows_network() {
            // A convenience for well-behaved clients; the namespace enforces it for the rest.
            env.extend(egress::proxy_env());
        }
        let envp = env
            .into_iter()
            .map(CString::new)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| nul("the environment"))?;
        Ok(child::ChildPlan {
            mounts,
            hostname: c"slovo".to_owned(),
            cwd: c"/tool".to_owned(),
            rlimits: rlimits::plan(&spec.limits, self.config.tmp_mb),
            last_cap: self.last_cap,
            landlock,
            seccomp: self.seccomp.clone(),
            program: CString::new(program).map_err(|_| nul("the command"))?,
            argv,
            envp,
            cgroup_tasks: Vec::new(),
            set_groups: self.support.root,
            egress: None,
        })
    }

    async fn run_call(&self, spec: &SandboxSpec) -> Result<Outcome> {
        let Execution::Process {
            command,
            system_paths,
        } = &spec.execution
        else {
            return Err(ProcessError::refused(format!(
                "a {} tool is not a process tool",
                spec.execution.kind()
            )));
        };
        let program = Program {
            command: command.clone(),
            system_paths: *system_paths,
            env: Vec::new(),
            system_program_allowed: false,
            call_env: true,
        };
        let request = serde_json::to_vec(&spec.request).unwrap_or_default();
        self.run_program(spec, &program, &StdinRequest { request }).await
    }

    /// An installer's run ([`Backend::run_installer`]): a system program, no call variables,
    /// nothing on stdin.
    async fn run_installer_call(&self, spec: &SandboxSpec, env: &[(String, String)]) -> Result<Outcome> {
        let Execution::Process {
            command,
            system_paths,
        } = &spec.execution
        else {
            return Err(ProcessError::refused(format!(
                "an installer is a process command, not a {} tool",
                spec.execution.kind()
            )));
        };
        if !(*system_paths && command.first().is_some_and(|p| p.starts_with('/'))) {
            return Err(ProcessError::refused(
                "an installer is a system program: an absolute path, with system_paths",
            ));
        }
        let program = Program {
            command: command.clone(),
            system_paths: true,
            env: env.to_vec(),
            system_program_allowed: true,
            call_env: false,
        };
        self.run_program(spec, &program, &StdinRequest { request: Vec::new() })
            .await
    }
}

/// The program path inside the sandbox: `command[0]` under `/tool`, which must stay inside.
fn tool_program(command: &[String]) -> Result<String> {
    let Some(first) = command.first() else {
        return Err(ProcessError::refused("the manifest's command is empty"));
    };
    let rel = Path::new(first.trim_start_matches("./"));
    if rel.as_os_str().is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(ProcessError::refused(format!(
            "the command {first:?} must be a relative path inside the bundle"
        )));
    }
    Ok(format!("/tool/{}", rel.display()))
}

fn sanitize(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(40)
        .collect()
}

fn explain_setup_failure(err: ProcessError, program: &CString, system_paths: bool) -> String {
    match &err {
        ProcessError::Setup { step, source } if *step == child::Step::Exec.name() => {
            let hint = if source.raw_os_error() == Some(libc::ENOENT) && !system_paths {
                " (a dynamically linked program or a script needs system_paths)"
            } else {
                ""
            };
            format!("failed to execute {}: {source}{hint}", program.to_string_lossy())
        }
        _ => err.to_string(),
    }
}

#[async_trait]
impl Backend for ProcessBackend {
    fn kind(&self) -> &'static str {
        "process"
    }

    async fn install(&self, request: &InstallRequest) -> Result<InstallFacts, BackendError> {
        let fail = |reason: String| BackendError::Install {
            tool: request.tool.clone(),
            reason,
        };
        let Execution::Process {
            command,
            system_paths,
        } = &request.execution
        else {
            return Err(fail("not a process tool".to_string()));
        };
        let bundle = request
            .bundle_dir
            .as_ref()
            .ok_or_else(|| fail("a process tool needs a bundle".into()))?;
        let program = tool_program(command).map_err(|e| fail(e.to_string()))?;
        let host = bundle.join(program.trim_start_matches("/tool/"));
        let meta =
            std::fs::metadata(&host).map_err(|e| fail(format!("failed to read {}: {e}", host.display())))?;
        use std::os::unix::fs::PermissionsExt;
        if !meta.is_file() || meta.permissions().mode() & 0o001 == 0 {
            return Err(fail(format!(
                "{} must be a file executable by others (the tool runs as an unprivileged uid)",
                host.display()
            )));
        }
        Ok(InstallFacts::Process(ProcessFacts {
            program,
            system_paths: *system_paths,
            refusal: self.refusal.clone(),
        }))
    }

    async fn shutdown(&self) {
        self.volumes.release_all();
    }

    async fn release_state(&self, state_dir: &Path, purge: bool) -> Result<(), BackendError> {
        ProcessBackend::release_state(self, state_dir, purge).map_err(|e| BackendError::Install {
            tool: state_dir.display().to_string(),
            reason: format!("failed to release the state volume: {e}"),
        })
    }

    async fn run(&self, spec: &SandboxSpec) -> Outcome {
        match self.run_call(spec).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, tool = %spec.tool, execution = %spec.execution_id, "process call failed");
                Outcome::failed(e.to_string())
            }
        }
    }

    async fn run_installer(&self, spec: &SandboxSpec, env: &[(String, String)]) -> Outcome {
        match self.run_installer_call(spec, env).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, tool = %spec.tool, execution = %spec.execution_id, "installer failed");
                Outcome::failed(e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_must_stay_inside_the_bundle() {
        assert_eq!(tool_program(&["bin/t".into()]).unwrap(), "/tool/bin/t");
        assert_eq!(tool_program(&["./t".into(), "x".into()]).unwrap(), "/tool/t");
        for bad in ["/bin/sh", "../x", "a/../../x", ""] {
            assert!(tool_program(&[bad.to_string()]).is_err(), "{bad}");
        }
        assert!(tool_program(&[]).is_err());
    }

    #[test]
    fn support_refuses_unless_weaker_is_allowed() {
        let s = Support {
            root: true,
            user_namespaces: true,
            seccomp: true,
            landlock_abi: 0,
            cgroups: None,
            quota: true,
        };
        assert!(s.refusal(false).unwrap().contains("landlock"));
        assert_eq!(s.refusal(true), None);
        let s = Support { seccomp: false, ..s };
        assert!(s.refusal(true).unwrap().contains("seccomp"));
    }
}
