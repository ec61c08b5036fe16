//! When the list of MCP tools changes: a poller over the store, shared by every MCP session of
//! a process.
//!
//! The runtime has no change feed, and a change may come from another process on the same
//! database (the CLI approving a tool while the server runs, or another instance over
//! PostgreSQL). So the feed watches the database: every [`ChangeFeed::interval`] it reads the
//! audit head (one indexed row); only when the head moved does it read the tool rows and hash
//! what `tools/list` depends on (each active tool's name and serving version). When that hash
//! changes, the generation number in a [`watch`] channel goes up and every subscribed session
//! sends `notifications/tools/list_changed`.
//!
//! Every lifecycle transition writes its audit event in the same transaction as the tool row,
//! so once the head moved the tool rows are current. Imports of versions waiting for approval,
//! grants that narrow, and executions move the head without changing the hash, and send
//! nothing.
//!
//! The poller runs only while someone listens: it starts with the first subscriber and stops
//! at the first tick with none.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use slovo_core::lifecycle::ToolStatus;
use slovo_runtime::Runtime;
use tokio::sync::{Mutex, watch};

/// How often the poller looks at the audit head. By default, 500 ms.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(500);

/// A change feed of the tool list. See the module docs.
pub struct ChangeFeed {
    runtime: Arc<Runtime>,
    interval: Duration,
    tx: watch::Sender<u64>,
    state: Mutex<State>,
}

/// Guarded by one lock, so looks at the database never interleave.
#[derive(Debug, Default)]
struct State {
    /// True while a poller task runs.
    running: bool,
    /// What the last look saw.
    seen: Option<Seen>,
}

/// What a look at the database saw.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    head: i64,
    tools: String,
}

impl ChangeFeed {
    /// A feed over `runtime`'s store, polling every `interval`.
    pub fn new(runtime: Arc<Runtime>, interval: Duration) -> Arc<ChangeFeed> {
        let (tx, _) = watch::channel(0);
        Arc::new(ChangeFeed {
            runtime,
            interval,
            tx,
            state: Mutex::new(State::default()),
        })
    }

    /// The polling interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// A receiver that is marked changed whenever the tool list changes from now on, and
    /// starts the poller if it is not running. It looks at the database first, so its
    /// baseline is the list at this call, not at the poller's last tick (a change between
    /// that tick and now reaches the earlier subscribers, not this one).
    pub async fn subscribe(self: &Arc<Self>) -> watch::Receiver<u64> {
        let mut state = self.state.lock().await;
        self.refresh(&mut state).await;
        let rx = self.tx.subscribe();
        if !state.running {
            state.running = true;
            let feed = self.clone();
            tokio::spawn(async move { feed.poll().await });
        }
        rx
    }

    async fn poll(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.interval).await;
            let mut state = self.state.lock().await;
            if self.tx.receiver_count() == 0 {
                state.running = false;
                return;
            }
            self.refresh(&mut state).await;
        }
    }

    /// Looks at the database and bumps the generation if the listed tools changed since the
    /// last look.
    async fn refresh(&self, state: &mut State) {
        let Some(now) = self.look(state.seen.as_ref()).await else {
            return;
        };
        if let Some(before) = &state.seen
            && before.tools != now.tools
        {
            tracing::debug!(head = now.head, "the MCP tool list changed");
            self.tx.send_modify(|generation| *generation += 1);
        }
        state.seen = Some(now);
    }

    /// The current state; reads the tool rows only when the audit head moved since `before`.
    /// `None` when the database cannot be read (logged; the next tick retries).
    async fn look(&self, before: Option<&Seen>) -> Option<Seen> {
        let store = self.runtime.store();
        let head = match store.audit_head().await {
            Ok((seq, _)) => seq,
            Err(e) => {
                tracing::warn!(error = %e, "MCP change feed: failed to read the audit head");
                return None;
            }
        };
        if let Some(b) = before
            && b.head == head
        {
            return Some(b.clone());
        }
        let tools = match store.tools().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "MCP change feed: failed to read the tools");
                return None;
            }
        };
        let mut active: Vec<(&str, &str)> = tools
            .iter()
            .filter(|t| t.status == ToolStatus::Active)
            .map(|t| (t.name.as_str(), t.active_version.as_deref().unwrap_or("")))
            .collect();
        active.sort();
        let mut h = Sha256::new();
        for (name, version) in active {
            h.update(name.as_bytes());
            h.update([0]);
            h.update(version.as_bytes());
            h.update([0]);
        }
        Some(Seen {
            head,
            tools: hex::encode(h.finalize()),
        })
    }
}
