//! The Docker backend: each call runs in a fresh, hardened container created through the
//! Docker Engine API (never the `docker` command), and removed afterwards.
//!
//! # Brief overview
//! [`DockerBackend`] implements [`Backend`] for `execution.type: docker`. One call:
//! 1. refuse what cannot be enforced: a daemon that does not answer, an image whose id is not
//!    the one recorded at install (digest pinning), a network grant whose confinement cannot
//!    be set up ([`egress`]);
//! 2. mount the tool's quota-enforced state volume (shared with the process sandbox,
//!    [`crate::linux::volume`]) and bind it at `/data`;
//! 3. for a network grant, lease an address on Slovo's internal network, open the call's own
//!    proxy listener on its gateway and let only that address reach it ([`egress`]);
//! 4. create the container ([`container::body`]: no network or the egress network, read-only
//!    root, every capability
//!    dropped, `no-new-privileges`, a non-root user, memory = memory + swap, CPU quota, pids
//!    limit, a small `/tmp`), under a cgroup parent of its own ([`accounting`]);
//! 5. attach (one hijacked connection carries stdin, stdout and stderr), start, and talk to
//!    it ([`attach`]): for a docker tool, write the request on stdin and read capped output
//!    until the container exits or the wall-clock timeout, which removes it forcibly; for an
//!    MCP server in an image (`crate::mcp`, through [`DockerBackend::run_with`]), the MCP
//!    conversation, whose verdict says how the call went;
//! 6. wait for the exit code (unless a protocol gave its verdict), remove the container
//!    (always, also when the call is dropped),
//!    read CPU time and peak memory from the call's cgroup parent, delete the call's firewall
//!    rule and end its proxy session, whose denials go on the outcome.
//!
//! Steps 2–5 and 6 are two halves ([`started`]): a warm MCP server of the pool is started by
//! the first ([`DockerBackend::start_with`]) long before its call, and removed after its one
//! answer; its container is made exactly as a cold call's.
//!
//! Every container carries the label [`container::LABEL_MANAGED`] and the pid of its creator;
//! [`DockerBackend::remove_leftovers`] (run when the backend is created) removes those whose
//! creator is gone. The policy is described in `docs/docker.md`.

pub mod accounting;
mod attach;
pub mod container;
pub mod daemon;
pub mod egress;
pub mod error;
pub mod seccomp;
mod started;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use bollard::Docker;
use bollard::query_parameters::CreateImageOptions;
use futures_util::StreamExt;
use slovo_core::install::{DockerDeferred, DockerFacts, DockerPinned, InstallFacts};
use slovo_core::manifest::Execution;
use slovo_egress::{EgressConfig, EgressProxy};

use crate::ending::{self, Enclosure, Exit};
use crate::linux::volume::Volumes;
use crate::{Backend, BackendError, InstallRequest, Outcome, ResourceLimits, SandboxSpec};
use accounting::{CallCgroup, Layout};
pub(crate) use attach::{ContainerConversed, ContainerDialogue, ContainerIo, OutputStream, Watched};
pub use error::DockerError;
use error::{Result, is_not_found};
pub(crate) use started::StartedContainer;

/// How the Docker backend is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerConfig {
    /// Where the state volumes' images live. Share the process sandbox's directory
    /// (`<data>/sandbox/volumes`) so that a tool's state is one volume whatever its backend.
    pub volumes_dir: PathBuf,
    /// The uid tools run as (on the host too: no user namespace remapping is assumed). By
    /// default, [`crate::process::DEFAULT_HOST_ID`], which also owns the state volumes.
    pub uid: u32,
    /// The gid tools run as. By default, [`crate::process::DEFAULT_HOST_ID`].
    pub gid: u32,
    /// Size of `/tmp` and `/dev/shm` (MiB). By default, 16.
    pub tmp_mb: u64,
    /// Bytes of stdout kept; more kills the call. By default, 4 MiB.
    pub stdout_limit: usize,
    /// Bytes of stderr kept; more is discarded. By default, 256 KiB.
    pub stderr_limit: usize,
    /// Registries images may be pulled from at install (`docker.io`, `registry.example.com`).
    /// By default none: an image must already be present locally.
    pub allowed_registries: Vec<String>,
    /// The cgroup (relative to each hierarchy's root) under which each call gets its
    /// accounting parent. By default, `slovo-docker`.
    pub cgroup_root: String,
    /// The daemon's address (`unix:///var/run/docker.sock`, `tcp://host:2375`). By default,
    /// the default socket ([`daemon::DEFAULT_HOST`]) unless configured.
    pub host: String,
    /// Run tools with a storage grant even where the quota cannot be enforced (not root, no
    /// loop devices or `mkfs.ext4`): `/data` is then an unbounded directory. By default, no.
    pub allow_weaker: bool,
    /// Where containers of calls with a network grant are attached, and the firewall chain
    /// that confines them ([`egress::EgressNetwork`]).
    pub egress: egress::EgressNetwork,
}

impl DockerConfig {
    /// The defaults, with the state volumes' images in `volumes_dir`.
    pub fn new(volumes_dir: impl Into<PathBuf>) -> DockerConfig {
        DockerConfig {
            volumes_dir: volumes_dir.into(),
            uid: crate::process::DEFAULT_HOST_ID,
            gid: crate::process::DEFAULT_HOST_ID,
            tmp_mb: 16,
            stdout_limit: 4 * 1024 * 1024,
            stderr_limit: 256 * 1024,
            allowed_registries: Vec::new(),
            cgroup_root: "slovo-docker".to_string(),
            host: daemon::DEFAULT_HOST.to_string(),
            allow_weaker: false,
            egress: egress::EgressNetwork::default(),
        }
    }
}

/// A connected daemon and what it said about itself.
#[derive(Debug, Clone)]
struct Daemon {
    docker: Docker,
    /// Per-call accounting parents (cgroupfs driver only).
    layout: Option<Layout>,
    cgroup_v1: bool,
}

/// The Docker backend. See the module documentation.
#[derive(Debug)]
pub struct DockerBackend {
    config: DockerConfig,
    volumes: Volumes,
    quota: bool,
    daemon: RwLock<Option<Daemon>>,
    proxy: RwLock<EgressProxy>,
}

/// Calls started by this process: makes container names unique.
static CALLS: AtomicU64 = AtomicU64::new(0);

fn sanitize(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(40)
        .collect()
}

fn quota_supported() -> bool {
    // SAFETY: a plain getter.
    let root = unsafe { libc::geteuid() } == 0;
    let mkfs = ["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"]
        .iter()
        .any(|p| Path::new(p).exists());
    root && mkfs && Path::new("/dev/loop-control").exists()
}

impl DockerBackend {
    /// A backend with `config`. Never fails for want of a daemon: calls then fail with the
    /// reason, and the daemon is looked for again at the next call. Inside a Tokio runtime,
    /// connects in the background and removes the containers a crash left behind
    /// ([`DockerBackend::remove_leftovers`]).
    pub fn new(config: DockerConfig) -> Arc<DockerBackend> {
        let volumes = Volumes::new(config.volumes_dir.clone(), config.uid, config.gid);
        volumes.reclaim_unused();
        let backend = Arc::new(DockerBackend {
            volumes,
            quota: quota_supported(),
            config,
            daemon: RwLock::new(None),
            proxy: RwLock::new(EgressProxy::new(EgressConfig::default())),
        });
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let b = backend.clone();
            handle.spawn(async move {
                match b.remove_leftovers().await {
                    Ok(_) => {}
                    // No daemon is a normal state (docker calls then fail with the reason).
                    Err(e @ DockerError::Unavailable { .. }) => {
                        tracing::debug!(error = %e, "Docker backend: no daemon, start-up cleanup skipped")
                    }
                    Err(e) => tracing::warn!(error = %e, "Docker backend: start-up cleanup failed"),
                }
            });
        }
        backend
    }

    /// The configuration.
    pub fn config(&self) -> &DockerConfig {
        &self.config
    }

    /// Uses `proxy` for calls with a network grant (by default, a proxy with the strict
    /// public-address policy and the system resolver), as `ProcessBackend::set_egress` does.
    /// Calls already running keep the proxy they started with.
    pub fn set_egress(&self, proxy: EgressProxy) {
        if let Ok(mut p) = self.proxy.write() {
            *p = proxy;
        }
    }

    /// The egress proxy that serves calls with a network grant.
    pub fn egress(&self) -> EgressProxy {
        self.proxy
            .read()
            .map(|p| p.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Removes the containers (and accounting cgroups and egress firewall rules) that calls of
    /// Slovo processes which are gone left behind; returns the ids of the containers removed.
    /// Containers of running Slovo processes are never touched. The egress network itself
    /// stays (it is shared, and created again if removed).
    pub async fn remove_leftovers(&self) -> Result<Vec<String>> {
        let d = self.daemon().await?;
        let removed = daemon::remove_leftovers(&d.docker).await?;
        // After the containers: a rule outliving its container is harmless, the reverse is not.
        let rules = egress::firewall::remove_leftovers(&self.config.egress).await;
        if rules > 0 {
            tracing::info!(
                rules,
                "removed egress firewall rules of calls of Slovo processes that are gone"
            );
        }
        if let Some(layout) = &d.layout {
            CallCgroup::remove_leftovers(layout, &self.config.cgroup_root).await;
        }
        Ok(removed)
    }

    /// The connected daemon, connecting first if needed.
    async fn daemon(&self) -> Result<Daemon> {
        if let Some(d) = self.daemon.read().ok().and_then(|g| g.clone()) {
            return Ok(d);
        }
        let docker = daemon::connect(&self.config.host).await?;
        let info = docker.info().await.map_err(|e| DockerError::Unavailable {
            host: self.config.host.clone(),
            reason: e.to_string(),
        })?;
        let version = info
            .cgroup_version
            .map(|v| v.to_string())
            .unwrap_or_else(|| "1".to_string());
        let cgroupfs = info.cgroup_driver.is_some_and(|d| d.to_string() == "cgroupfs");
        // SAFETY: a plain getter.
        let root = unsafe { libc::geteuid() } == 0;
        let layout = if cgroupfs && root {
            Layout::detect(&version)
        } else {
            None
        };
        if layout.is_none() {
            tracing::warn!(
                driver = ?info.cgroup_driver,
                "Docker backend: no per-call accounting (needs the cgroupfs driver and root); CPU time and peak memory will be absent"
            );
        }
        let d = Daemon {
            docker,
            layout,
            cgroup_v1: version != "2",
        };
        if let Ok(mut g) = self.daemon.write() {
            *g = Some(d.clone());
        }
        Ok(d)
    }

    /// Forgets the connection (after the daemon stopped answering), so the next call connects anew.
    fn forget_daemon(&self) {
        if let Ok(mut g) = self.daemon.write() {
            *g = None;
        }
    }

    async fn prepare_data(&self, spec: &SandboxSpec) -> Result<Option<PathBuf>> {
        if spec.limits.storage_mb == 0 {
            return Ok(None);
        }
        if self.quota {
            self.volumes
                .ensure(&spec.state_dir, spec.limits.storage_mb)
                .await?;
        } else if self.config.allow_weaker {
            std::fs::create_dir_all(&spec.state_dir).map_err(|e| DockerError::Io {
                action: "create",
                path: spec.state_dir.clone(),
                source: e,
            })?;
        } else {
            return Err(DockerError::refused(
                "the /data quota cannot be enforced on this host (needs root, loop devices and mkfs.ext4); \
                 set allow_weaker in the Docker backend's configuration to run with an unbounded /data",
            ));
        }
        Ok(Some(spec.state_dir.clone()))
    }

    /// The image id the install step recorded, or why nothing may run.
    pub(crate) fn pinned(spec: &SandboxSpec) -> Result<String> {
        let info = spec.install_info.as_ref();
        if let Some(id) = info.and_then(InstallFacts::pinned_image) {
            return Ok(id.to_string());
        }
        let why = info
            .and_then(InstallFacts::deferred)
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        Err(DockerError::refused(format!(
            "no image digest was recorded when this version was installed{why}, so nothing runs under \
             this approval; once the image is on this host, install the tool again (`slovo tool reinstall {}`)",
            spec.tool
        )))
    }

    async fn run_call(&self, spec: &SandboxSpec) -> Result<Outcome> {
        let Execution::Docker { image, entrypoint } = &spec.execution else {
            return Err(DockerError::refused(format!(
                "a {} tool is not a docker tool",
                spec.execution.kind()
            )));
        };
        let pinned = Self::pinned(spec)?;
        let d = self.daemon().await?;
        let current = match d.docker.inspect_image(image).await {
            Ok(i) => i.id.unwrap_or_default(),
            Err(e) if is_not_found(&e) => {
                return Err(DockerError::refused(format!(
                    "the image {image} is no longer present (approved and installed: {pinned})"
                )));
            }
            Err(e) => return Err(self.api_failure("inspect the image", e)),
        };
        if current != pinned {
            return Err(DockerError::refused(format!(
                "the image {image} is now {current}, but {pinned} was approved and installed; \
                 install the tool again to run the new image (`slovo tool reinstall {}` pins it, on the record)",
                spec.tool
            )));
        }
        let workload = Workload {
            image_id: &pinned,
            entrypoint: entrypoint.as_deref(),
            cmd: None,
            env: &[],
            call_env: true,
        };
        let dialogue = attach::RequestOnStdin {
            request: serde_json::to_vec(&spec.request).unwrap_or_default(),
        };
        self.run_workload(&d, spec, &workload, &dialogue).await
    }

    /// An error of the daemon's API; a daemon that stopped answering is connected anew at the
    /// next call.
    fn api_failure(&self, action: &'static str, e: bollard::errors::Error) -> DockerError {
        if matches!(
            e,
            bollard::errors::Error::HyperResponseError { .. } | bollard::errors::Error::IOError { .. }
        ) {
            self.forget_daemon();
        }
        DockerError::Api { action, source: e }
    }

    /// Runs `workload` for the call `spec` in a fresh container with the backend's whole
    /// isolation (limits, `/data`, network, accounting, removal), `dialogue` talking to it.
    /// The caller has checked that the image is the one pinned at install.
    pub(crate) async fn run_with(
        &self,
        spec: &SandboxSpec,
        workload: &Workload<'_>,
        dialogue: &dyn ContainerDialogue,
    ) -> Result<Outcome> {
        let d = self.daemon().await?;
        self.run_workload(&d, spec, workload, dialogue).await
    }

    /// Starts `workload` for the call `spec` in a fresh container exactly as
    /// [`DockerBackend::run_with`] does, and hands it over started (a warm MCP server waits in
    /// it for its call). The caller has checked that the image is the one pinned at install.
    pub(crate) async fn start_with(
        &self,
        spec: &SandboxSpec,
        workload: &Workload<'_>,
    ) -> Result<StartedContainer> {
        let d = self.daemon().await?;
        self.start_workload(&d, spec, workload).await
    }

    /// The image `reference` names on this host, by repository digest (`NAME@sha256:…` as
    /// pulled) or by image id (an image built or loaded here has no repository digest; its id
    /// is the digest of its content). Never pulls.
    pub(crate) async fn pinned_image(&self, reference: &str) -> Result<PinnedImage> {
        let d = self.daemon().await?;
        let (name, digest) = reference
            .split_once('@')
            .ok_or_else(|| DockerError::refused(format!("{reference} names no digest")))?;
        let by_repo_digest = match d.docker.inspect_image(reference).await {
            Ok(i) => Some(i),
            Err(e) if is_not_found(&e) => None,
            Err(e) => return Err(self.api_failure("inspect the image", e)),
        };
        let inspected = match by_repo_digest {
            Some(i) => i,
            None => match d.docker.inspect_image(digest).await {
                Ok(i) if i.id.as_deref() == Some(digest) => {
                    // A colon after the last slash is a tag; before it, a registry's port.
                    let repository = match name.rsplit_once(':') {
                        Some((repository, tag)) if !tag.contains('/') => repository,
                        _ => name,
                    };
                    if !image_is_named(&i, repository) {
                        return Err(DockerError::refused(format!(
                            "the image {digest} on this host is not an image of {repository} (its names: {})",
                            i.repo_tags.unwrap_or_default().join(", ")
                        )));
                    }
                    i
                }
                Ok(_) => return Err(not_here(reference)),
                Err(e) if is_not_found(&e) => return Err(not_here(reference)),
                Err(e) => return Err(self.api_failure("inspect the image", e)),
            },
        };
        let image_id = inspected
            .id
            .ok_or_else(|| DockerError::refused(format!("the daemon reported no id for {reference}")))?;
        Ok(PinnedImage {
            image_id,
            repo_digests: inspected.repo_digests.unwrap_or_default(),
        })
    }

    /// Refuses the call unless the image pinned at install (`image_id`) is still on this host.
    pub(crate) async fn check_present(&self, reference: &str, image_id: &str) -> Result<()> {
        let d = self.daemon().await?;
        match d.docker.inspect_image(image_id).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Err(DockerError::refused(format!(
                "the image {reference} is no longer present (approved and installed: {image_id})"
            ))),
            Err(e) => Err(self.api_failure("inspect the image", e)),
        }
    }
}

/// What a call runs in its container, decided by the backend whose tool it is.
pub(crate) struct Workload<'a> {
    /// The image, by the id pinned at install (never a tag that may have moved).
    pub image_id: &'a str,
    /// The entrypoint instead of the image's, if any.
    pub entrypoint: Option<&'a [String]>,
    /// The command (Docker's `CMD`) instead of the image's, if any.
    pub cmd: Option<&'a [String]>,
    /// Variables for the program (`NAME=value`).
    pub env: &'a [String],
    /// Whether the call's capability and execution id are in the environment.
    pub call_env: bool,
}

/// An image found on this host by its digest.
#[derive(Debug, Clone)]
pub(crate) struct PinnedImage {
    /// Its id (`sha256:…`, the digest of its configuration, which names its layers).
    pub image_id: String,
    /// Its repository digests (`NAME@sha256:…`), when it was pulled from a registry.
    pub repo_digests: Vec<String>,
}

/// Whether the image carries a name of `repository` (a tag or a repository digest), written
/// either as Docker shortens it or in full (`docker.io/library/…`).
fn image_is_named(image: &bollard::models::ImageInspect, repository: &str) -> bool {
    let short = |n: &str| {
        n.trim_start_matches("docker.io/")
            .trim_start_matches("library/")
            .to_string()
    };
    let want = short(repository);
    let tags = image.repo_tags.iter().flatten();
    let digests = image.repo_digests.iter().flatten();
    tags.chain(digests).any(|n| {
        let repo = n.split('@').next().unwrap_or(n);
        let repo = match repo.rsplit_once(':') {
            Some((r, tag)) if !tag.contains('/') => r,
            _ => repo,
        };
        short(repo) == want
    })
}

fn not_here(reference: &str) -> DockerError {
    DockerError::refused(format!(
        "the image {reference} is not on this host: nothing is pulled at import; load or pull it \
         first (`docker pull {reference}`), then import again"
    ))
}

impl Watched {
    /// The container's end as [`ending`] reads it.
    fn exit(&self) -> Exit {
        match self.exit_code {
            Some(code) => Exit::from_container_code(code),
            None => Exit::Unknown(format!(
                "the container ended without an exit code{}",
                self.stream_error
                    .as_ref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )),
        }
    }
}

fn outcome(w: Watched, figures: accounting::Figures, limits: &ResourceLimits, id: String) -> Outcome {
    let exit = w.exit();
    let accounting = ending::Accounting {
        cpu_ms: figures.cpu_ms,
        peak_memory_bytes: figures.peak_memory_bytes,
        out_of_memory: w.oom_killed,
        pids_max_hits: 0,
    };
    ending::outcome(w.captured, exit, accounting, limits, Enclosure::Container, id)
}

#[async_trait]
impl Backend for DockerBackend {
    fn kind(&self) -> &'static str {
        "docker"
    }

    async fn install(&self, request: &InstallRequest) -> Result<InstallFacts, BackendError> {
        let fail = |reason: String| BackendError::Install {
            tool: request.tool.clone(),
            reason,
        };
        let Execution::Docker { image, entrypoint } = &request.execution else {
            return Err(fail("not a docker tool".to_string()));
        };
        // As for a missing backend, a missing prerequisite (no daemon, no image) does not undo
        // the person's approval: the facts say why nothing is pinned, and every call is refused
        // with that reason (see `DockerBackend::pinned`).
        let deferred = |reason: String| {
            tracing::warn!(tool = %request.tool, image, reason, "docker install deferred: no image digest pinned");
            Ok(InstallFacts::Docker(DockerFacts::Deferred(DockerDeferred {
                image: image.clone(),
                entrypoint: entrypoint.clone(),
                reason,
            })))
        };
        let d = match self.daemon().await {
            Ok(d) => d,
            Err(e) => return deferred(e.to_string()),
        };
        let inspected = match d.docker.inspect_image(image).await {
            Ok(i) => i,
            Err(e) if is_not_found(&e) => {
                let registry = container::registry_of(image);
                if !self.config.allowed_registries.iter().any(|r| r == registry) {
                    return deferred(format!(
                        "the image {image} is not present locally, and pulling from {registry} is not allowed \
                         by the configuration; load or build the image on this host first"
                    ));
                }
                tracing::info!(image, registry, "pulling image");
                let mut pull = d.docker.create_image(
                    Some(CreateImageOptions {
                        from_image: Some(image.clone()),
                        ..Default::default()
                    }),
                    None,
                    None,
                );
                while let Some(step) = pull.next().await {
                    step.map_err(|e| fail(format!("failed to pull {image}: {e}")))?;
                }
                d.docker
                    .inspect_image(image)
                    .await
                    .map_err(|e| fail(format!("failed to inspect {image} after pulling it: {e}")))?
            }
            Err(e) => return Err(fail(format!("failed to inspect {image}: {e}"))),
        };
        let image_id = inspected
            .id
            .ok_or_else(|| fail(format!("the daemon reported no id for {image}")))?;
        Ok(InstallFacts::Docker(DockerFacts::Pinned(DockerPinned {
            image: image.clone(),
            image_id,
            repo_digests: inspected.repo_digests.unwrap_or_default(),
            entrypoint: entrypoint.clone(),
            user: format!("{}:{}", self.config.uid, self.config.gid),
        })))
    }

    async fn release_state(&self, state_dir: &Path, purge: bool) -> Result<(), BackendError> {
        self.volumes
            .release(state_dir, purge)
            .map_err(|e| BackendError::Install {
                tool: state_dir.display().to_string(),
                reason: format!("failed to release the state volume: {e}"),
            })
    }

    async fn shutdown(&self) {
        self.volumes.release_all();
    }

    async fn run(&self, spec: &SandboxSpec) -> Outcome {
        match self.run_call(spec).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, tool = %spec.tool, execution = %spec.execution_id, "docker call failed");
                Outcome::failed(e.to_string())
            }
        }
    }
}
