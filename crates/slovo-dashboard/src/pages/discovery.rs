//! Discovery: requests for tools that nothing installed serves, what was searched and chosen.

use axum::extract::{Path, State};
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;

use super::{see_other, segment};
use crate::DashboardState;
use crate::error::PageResult;
use crate::form::SignedForm;
use crate::render::{Page, Section, csrf_input, layout, time_ms};
use crate::session::Session;

fn candidate(c: &Value) -> Markup {
    html! {
        code { (c["tool"].as_str().unwrap_or("?")) "." (c["capability"].as_str().unwrap_or("?")) }
        " — " span.untrusted { (c["description"].as_str().unwrap_or_default()) }
        @if let Some(score) = c["normalized"].as_f64() { " (score " (format!("{score:.2}")) ")" }
        @if let Some(source) = c["source"].as_str() { " from " span.untrusted { (source) } }
    }
}

/// `GET /discovery`.
pub(crate) async fn list(State(state): State<DashboardState>, session: Session) -> PageResult<Page> {
    let mut requests = state.runtime.discovery_requests().await?;
    requests.reverse();
    Ok(layout(
        "Discovery",
        &session,
        Section::Discovery,
        html! {
            div #discovery data-live {
                @if requests.is_empty() {
                    p.empty { "No discovery requests. When the assistant is asked for something no tool serves, the request and what was found for it appear here." }
                }
                ul.cards aria-label="Discovery requests" {
                    @for r in &requests {
                        li.card {
                            h2 { q.untrusted { (r.description) } }
                            p { span class={ "status status-" (r.status.as_str()) } { (r.status.as_str()) } " · asked " (time_ms(r.created_at)) }
                            @if let Some(result) = &r.result {
                                @if let Some(s) = result.get("searched") {
                                    p { "Searched " (s["candidates"]) " candidate tool(s) with " (s["capabilities"]) " capabilities." }
                                }
                                @if result["chosen"].is_object() { p { "Chosen: " (candidate(&result["chosen"])) } }
                                @if let Some(runners) = result["runners_up"].as_array().filter(|a| !a.is_empty()) {
                                    details { summary { "Runners-up (" (runners.len()) ")" }
                                        ol { @for c in runners { li { (candidate(c)) } } } }
                                }
                            }
                            @if let Some(e) = &r.error { p.error { (e) } }
                            @if let Some(tool) = &r.proposal_tool { p { "Proposal: " a href={ "/proposals/" (segment(tool)) } { (tool) } } }
                            @if matches!(r.status.as_str(), "pending" | "searching" | "found") {
                                form method="post" action={ "/discovery/" (segment(&r.id)) "/reject" } {
                                    (csrf_input(&session))
                                    button type="submit" .danger { "Reject this request" }
                                }
                            }
                        }
                    }
                }
            }
        },
    ))
}

/// `POST /discovery/{id}/reject`.
pub(crate) async fn reject(
    State(state): State<DashboardState>,
    Path(id): Path<String>,
    form: SignedForm,
) -> PageResult<Response> {
    state.runtime.reject_request(&id, &form.session.actor()).await?;
    Ok(see_other("/discovery"))
}
