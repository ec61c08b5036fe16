//! One proposal: what it can do, what it asks for, the risks, and the decision.

use axum::extract::{Path, State};
use axum::response::Response;
use chrono::{Duration as ChronoDuration, NaiveDateTime};
use maud::{Markup, html};
use serde_json::Value;
use slovo_core::lifecycle::ToolStatus;
use slovo_core::permissions::{HostPattern, Narrowing};
use slovo_runtime::ToolView;

use super::{see_other, segment};
use crate::DashboardState;
use crate::describe::{self, host_in_words, network_in_words};
use crate::error::{PageError, PageResult};
use crate::form::SignedForm;
use crate::render::{Page, Section, csrf_input, layout, time_text};
use crate::session::Session;

/// `GET /proposals/{name}`.
pub(crate) async fn page(
    State(state): State<DashboardState>,
    session: Session,
    Path(name): Path<String>,
) -> PageResult<Page> {
    let view = state.runtime.show(&name).await?;
    let secrets = state.runtime.secret_names(&name).await?;
    let asked_for = state
        .runtime
        .discovery_requests()
        .await?
        .into_iter()
        .find(|r| r.proposal_tool.as_deref() == Some(name.as_str()))
        .map(|r| r.description);
    let waiting = view.pending_version.is_some() && view.status != ToolStatus::Revoked;
    let title = format!("Proposal: {}", view.name);
    Ok(layout(
        &title,
        &session,
        Section::Inbox,
        html! {
            (summary(&view, asked_for.as_deref()))
            @if !waiting {
                p.empty { "Nothing of this tool waits for approval now. "
                    a href={ "/tools/" (segment(&view.name)) } { "See the tool" } "." }
            }
            (capabilities(&view.manifest))
            (risks(&view, &secrets))
            @if is_upgrade(&view) { (upgrade_diff(&view)) }
            @if waiting {
                (approve_form(&view, &session))
                (reject_form(&view, &session))
            }
        },
    ))
}

fn is_upgrade(view: &ToolView) -> bool {
    view.active_version.is_some() && view.status != ToolStatus::PendingApproval && view.granted.is_some()
}

fn summary(view: &ToolView, asked_for: Option<&str>) -> Markup {
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
                @if let Some(v) = version {
                    dt { "Came from" } dd.untrusted { (v.source) }
                    dt { "Imported" } dd { (time_text(&v.imported_at)) }
                }
                @if let Some(words) = asked_for {
                    dt { "Found for the request" } dd { q.untrusted { (words) } }
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
            h3 { "Network, in words" }
            ul { @for line in network_in_words(view.requested.internet_access, &view.requested.network_allow) { li { (line) } } }
        }
    }
}

fn upgrade_diff(view: &ToolView) -> Markup {
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
            @if added.is_empty() && removed.is_empty() && view.pending_widenings.is_empty() && view.pending_changes.is_empty() {
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
                @for c in &view.pending_changes {
                    li.changed { "Changed: " code { (c.field) } " from "
                        span.untrusted { (c.serving.as_deref().unwrap_or("none")) } " to "
                        span.untrusted { (c.proposed.as_deref().unwrap_or("none")) } }
                }
            }
        }
    }
}

fn granted_cell(view: &ToolView, f: impl Fn(&slovo_core::permissions::Grant) -> String) -> String {
    view.granted
        .as_ref()
        .map(f)
        .unwrap_or_else(|| "nothing yet".into())
}

fn approve_form(view: &ToolView, session: &Session) -> Markup {
    let r = &view.requested;
    let action = format!("/proposals/{}/approve", segment(&view.name));
    html! {
        section.card aria-labelledby="decide" {
            h2 #decide { "Approve" }
            p.hint { "Every field can only lower what the tool asked for. Leave a field as it is to grant what was requested." }
            form #approve-form method="post" action=(action) {
                (csrf_input(session))
                input type="hidden" name="tz_offset_minutes" value="0" data-tz-offset;
                div.table-wrap {
                table.grant {
                    caption { "Requested and granted" }
                    thead { tr { th scope="col" { "Permission" } th scope="col" { "Requested" } th scope="col" { "Granted now" } th scope="col" { "You grant" } } }
                    tbody {
                        tr {
                            th scope="row" { "Network" }
                            td data-label="Requested" { (network_in_words(r.internet_access, &r.network_allow).join("; ")) }
                            td data-label="Granted now" { (granted_cell(view, |g| network_in_words(g.internet_access, &g.network_allow).join("; "))) }
                            td data-label="You grant" {
                                @for (i, h) in r.network_allow.iter().enumerate() {
                                    div.check {
                                        input type="checkbox" id={ "host-" (i) } name="host" value=(h.to_string()) checked;
                                        label for={ "host-" (i) } { "Allow " code { (h.to_string()) } }
                                    }
                                }
                                @if r.internet_access || !r.network_allow.is_empty() {
                                    div.check {
                                        input type="checkbox" id="no_network" name="no_network" value="1";
                                        label for="no_network" { "No network at all" }
                                    }
                                } @else { "none" }
                            }
                        }
                        (limit_row("Memory", "memory_limit_mb", "MB", r.memory_limit_mb, view.granted.as_ref().map(|g| g.memory_limit_mb), 8))
                        (limit_row("CPU", "cpu_limit_percent", "% of one CPU", u64::from(r.cpu_limit_percent), view.granted.as_ref().map(|g| u64::from(g.cpu_limit_percent)), 1))
                        (limit_row("Time per call", "timeout_s", "s", r.timeout_s, view.granted.as_ref().map(|g| g.timeout_s), 1))
                        (limit_row("Processes", "pids_limit", "processes", u64::from(r.pids_limit), view.granted.as_ref().map(|g| u64::from(g.pids_limit)), 1))
                        tr {
                            th scope="row" { "Storage" }
                            td data-label="Requested" { (r.storage_quota_mb) " MB" }
                            td data-label="Granted now" { (granted_cell(view, |g| format!("{} MB", g.storage_quota_mb))) }
                            td data-label="You grant" {
                                @if r.storage_quota_mb > 0 {
                                    label for="storage_quota_mb" .inline { "Storage in MB" }
                                    input #storage_quota_mb type="number" name="storage_quota_mb" min="0" max=(r.storage_quota_mb) value=(r.storage_quota_mb) inputmode="numeric";
                                    span.unit { "MB" }
                                    div.check {
                                        input type="checkbox" id="no_storage" name="no_storage" value="1";
                                        label for="no_storage" { "No storage (nothing kept between calls)" }
                                    }
                                } @else { "none" }
                            }
                        }
                        tr {
                            th scope="row" { "Expiry" }
                            td data-label="Requested" { @match r.expires_at { Some(t) => { (time_text(&t.to_rfc3339())) }, None => { "never" } } }
                            td data-label="Granted now" { (granted_cell(view, |g| g.expires_at.map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into()))) }
                            td data-label="You grant" {
                                label for="expires_local" .inline { "Expires (your time)" }
                                input #expires_local type="datetime-local" name="expires_local";
                            }
                        }
                    }
                }
                }
                div.actions {
                    button type="submit" name="mode" value="as_requested" { "Approve as requested" }
                    button type="submit" name="mode" value="narrowed" .primary { "Approve with these limits" }
                }
            }
        }
    }
}

fn limit_row(label: &str, field: &str, unit: &str, requested: u64, granted: Option<u64>, min: u64) -> Markup {
    html! {
        tr {
            th scope="row" { (label) }
            td data-label="Requested" { (requested) " " (unit) }
            td data-label="Granted now" { @match granted { Some(g) => { (g) " " (unit) }, None => { "nothing yet" } } }
            td data-label="You grant" {
                label.inline for=(field) { (label) " in " (unit) }
                input id=(field) type="number" name=(field) min=(min) max=(requested) value=(requested) inputmode="numeric";
                span.unit { (unit) }
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

fn number<T: std::str::FromStr>(form: &SignedForm, field: &str) -> PageResult<Option<T>> {
    form.get(field)
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| PageError::BadInput(format!("{field}: {v:?} is not a whole number")))
        })
        .transpose()
}

/// The narrowing the form asks for: a field is set only where the person changed it from what
/// was requested; the runtime decides whether it is allowed.
fn narrowing_from(form: &SignedForm, view: &ToolView) -> PageResult<Narrowing> {
    if form.get("mode") == Some("as_requested") {
        return Ok(Narrowing::default());
    }
    let r = &view.requested;
    let changed = |v: Option<u64>, requested: u64| v.filter(|v| *v != requested);
    let kept: Vec<HostPattern> = form
        .all("host")
        .into_iter()
        .map(|h| {
            h.parse::<HostPattern>()
                .map_err(|e| PageError::BadInput(e.to_string()))
        })
        .collect::<PageResult<_>>()?;
    let no_network = form.get("no_network").is_some()
        || (!r.network_allow.is_empty() && kept.is_empty() && !r.internet_access);
    let network_allow =
        (!no_network && kept != r.network_allow && !r.network_allow.is_empty()).then_some(kept);
    let storage_quota_mb = if form.get("no_storage").is_some() {
        Some(0)
    } else {
        changed(number(form, "storage_quota_mb")?, r.storage_quota_mb)
    };
    Ok(Narrowing {
        no_network,
        network_allow,
        storage_quota_mb,
        cpu_limit_percent: changed(number(form, "cpu_limit_percent")?, u64::from(r.cpu_limit_percent))
            .map(|v| u32::try_from(v).unwrap_or(u32::MAX)),
        memory_limit_mb: changed(number(form, "memory_limit_mb")?, r.memory_limit_mb),
        timeout_s: changed(number(form, "timeout_s")?, r.timeout_s),
        pids_limit: changed(number(form, "pids_limit")?, u64::from(r.pids_limit))
            .map(|v| u32::try_from(v).unwrap_or(u32::MAX)),
        expires_at: expiry(form)?,
    })
}

/// `expires_local` is the browser's local time; `tz_offset_minutes` (set by the page's script,
/// `Date.getTimezoneOffset()`) turns it into UTC. Without the script the time is taken as UTC.
fn expiry(form: &SignedForm) -> PageResult<Option<chrono::DateTime<chrono::Utc>>> {
    let Some(local) = form.get("expires_local") else {
        return Ok(None);
    };
    let naive = NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| PageError::BadInput(format!("expiry: {local:?} is not a date and time")))?;
    let offset: i64 = number(form, "tz_offset_minutes")?.unwrap_or(0);
    if offset.abs() > 24 * 60 {
        return Err(PageError::BadInput(format!(
            "tz_offset_minutes: {offset} is not a time zone offset"
        )));
    }
    Ok(Some((naive + ChronoDuration::minutes(offset)).and_utc()))
}

/// `POST /proposals/{name}/approve`.
pub(crate) async fn approve(
    State(state): State<DashboardState>,
    Path(name): Path<String>,
    form: SignedForm,
) -> PageResult<Response> {
    let view = state.runtime.show(&name).await?;
    let narrowing = narrowing_from(&form, &view)?;
    state
        .runtime
        .approve(&name, &narrowing, &form.session.actor())
        .await?;
    Ok(see_other(&format!("/tools/{}", segment(&name))))
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
