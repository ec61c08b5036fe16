//! Activity: executions with filters and a live tail; one execution in full.

use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use slovo_core::execution::ExecutionStatus;
use slovo_runtime::{ExecutionFilter, ExecutionRow};

use super::segment;
use crate::DashboardState;
use crate::error::{PageError, PageResult};
use crate::render::{Page, Section, bytes, layout, millis, time_ms};
use crate::session::Session;

/// Longest text shown on the page (characters); the rest is in the download.
const SHOWN_CHARS: usize = 16 * 1024;
/// Executions listed at most.
const PAGE_ROWS: i64 = 100;

/// The filters of the Activity page.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Filters {
    #[serde(default)]
    tool: Option<String>,
    #[serde(default)]
    status: Option<String>,
    /// `1h`, `24h`, `7d` or empty (any time).
    #[serde(default)]
    within: Option<String>,
}

fn within_ms(within: Option<&str>) -> Option<i64> {
    match within {
        Some("1h") => Some(3_600_000),
        Some("24h") => Some(86_400_000),
        Some("7d") => Some(7 * 86_400_000),
        _ => None,
    }
}

/// `GET /activity`.
pub(crate) async fn list(
    State(state): State<DashboardState>,
    session: Session,
    Query(filters): Query<Filters>,
) -> PageResult<Page> {
    let tool = filters.tool.clone().filter(|t| !t.is_empty());
    let status = filters
        .status
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ExecutionStatus>()
                .map_err(|e| PageError::BadInput(e.to_string()))
        })
        .transpose()?;
    let mut rows = state
        .runtime
        .executions(&ExecutionFilter {
            tool: tool.clone(),
            status,
            limit: PAGE_ROWS,
            ..ExecutionFilter::default()
        })
        .await?;
    if let Some(span) = within_ms(filters.within.as_deref()) {
        let since = slovo_core::time::now_ms() - span;
        rows.retain(|e| e.started_at >= since);
    }
    let tools = state.runtime.list().await?;
    Ok(layout(
        "Activity",
        &session,
        Section::Activity,
        html! {
            form.filters method="get" action="/activity" {
                label for="f-tool" { "Tool" }
                select #f-tool name="tool" {
                    option value="" { "every tool" }
                    @for t in &tools { option value=(t.name) selected[tool.as_deref() == Some(t.name.as_str())] { (t.name) } }
                }
                label for="f-status" { "Status" }
                select #f-status name="status" {
                    option value="" { "any status" }
                    @for s in ExecutionStatus::ALL { option value=(s.as_str()) selected[status == Some(s)] { (s.as_str()) } }
                }
                label for="f-within" { "Time" }
                select #f-within name="within" {
                    @for (v, l) in [("", "any time"), ("1h", "last hour"), ("24h", "last 24 hours"), ("7d", "last 7 days")] {
                        option value=(v) selected[filters.within.as_deref().unwrap_or("") == v] { (l) }
                    }
                }
                button type="submit" { "Filter" }
            }
            p.hint { "New calls appear here as they happen." }
            div #activity data-live { (table(&rows)) }
        },
    ))
}

fn table(rows: &[ExecutionRow]) -> Markup {
    html! {
        @if rows.is_empty() {
            p.empty { "No calls match. Calls appear here once an approved tool is used by the assistant." }
        } @else {
            div.table-wrap {
                table.activity {
                    caption { "Calls, newest first" }
                    thead { tr { th scope="col" { "Started" } th scope="col" { "Tool" } th scope="col" { "Capability" } th scope="col" { "Status" } th scope="col" { "Duration" } } }
                    tbody {
                        @for e in rows {
                            tr {
                                td { (time_ms(e.started_at)) }
                                td { (e.tool) " " (e.version) }
                                td { a href={ "/activity/" (segment(&e.id)) } { (e.capability) } }
                                td { span class={ "exec exec-" (e.status.as_str()) } { (e.status.as_str()) } }
                                td { @match e.duration_ms { Some(d) => { (millis(d)) }, None => { "—" } } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Pretty JSON of a value, or the text itself.
fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

fn shown(text: &str, id: &str, what: &str) -> Markup {
    let total = text.chars().count();
    html! {
        @if total > SHOWN_CHARS {
            @let cut: String = text.chars().take(SHOWN_CHARS).collect();
            pre.output.untrusted { (cut) }
            p.truncated {
                "Showing the first " (SHOWN_CHARS) " of " (total) " characters. "
                a href={ "/activity/" (segment(id)) "/download" } download { "Download the whole execution (" (what) " included, JSON)" }
            }
        } @else {
            pre.output.untrusted { (text) }
        }
    }
}

/// `GET /activity/{id}`.
pub(crate) async fn page(
    State(state): State<DashboardState>,
    session: Session,
    Path(id): Path<String>,
) -> PageResult<Page> {
    let e = state.runtime.execution(&id).await?;
    Ok(layout(
        &format!("Call of {} · {}", e.tool, e.capability),
        &session,
        Section::Activity,
        html! {
            section.card #execution data-live aria-labelledby="facts" {
                h2 #facts { "What happened" }
                dl.facts {
                    dt { "Status" } dd { span class={ "exec exec-" (e.status.as_str()) } { (e.status.as_str()) } }
                    dt { "Tool" } dd { a href={ "/tools/" (segment(&e.tool)) } { (e.tool) } " " (e.version) }
                    dt { "Started" } dd { (time_ms(e.started_at)) }
                    dt { "Duration" } dd { @match e.duration_ms { Some(d) => { (millis(d)) }, None => { "still running" } } }
                    dt { "CPU time" } dd { @match e.cpu_ms { Some(d) => { (millis(d)) }, None => { "not measured" } } }
                    dt { "Peak memory" } dd { @match e.peak_memory_bytes { Some(b) => { (bytes(b)) }, None => { "not measured" } } }
                    dt { "Exit code" } dd { @match e.exit_code { Some(c) => { (c) }, None => { "none" } } }
                    dt { "Called by" } dd { (e.actor) }
                    @if let Some(c) = &e.conversation_id { dt { "Conversation" } dd { (c) } }
                }
                h3 { "Arguments" }
                (shown(&pretty(&e.arguments), &e.id, "arguments"))
                h3 { "Output" }
                @match &e.output { Some(o) => { (shown(&pretty(o), &e.id, "output")) }, None => { p { "No output." } } }
                @if let Some(err) = &e.error { h3 { "Error" } (shown(err, &e.id, "error")) }
                @if let Some(s) = e.stderr.as_deref().filter(|s| !s.is_empty()) { h3 { "Standard error" } (shown(s, &e.id, "stderr")) }
                h3 { "Network denials" }
                @if e.network_denials.is_empty() { p { "None: it tried to reach nothing it was not allowed to." } }
                ul {
                    @for d in &e.network_denials { li { code { (d.host) ":" (d.port) } " — " (d.reason) } }
                }
            }
        },
    ))
}

/// `GET /activity/{id}/download`: the whole execution as JSON.
pub(crate) async fn download(
    State(state): State<DashboardState>,
    _session: Session,
    Path(id): Path<String>,
) -> PageResult<Response> {
    let e = state.runtime.execution(&id).await?;
    let body = serde_json::to_string_pretty(&e).map_err(|err| PageError::BadInput(err.to_string()))?;
    let name: String =
        e.id.chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
    Ok((
        [
            (CONTENT_TYPE, "application/json".to_string()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"execution-{name}.json\""),
            ),
        ],
        body,
    )
        .into_response())
}
