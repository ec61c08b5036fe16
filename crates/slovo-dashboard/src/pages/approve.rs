//! The approval form: what was requested, what is granted now, what the person grants; and
//! the approval itself. When the runtime refuses an approval (a limit above the request, a
//! host the request does not cover) or a value cannot be read, the form comes back with the
//! person's entries and the reason next to the field.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{Duration as ChronoDuration, NaiveDateTime};
use maud::{Markup, html};
use slovo_core::permissions::{Grant, HostPattern, Narrowing};
use slovo_runtime::{RuntimeError, ToolView};

use super::{see_other, segment};
use crate::DashboardState;
use crate::describe::network_in_words;
use crate::error::{PageError, PageResult};
use crate::form::SignedForm;
use crate::render::{csrf_input, time_text};
use crate::session::Session;

/// What the form shows in each field: what was requested, or what the person entered.
#[derive(Debug, Clone)]
pub(crate) struct Entries {
    hosts: BTreeSet<String>,
    no_network: bool,
    no_storage: bool,
    memory_limit_mb: String,
    cpu_limit_percent: String,
    timeout_s: String,
    pids_limit: String,
    storage_quota_mb: String,
    expires_local: String,
}

impl Entries {
    /// The form as first shown: everything as requested.
    pub(crate) fn requested(view: &ToolView) -> Entries {
        let r = &view.requested;
        Entries {
            hosts: r.network_allow.iter().map(ToString::to_string).collect(),
            no_network: false,
            no_storage: false,
            memory_limit_mb: r.memory_limit_mb.to_string(),
            cpu_limit_percent: r.cpu_limit_percent.to_string(),
            timeout_s: r.timeout_s.to_string(),
            pids_limit: r.pids_limit.to_string(),
            storage_quota_mb: r.storage_quota_mb.to_string(),
            expires_local: String::new(),
        }
    }

    /// What the person sent.
    fn entered(form: &SignedForm) -> Entries {
        let text = |name: &str| form.get(name).unwrap_or_default().to_string();
        Entries {
            hosts: form.all("host").into_iter().map(str::to_string).collect(),
            no_network: form.get("no_network").is_some(),
            no_storage: form.get("no_storage").is_some(),
            memory_limit_mb: text("memory_limit_mb"),
            cpu_limit_percent: text("cpu_limit_percent"),
            timeout_s: text("timeout_s"),
            pids_limit: text("pids_limit"),
            storage_quota_mb: text("storage_quota_mb"),
            expires_local: text("expires_local"),
        }
    }
}

/// Why an approval was not made, and the form field it concerns (`network` for the hosts).
#[derive(Debug, Clone)]
pub(crate) struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        FieldError {
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// The refusal as the runtime worded it, placed at the field it names.
    fn from_runtime(error: &RuntimeError) -> Option<Self> {
        let RuntimeError::Grant { source, .. } = error else {
            return None;
        };
        let field = match source.field {
            "network_allow" => "network",
            other => other,
        };
        Some(FieldError::new(field, source.to_string()))
    }
}

fn error_for<'a>(error: Option<&'a FieldError>, field: &str) -> Option<&'a str> {
    error.filter(|e| e.field == field).map(|e| e.message.as_str())
}

/// The message beside a field, tied to it with `aria-describedby`.
fn field_error(field: &str, message: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = message {
            p.field-error id={ "error-" (field) } role="alert" { (m) }
        }
    }
}

fn granted_cell(view: &ToolView, f: impl Fn(&Grant) -> String) -> String {
    view.granted
        .as_ref()
        .map(f)
        .unwrap_or_else(|| "nothing yet".into())
}

/// The approval form with `entries` in its fields and `error`, if any, beside its field.
pub(crate) fn form(
    view: &ToolView,
    session: &Session,
    entries: &Entries,
    error: Option<&FieldError>,
) -> Markup {
    let r = &view.requested;
    let action = format!("/proposals/{}/approve", segment(&view.name));
    let network_error = error_for(error, "network");
    html! {
        section.card aria-labelledby="decide" {
            h2 #decide { "Approve" }
            p.hint { "Every field can only lower what the tool asked for. Leave a field as it is to grant what was requested." }
            @if let Some(e) = error {
                p.form-error #approve-error role="alert" {
                    "Not approved: " (e.message) ". Nothing was changed; correct the field below and approve again."
                }
            }
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
                                    @let host = h.to_string();
                                    div.check {
                                        input type="checkbox" id={ "host-" (i) } name="host" value=(host) checked[entries.hosts.contains(&host)];
                                        label for={ "host-" (i) } { "Allow " code { (host) } }
                                    }
                                }
                                @if r.internet_access || !r.network_allow.is_empty() {
                                    div.check {
                                        input type="checkbox" id="no_network" name="no_network" value="1" checked[entries.no_network];
                                        label for="no_network" { "No network at all" }
                                    }
                                } @else { "none" }
                                (field_error("network", network_error))
                            }
                        }
                        (limit_row(LimitRow { label: "Memory", field: "memory_limit_mb", unit: "MB", min: 8,
                            requested: r.memory_limit_mb, granted: view.granted.as_ref().map(|g| g.memory_limit_mb) },
                            &entries.memory_limit_mb, error))
                        (limit_row(LimitRow { label: "CPU", field: "cpu_limit_percent", unit: "% of one CPU", min: 1,
                            requested: u64::from(r.cpu_limit_percent), granted: view.granted.as_ref().map(|g| u64::from(g.cpu_limit_percent)) },
                            &entries.cpu_limit_percent, error))
                        (limit_row(LimitRow { label: "Time per call", field: "timeout_s", unit: "s", min: 1,
                            requested: r.timeout_s, granted: view.granted.as_ref().map(|g| g.timeout_s) },
                            &entries.timeout_s, error))
                        (limit_row(LimitRow { label: "Processes", field: "pids_limit", unit: "processes", min: 1,
                            requested: u64::from(r.pids_limit), granted: view.granted.as_ref().map(|g| u64::from(g.pids_limit)) },
                            &entries.pids_limit, error))
                        tr {
                            th scope="row" { "Storage" }
                            td data-label="Requested" { (r.storage_quota_mb) " MB" }
                            td data-label="Granted now" { (granted_cell(view, |g| format!("{} MB", g.storage_quota_mb))) }
                            td data-label="You grant" {
                                @if r.storage_quota_mb > 0 {
                                    @let message = error_for(error, "storage_quota_mb");
                                    label for="storage_quota_mb" .inline { "Storage in MB" }
                                    input #storage_quota_mb type="number" name="storage_quota_mb" min="0" max=(r.storage_quota_mb)
                                        value=(entries.storage_quota_mb) inputmode="numeric"
                                        aria-invalid=[message.map(|_| "true")] aria-describedby=[message.map(|_| "error-storage_quota_mb")];
                                    span.unit { "MB" }
                                    (field_error("storage_quota_mb", message))
                                    div.check {
                                        input type="checkbox" id="no_storage" name="no_storage" value="1" checked[entries.no_storage];
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
                                @let message = error_for(error, "expires_local");
                                label for="expires_local" .inline { "Expires (your time)" }
                                input #expires_local type="datetime-local" name="expires_local" value=(entries.expires_local)
                                    aria-invalid=[message.map(|_| "true")] aria-describedby=[message.map(|_| "error-expires_local")];
                                (field_error("expires_local", message))
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

/// One numeric permission of the form.
struct LimitRow<'a> {
    label: &'a str,
    field: &'a str,
    unit: &'a str,
    min: u64,
    requested: u64,
    granted: Option<u64>,
}

fn limit_row(row: LimitRow<'_>, entered: &str, error: Option<&FieldError>) -> Markup {
    let LimitRow {
        label,
        field,
        unit,
        min,
        requested,
        granted,
    } = row;
    let message = error_for(error, field);
    html! {
        tr {
            th scope="row" { (label) }
            td data-label="Requested" { (requested) " " (unit) }
            td data-label="Granted now" { @match granted { Some(g) => { (g) " " (unit) }, None => { "nothing yet" } } }
            td data-label="You grant" {
                label.inline for=(field) { (label) " in " (unit) }
                input id=(field) type="number" name=(field) min=(min) max=(requested) value=(entered) inputmode="numeric"
                    aria-invalid=[message.map(|_| "true")] aria-describedby=[message.map(|_| format!("error-{field}"))];
                span.unit { (unit) }
                (field_error(field, message))
            }
        }
    }
}

fn number<T: std::str::FromStr>(form: &SignedForm, field: &str) -> Result<Option<T>, FieldError> {
    form.get(field)
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| FieldError::new(field, format!("{v:?} is not a whole number")))
        })
        .transpose()
}

/// The narrowing the form asks for: a field is set only where the person changed it from what
/// was requested; the runtime decides whether it is allowed.
fn narrowing_from(form: &SignedForm, view: &ToolView) -> Result<Narrowing, FieldError> {
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
                .map_err(|e| FieldError::new("network", e.to_string()))
        })
        .collect::<Result<_, _>>()?;
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
fn expiry(form: &SignedForm) -> Result<Option<chrono::DateTime<chrono::Utc>>, FieldError> {
    let Some(local) = form.get("expires_local") else {
        return Ok(None);
    };
    let naive = NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| FieldError::new("expires_local", format!("{local:?} is not a date and time")))?;
    let offset: i64 = number(form, "tz_offset_minutes")?.unwrap_or(0);
    if offset.abs() > 24 * 60 {
        return Err(FieldError::new(
            "expires_local",
            format!("the time zone offset {offset} minutes is not one"),
        ));
    }
    Ok(Some((naive + ChronoDuration::minutes(offset)).and_utc()))
}

/// `POST /proposals/{name}/approve`: approved, on to the tool; refused, the form again.
pub(crate) async fn approve(
    State(state): State<DashboardState>,
    Path(name): Path<String>,
    form: SignedForm,
) -> PageResult<Response> {
    let view = state.runtime.show(&name).await?;
    let refused = match narrowing_from(&form, &view) {
        Err(e) => e,
        Ok(narrowing) => match state
            .runtime
            .approve(&name, &narrowing, &form.session.actor())
            .await
        {
            Ok(_) => return Ok(see_other(&format!("/tools/{}", segment(&name)))),
            Err(e) => FieldError::from_runtime(&e).ok_or(PageError::Runtime(e))?,
        },
    };
    let page = super::proposal::render(
        &state,
        &form.session,
        view,
        Entries::entered(&form),
        Some(refused),
    )
    .await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}
