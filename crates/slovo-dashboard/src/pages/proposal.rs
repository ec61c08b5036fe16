//! One proposal: what it can do, what it asks for, the risks, and the decision.

use axum::extract::{Path, State};
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;
use slovo_core::lifecycle::ToolStatus;
use slovo_core::permissions::HostPattern;
use slovo_runtime::ToolView;

use super::approve::{self, Entries, FieldError};
use super::{see_other, segment};
use crate::DashboardState;
use crate::describe::{self, host_in_words, network_in_words};
use crate::error::{PageError, PageResult};
use crate::form::SignedForm;
use crate::origin::{Origin, Request, origin};
use crate::render::{Page, Section, csrf_input, layout, time_text};
use crate::session::Session;

/// `GET /proposals/{name}`.
pub(crate) async fn page(
    State(state): State<DashboardState>,
    session: Session,
    Path(name): Path<String>,
) -> PageResult<Page> {
    let view = state.runtime.show(&name).await?;
    let entries = Entries::requested(&view);
    render(&state, &session, view, entries, None).await
}

/// The proposal page, its approval form holding `entries` and, after a refused approval,
/// `error` beside its field.
pub(crate) async fn render(
    state: &DashboardState,
    session: &Session,
    view: ToolView,
    entries: Entries,
    error: Option<FieldError>,
) -> PageResult<Page> {
    let name = view.name.clone();
    let secrets = state.runtime.secret_names(&name).await?;
    let requests = state.runtime.discovery_requests().await?;
    let shown = view.pending_version.as_ref().or(view.active_version.as_ref());
    let version = view.versions.iter().find(|v| Some(&v.version) == shown);
    let origin = origin(
        version.map(|v| v.source.as_str()).unwrap_or_default(),
        &view.manifest,
        requests
            .iter()
            .find(|r| r.proposal_tool.as_deref() == Some(name.as_str()))
            .map(|r| Request {
                words: &r.description,
                result: r.result.as_ref(),
            }),
    );
    let analysis = version.and_then(|v| v.analysis.as_ref());
    let waiting = view.pending_version.is_some() && view.status != ToolStatus::Revoked;
    let title = format!("Proposal: {}", view.name);
    Ok(layout(
        &title,
        session,
        Section::Inbox,
        html! {
            (summary(&view, &origin))
            @if !waiting {
                p.empty { "Nothing of this tool waits for approval now. "
                    a href={ "/tools/" (segment(&view.name)) } { "See the tool" } "." }
            }
            (capabilities(&view.manifest))
            (risks(&view, &secrets))
            @if let Some(a) = analysis { (analysis_notes(a)) }
            @if is_upgrade(&view) { (upgrade_diff(&view, &secrets)) }
            @if waiting {
                (approve::form(&view, session, &entries, error.as_ref()))
                (reject_form(&view, session))
            }
        },
    ))
}

fn is_upgrade(view: &ToolView) -> bool {
    view.active_version.is_some() && view.status != ToolStatus::PendingApproval && view.granted.is_some()
}

fn summary(view: &ToolView, origin: &Origin) -> Markup {
    let shown = view.pending_version.as_ref().or(view.active_version.as_ref());
    let version = view.versions.iter().find(|v| Some(&v.version) == shown);
    html! {
        section.card aria-labelledby="about" {
            h2 #about { "About" }
            p.untrusted.description { (view.manifest["description"].as_str().unwrap_or_default()) }
            dl.facts {
                dt { "Version" } dd {
                    @if is_upgrade(view) {
                        (view.active_version.as_deref().unwrap_or("?")) " (serving) → "
                        strong { (view.pending_version.as_deref().unwrap_or("?")) } " (proposed)"
                    } @else { (shown.map(String::as_str).unwrap_or("?")) }
                }
                dt { "Runs as" } dd { (view.manifest["execution"]["type"].as_str().unwrap_or("nothing to run (no execution)")) }
                dt { "Came from" } dd #origin { (origin.kind) ": " span.untrusted { (origin.place) } }
                @if let Some(v) = version {
                    dt { "Imported" } dd { (time_text(&v.imported_at)) }
                }
                @if let Some(words) = &origin.asked_for {
                    dt { "Found for the request" } dd #asked-for { q.untrusted { (words) } }
                }
            }
        }
    }
}

fn capabilities(manifest: &Value) -> Markup {
    let caps = manifest["capabilities"].as_array().cloned().unwrap_or_default();
    html! {
        section.card aria-labelledby="caps" {
            h2 #caps { "What it can do" }
            @if caps.is_empty() { p.empty { "It declares no capabilities." } }
            @for c in &caps {
                article.capability {
                    h3 { code { (c["name"].as_str().unwrap_or("?")) } }
                    p.untrusted { (c["description"].as_str().unwrap_or_default()) }
                    @let claims = claims(c);
                    @if !claims.is_empty() {
                        p.claims { "The tool says about itself (not verified): " (claims.join("; ")) "." }
                    }
                    @let params = describe::parameters(&c["parameters"]);
                    @if params.is_empty() {
                        p.hint { "Takes no parameters." }
                    } @else {
                        ul.params {
                            @for p in params {
                                li {
                                    code { (p.name) } " — " (p.kind)
                                    @if p.required { ", required" } @else { ", optional" }
                                    @if let Some(d) = p.description { ": " span.untrusted { (d) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn claims(capability: &Value) -> Vec<&'static str> {
    let mut out = Vec::new();
    match capability["read_only"].as_bool() {
        Some(true) => out.push("read-only"),
        Some(false) => out.push("it changes things"),
        None => {}
    }
    if capability["destructive"].as_bool() == Some(true) {
        out.push("destructive");
    }
    out
}

fn risks(view: &ToolView, secrets: &[String]) -> Markup {
    let header = view.manifest["api_requirements"]["auth_header"].as_str();
    let list = describe::risks(&view.requested, secrets, header);
    html! {
        section.card aria-labelledby="risks" {
            h2 #risks { "Risks, most important first" }
            ol.risks {
                @for r in list {
                    li class=(r.level.class()) { strong { (r.level.label()) ": " } (r.text) }
                }
            }
            @let unset: Vec<&String> = view.new_secrets.iter().filter(|n| !secrets.contains(n)).collect();
            @if !unset.is_empty() {
                p #secrets-needed { "Its calls need secrets that are not set yet: "
                    @for (i, n) in unset.iter().enumerate() { @if i > 0 { ", " } code { (n) } } "." }
            }
            h3 { "Network, in words" }
            ul { @for line in network_in_words(view.requested.internet_access, &view.requested.network_allow) { li { (line) } } }
        }
    }
}

/// The notes an analysis of the tool's OpenAPI document left for the person deciding: its own
/// words, not verified, shown as text.
fn analysis_notes(analysis: &Value) -> Markup {
    let notes = analysis["notes"].as_array().cloned().unwrap_or_default();
    let by = analysis["by"].as_str().unwrap_or("an analysis");
    let by = match by.strip_prefix("llm:") {
        Some(model) => format!("the LLM analysis ({model})"),
        None if by == "offline" => "the offline analysis of the OpenAPI document".to_string(),
        None => by.to_string(),
    };
    html! {
        section.card #analysis aria-labelledby="analysis-title" {
            h2 #analysis-title { "Analysis notes" }
            p.hint { "Written by " span.untrusted { (by) } " when the tool was imported; not verified." }
            @if notes.is_empty() {
                p { "It noted no risks." }
            } @else {
                ul.notes {
                    @for n in &notes {
                        li { code { (n["capability"].as_str().unwrap_or("?")) } ": "
                            span.untrusted { (n["note"].as_str().unwrap_or_default()) } }
                    }
                }
            }
        }
    }
}

fn upgrade_diff(view: &ToolView, secrets_set: &[String]) -> Markup {
    let granted_hosts: Vec<HostPattern> = view
        .granted
        .as_ref()
        .map(|g| g.network_allow.clone())
        .unwrap_or_default();
    let added: Vec<&HostPattern> = view
        .requested
        .network_allow
        .iter()
        .filter(|h| !granted_hosts.contains(h))
        .collect();
    let removed: Vec<&HostPattern> = granted_hosts
        .iter()
        .filter(|h| !view.requested.network_allow.contains(h))
        .collect();
    html! {
        section.card #diff aria-labelledby="diff-title" {
            h2 #diff-title { "What changes from the serving version" }
            @if added.is_empty() && removed.is_empty() && view.pending_widenings.is_empty() && view.pending_changes.is_empty() && view.new_secrets.is_empty() {
                p { "Nothing it may do changes: it asks for no more than it is granted and runs the same program." }
            }
            ul.diff {
                @for h in &added { li.added { "Host added: " code { (h.to_string()) } " — " (host_in_words(h)) } }
                @for h in &removed { li.removed { "Host removed: " code { (h.to_string()) } } }
                @for w in &view.pending_widenings {
                    @if w.field != "network_allow" {
                        li.added { "Raised: " code { (w.field) } " from " (w.granted) " to " (w.requested) }
                    }
                }
                @for name in &view.new_secrets {
                    li.added {
                        "New secret needed: " code { (name) }
                        @if secrets_set.contains(name) { " (already set for this tool)" }
                        @else { " (not set yet: " code { "slovo secret set " (view.name) " " (name) } ")" }
                    }
                }
                @for c in &view.pending_changes {
                    li.changed { "Changed: " code { (c.field) } " from "
                        span.untrusted { (c.serving.as_deref().unwrap_or("none")) } " to "
                        span.untrusted { (c.proposed.as_deref().unwrap_or("none")) } }
                }
            }
        }
    }
}

fn reject_form(view: &ToolView, session: &Session) -> Markup {
    let action = format!("/proposals/{}/reject", segment(&view.name));
    html! {
        section.card aria-labelledby="reject" {
            h2 #reject { "Reject" }
            form method="post" action=(action) {
                (csrf_input(session))
                label for="reason" { "Why (kept in the audit trail)" }
                textarea #reason name="reason" rows="3" required maxlength="2000" {}
                div.actions { button type="submit" .danger { "Reject " (view.pending_version.as_deref().unwrap_or("")) } }
            }
        }
    }
}

/// `POST /proposals/{name}/reject`.
pub(crate) async fn reject(
    State(state): State<DashboardState>,
    Path(name): Path<String>,
    form: SignedForm,
) -> PageResult<Response> {
    let reason = form
        .get("reason")
        .ok_or_else(|| PageError::BadInput("say why the proposal is rejected".into()))?;
    state.runtime.reject(&name, reason, &form.session.actor()).await?;
    Ok(see_other("/inbox"))
}
