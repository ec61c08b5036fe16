//! The audit trail's hash chain.
//!
//! Every event stores the hash of the previous event and the hash of its own content, which
//! covers the previous hash. Editing, deleting or reordering any stored event therefore breaks
//! the chain at that event, and [`verify_chain`] names the first one that does not fit.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One stored audit event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// When it happened (Unix milliseconds).
    pub at_ms: i64,
    /// What happened: `tool.imported`, `tool.approved`, `execution.finished`, …
    pub kind: String,
    /// The tool it concerns, if any.
    pub tool: Option<String>,
    /// Who did it: `cli`, a token id, `system`.
    pub actor: String,
    /// Details, as the JSON text that was hashed.
    pub payload: String,
    /// Hash of the previous event ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// Hash of this event's content and `prev_hash`.
    pub hash: String,
}

/// The hash of an event's content chained to `prev_hash`, as lowercase hex.
///
/// The fields are hashed as one JSON array, so no two different events can serialize alike.
pub fn event_hash(
    seq: i64,
    at_ms: i64,
    kind: &str,
    tool: Option<&str>,
    actor: &str,
    payload: &str,
    prev_hash: &str,
) -> String {
    let canonical = serde_json::json!([seq, at_ms, kind, tool, actor, payload, prev_hash]).to_string();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// Why the chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// An event's stored hash does not match its content: it was edited.
    #[error("audit event {seq}: its content does not match its hash (edited)")]
    ContentMismatch {
        /// The event.
        seq: i64,
    },
    /// An event does not point to the event before it: one was deleted, inserted or moved.
    #[error("audit event {seq}: it does not follow event {prev_seq} (events deleted, inserted or reordered)")]
    BrokenLink {
        /// The event.
        seq: i64,
        /// The event stored before it (0 for the start of the trail).
        prev_seq: i64,
    },
    /// The sequence numbers have a gap or repeat.
    #[error("audit event {seq}: expected sequence number {expected} (events deleted or reordered)")]
    BadSequence {
        /// The event.
        seq: i64,
        /// What the chain expected at that position.
        expected: i64,
    },
    /// The trail ends before the recorded head: events at the end were deleted.
    #[error(
        "audit trail ends at event {last_seq} but the chain head records event {head_seq} (events deleted)"
    )]
    Truncated {
        /// The last stored event.
        last_seq: i64,
        /// The head's record.
        head_seq: i64,
    },
}

impl ChainError {
    /// The first event that does not fit.
    pub fn seq(&self) -> i64 {
        match self {
            ChainError::ContentMismatch { seq }
            | ChainError::BrokenLink { seq, .. }
            | ChainError::BadSequence { seq, .. } => *seq,
            ChainError::Truncated { last_seq, .. } => last_seq + 1,
        }
    }
}

/// Incremental verifier: feed events in stored order, then [`ChainVerifier::finish`] with the
/// chain head. Incremental so that a long trail is verified page by page.
#[derive(Debug)]
pub struct ChainVerifier {
    expected_seq: i64,
    prev_hash: String,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            expected_seq: 1,
            prev_hash: GENESIS_HASH.to_string(),
        }
    }
}

impl ChainVerifier {
    /// Checks the next event.
    pub fn push(&mut self, e: &AuditEvent) -> Result<(), ChainError> {
        let recomputed = event_hash(
            e.seq,
            e.at_ms,
            &e.kind,
            e.tool.as_deref(),
            &e.actor,
            &e.payload,
            &e.prev_hash,
        );
        if recomputed != e.hash {
            return Err(ChainError::ContentMismatch { seq: e.seq });
        }
        if e.prev_hash != self.prev_hash {
            return Err(ChainError::BrokenLink {
                seq: e.seq,
                prev_seq: self.expected_seq - 1,
            });
        }
        if e.seq != self.expected_seq {
            return Err(ChainError::BadSequence {
                seq: e.seq,
                expected: self.expected_seq,
            });
        }
        self.expected_seq += 1;
        self.prev_hash = e.hash.clone();
        Ok(())
    }

    /// Checks that the trail ends where the head says; returns the number of events verified.
    pub fn finish(self, head_seq: i64, head_hash: &str) -> Result<i64, ChainError> {
        let last_seq = self.expected_seq - 1;
        if last_seq != head_seq || self.prev_hash != head_hash {
            return Err(ChainError::Truncated { last_seq, head_seq });
        }
        Ok(last_seq)
    }
}

/// Verifies a whole chain held in memory.
pub fn verify_chain(events: &[AuditEvent], head_seq: i64, head_hash: &str) -> Result<i64, ChainError> {
    let mut v = ChainVerifier::default();
    for e in events {
        v.push(e)?;
    }
    v.finish(head_seq, head_hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditEvent> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|seq| {
                let payload = format!("{{\"n\":{seq}}}");
                let hash = event_hash(seq, 1000 + seq, "k", Some("t"), "cli", &payload, &prev);
                let e = AuditEvent {
                    seq,
                    at_ms: 1000 + seq,
                    kind: "k".into(),
                    tool: Some("t".into()),
                    actor: "cli".into(),
                    payload,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                e
            })
            .collect()
    }

    #[test]
    fn intact_chain_verifies() {
        let c = chain(5);
        assert_eq!(verify_chain(&c, 5, &c[4].hash), Ok(5));
        assert_eq!(verify_chain(&[], 0, GENESIS_HASH), Ok(0));
    }

    #[test]
    fn tampering_names_the_first_bad_event() {
        let c = chain(5);
        let head = c[4].hash.clone();

        let mut edited = c.clone();
        edited[2].payload = "{\"n\":99}".into();
        assert_eq!(verify_chain(&edited, 5, &head).map_err(|e| e.seq()), Err(3));

        let mut deleted = c.clone();
        deleted.remove(1);
        assert_eq!(verify_chain(&deleted, 5, &head).map_err(|e| e.seq()), Err(3));

        let mut reordered = c.clone();
        reordered.swap(1, 3);
        assert_eq!(verify_chain(&reordered, 5, &head).map_err(|e| e.seq()), Err(4));

        let truncated = &c[..4];
        assert_eq!(verify_chain(truncated, 5, &head).map_err(|e| e.seq()), Err(5));
    }
}
