//! Tools: status, grant, versions, state; enable, disable, reinstall, revoke; secrets.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use slovo_core::lifecycle::ToolStatus;
use slovo_runtime::{ExecutionFilter, ToolView};

use super::{see_other, segment};
use crate::DashboardState;
use crate::describe::network_in_words;
use crate::error::{PageError, PageResult};
use crate::form::SignedForm;
use crate::render::{Page, Section, csrf_input, layout, millis, status_words, time_ms, time_text};
use crate::session::Session;

/// `GET /tools`.
pub(crate) async fn list(State(state): State<DashboardState>, session: Session) -> PageResult<Page> {
    let tools = state.runtime.list().await?;
    Ok(layout(
        "Tools",
        &session,
        Section::Tools,
        html! {
            div #tools data-live {
                @if tools.is_empty() {
                    p.empty {
                        "No tools yet. Import one with " code { "slovo tool import <file>" }
                        " (or the REST API); it waits for your approval under Approvals."
                    }
                } @else {
                    ul.cards aria-label="Tools" {
                        @for t in &tools {
                            li.card {
                                h2 { a href={ "/tools/" (segment(&t.name)) } { (t.name) } }
                                p { span class={ "status status-" (t.status.as_str()) } { (status_words(t.status)) }
                                    @if let Some(v) = &t.version { " · version " (v) }
                                    @if let Some(p) = &t.pending_version { " · " a href={ "/proposals/" (segment(&t.name)) } { "version " (p) " waits for approval" } }
                                    " · runs as " (t.runtime) }
                                p.untrusted { (t.description) }
                            }
                        }
                    }
                }
            }
        },
    ))
}

/// `GET /tools/{name}`.
pub(crate) async fn page(
    State(state): State<DashboardState>,
    session: Session,
    Path(name): Path<String>,
) -> PageResult<Page> {
    let view = state.runtime.show(&name).await?;
    let secrets = state.runtime.secret_names(&name).await?;
    let calls = state
        .runtime
        .executions(&ExecutionFilter {
            tool: Some(name.clone()),
            limit: 10,
            ..ExecutionFilter::default()
        })
        .await?;
    Ok(layout(
        &view.name,
        &session,
        Section::Tools,
        html! {
            div #tool data-live {
                (overview(&view))
                section.card aria-labelledby="calls" {
                    h2 #calls { "Last calls" }
                    @if calls.is_empty() { p.empty { "No calls yet. Calls the assistant makes appear here." } }
                    ul.rows {
                        @for e in &calls {
                            li { a href={ "/activity/" (segment(&e.id)) } { (e.capability) } " · "
                                span class={ "exec exec-" (e.status.as_str()) } { (e.status.as_str()) } " · "
                                (time_ms(e.started_at))
                                @if let Some(d) = e.duration_ms { " · " (millis(d)) } }
                        }
                    }
                }
            }
            (actions(&view, &session))
            (secrets_section(&view, &secrets, &session))
        },
    ))
}

fn overview(view: &ToolView) -> Markup {
    html! {
        section.card aria-labelledby="status" {
            h2 #status { "Status" }
            p.untrusted.description { (view.manifest["description"].as_str().unwrap_or_default()) }
            dl.facts {
                dt { "Status" } dd { span class={ "status status-" (view.status.as_str()) } { (status_words(view.status)) } }
                dt { "Serving version" } dd { (view.active_version.as_deref().filter(|_| view.status != ToolStatus::PendingApproval).unwrap_or("none")) }
                dt { "Waiting for approval" } dd {
                    @match &view.pending_version {
                        Some(v) if view.status != ToolStatus::Revoked => { a href={ "/proposals/" (segment(&view.name)) } { "version " (v) " — review" } },
                        _ => { "nothing" },
                    }
                }
                dt { "State" } dd {
                    @match &view.volume {
                        Some(v) if v.purged_at.is_some() => { "purged" },
                        Some(v) => { "kept, quota " (v.quota_mb) " MB" },
                        None => { "none" },
                    }
                }
            }
            h3 { "Granted" }
            @match &view.granted {
                Some(g) => {
                    dl.facts {
                        dt { "Network" } dd { (network_in_words(g.internet_access, &g.network_allow).join("; ")) }
                        dt { "Memory" } dd #granted-memory { (g.memory_limit_mb) " MB" }
                        dt { "CPU" } dd { (g.cpu_limit_percent) " % of one CPU" }
                        dt { "Time per call" } dd { (g.timeout_s) " s" }
                        dt { "Processes" } dd { (g.pids_limit) }
                        dt { "Storage" } dd { (g.storage_quota_mb) " MB" }
                        dt { "Expires" } dd { @match g.expires_at { Some(t) => { (time_text(&t.to_rfc3339())) }, None => { "never" } } }
                    }
                },
                None => { p { "Nothing is granted: the tool cannot run." } },
            }
            h3 { "Versions" }
            ul.rows {
                @for v in &view.versions {
                    li { (v.version) " · " (v.state.replace('_', " ")) " · imported " (time_text(&v.imported_at)) " from " span.untrusted { (v.source) } }
                }
            }
        }
    }
}

fn action_button(view: &ToolView, session: &Session, action: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action={ "/tools/" (segment(&view.name)) "/action" } {
            (csrf_input(session))
            input type="hidden" name="action" value=(action);
            button type="submit" { (label) }
        }
    }
}

fn actions(view: &ToolView, session: &Session) -> Markup {
    let revoke = format!("/tools/{}/revoke", segment(&view.name));
    html! {
        section.card aria-labelledby="actions" {
            h2 #actions { "Actions" }
            @if view.status == ToolStatus::Revoked {
                p { "This tool is revoked; import it again to use it." }
            } @else {
                div.actions {
                    @if view.status == ToolStatus::Active { (action_button(view, session, "disable", "Disable")) }
                    @if view.status == ToolStatus::Disabled { (action_button(view, session, "enable", "Enable")) }
                    @if matches!(view.status, ToolStatus::Active | ToolStatus::Approved) { (action_button(view, session, "reinstall", "Reinstall")) }
                }
                form method="post" action=(revoke) {
                    (csrf_input(session))
                    fieldset {
                        legend { "Revoke" }
                        div.check { input type="radio" id="keep" name="state" value="keep" checked; label for="keep" { "Keep its stored state" } }
                        div.check { input type="radio" id="purge" name="state" value="purge"; label for="purge" { "Purge its stored state" } }
                        button type="submit" .danger { "Revoke " (view.name) "…" }
                    }
                }
            }
        }
    }
}

fn secrets_section(view: &ToolView, names: &[String], session: &Session) -> Markup {
    let set = format!("/tools/{}/secrets", segment(&view.name));
    let delete = format!("/tools/{}/secrets/delete", segment(&view.name));
    html! {
        section.card aria-labelledby="secrets" {
            h2 #secrets { "Secrets" }
            p.hint { "Values are write-only: they are stored encrypted and never shown again." }
            @if names.is_empty() { p.empty { "No secrets set." } }
            ul.rows {
                @for n in names {
                    li { code { (n) } " "
                        form.inline method="post" action=(delete) {
                            (csrf_input(session))
                            input type="hidden" name="secret" value=(n);
                            button type="submit" aria-label={ "Delete secret " (n) } { "Delete" }
                        }
                    }
                }
            }
            form method="post" action=(set) {
                (csrf_input(session))
                label for="secret-name" { "Name" }
                input #secret-name type="text" name="secret" required autocomplete="off" spellcheck="false";
                label for="secret-value" { "Value" }
                input #secret-value type="password" name="value" required autocomplete="new-password";
                div.actions { button type="submit" { "Set secret" } }
            }
        }
    }
}

/// `POST /tools/{name}/action`: enable, disable or reinstall.
pub(crate) async fn action(
    State(state): State<DashboardState>,
    Path(name): Path<String>,
    form: SignedForm,
) -> PageResult<Response> {
    let actor = form.session.actor();
    match form.get("action") {
        Some("enable") => drop(state.runtime.enable(&name, &actor).await?),
        Some("disable") => drop(state.runtime.disable(&name, &actor).await?),
        Some("reinstall") => drop(state.runtime.reinstall(&name, &actor).await?),
        other => {
            return Err(PageError::BadInput(format!(
                "action: {:?} is not enable, disable or reinstall",
                other.unwrap_or("")
            )));
        }
    }
    Ok(see_other(&format!("/tools/{}", segment(&name))))
}

/// `POST /tools/{name}/revoke`: without `confirmed`, a page that names what is lost; with it,
/// the revocation.
pub(crate) async fn revoke(
    State(state): State<DashboardState>,
    Path(name): Path<String>,
    form: SignedForm,
) -> PageResult<Response> {
    let purge = match form.get("state") {
        Some("purge") => true,
        Some("keep") | None => false,
        Some(other) => {
            return Err(PageError::BadInput(format!(
                "state: {other:?} is not keep or purge"
            )));
        }
    };
    if form.get("confirmed") == Some("yes") {
        state.runtime.revoke(&name, purge, &form.session.actor()).await?;
        return Ok(see_other(&format!("/tools/{}", segment(&name))));
    }
    let view = state.runtime.show(&name).await?;
    let secrets = state.runtime.secret_names(&name).await?;
    let action = format!("/tools/{}/revoke", segment(&name));
    Ok(layout(
        &format!("Revoke {name}?"),
        &form.session,
        Section::Tools,
        html! {
            section.card.confirm aria-labelledby="lost" {
                h2 #lost { "What is lost" }
                ul {
                    li { "The assistant can no longer call " strong { (view.name) } "; its grant ends." }
                    @if view.pending_version.is_some() { li { "The version waiting for approval is withdrawn." } }
                    @if purge {
                        li { strong { "Its stored state is destroyed" }
                            @if let Some(v) = &view.volume { " (up to " (v.quota_mb) " MB)" }
                            ". This cannot be undone." }
                    } @else {
                        li { "Its stored state is kept on disk." }
                    }
                    @if !secrets.is_empty() { li { "Its secrets (" (secrets.join(", ")) ") stay stored but unused." } }
                    li { "To use it again it must be imported and approved anew." }
                }
                form method="post" action=(action) {
                    (csrf_input(&form.session))
                    input type="hidden" name="state" value=(if purge { "purge" } else { "keep" });
                    input type="hidden" name="confirmed" value="yes";
                    div.actions {
                        button type="submit" .danger {
                            @if purge { "Revoke and purge state" } @else { "Revoke, keep state" }
                        }
                        a.button href={ "/tools/" (segment(&name)) } { "Cancel" }
                    }
                }
            }
        },
    )
    .into_response())
}

/// `POST /tools/{name}/secrets`: set a secret; its value is never shown again.
pub(crate) async fn set_secret(
    State(state): State<DashboardState>,
    Path(name): Path<String>,
    form: SignedForm,
) -> PageResult<Response> {
    let secret = form
        .get("secret")
        .ok_or_else(|| PageError::BadInput("the secret needs a name".into()))?;
    let value = form
        .raw("value")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| PageError::BadInput("the secret needs a value".into()))?;
    state
        .runtime
        .set_secret(&name, secret, value.to_string().into(), &form.session.actor())
        .await?;
    Ok(see_other(&format!("/tools/{}", segment(&name))))
}

/// `POST /tools/{name}/secrets/delete`.
pub(crate) async fn delete_secret(
    State(state): State<DashboardState>,
    Path(name): Path<String>,
    form: SignedForm,
) -> PageResult<Response> {
    let secret = form
        .get("secret")
        .ok_or_else(|| PageError::BadInput("which secret?".into()))?;
    state
        .runtime
        .delete_secret(&name, secret, &form.session.actor())
        .await?;
    Ok(see_other(&format!("/tools/{}", segment(&name))))
}
