//! Audit: the events of every chain (filtered, a page at a time), each chain's head, verify the
//! trail from the page, export a stretch of one chain.

use axum::extract::{Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use slovo_core::audit::AuditEvent;
use slovo_runtime::{AuditChainHead, AuditCursor, AuditQuery, MAIN_AUDIT_CHAIN};

use crate::DashboardState;
use crate::error::{PageError, PageResult};
use crate::form::SignedForm;
use crate::render::{Page, Section, csrf_input, layout, time_ms};
use crate::session::Session;

/// Most events one export holds.
const MAX_EXPORT: i64 = 10_000;
/// Events listed on one page.
const PAGE_ROWS: i64 = 50;

/// The filters of the event list, and where it continues.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Filters {
    #[serde(default)]
    tool: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    chain: Option<String>,
    /// After this event in display order (`AT_MS.CHAIN.SEQ`): the next page.
    #[serde(default)]
    before: Option<String>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl Filters {
    fn query(&self) -> PageResult<AuditQuery> {
        let chain = given(&self.chain)
            .map(|c| {
                c.parse::<i64>()
                    .map_err(|_| PageError::BadInput(format!("chain: {c:?} is not a chain number")))
            })
            .transpose()?;
        let before = given(&self.before)
            .map(|c| {
                c.parse::<AuditCursor>()
                    .map_err(|e| PageError::BadInput(format!("before: {e}")))
            })
            .transpose()?;
        Ok(AuditQuery {
            tool: given(&self.tool).map(str::to_string),
            kind: given(&self.kind).map(str::to_string),
            chain,
            before,
            limit: PAGE_ROWS + 1,
        })
    }

    /// The query string of these filters with the list continuing after `last`.
    fn next_page(&self, last: &AuditEvent) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [("tool", &self.tool), ("kind", &self.kind), ("chain", &self.chain)] {
            if let Some(v) = given(v) {
                q.append_pair(k, v);
            }
        }
        q.append_pair("before", &AuditCursor::of(last).to_string());
        q.finish()
    }
}

/// What the page shows besides the verification result.
struct Shown {
    heads: Vec<AuditChainHead>,
    events: Vec<AuditEvent>,
    next: Option<String>,
}

async fn read_shown(state: &DashboardState, filters: &Filters) -> PageResult<Shown> {
    let heads = state.runtime.audit_chain_heads().await?;
    let mut events = state.runtime.audit_events(&filters.query()?).await?;
    let more = events.len() > PAGE_ROWS as usize;
    events.truncate(PAGE_ROWS as usize);
    let next = more
        .then(|| events.last().map(|last| filters.next_page(last)))
        .flatten();
    Ok(Shown { heads, events, next })
}

fn page_body(
    session: &Session,
    filters: &Filters,
    shown: &Shown,
    result: Option<Result<slovo_runtime::AuditReport, String>>,
) -> Page {
    let total: i64 = shown.heads.iter().map(|h| h.seq).sum();
    layout(
        "Audit trail",
        session,
        Section::Audit,
        html! {
            section.card aria-labelledby="head" {
                h2 #head { "Chains" }
                dl.facts {
                    dt { "Events" } dd #audit-events { (total) }
                }
                (heads_table(&shown.heads))
                form method="post" action="/audit/verify" {
                    (csrf_input(session))
                    button type="submit" .primary { "Verify the trail" }
                }
                @match &result {
                    Some(Ok(r)) => {
                        p.ok #verify-result role="status" {
                            "Verified: " (r.events) " events on " (r.chains) " chain(s) link correctly; chain 1 ends at " code.hash { (r.head_hash) }
                            "; " (r.checkpoints) " signed checkpoint(s), the newest at event " (r.checkpoint_seq)
                            "; " (r.unchecked_events) " event(s) after it."
                        }
                    },
                    Some(Err(e)) => { p.error #verify-result role="alert" { "Broken: " (e) } },
                    None => {},
                }
            }
            section.card aria-labelledby="events" {
                h2 #events { "Events" }
                (filter_form(filters))
                @if given(&filters.before).is_some() {
                    p.hint { "Older events. " a href="/audit" { "Back to the newest" } }
                }
                (events_table(&shown.events))
                @if let Some(q) = &shown.next {
                    nav.pager aria-label="More events" { a #older href={ "/audit?" (q) } rel="next" { "Older events" } }
                }
            }
            section.card aria-labelledby="export" {
                h2 #export { "Export" }
                form method="get" action="/audit/export" {
                    label for="x-chain" { "Chain" }
                    input #x-chain type="number" name="chain" min="1" value="1" inputmode="numeric";
                    label for="from" { "From event (sequence number in the chain)" }
                    input #from type="number" name="from" min="1" value="1" inputmode="numeric";
                    label for="to" { "To event" }
                    input #to type="number" name="to" min="1" value=(shown.heads.first().map_or(1, |h| h.seq.max(1))) inputmode="numeric";
                    div.actions { button type="submit" { "Download JSON lines" } }
                }
                p.hint { "At most " (MAX_EXPORT) " events per export; each line is one event with its chain and hash." }
            }
        },
    )
}

fn heads_table(heads: &[AuditChainHead]) -> Markup {
    html! {
        div.table-wrap {
            table #audit-chains {
                caption { "Each chain's head" }
                thead { tr { th scope="col" { "Chain" } th scope="col" { "Written by" } th scope="col" { "Events" } th scope="col" { "Head hash" } } }
                tbody {
                    @for h in heads {
                        tr {
                            td { (h.chain) }
                            td { @match &h.instance { Some(i) => { "instance " code { (i) } }, None => { "every instance (changes, and calls' results on SQLite)" } } }
                            td { (h.seq) }
                            td { code.hash { (h.hash) } }
                        }
                    }
                }
            }
        }
    }
}

fn filter_form(filters: &Filters) -> Markup {
    html! {
        form.filters method="get" action="/audit" {
            label for="f-tool" { "Tool" }
            input #f-tool type="text" name="tool" value=(given(&filters.tool).unwrap_or_default());
            label for="f-kind" { "Kind" }
            input #f-kind type="text" name="kind" placeholder="execution.finished" value=(given(&filters.kind).unwrap_or_default());
            label for="f-chain" { "Chain" }
            input #f-chain type="number" name="chain" min="1" inputmode="numeric" value=(given(&filters.chain).unwrap_or_default());
            button type="submit" { "Filter" }
        }
    }
}

fn events_table(events: &[AuditEvent]) -> Markup {
    html! {
        @if events.is_empty() {
            p.empty { "No events match." }
        } @else {
            div.table-wrap {
                table #audit-list {
                    caption { "Events of every chain, newest first (by time, then chain, then sequence number)" }
                    thead { tr { th scope="col" { "Time" } th scope="col" { "Chain" } th scope="col" { "Event" } th scope="col" { "Kind" } th scope="col" { "Tool" } th scope="col" { "By" } } }
                    tbody {
                        @for e in events {
                            tr data-chain=(e.chain) data-seq=(e.seq) {
                                td { (time_ms(e.at_ms)) }
                                td { (e.chain) }
                                td { (e.seq) }
                                td { code { (e.kind) } }
                                td { (e.tool.as_deref().unwrap_or("—")) }
                                td { (e.actor) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /audit`.
pub(crate) async fn page(
    State(state): State<DashboardState>,
    session: Session,
    Query(filters): Query<Filters>,
) -> PageResult<Page> {
    let shown = read_shown(&state, &filters).await?;
    Ok(page_body(&session, &filters, &shown, None))
}

/// `POST /audit/verify`.
pub(crate) async fn verify(State(state): State<DashboardState>, form: SignedForm) -> PageResult<Page> {
    let result = match state.runtime.verify_audit().await {
        Ok(r) => Ok(r),
        Err(e @ slovo_runtime::RuntimeError::AuditBroken(_)) => Err(e.to_string()),
        Err(e) => return Err(e.into()),
    };
    let filters = Filters::default();
    let shown = read_shown(&state, &filters).await?;
    Ok(page_body(&form.session, &filters, &shown, Some(result)))
}

/// The stretch of one chain to export.
#[derive(Debug, Deserialize)]
pub(crate) struct Range {
    /// The chain (1 when not given).
    #[serde(default)]
    chain: Option<i64>,
    from: i64,
    to: i64,
}

/// `GET /audit/export?chain=&from=&to=`: the events of one chain as JSON lines.
pub(crate) async fn export(
    State(state): State<DashboardState>,
    _session: Session,
    Query(range): Query<Range>,
) -> PageResult<Response> {
    if range.from < 1 || range.to < range.from || range.to - range.from >= MAX_EXPORT {
        return Err(PageError::BadInput(format!(
            "from {} to {}: give 1 ≤ from ≤ to, at most {MAX_EXPORT} events",
            range.from, range.to
        )));
    }
    let chain = range.chain.unwrap_or(MAIN_AUDIT_CHAIN);
    let events = state
        .runtime
        .audit_chain_events(chain, range.from - 1, range.to - range.from + 1)
        .await?;
    let mut body = String::new();
    for e in events {
        body.push_str(&serde_json::to_string(&e).map_err(|err| PageError::BadInput(err.to_string()))?);
        body.push('\n');
    }
    let name = if chain == MAIN_AUDIT_CHAIN {
        format!("audit-{}-{}.jsonl", range.from, range.to)
    } else {
        format!("audit-chain{chain}-{}-{}.jsonl", range.from, range.to)
    };
    Ok((
        [
            (CONTENT_TYPE, "application/x-ndjson".to_string()),
            (CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        body,
    )
        .into_response())
}
