//! The change feed: how a runtime hears of lifecycle changes committed anywhere (through this
//! runtime, the CLI, or another instance sharing the database), and what follows from them.
//!
//! # Where changes come from
//! - On PostgreSQL, every change to a tool's row notifies a channel inside the changing
//!   transaction (a trigger; see `slovo_store::ToolChangeListener`), delivered at commit. A task
//!   of this runtime listens; each notification makes the feed look at once.
//! - The listener's connection can be lost (the database restarting, a killed backend). sqlx
//!   reconnects it; since notifications sent meanwhile are lost, a reconnection counts as a
//!   change too. While it is down, and always on SQLite (one process per database, nothing
//!   notified), the feed polls the audit head every [`RuntimeSettings::change_poll_interval`]:
//!   one indexed row, and the tool rows only when the head moved. While it listens, a slow
//!   poll ([`CHANGE_SAFETY_INTERVAL`]) remains as a safety net.
//!
//! # What a look does
//! It reads every tool's revision and what `tools/list` depends on (each active tool's name and
//! serving version). Compared with the previous look:
//! - the call path's cached snapshot of every tool whose revision moved is dropped, so the next
//!   call reads it afresh instead of discovering the change when the store refuses to record it
//!   (that refusal, the revision check, stays the safety net: a call racing a change is never
//!   run on a stale grant);
//! - if the listed tools changed, the generation in a [`watch`] channel goes up: each MCP
//!   session subscribed through [`Runtime::tool_list_changes`] sends
//!   `notifications/tools/list_changed`;
//! - if `resolve` has built its capability index, the index is rebuilt now rather than on the
//!   next request.
//!
//! Imports of versions waiting for approval and narrowing grants move revisions without
//! changing the list; executions move the audit head and nothing else.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use sha2::{Digest, Sha256};
use slovo_core::lifecycle::ToolStatus;
use slovo_store::{Store, ToolChangeEvent};
use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::Runtime;

/// How often the feed polls the audit head when nothing is notified (SQLite, or the listener
/// down). By default, 500 ms.
pub const DEFAULT_CHANGE_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// How often the feed polls while it listens, in case a notification went astray.
pub const CHANGE_SAFETY_INTERVAL: Duration = Duration::from_secs(10);

/// How long the listener waits before trying again after the database refused it.
const LISTEN_RETRY: Duration = Duration::from_secs(1);

/// The feed's state inside a [`Runtime`].
pub(crate) struct ChangeFeed {
    /// The generation of the tool list.
    generation: watch::Sender<u64>,
    /// What the last look saw; the lock keeps looks from interleaving.
    seen: Mutex<Option<Seen>>,
    /// The feed's task, once started.
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// Whether the listener is connected and listening.
    listening: watch::Sender<bool>,
}

impl Default for ChangeFeed {
    fn default() -> ChangeFeed {
        ChangeFeed {
            generation: watch::channel(0).0,
            seen: Mutex::default(),
            task: std::sync::Mutex::default(),
            listening: watch::channel(false).0,
        }
    }
}

impl Drop for ChangeFeed {
    fn drop(&mut self) {
        self.stop();
    }
}

impl ChangeFeed {
    /// Stops the feed's task (and with it the listener).
    pub(crate) fn stop(&self) {
        if let Some(task) = self.task.lock().ok().and_then(|mut t| t.take()) {
            task.abort();
        }
    }
}

/// What a look at the database saw.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    head: i64,
    revisions: BTreeMap<String, i64>,
    /// A hash of each active tool's name and serving version.
    listed: String,
}

/// What the listener task tells the feed.
#[derive(Debug)]
enum Heard {
    /// Listening (first, or again after a lost connection): anything may have changed.
    Listening,
    /// A committed change to this tool.
    Changed(String),
    /// The listener cannot reach the database; polling takes over.
    Down,
}

impl Runtime {
    /// Starts this runtime's change feed if it is not running: caches follow changes made
    /// anywhere on the database (see the `changes` module). `slovo serve` starts it; so does the
    /// first [`Runtime::tool_list_changes`]. It stops with [`Runtime::shutdown`] or when the
    /// runtime is dropped.
    pub fn spawn_change_feed(self: &Arc<Self>) {
        let Ok(mut task) = self.changes.task.lock() else {
            return; // a panic elsewhere poisoned the lock; the feed is then left as it was
        };
        if task.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        *task = Some(tokio::spawn(run_feed(Arc::downgrade(self), self.store.clone())));
    }

    /// A receiver marked changed whenever the list of active tools (what MCP `tools/list`
    /// shows) changes from now on, through whichever instance or process. Its baseline is the
    /// list at this call. Starts the change feed if it is not running.
    pub async fn tool_list_changes(self: &Arc<Self>) -> watch::Receiver<u64> {
        let mut seen = self.changes.seen.lock().await;
        self.look(&mut seen, true).await;
        let rx = self.changes.generation.subscribe();
        drop(seen);
        self.spawn_change_feed();
        rx
    }

    /// Whether the change feed is listening for notifications (PostgreSQL, listener
    /// connected) rather than polling; a receiver follows the changes.
    pub fn change_feed_listening(&self) -> watch::Receiver<bool> {
        self.changes.listening.subscribe()
    }

    /// Looks at the database and lets the caches and subscribers follow what changed. With
    /// `force`, reads the tools even if the audit head did not move. Returns whether any tool
    /// changed.
    async fn look(&self, seen: &mut Option<Seen>, force: bool) -> bool {
        let Some(now) = self.read_tools(seen.as_ref(), force).await else {
            return false;
        };
        let Some(before) = seen.replace(now.clone()) else {
            return false;
        };
        let moved: Vec<&String> = now
            .revisions
            .iter()
            .filter(|(name, rev)| before.revisions.get(*name) != Some(rev))
            .map(|(name, _)| name)
            .chain(
                before
                    .revisions
                    .keys()
                    .filter(|n| !now.revisions.contains_key(*n)),
            )
            .collect();
        for name in &moved {
            self.forget_serving(name);
            // Warm MCP servers of the old tool are destroyed now rather than at its next call.
            self.backends.forget_tool(name).await;
        }
        if before.listed != now.listed {
            debug!(head = now.head, "the list of active tools changed");
            self.changes.generation.send_modify(|g| *g += 1);
        }
        !moved.is_empty()
    }

    /// The tools' state; reads the tool rows only when `force` or the audit head moved since
    /// `before`. `None` when the database cannot be read (logged; the next look retries).
    async fn read_tools(&self, before: Option<&Seen>, force: bool) -> Option<Seen> {
        let head = match self.store.audit_head().await {
            Ok((seq, _)) => seq,
            Err(e) => {
                warn!(error = %e, "change feed: failed to read the audit head");
                return None;
            }
        };
        if let Some(b) = before
            && b.head == head
            && !force
        {
            return Some(b.clone());
        }
        let tools = match self.store.tools().await {
            Ok(t) => t,
            Err(e) => {
                warn!(error = %e, "change feed: failed to read the tools");
                return None;
            }
        };
        let mut listed: Vec<(&str, &str)> = tools
            .iter()
            .filter(|t| t.status == ToolStatus::Active)
            .map(|t| (t.name.as_str(), t.active_version.as_deref().unwrap_or("")))
            .collect();
        listed.sort();
        let mut h = Sha256::new();
        for (name, version) in listed {
            h.update(name.as_bytes());
            h.update([0]);
            h.update(version.as_bytes());
            h.update([0]);
        }
        Some(Seen {
            head,
            revisions: tools.iter().map(|t| (t.name.clone(), t.revision)).collect(),
            listed: hex::encode(h.finalize()),
        })
    }

    /// Rebuilds `resolve`'s capability index if one was built, so that the first request after
    /// a change does not pay for it.
    async fn refresh_resolve_index(&self) {
        if !self.discovery.has_index() {
            return;
        }
        if let Err(e) = self.capability_index().await {
            warn!(error = %e, "change feed: failed to rebuild the resolve index");
        }
    }
}

/// The feed: waits for what the listener hears or for the next poll, then looks. Holds the
/// runtime weakly, so that dropping the runtime ends it.
async fn run_feed(runtime: Weak<Runtime>, store: Store) {
    let (heard_tx, mut heard) = mpsc::unbounded_channel();
    let _listener = AbortOnDrop(tokio::spawn(listen(store, heard_tx)));
    let mut listening = false;
    let mut listener_gone = false;
    loop {
        let Some(poll) = runtime.upgrade().map(|rt| rt.settings.change_poll_interval) else {
            return;
        };
        let wait = if listening {
            CHANGE_SAFETY_INTERVAL.max(poll)
        } else {
            poll
        };
        let force = tokio::select! {
            event = heard.recv(), if !listener_gone => match event {
                Some(Heard::Listening) => {
                    listening = true;
                    true
                }
                Some(Heard::Changed(tool)) => {
                    debug!(%tool, "notified of a tool change");
                    // A burst (one transaction changing several tools, or several commits)
                    // needs one look.
                    while let Ok(more) = heard.try_recv() {
                        match more {
                            Heard::Listening => listening = true,
                            Heard::Down => listening = false,
                            Heard::Changed(_) => {}
                        }
                    }
                    true
                }
                Some(Heard::Down) => {
                    listening = false;
                    false
                }
                None => {
                    // SQLite, or the store was closed: polling only.
                    listener_gone = true;
                    listening = false;
                    false
                }
            },
            () = tokio::time::sleep(wait) => false,
        };
        let Some(rt) = runtime.upgrade() else {
            return;
        };
        rt.changes
            .listening
            .send_if_modified(|l| std::mem::replace(l, listening) != listening);
        let changed = {
            let mut seen = rt.changes.seen.lock().await;
            rt.look(&mut seen, force).await
        };
        if changed {
            rt.refresh_resolve_index().await;
        }
    }
}

/// Listens for tool changes and tells the feed; reconnects after errors. Ends on SQLite and
/// once the store is closed.
async fn listen(store: Store, heard: mpsc::UnboundedSender<Heard>) {
    let mut down = false;
    loop {
        let mut listener = match store.listen_tool_changes().await {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(e) => {
                if !down {
                    warn!(error = %e, "change feed: cannot listen for tool changes; polling until it can");
                    down = true;
                    if heard.send(Heard::Down).is_err() {
                        return;
                    }
                }
                tokio::time::sleep(LISTEN_RETRY).await;
                continue;
            }
        };
        if down {
            info!("change feed: listening for tool changes again");
        }
        if heard.send(Heard::Listening).is_err() {
            return;
        }
        loop {
            let event = match listener.next().await {
                Ok(Some(ToolChangeEvent::Changed(tool))) => Heard::Changed(tool),
                Ok(Some(ToolChangeEvent::Reconnected)) => {
                    info!("change feed: the listening connection was lost and is back");
                    Heard::Listening
                }
                Ok(None) => return,
                Err(e) => {
                    warn!(error = %e, "change feed: lost the listening connection; polling until it is back");
                    down = true;
                    if heard.send(Heard::Down).is_err() {
                        return;
                    }
                    break;
                }
            };
            if heard.send(event).is_err() {
                return;
            }
        }
        tokio::time::sleep(LISTEN_RETRY).await;
    }
}

/// Aborts a task when dropped: the listener ends with the feed.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
