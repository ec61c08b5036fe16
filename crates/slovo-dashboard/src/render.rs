//! The page frame and the small pieces every page uses: times, units, hidden CSRF fields.
//!
//! Everything goes through `maud`, which escapes every interpolated string; there is no
//! `PreEscaped` of anything that did not come from this crate.

use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use crate::form::CSRF_FIELD;
use crate::session::Session;

/// Which section of the navigation a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Inbox,
    Tools,
    Activity,
    Audit,
    Discovery,
}

const SECTIONS: [(Section, &str, &str); 5] = [
    (Section::Inbox, "/inbox", "Approvals"),
    (Section::Tools, "/tools", "Tools"),
    (Section::Activity, "/activity", "Activity"),
    (Section::Audit, "/audit", "Audit"),
    (Section::Discovery, "/discovery", "Discovery"),
];

/// An HTML page as a response.
pub(crate) struct Page(pub Markup);

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        ([(CONTENT_TYPE, "text/html; charset=utf-8")], self.0.into_string()).into_response()
    }
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="referrer" content="no-referrer";
            title { (title) " · Slovo Tools" }
            link rel="stylesheet" href="/assets/dashboard.css";
            script src="/assets/dashboard.js" defer {}
        }
    }
}

/// The frame of a signed-in page: navigation, sign-out, and `body` in `<main>`.
pub(crate) fn layout(title: &str, session: &Session, section: Section, body: Markup) -> Page {
    Page(html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "Slovo Tools" }
                    nav aria-label="Sections" {
                        ul {
                            @for (s, href, label) in SECTIONS {
                                li {
                                    @if s == section {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    form.signout method="post" action="/signout" {
                        (csrf_input(session))
                        button type="submit" { "Sign out" }
                    }
                }
                p #live-status .live-status role="status" aria-live="polite" {}
                main #main data-events="/events" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    })
}

/// A page for someone not signed in (sign-in form, errors).
pub(crate) fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                main #main .narrow {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The page shown for an error.
pub(crate) fn error_page(status: StatusCode, message: &str) -> Markup {
    let title = match status {
        StatusCode::UNAUTHORIZED => "Sign in first",
        StatusCode::FORBIDDEN => "Refused",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY => "Not done",
        _ => "Something went wrong",
    };
    bare(
        title,
        html! {
            p.error role="alert" { (message) }
            p { a href="/" { "Back to the dashboard" } " · " a href="/signin" { "Sign in" } }
        },
    )
}

/// The hidden field that carries the session's CSRF token in every form that changes state.
pub(crate) fn csrf_input(session: &Session) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(session.csrf); }
}

/// A moment (Unix ms) as a `<time>`: UTC in the page, turned into the browser's zone by the
/// script.
pub(crate) fn time_ms(ms: i64) -> Markup {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => html! {
            time datetime=(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)) {
                (t.format("%Y-%m-%d %H:%M:%S UTC"))
            }
        },
        None => html! { "unknown time" },
    }
}

/// A moment given as RFC 3339 text.
pub(crate) fn time_text(rfc3339: &str) -> Markup {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => time_ms(t.timestamp_millis()),
        Err(_) => html! { (rfc3339) },
    }
}

/// Bytes, in the largest unit that keeps the number at least 1.
pub(crate) fn bytes(n: i64) -> String {
    const UNITS: [&str; 4] = ["bytes", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A duration in milliseconds, in words.
pub(crate) fn millis(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.2} s", ms as f64 / 1000.0)
    }
}

/// A tool's status in words.
pub(crate) fn status_words(status: slovo_core::lifecycle::ToolStatus) -> &'static str {
    use slovo_core::lifecycle::ToolStatus::*;
    match status {
        PendingApproval => "waiting for approval",
        Approved => "approved, not installed yet",
        Active => "active",
        Disabled => "disabled",
        Revoked => "revoked",
    }
}
