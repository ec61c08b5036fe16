//! Activity: executions with filters and a live tail; one execution in full.

use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use chrono::{Duration as ChronoDuration, NaiveDateTime};
use maud::{Markup, html};
use serde::Deserialize;
use slovo_core::execution::ExecutionStatus;
use slovo_runtime::{ExecutionCursor, ExecutionFilter, ExecutionView};

use super::segment;
use crate::DashboardState;
use crate::error::{PageError, PageResult};
use crate::render::{Page, Section, bytes, layout, millis, time_ms};
use crate::session::Session;

/// Longest text shown on the page (characters); the rest is in the download.
const SHOWN_CHARS: usize = 16 * 1024;
/// Executions listed on one page.
const PAGE_ROWS: i64 = 100;

/// The filters of the Activity page.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Filters {
    #[serde(default)]
    tool: Option<String>,
    #[serde(default)]
    status: Option<String>,
    /// Calls started at or after this local time (`YYYY-MM-DDTHH:MM`, the browser's zone).
    #[serde(default)]
    from: Option<String>,
    /// Calls started at or before this local time (the minute included).
    #[serde(default)]
    to: Option<String>,
    /// The browser's `Date.getTimezoneOffset()` at `from`, set by the page's script; UTC
    /// without it. Each end has its own, so a range across a daylight-saving change is exact.
    #[serde(default)]
    from_tz_offset_minutes: Option<String>,
    /// The same at `to`.
    #[serde(default)]
    to_tz_offset_minutes: Option<String>,
    /// Older than this call (`<started_at ms>:<id>`): the next page.
    #[serde(default)]
    before: Option<String>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl Filters {
    /// `field` (a local time) as Unix ms, shifted by the browser's offset at that time.
    fn instant(&self, field: &str, value: Option<&str>, offset: &Option<String>) -> PageResult<Option<i64>> {
        let Some(local) = value else { return Ok(None) };
        let naive = NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M")
            .or_else(|_| NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M:%S"))
            .map_err(|_| PageError::BadInput(format!("{field}: {local:?} is not a date and time")))?;
        let offset: i64 = match given(offset) {
            Some(o) => o
                .parse()
                .ok()
                .filter(|o: &i64| o.abs() <= 24 * 60)
                .ok_or_else(|| {
                    PageError::BadInput(format!(
                        "{field}_tz_offset_minutes: {o:?} is not a time zone offset"
                    ))
                })?,
            None => 0,
        };
        Ok(Some(
            (naive + ChronoDuration::minutes(offset))
                .and_utc()
                .timestamp_millis(),
        ))
    }

    fn cursor(&self) -> PageResult<Option<ExecutionCursor>> {
        let Some(before) = given(&self.before) else {
            return Ok(None);
        };
        let bad = || PageError::BadInput(format!("before: {before:?} is not a position in the list"));
        let (at, id) = before.split_once(':').ok_or_else(bad)?;
        Ok(Some(ExecutionCursor {
            started_at: at.parse().map_err(|_| bad())?,
            id: id.to_string(),
        }))
    }

    /// The query string of this filter with the list continuing after `last`.
    fn next_page(&self, last: &ExecutionView) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("tool", &self.tool),
            ("status", &self.status),
            ("from", &self.from),
            ("to", &self.to),
            ("from_tz_offset_minutes", &self.from_tz_offset_minutes),
            ("to_tz_offset_minutes", &self.to_tz_offset_minutes),
        ] {
            if let Some(v) = given(v) {
                q.append_pair(k, v);
            }
        }
        q.append_pair("before", &format!("{}:{}", last.started_at, last.id));
        q.finish()
    }
}

/// `GET /activity`: calls newest first, a page at a time, within the chosen time range.
pub(crate) async fn list(
    State(state): State<DashboardState>,
    session: Session,
    Query(filters): Query<Filters>,
) -> PageResult<Page> {
    let tool = given(&filters.tool).map(str::to_string);
    let status = given(&filters.status)
        .map(|s| {
            s.parse::<ExecutionStatus>()
                .map_err(|e| PageError::BadInput(e.to_string()))
        })
        .transpose()?;
    let from = filters.instant("from", given(&filters.from), &filters.from_tz_offset_minutes)?;
    // The `to` minute is included: everything before the next minute.
    let to = filters
        .instant("to", given(&filters.to), &filters.to_tz_offset_minutes)?
        .map(|t| t + 60_000);
    let before = match (filters.cursor()?, to) {
        (Some(c), Some(t)) if c.started_at >= t => Some(ExecutionCursor {
            started_at: t,
            id: String::new(),
        }),
        (Some(c), _) => Some(c),
        (None, Some(t)) => Some(ExecutionCursor {
            started_at: t,
            id: String::new(),
        }),
        (None, None) => None,
    };
    let mut rows = state
        .runtime
        .executions(&ExecutionFilter {
            tool: tool.clone(),
            status,
            before,
            limit: PAGE_ROWS + 1,
        })
        .await?;
    let mut more = rows.len() > PAGE_ROWS as usize;
    rows.truncate(PAGE_ROWS as usize);
    if let Some(from) = from {
        let before_len = rows.len();
        rows.retain(|e| e.started_at >= from);
        more &= rows.len() == before_len;
    }
    let next = more
        .then(|| rows.last().map(|last| filters.next_page(last)))
        .flatten();
    let tools = state.runtime.list().await?;
    Ok(layout(
        "Activity",
        &session,
        Section::Activity,
        html! {
            form.filters method="get" action="/activity" {
                input type="hidden" name="from_tz_offset_minutes" value="0" data-tz-offset data-tz-offset-for="f-from";
                input type="hidden" name="to_tz_offset_minutes" value="0" data-tz-offset data-tz-offset-for="f-to";
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
                label for="f-from" { "From (your time)" }
                input #f-from type="datetime-local" name="from" value=(given(&filters.from).unwrap_or_default());
                label for="f-to" { "To (your time)" }
                input #f-to type="datetime-local" name="to" value=(given(&filters.to).unwrap_or_default());
                button type="submit" { "Filter" }
            }
            @if filters.before.is_some() {
                p.hint { "Older calls. " a href="/activity" { "Back to the newest" } }
            } @else {
                p.hint { "New calls appear here as they happen." }
            }
            div #activity data-live {
                (table(&rows))
                @if let Some(q) = next {
                    nav.pager aria-label="More calls" { a #older href={ "/activity?" (q) } rel="next" { "Older calls" } }
                }
            }
        },
    ))
}

fn table(rows: &[ExecutionView]) -> Markup {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_end_of_a_range_is_read_with_its_own_offset() {
        // Berlin, 2026-03-29: 01:00 is before the change to summer time (UTC+1, offset -60),
        // 04:00 after it (UTC+2, offset -120).
        let filters = Filters {
            from: Some("2026-03-29T01:00".into()),
            to: Some("2026-03-29T04:00".into()),
            from_tz_offset_minutes: Some("-60".into()),
            to_tz_offset_minutes: Some("-120".into()),
            ..Filters::default()
        };
        let from = filters
            .instant("from", given(&filters.from), &filters.from_tz_offset_minutes)
            .unwrap();
        let to = filters
            .instant("to", given(&filters.to), &filters.to_tz_offset_minutes)
            .unwrap();
        let utc = |t: &str| {
            NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M")
                .unwrap()
                .and_utc()
                .timestamp_millis()
        };
        assert_eq!(from, Some(utc("2026-03-29T00:00")));
        assert_eq!(to, Some(utc("2026-03-29T02:00")));
        let bad = Filters {
            to_tz_offset_minutes: Some("east".into()),
            ..Filters::default()
        };
        let err = bad
            .instant("to", Some("2026-03-29T04:00"), &bad.to_tz_offset_minutes)
            .unwrap_err();
        assert!(err.to_string().contains("to_tz_offset_minutes"), "{err}");
    }
}
