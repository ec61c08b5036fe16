//! Instances sharing one database: registration, heartbeats, and what a survivor does about an
//! instance that stopped answering (`docs/deployment.md`).
//!
//! Every serving instance renews a lease in the `instances` table. When a lease lapses without a
//! clean stop, the first survivor to notice marks the instance stopped (one conditional update,
//! so of two survivors exactly one wins) and records each call it left `running` as
//! `interrupted`, each with its audit event, then one `instance.lapsed` event. A lapsed instance
//! that was only slow finds its heartbeat refused, registers again, and the calls it then tries
//! to finish are refused by the store (a result is written only over `running`).

use std::time::Duration;

use serde::Serialize;
use slovo_core::audit::AuditRecord;
use slovo_core::audit::record::InstanceLapsed;
use slovo_core::execution::ExecutionStatus;
use slovo_core::time::now_ms;
use slovo_store::{InstanceRow, LeaseConnection};
use tracing::{info, warn};

use crate::audit_record::AppendRecord;
use crate::{Result, Runtime};

/// The default lease: an instance that has not renewed it for this long is dead.
pub const DEFAULT_INSTANCE_LEASE: Duration = Duration::from_secs(15);

/// What one heartbeat found.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Heartbeat {
    /// The lease had lapsed and another instance had declared this one dead; it registered
    /// again.
    pub reregistered: bool,
    /// Instances this heartbeat declared dead.
    pub lapsed: Vec<String>,
    /// Calls recorded as `interrupted`: those of the lapsed instances, and this instance's own
    /// whose result the database failed to take.
    pub interrupted: usize,
}

/// An instance as the front ends show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceView {
    /// Its id.
    pub id: String,
    /// Host name and process id.
    pub host: String,
    /// Process id on that host.
    pub pid: i64,
    /// The Slovo Tools version it runs.
    pub version: String,
    /// `alive`, `lapsed` (lease expired, not yet noticed) or `stopped`.
    pub state: &'static str,
    /// When it started, Unix ms.
    pub started_at: i64,
    /// Its latest heartbeat, Unix ms.
    pub heartbeat_at: i64,
    /// Its lease, ms.
    pub lease_ms: i64,
    /// When it stopped, Unix ms.
    pub stopped_at: Option<i64>,
    /// Whether it is this runtime.
    pub this: bool,
}

impl Runtime {
    /// How often [`Runtime::heartbeat`] should run: a third of the lease, so that two missed
    /// beats in a row still keep it.
    pub fn heartbeat_interval(&self) -> Duration {
        self.settings.instance_lease / 3
    }

    /// Registers this runtime as a live instance (at start, and again after its lease was
    /// declared lapsed). On PostgreSQL the instance also opens (or finds again) the audit chain
    /// its calls' results go to, so that instances do not queue on one chain head
    /// (`docs/audit.md`, "Several writers").
    pub async fn register_instance(&self) -> Result<()> {
        self.store.register_instance(&self.instance_row()).await?;
        let chain = self.store.open_audit_chain(&self.instance_id, "system").await?;
        info!(instance = %self.instance_id, audit_chain = chain, "registered this instance");
        Ok(())
    }

    /// Renews this instance's lease, then declares dead every instance whose lease lapsed and
    /// records the calls they left running as `interrupted`.
    pub async fn heartbeat(&self) -> Result<Heartbeat> {
        let mut beat = self.renew_lease().await?;
        let reaped = self.reap_lapsed_instances().await?;
        beat.lapsed = reaped.lapsed;
        beat.interrupted = reaped.interrupted;
        Ok(beat)
    }

    /// Renews this instance's lease (registering again if another instance had declared it
    /// dead). Touches only the store's lease connection, so busy calls cannot delay it.
    pub async fn renew_lease(&self) -> Result<Heartbeat> {
        let mut beat = Heartbeat::default();
        if !self.store.heartbeat(&self.instance_id, now_ms()).await? {
            warn!(instance = %self.instance_id, "this instance's lease had lapsed; registering again");
            self.register_instance().await?;
            beat.reregistered = true;
        }
        Ok(beat)
    }

    /// Declares dead every other instance whose lease lapsed and records the calls it left
    /// running as `interrupted`; so too this instance's own calls whose result the database
    /// failed to take.
    pub async fn reap_lapsed_instances(&self) -> Result<Heartbeat> {
        let mut beat = Heartbeat {
            interrupted: self.record_unrecorded().await?,
            ..Heartbeat::default()
        };
        for dead in self.store.lapsed_instances(now_ms()).await? {
            if dead.id == self.instance_id {
                continue; // this instance renews its own lease; it never buries itself
            }
            if let Some(n) = self.bury_instance(&dead).await? {
                beat.lapsed.push(dead.id.clone());
                beat.interrupted += n;
            }
        }
        Ok(beat)
    }

    /// Renews the lease every [`Runtime::heartbeat_interval`] and looks for lapsed instances
    /// as often, until [`Heartbeats::stop`].
    ///
    /// The renewal runs on a thread of its own, with an async runtime and a database
    /// connection of its own ([`slovo_store::LeaseConnection`]), and does nothing else. On the
    /// runtime that serves calls it would wait for worker threads that calls keep busy (two on a
    /// two-core machine), behind every task ready before it, and behind any call that blocks its
    /// thread; a mostly sleeping thread of its own is scheduled as soon as its timer fires. Being
    /// declared dead wrongly costs every call in flight on this instance, which is why the
    /// renewal gets a thread. The search for lapsed instances runs on the serving runtime: it is
    /// ordinary audited work (each call of a dead instance is recorded with its event), and a
    /// late search only delays it.
    ///
    /// A failed round (the database restarting) is logged and retried at the next tick.
    pub fn spawn_heartbeat(self: &std::sync::Arc<Self>) -> Heartbeats {
        let reaper = std::sync::Arc::clone(self);
        let interval = self.heartbeat_interval();
        let reaping = tokio::spawn(async move { every(interval, || reaper.reap_lapsed_instances()).await });
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (done, finished) = tokio::sync::oneshot::channel();
        let keeper = || LeaseKeeper {
            lease: self.store.lease_connection(),
            instance: self.instance_row(),
            interval,
            stop: stopped.clone(),
        };
        let on_thread = keeper();
        let spawned = std::thread::Builder::new()
            .name("slovo-lease".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(own) => own.block_on(on_thread.run()),
                    Err(e) => tracing::error!(error = %e, "no runtime for the lease renewal's thread; the lease is not renewed"),
                }
                let _ = done.send(());
            });
        let finished = match spawned {
            Ok(_) => finished,
            Err(e) => {
                // Far better than no renewal at all: the serving runtime renews it, as it did
                // before the renewal had a thread.
                warn!(error = %e, "no thread for the lease renewal; renewing on the serving runtime");
                let (done, finished) = tokio::sync::oneshot::channel();
                let on_task = keeper();
                tokio::spawn(async move {
                    on_task.run().await;
                    let _ = done.send(());
                });
                finished
            }
        };
        Heartbeats {
            stop,
            finished,
            reaping,
        }
    }

    /// This instance as it registers, with its start and heartbeat at now.
    fn instance_row(&self) -> InstanceRow {
        let now = now_ms();
        InstanceRow {
            id: self.instance_id.clone(),
            host: host_name(),
            pid: i64::from(std::process::id()),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: now,
            heartbeat_at: now,
            lease_ms: lease_ms(self.settings.instance_lease),
            stopped_at: None,
        }
    }

    /// Marks this instance stopped at a clean shutdown, so that nobody waits for its lease.
    pub async fn stop_instance(&self) -> Result<()> {
        self.store.stop_instance(&self.instance_id, now_ms()).await?;
        Ok(())
    }

    /// Every instance registered in the database.
    pub async fn instances(&self) -> Result<Vec<InstanceView>> {
        let now = now_ms();
        Ok(self
            .store
            .instances()
            .await?
            .into_iter()
            .map(|r| InstanceView {
                state: if r.stopped_at.is_some() {
                    "stopped"
                } else if r.lapsed(now) {
                    "lapsed"
                } else {
                    "alive"
                },
                this: r.id == self.instance_id,
                id: r.id,
                host: r.host,
                pid: r.pid,
                version: r.version,
                started_at: r.started_at,
                heartbeat_at: r.heartbeat_at,
                lease_ms: r.lease_ms,
                stopped_at: r.stopped_at,
            })
            .collect())
    }

    /// Declares `dead` stopped and interrupts its running calls. `None` when another survivor
    /// got there first.
    async fn bury_instance(&self, dead: &InstanceRow) -> Result<Option<usize>> {
        if !self.store.stop_instance(&dead.id, now_ms()).await? {
            return Ok(None);
        }
        let ids = self.store.running_execution_ids_of(&dead.id).await?;
        let reason = format!(
            "instance {} on {} stopped answering (no heartbeat for {} ms) while the call was running",
            dead.id,
            dead.host,
            now_ms().saturating_sub(dead.heartbeat_at)
        );
        let n = self.abandon(&ids, ExecutionStatus::Interrupted, &reason).await?;
        let mut tx = self.store.begin().await?;
        tx.append_record(
            None,
            &format!("instance:{}", self.instance_id),
            &AuditRecord::InstanceLapsed(InstanceLapsed {
                instance: dead.id.clone(),
                host: dead.host.clone(),
                pid: dead.pid,
                heartbeat_at: dead.heartbeat_at,
                lease_ms: dead.lease_ms,
                interrupted: n,
            }),
        )
        .await?;
        tx.commit().await?;
        warn!(instance = %dead.id, host = %dead.host, interrupted = n, "an instance's lease lapsed");
        Ok(Some(n))
    }
}

/// Runs `round` every `interval` forever, logging failures.
async fn every<F, Fut>(interval: Duration, mut round: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Heartbeat>>,
{
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = round().await {
            warn!(error = %e, "instance heartbeat round failed; retrying at the next tick");
        }
    }
}

/// The lease renewal and the search for lapsed instances of one runtime
/// ([`Runtime::spawn_heartbeat`]). Dropping it stops both without waiting.
#[derive(Debug)]
#[must_use = "dropping the heartbeats stops renewing the lease"]
pub struct Heartbeats {
    stop: tokio::sync::watch::Sender<bool>,
    /// Answered when the renewal ends.
    finished: tokio::sync::oneshot::Receiver<()>,
    reaping: tokio::task::JoinHandle<()>,
}

/// How long [`Heartbeats::stop`] waits for a renewal in flight.
const RENEWAL_STOP_WAIT: Duration = Duration::from_secs(5);

impl Heartbeats {
    /// Stops both, and waits (a bounded time) for a renewal in flight to end, so that none
    /// runs after this instance marks itself stopped.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        self.reaping.abort();
        if tokio::time::timeout(RENEWAL_STOP_WAIT, &mut self.finished)
            .await
            .is_err()
        {
            warn!("the lease renewal did not stop in time");
        }
    }
}

impl Drop for Heartbeats {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.reaping.abort();
    }
}

/// What the renewal's thread runs.
struct LeaseKeeper {
    lease: LeaseConnection,
    instance: InstanceRow,
    interval: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
}

impl LeaseKeeper {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.stop.changed() => {}
            }
            if *self.stop.borrow() {
                break;
            }
            if let Err(e) = self.renew().await {
                warn!(error = %e, "renewing this instance's lease failed; retrying at the next tick");
            }
        }
        self.lease.close().await;
    }

    /// One renewal; registers again if another instance declared this one dead, unless this
    /// instance is stopping (it is about to mark itself stopped).
    async fn renew(&mut self) -> Result<()> {
        let id = self.instance.id.clone();
        if self.lease.heartbeat(&id, now_ms()).await? || *self.stop.borrow() {
            return Ok(());
        }
        warn!(instance = %id, "this instance's lease had lapsed; registering again");
        let now = now_ms();
        self.instance.started_at = now;
        self.instance.heartbeat_at = now;
        self.lease.register_instance(&self.instance).await?;
        Ok(())
    }
}

fn lease_ms(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)
}

/// This machine's host name, for the person reading the instance list.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}
