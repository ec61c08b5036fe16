//! The approvals inbox: every tool or version waiting for a person, newest first.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::html;
use slovo_core::lifecycle::ToolStatus;
use slovo_runtime::ToolView;

use super::segment;
use crate::DashboardState;
use crate::error::PageResult;
use crate::origin::{Origin, Request, origin};
use crate::render::{Page, Section, layout, time_text};
use crate::session::Session;

/// A proposal as the inbox lists it.
pub(crate) struct Waiting {
    pub view: ToolView,
    pub description: String,
    /// Where it came from, and the words of the discovery request that led to it, if one did.
    pub origin: Origin,
    pub imported_at: String,
}

/// Every proposal waiting for approval, newest first.
pub(crate) async fn waiting(state: &DashboardState) -> PageResult<Vec<Waiting>> {
    let requests = state.runtime.discovery_requests().await?;
    let mut out = Vec::new();
    for summary in state.runtime.list().await? {
        let pending = summary.status == ToolStatus::PendingApproval || summary.pending_version.is_some();
        if !pending || summary.status == ToolStatus::Revoked {
            continue;
        }
        let view = state.runtime.show(&summary.name).await?;
        let shown = view.pending_version.clone();
        let version = view.versions.iter().find(|v| Some(&v.version) == shown.as_ref());
        out.push(Waiting {
            description: view.manifest["description"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            origin: origin(
                version.map(|v| v.source.as_str()).unwrap_or_default(),
                &view.manifest,
                requests
                    .iter()
                    .find(|r| r.proposal_tool.as_deref() == Some(summary.name.as_str()))
                    .map(|r| Request {
                        words: &r.description,
                        result: r.result.as_ref(),
                    }),
            ),
            imported_at: version.map(|v| v.imported_at.clone()).unwrap_or_default(),
            view,
        });
    }
    out.sort_by(|a, b| b.imported_at.cmp(&a.imported_at));
    Ok(out)
}

/// `GET /`: the inbox when something waits, else the tools.
pub(crate) async fn landing(State(state): State<DashboardState>, session: Session) -> PageResult<Response> {
    let items = waiting(&state).await?;
    if items.is_empty() {
        return Ok(super::see_other("/tools"));
    }
    Ok(render(&session, &items).into_response())
}

/// `GET /inbox`.
pub(crate) async fn page(State(state): State<DashboardState>, session: Session) -> PageResult<Page> {
    Ok(render(&session, &waiting(&state).await?))
}

fn render(session: &Session, items: &[Waiting]) -> Page {
    layout(
        "Waiting for approval",
        session,
        Section::Inbox,
        html! {
            div #inbox data-live {
                @if items.is_empty() {
                    p.empty {
                        "Nothing waits for approval. Import a tool with "
                        code { "slovo tool import <file>" }
                        " or ask the assistant for something it cannot do yet; proposals appear here as they arrive."
                    }
                } @else {
                    ul.cards aria-label="Proposals" {
                        @for w in items {
                            li.card {
                                h2 {
                                    a href={ "/proposals/" (segment(&w.view.name)) } { (w.view.name) }
                                    " "
                                    @match (&w.view.active_version, w.view.status) {
                                        (Some(serving), s) if s != ToolStatus::PendingApproval => {
                                            span.badge.upgrade { "upgrade " (serving) " → " (w.view.pending_version.as_deref().unwrap_or("?")) }
                                        }
                                        _ => { span.badge.new { "new tool " (w.view.pending_version.as_deref().unwrap_or("")) } }
                                    }
                                }
                                p.untrusted { (w.description) }
                                @if let Some(words) = &w.origin.asked_for {
                                    p.asked { "Found for the request: " q.untrusted { (words) } }
                                }
                                p.meta.origin {
                                    "From " (w.origin.kind) ": " span.untrusted { (w.origin.place) }
                                    ", imported " (time_text(&w.imported_at))
                                }
                                a.button href={ "/proposals/" (segment(&w.view.name)) } { "Review " (w.view.name) }
                            }
                        }
                    }
                }
            }
        },
    )
}
