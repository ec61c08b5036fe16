//! Hearing of tool changes committed by other processes: on PostgreSQL, `LISTEN` on the channel
//! that the `tools` table's trigger notifies (migration `20261207100000_tool_change_notify`).
//!
//! The listener holds one connection of its own (its own pool of one, so the store's pool
//! never lends it out, and `pg_stat_activity` names it [`LISTENER_APPLICATION_NAME`]). A lost
//! connection is re-established and `LISTEN` issued again by sqlx's [`PgListener`] itself;
//! what was notified meanwhile is gone, which [`ToolChangeEvent::Reconnected`] tells the
//! caller, so that it reads the tools once instead.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};

use crate::{Result, Store};

/// The channel the `tools` trigger notifies, with the tool's name as payload.
pub const TOOL_CHANGES_CHANNEL: &str = "slovo_tool_changes";

/// The `application_name` of the listener's connection, as `pg_stat_activity` shows it.
pub const LISTENER_APPLICATION_NAME: &str = "slovo tool-change listener";

/// How long the listener waits for a connection before reporting the database down (the
/// caller falls back to polling meanwhile).
const LISTENER_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a [`ToolChangeListener`] heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChangeEvent {
    /// A transaction that changed this tool's row committed.
    Changed(String),
    /// The connection was lost and is listening again: changes committed in between were not
    /// heard.
    Reconnected,
}

/// A `LISTEN` on [`TOOL_CHANGES_CHANNEL`] (PostgreSQL only).
pub struct ToolChangeListener {
    listener: PgListener,
}

impl std::fmt::Debug for ToolChangeListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolChangeListener").finish_non_exhaustive()
    }
}

/// The listener's pool of one connection, for a PostgreSQL `url`. Lazy: nothing connects until
/// someone listens.
pub(crate) fn listener_pool(url: &str) -> Result<PgPool> {
    let options = PgConnectOptions::from_str(url)?.application_name(LISTENER_APPLICATION_NAME);
    Ok(PgPoolOptions::new()
        .max_connections(1)
        // A listening connection is idle by nature: never retire it for that.
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(LISTENER_CONNECT_TIMEOUT)
        .connect_lazy_with(options))
}

impl Store {
    /// Starts listening for committed tool changes. `None` on SQLite, where one process serves
    /// a database and nothing is notified, and once the store was closed.
    pub async fn listen_tool_changes(&self) -> Result<Option<ToolChangeListener>> {
        let Some(pool) = &self.listen_pool else {
            return Ok(None);
        };
        let listening = async {
            let mut listener = PgListener::connect_with(pool).await?;
            listener.listen(TOOL_CHANGES_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match listening.await {
            Ok(listener) => Ok(Some(ToolChangeListener { listener })),
            Err(sqlx::Error::PoolClosed) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

impl ToolChangeListener {
    /// Waits for the next event. `Ok(None)` once the store was closed. An error means the
    /// database cannot be reached right now; calling again tries to reconnect.
    pub async fn next(&mut self) -> Result<Option<ToolChangeEvent>> {
        match self.listener.try_recv().await {
            Ok(Some(n)) => Ok(Some(ToolChangeEvent::Changed(n.payload().to_string()))),
            Ok(None) => Ok(Some(ToolChangeEvent::Reconnected)),
            Err(sqlx::Error::PoolClosed) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
