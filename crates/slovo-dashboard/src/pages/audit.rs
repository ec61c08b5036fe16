//! Audit: verify the chain from the page, see the head, export a range.

use axum::extract::{Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use crate::DashboardState;
use crate::error::{PageError, PageResult};
use crate::form::SignedForm;
use crate::render::{Page, Section, csrf_input, layout};
use crate::session::Session;

/// Most events one export holds.
const MAX_EXPORT: i64 = 10_000;

fn page_body(
    session: &Session,
    head_seq: i64,
    head_hash: &str,
    result: Option<Result<slovo_runtime::AuditReport, String>>,
) -> Page {
    layout(
        "Audit trail",
        session,
        Section::Audit,
        html! {
            section.card aria-labelledby="head" {
                h2 #head { "Head" }
                dl.facts {
                    dt { "Events" } dd #audit-events { (head_seq) }
                    dt { "Head hash" } dd { code.hash { (head_hash) } }
                }
                form method="post" action="/audit/verify" {
                    (csrf_input(session))
                    button type="submit" .primary { "Verify the chain" }
                }
                @match &result {
                    Some(Ok(r)) => {
                        p.ok #verify-result role="status" {
                            "Verified: " (r.events) " events chain correctly to head " code.hash { (r.head_hash) }
                            "; " (r.checkpoints) " signed checkpoint(s), the newest at event " (r.checkpoint_seq)
                            "; " (r.unchecked_events) " event(s) after it."
                        }
                    },
                    Some(Err(e)) => { p.error #verify-result role="alert" { "Broken: " (e) } },
                    None => {},
                }
            }
            section.card aria-labelledby="export" {
                h2 #export { "Export" }
                form method="get" action="/audit/export" {
                    label for="from" { "From event (sequence number)" }
                    input #from type="number" name="from" min="1" value="1" inputmode="numeric";
                    label for="to" { "To event" }
                    input #to type="number" name="to" min="1" value=(head_seq.max(1)) inputmode="numeric";
                    div.actions { button type="submit" { "Download JSON lines" } }
                }
                p.hint { "At most " (MAX_EXPORT) " events per export; each line is one event with its hash." }
            }
        },
    )
}

/// `GET /audit`.
pub(crate) async fn page(State(state): State<DashboardState>, session: Session) -> PageResult<Page> {
    let (seq, hash) = state
        .runtime
        .store()
        .audit_head()
        .await
        .map_err(|e| PageError::Runtime(e.into()))?;
    Ok(page_body(&session, seq, &hash, None))
}

/// `POST /audit/verify`.
pub(crate) async fn verify(State(state): State<DashboardState>, form: SignedForm) -> PageResult<Page> {
    let result = match state.runtime.verify_audit().await {
        Ok(r) => Ok(r),
        Err(e @ slovo_runtime::RuntimeError::AuditBroken(_)) => Err(e.to_string()),
        Err(e) => return Err(e.into()),
    };
    let (seq, hash) = state
        .runtime
        .store()
        .audit_head()
        .await
        .map_err(|e| PageError::Runtime(e.into()))?;
    Ok(page_body(&form.session, seq, &hash, Some(result)))
}

/// The range to export.
#[derive(Debug, Deserialize)]
pub(crate) struct Range {
    from: i64,
    to: i64,
}

/// `GET /audit/export?from=&to=`: the events as JSON lines.
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
    let events = state
        .runtime
        .store()
        .audit_page(range.from - 1, range.to - range.from + 1)
        .await
        .map_err(|e| PageError::Runtime(e.into()))?;
    let mut body = String::new();
    for e in events {
        body.push_str(&serde_json::to_string(&e).map_err(|err| PageError::BadInput(err.to_string()))?);
        body.push('\n');
    }
    Ok((
        [
            (CONTENT_TYPE, "application/x-ndjson".to_string()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"audit-{}-{}.jsonl\"", range.from, range.to),
            ),
        ],
        body,
    )
        .into_response())
}
