//! One call's container from its creation to its removal, in two halves:
//! [`DockerBackend::start_workload`] prepares `/data`, the egress and the accounting cgroup,
//! creates, attaches and starts the container; the conversation happens; then either
//! [`StartedContainer::finish`] (a docker tool, a cold MCP call: wait for the exit, remove,
//! read the figures) or, for a warm MCP server answering the one call it waited for,
//! [`StartedContainer::outcome_at_answer`] and [`StartedContainer::destroy`] off the call path.
//! Both halves are the same for a cold call and a warm server, so a container is started with
//! the same flags whenever it is started.
//!
//! A [`StartedContainer`] that is let go of without either (a call dropped, a pool dropped with
//! the runtime) is removed from a thread of its own with a connection of its own, so that it
//! does not depend on the async runtime that created it still running.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use bollard::Docker;
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, RemoveContainerOptions, WaitContainerOptions,
};
use futures_util::StreamExt;
use tokio::time::Instant;

use super::accounting::CallCgroup;
use super::error::{DockerError, Result, is_not_found};
use super::{
    CALLS, ContainerConversed, ContainerDialogue, ContainerIo, Daemon, DockerBackend, Workload, container,
    daemon, egress, outcome, sanitize,
};
use crate::{Outcome, ResourceLimits, SandboxSpec};

/// A call's container, created (or being created) and not yet removed, with what was set up
/// for it: its egress route and its accounting cgroup.
pub(crate) struct StartedContainer {
    /// The container's id once created; its name until then (the daemon accepts either).
    pub id: String,
    /// When the container was started.
    pub started_at: Instant,
    docker: Docker,
    /// The daemon's address, to connect anew if the container is removed from a thread.
    host: String,
    limits: ResourceLimits,
    tool: String,
    /// When the call times out (the spec's timeout from the start).
    deadline: Instant,
    /// Its attached streams, until [`StartedContainer::take_io`].
    io: Option<ContainerIo>,
    egress: Option<egress::CallEgress>,
    cgroup: Option<CallCgroup>,
    removed: bool,
}

fn remove_options() -> Option<RemoveContainerOptions> {
    Some(RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    })
}

impl DockerBackend {
    /// Runs `workload` for the call `spec` in a fresh container, `dialogue` talking to it.
    pub(super) async fn run_workload(
        &self,
        d: &Daemon,
        spec: &SandboxSpec,
        workload: &Workload<'_>,
        dialogue: &dyn ContainerDialogue,
    ) -> Result<Outcome> {
        let mut started = self.start_workload(d, spec, workload).await?;
        let conversed = dialogue.converse(started.take_io()?).await;
        started.finish(conversed).await
    }

    /// Creates, attaches and starts the container of `workload` for the call `spec`, with
    /// the backend's whole isolation (limits, `/data`, network, accounting). The caller has
    /// checked that the image is the one pinned at install.
    pub(super) async fn start_workload(
        &self,
        d: &Daemon,
        spec: &SandboxSpec,
        workload: &Workload<'_>,
    ) -> Result<StartedContainer> {
        let docker = &d.docker;
        let data = self.prepare_data(spec).await?;

        let pid = std::process::id();
        let call = format!("{pid}-{}", CALLS.fetch_add(1, Ordering::Relaxed));
        let name = format!("slovo-{call}-{}", sanitize(&spec.execution_id));
        let cgroup = d
            .layout
            .as_ref()
            .map(|l| CallCgroup::new(l, &self.config.cgroup_root, &call));
        let parent = cgroup.as_ref().map(CallCgroup::parent);
        let mut labels = HashMap::new();
        labels.insert(container::LABEL_MANAGED.to_string(), "1".to_string());
        labels.insert(container::LABEL_PID.to_string(), pid.to_string());
        labels.insert(
            container::LABEL_PID_START.to_string(),
            daemon::start_time(pid).unwrap_or(0).to_string(),
        );
        labels.insert(container::LABEL_TOOL.to_string(), spec.tool.clone());
        labels.insert(container::LABEL_EXECUTION.to_string(), spec.execution_id.clone());
        let user = format!("{}:{}", self.config.uid, self.config.gid);
        // Last before the container: the listener and rule exist only while it may run.
        let egress = if container::needs_egress(&spec.network) {
            Some(
                egress::CallEgress::open(
                    docker,
                    &self.config.egress,
                    &self.egress(),
                    &spec.execution_id,
                    &spec.network,
                    &call,
                    u64::from(pid)
                        .wrapping_mul(7919)
                        .wrapping_add(CALLS.load(Ordering::Relaxed)),
                )
                .await?,
            )
        } else {
            None
        };
        let network = match &egress {
            Some(e) => container::Network::Egress {
                network: self.config.egress.name.clone(),
                address: e.address,
                proxy: e.proxy,
            },
            None => container::Network::None,
        };
        let plan = container::Plan {
            image_id: workload.image_id,
            entrypoint: workload.entrypoint,
            cmd: workload.cmd,
            env: workload.env,
            call_env: workload.call_env,
            user: &user,
            data: data.as_deref(),
            tmp_mb: self.config.tmp_mb,
            network: &network,
            cgroup_parent: parent.as_deref(),
            cgroup_v1: d.cgroup_v1,
            labels,
        };
        // Held from before the create request: whatever happens from here, the container (by
        // its name until the daemon gives its id), its route and its cgroup go together.
        let mut started = StartedContainer {
            id: name.clone(),
            started_at: Instant::now(),
            docker: docker.clone(),
            host: self.config.host.clone(),
            limits: spec.limits.clone(),
            tool: spec.tool.clone(),
            deadline: Instant::now() + spec.limits.timeout,
            io: None,
            egress,
            cgroup,
            removed: false,
        };
        let caps = (self.config.stdout_limit, self.config.stderr_limit);
        match started.create_and_start(spec, &name, &plan, caps).await {
            Ok(()) => Ok(started),
            Err(e) => {
                started.destroy().await;
                Err(e)
            }
        }
    }
}

impl StartedContainer {
    /// Create, attach, start; the deadline runs from the start. `caps`: the bytes of stdout
    /// allowed and of stderr kept.
    async fn create_and_start(
        &mut self,
        spec: &SandboxSpec,
        name: &str,
        plan: &container::Plan<'_>,
        caps: (usize, usize),
    ) -> Result<()> {
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.to_string()),
                    ..Default::default()
                }),
                container::body(spec, plan),
            )
            .await
            .map_err(DockerError::api("create the container"))?;
        self.id = created.id;
        let attach = self
            .docker
            .attach_container(
                &self.id,
                Some(AttachContainerOptions {
                    stream: true,
                    stdin: true,
                    stdout: true,
                    stderr: true,
                    logs: false,
                    ..Default::default()
                }),
            )
            .await
            .map_err(DockerError::api("attach to the container"))?;
        self.docker
            .start_container(&self.id, None)
            .await
            .map_err(DockerError::api("start the container"))?;
        self.started_at = Instant::now();
        self.deadline = self.started_at + spec.limits.timeout;
        self.io = Some(ContainerIo {
            input: attach.input,
            output: attach.output,
            deadline: self.deadline,
            stdout_limit: caps.0,
            stderr_limit: caps.1,
        });
        Ok(())
    }

    /// The container's end of the conversation (once).
    pub fn take_io(&mut self) -> Result<ContainerIo> {
        self.io
            .take()
            .ok_or_else(|| DockerError::refused("the container's streams were already taken"))
    }

    /// After the conversation: waits for the exit (unless the protocol gave its verdict),
    /// removes the container, cuts its route, reads its figures and removes its cgroup; the
    /// call's outcome.
    pub async fn finish(mut self, mut conversed: ContainerConversed) -> Result<Outcome> {
        let waited = self.wait_for_exit(&mut conversed).await;
        let removed = self.remove().await;
        // The container is removed (or its removal is under way after an error): cut the
        // call's route and collect what the proxy refused.
        let network_denials = match self.egress.take() {
            Some(e) => e.finish().await,
            None => Vec::new(),
        };
        // The container is gone (or being removed): its cgroup parent holds the figures.
        let figures = self.cgroup.as_ref().map(CallCgroup::figures).unwrap_or_default();
        let survivors = match self.cgroup.take() {
            Some(cg) => cg.remove().await,
            None => 0,
        };
        waited?;
        removed?;
        let limit_hit = conversed.watched.captured.timed_out
            || conversed.watched.captured.stdout_overflow
            || conversed.watched.oom_killed;
        let mut o = outcome(conversed.watched, figures, &self.limits, self.id.clone());
        if let Some(verdict) = conversed.verdict {
            verdict.apply(&mut o, limit_hit);
        }
        o.network_denials = network_denials;
        if survivors > 0 {
            tracing::warn!(tool = %self.tool, survivors, "processes outlived the container; killed through its cgroup");
            o.stderr.push_str(&format!(
                "\n[slovo: {survivors} process(es) outlived the container and were killed]"
            ));
        }
        Ok(o)
    }

    /// A protocol's verdict says how the call went: the program is stopped after its answer,
    /// so its exit says nothing, and the container is removed without waiting for it.
    /// Otherwise the exit code, and whether the kernel's OOM killer sent the SIGKILL.
    async fn wait_for_exit(&mut self, conversed: &mut ContainerConversed) -> Result<()> {
        let w = &mut conversed.watched;
        if conversed.verdict.is_none() && !w.captured.timed_out && !w.captured.stdout_overflow {
            let mut wait = self.docker.wait_container(
                &self.id,
                Some(WaitContainerOptions {
                    condition: "not-running".to_string(),
                }),
            );
            match tokio::time::timeout_at(self.deadline, wait.next()).await {
                Err(_) => w.captured.timed_out = true,
                Ok(Some(Ok(r))) => w.exit_code = Some(r.status_code),
                Ok(Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. }))) => {
                    w.exit_code = Some(code)
                }
                Ok(Some(Err(e))) => {
                    return Err(DockerError::Api {
                        action: "wait for the container",
                        source: e,
                    });
                }
                Ok(None) => {}
            }
        }
        if w.exit_code == Some(137) {
            // SIGKILL from inside, or the kernel's OOM killer: the daemon knows which.
            w.oom_killed = self
                .docker
                .inspect_container(&self.id, None)
                .await
                .ok()
                .and_then(|i| i.state)
                .and_then(|s| s.oom_killed)
                .unwrap_or(false);
        }
        Ok(())
    }

    /// The outcome of a container that still runs and is about to be destroyed (a warm MCP
    /// server after its one answer): the conversation's verdict, the figures so far and what
    /// the proxy refused (its session ends now, cutting every connection). It has no exit
    /// code; the caller destroys it ([`StartedContainer::destroy`]) off the call path.
    pub fn outcome_at_answer(&mut self, conversed: ContainerConversed) -> Outcome {
        let figures = self.cgroup.as_ref().map(CallCgroup::figures).unwrap_or_default();
        let network_denials = self
            .egress
            .as_mut()
            .map(egress::CallEgress::end_session)
            .unwrap_or_default();
        let limit_hit = conversed.watched.captured.timed_out
            || conversed.watched.captured.stdout_overflow
            || conversed.watched.oom_killed;
        let mut o = outcome(conversed.watched, figures, &self.limits, self.id.clone());
        if let Some(verdict) = conversed.verdict {
            verdict.apply(&mut o, limit_hit);
        }
        o.network_denials = network_denials;
        o
    }

    /// Removes the container (whatever it is doing), then its route and its cgroup, and
    /// waits until all are gone.
    pub async fn destroy(mut self) {
        self.io = None;
        if let Err(e) = self.remove().await {
            tracing::warn!(container = %self.id, error = %e, "failed to remove a container; start-up cleanup will");
        }
        if let Some(e) = self.egress.take() {
            e.finish().await;
        }
        if let Some(cg) = self.cgroup.take() {
            let survivors = cg.remove().await;
            if survivors > 0 {
                tracing::warn!(tool = %self.tool, survivors, "processes outlived the container; killed through its cgroup");
            }
        }
    }

    /// Removes the container forcibly (gone already is fine).
    async fn remove(&mut self) -> Result<()> {
        match self.docker.remove_container(&self.id, remove_options()).await {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                return Err(DockerError::Api {
                    action: "remove the container",
                    source: e,
                });
            }
        }
        self.removed = true;
        Ok(())
    }
}

impl Drop for StartedContainer {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        self.removed = true;
        self.io = None;
        let (host, id) = (std::mem::take(&mut self.host), std::mem::take(&mut self.id));
        let (egress, cgroup) = (self.egress.take(), self.cgroup.take());
        // Not on the runtime that created it: that one may be shutting down (a pool dropped
        // with it), and a task spawned there would never run.
        let spawned = std::thread::Builder::new()
            .name("slovo-docker-removal".into())
            .spawn(move || remove_from_a_thread(&host, &id, egress, cgroup));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "container left behind (no thread to remove it); start-up cleanup will remove it");
        }
    }
}

/// Removes the container `id` with a connection and a runtime of its own; then its route and
/// its cgroup. Blocking.
fn remove_from_a_thread(
    host: &str,
    id: &str,
    egress: Option<egress::CallEgress>,
    cgroup: Option<CallCgroup>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(container = %id, error = %e, "container left behind; start-up cleanup will remove it");
            return;
        }
    };
    runtime.block_on(async {
        let removed = match daemon::connect(host).await {
            Ok(docker) => match docker.remove_container(id, remove_options()).await {
                Ok(()) => Ok(()),
                Err(e) if is_not_found(&e) => Ok(()),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = removed {
            tracing::warn!(container = %id, error = %e, "failed to remove a container; start-up cleanup will");
        }
        // After the container: a rule outliving its container is harmless, the reverse is not.
        if let Some(e) = egress {
            e.finish().await;
        }
        if let Some(cg) = cgroup {
            cg.remove().await;
        }
    });
}
