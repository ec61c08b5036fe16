//! Server-sent events: the page learns that something changed and refreshes its live parts.
//!
//! The stream carries no data a page would render, only a signal with counters: the page
//! fetches itself again (with the session cookie) and swaps its `data-live` regions, so every
//! byte shown still comes from a server-rendered, escaped page.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use slovo_runtime::ExecutionFilter;

use crate::DashboardState;
use crate::error::PageResult;
use crate::session::{Session, cookie_value};

/// What a page compares to know whether something changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Snapshot {
    audit_seq: i64,
    newest_execution: Option<(String, String)>,
}

async fn snapshot(state: &DashboardState) -> Option<Snapshot> {
    // Every chain: on PostgreSQL calls' results go to their instance's chain.
    let audit_seq = state.runtime.audit_event_total().await.ok()?;
    let newest = state
        .runtime
        .executions(&ExecutionFilter {
            limit: 1,
            ..ExecutionFilter::default()
        })
        .await
        .ok()?;
    Some(Snapshot {
        audit_seq,
        newest_execution: newest
            .into_iter()
            .next()
            .map(|e| (e.id, e.status.as_str().to_string())),
    })
}

/// `GET /events`: a `change` event whenever the audit chain grows or a call starts or ends;
/// it ends when the session does.
pub(crate) async fn stream(
    State(state): State<DashboardState>,
    _session: Session,
    headers: HeaderMap,
) -> PageResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let cookie = cookie_value(&headers).unwrap_or_default();
    let interval: Duration = state.config.poll_interval;
    let first = snapshot(&state).await.unwrap_or_default();
    let events = stream::unfold((state, cookie, first), move |(state, cookie, last)| async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = state.shutdown.cancelled() => return None,
            }
            // The stream ends with the session (signed out, expired) or when it cannot be
            // looked up.
            state.sessions.find(&cookie).await.ok()??;
            let Some(now) = snapshot(&state).await else {
                continue;
            };
            if now != last {
                let data = serde_json::json!({
                    "audit_seq": now.audit_seq,
                    "newest_execution": now.newest_execution.as_ref().map(|(id, _)| id),
                })
                .to_string();
                let event = Event::default().event("change").data(data);
                return Some((Ok(event), (state, cookie, now)));
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
