//! Timestamps: stored as Unix milliseconds, shown as RFC 3339.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

/// Milliseconds since the Unix epoch, the form every `*_at` column stores.
pub type UnixMillis = i64;

/// The current time in Unix milliseconds.
pub fn now_ms() -> UnixMillis {
    Utc::now().timestamp_millis()
}

/// Renders Unix milliseconds as RFC 3339 with millisecond precision (`2026-01-01T00:00:00.000Z`).
pub fn to_rfc3339(ms: UnixMillis) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => format!("@{ms}ms"),
    }
}

/// Parses an RFC 3339 timestamp (`2027-01-01T00:00:00Z`).
pub fn parse_rfc3339(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc))
}
