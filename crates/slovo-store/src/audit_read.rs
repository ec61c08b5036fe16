//! Reading the audit trail across every chain (`docs/audit.md`, "Reading every chain"): the
//! events of all chains shown together, newest first, filtered and paged by a cursor; how many
//! events there are; and the lookups `audit verify` streams the anchors with.
//!
//! Events of several chains are ordered by `(at_ms, chain, seq)`: the time an event was
//! recorded, then its chain, then its place in that chain. The key is unique (`(chain, seq)`
//! is the primary key), so a page ends at exactly one event and the next page starts strictly
//! after it (keyset pagination on the index `audit_events_by_time`, no `OFFSET`): paging never
//! shows an event twice or skips one that was there when paging began, whatever is appended
//! meanwhile on any chain.

use std::fmt;
use std::str::FromStr;

use slovo_core::audit::{AuditEvent, kinds};
use sqlx::Row;

use crate::audit::audit_from_row;
use crate::{MAIN_AUDIT_CHAIN, Result, Store};

const EVENT_COLUMNS: &str = "chain, seq, at_ms, kind, tool, actor, payload, prev_hash, hash";

/// Most `(chain, seq)` pairs one lookup names (each takes two placeholders).
const LOOKUP_CHUNK: usize = 200;

/// Where a page of audit events ended: the display key of its last (oldest) event. Written as
/// `AT_MS.CHAIN.SEQ`, the `next_cursor` the REST API and the dashboard hand out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct AuditCursor {
    /// The event's time (Unix milliseconds).
    pub at_ms: i64,
    /// Its chain.
    pub chain: i64,
    /// Its sequence number in that chain.
    pub seq: i64,
}

impl AuditCursor {
    /// The cursor that pages on from `e`.
    pub fn of(e: &AuditEvent) -> AuditCursor {
        AuditCursor {
            at_ms: e.at_ms,
            chain: e.chain,
            seq: e.seq,
        }
    }
}

impl fmt::Display for AuditCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.at_ms, self.chain, self.seq)
    }
}

/// A cursor that is not `AT_MS.CHAIN.SEQ`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "audit cursor {0:?} is not a cursor: expected three whole numbers AT_MS.CHAIN.SEQ (the next_cursor of the previous page)"
)]
pub struct BadAuditCursor(pub String);

impl FromStr for AuditCursor {
    type Err = BadAuditCursor;

    fn from_str(s: &str) -> std::result::Result<AuditCursor, BadAuditCursor> {
        let bad = || BadAuditCursor(s.to_string());
        let mut parts = s.split('.').map(|p| p.parse::<i64>().map_err(|_| bad()));
        let (Some(at_ms), Some(chain), Some(seq), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        Ok(AuditCursor {
            at_ms: at_ms?,
            chain: chain?,
            seq: seq?,
        })
    }
}

/// Which audit events to list.
#[derive(Debug, Clone)]
pub struct AuditQuery {
    /// Only events about this tool.
    pub tool: Option<String>,
    /// Only events of this kind (`execution.finished`, `tool.approved`, …).
    pub kind: Option<String>,
    /// Only events of this chain.
    pub chain: Option<i64>,
    /// Only events shown after this cursor (older than it).
    pub before: Option<AuditCursor>,
    /// At most this many.
    pub limit: i64,
}

impl Default for AuditQuery {
    fn default() -> Self {
        AuditQuery {
            tool: None,
            kind: None,
            chain: None,
            before: None,
            limit: 50,
        }
    }
}

impl Store {
    /// Audit events of every chain, newest first in display order (`at_ms`, `chain`, `seq`
    /// descending), filtered and paged by `query`.
    pub async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>> {
        // Only the conditions given are written, so that the planner sees the cursor as a
        // range of the index `audit_events_by_time` rather than a filter to test row by row.
        let mut conditions = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if query.tool.is_some() {
            conditions.push(format!("tool = {}", next()));
        }
        if query.kind.is_some() {
            conditions.push(format!("kind = {}", next()));
        }
        if query.chain.is_some() {
            conditions.push(format!("chain = {}", next()));
        }
        if query.before.is_some() {
            conditions.push(format!(
                "(at_ms, chain, seq) < ({}, {}, {})",
                next(),
                next(),
                next()
            ));
        }
        let limit = next();
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM audit_events {filter} \
             ORDER BY at_ms DESC, chain DESC, seq DESC LIMIT {limit}"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(tool) = &query.tool {
            q = q.bind(tool.clone());
        }
        if let Some(kind) = &query.kind {
            q = q.bind(kind.clone());
        }
        if let Some(chain) = query.chain {
            q = q.bind(chain);
        }
        if let Some(c) = query.before {
            q = q.bind(c.at_ms).bind(c.chain).bind(c.seq);
        }
        let rows = q.bind(query.limit).fetch_all(&self.pool).await?;
        rows.iter().map(audit_from_row).collect()
    }

    /// How many audit events the database holds, on every chain: each chain numbers its
    /// events from 1 without gaps, so the sum of its heads (no count over the table).
    pub async fn audit_event_total(&self) -> Result<i64> {
        let row = sqlx::query("SELECT CAST(COALESCE(SUM(seq), 0) AS BIGINT) AS n FROM audit_head")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// The `audit.chains_anchored` events of chain 1 with `after < seq <= up_to`, in chain
    /// order, at most `limit` (read through `audit_events_by_kind`).
    pub async fn audit_anchors(&self, after: i64, up_to: i64, limit: i64) -> Result<Vec<AuditEvent>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM audit_events \
             WHERE chain = $1 AND kind = $2 AND seq > $3 AND seq <= $4 ORDER BY seq LIMIT $5"
        )))
        .bind(MAIN_AUDIT_CHAIN)
        .bind(kinds::AUDIT_CHAINS_ANCHORED)
        .bind(after)
        .bind(up_to)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_from_row).collect()
    }

    /// The events named by `(chain, seq)` that the database holds, in no particular order.
    pub async fn audit_events_at(&self, keys: &[(i64, i64)]) -> Result<Vec<AuditEvent>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(LOOKUP_CHUNK) {
            let named = (0..chunk.len())
                .map(|i| format!("(chain = ${} AND seq = ${})", 2 * i + 1, 2 * i + 2))
                .collect::<Vec<_>>()
                .join(" OR ");
            let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {EVENT_COLUMNS} FROM audit_events WHERE {named}"
            )));
            for (chain, seq) in chunk {
                q = q.bind(*chain).bind(*seq);
            }
            for row in q.fetch_all(&self.pool).await? {
                out.push(audit_from_row(&row)?);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_as_written() {
        let c = AuditCursor {
            at_ms: 1_765_000_000_123,
            chain: 3,
            seq: 42,
        };
        assert_eq!(c.to_string(), "1765000000123.3.42");
        assert_eq!(c.to_string().parse::<AuditCursor>(), Ok(c));
    }

    #[test]
    fn anything_but_three_whole_numbers_is_refused() {
        for bad in ["", "1.2", "1.2.3.4", "1.x.3", "1..3", "a.b.c", "1.2.3 "] {
            assert_eq!(
                bad.parse::<AuditCursor>(),
                Err(BadAuditCursor(bad.to_string())),
                "{bad:?}"
            );
        }
    }
}
