//! The audit trail's hash chain.
//!
//! Every event stores the hash of the previous event and the hash of its own content, which
//! covers the previous hash. Editing, deleting or reordering any stored event therefore breaks
//! the chain at that event, and [`verify_chain`] names the first one that does not fit.
//!
//! A chain that only the database holds cannot catch someone who rewrites the database: they
//! can truncate it and move the head, or recompute every hash after an edit. [`checkpoint`]
//! signs the head with a key kept outside the database, and the variants of [`ChainError`]
//! from `CheckpointMismatch` on name what a comparison with those checkpoints found.

pub mod checkpoint;
pub mod record;

pub use record::{AuditRecord, kinds};

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One stored audit event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    /// The chain it belongs to: 1 for everything but the results of calls that an instance
    /// sharing a PostgreSQL database writes to a chain of its own (`docs/audit.md`). Not part
    /// of the hash: a chain other than 1 is bound to its opening event through its first
    /// `prev_hash` instead, so that chain 1's events hash exactly as they always have.
    pub chain: i64,
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
    /// A signed checkpoint records another hash for this event: the trail was rewritten and
    /// every later hash recomputed (so the chain itself still links).
    #[error(
        "audit event {seq}: its hash differs from signed checkpoint {checkpoint} (rewritten: \
         events after {last_good} were changed and their hashes recomputed)"
    )]
    CheckpointMismatch {
        /// The checkpointed event.
        seq: i64,
        /// The checkpoint's number in the log.
        checkpoint: i64,
        /// The newest earlier checkpointed event that still matches (0 when none).
        last_good: i64,
    },
    /// The trail ends before an event a signed checkpoint records: events at the end were
    /// deleted and the head moved back.
    #[error(
        "audit trail truncated: it ends at event {head_seq} but signed checkpoint {checkpoint} \
         records event {checkpoint_seq} (events {} to {checkpoint_seq} deleted)",
        .head_seq + 1
    )]
    BehindCheckpoint {
        /// The database's head.
        head_seq: i64,
        /// The newest checkpoint's number in the log.
        checkpoint: i64,
        /// The event it records.
        checkpoint_seq: i64,
    },
    /// The checkpoint log is missing or empty although checkpoints were written, or the trail
    /// is longer than could ever be left without one.
    #[error(
        "checkpoint log missing: the database holds {head_seq} audit events{}",
        match .recorded { Some(n) => format!(" and recorded checkpoint {n} of this installation's log"), None => " and no checkpoint covers them".to_string() }
    )]
    CheckpointLogMissing {
        /// How many events the database holds (on every chain; on SQLite, chain 1's head).
        head_seq: i64,
        /// The newest checkpoint the database recorded for this key, if any.
        recorded: Option<i64>,
    },
    /// The checkpoint log is shorter than the database recorded: an older copy was restored
    /// (or lines were cut off its end).
    #[error(
        "checkpoint log rolled back: it ends at checkpoint {log_n} (event {log_seq}) but the \
         database recorded checkpoint {recorded_n} (event {recorded_seq})"
    )]
    CheckpointLogRolledBack {
        /// The log's newest checkpoint (0 when empty).
        log_n: i64,
        /// The event it records.
        log_seq: i64,
        /// The newest checkpoint the database recorded.
        recorded_n: i64,
        /// The event that one records.
        recorded_seq: i64,
    },
    /// The log holds a checkpoint under the number the database recorded, but not the same
    /// line: the log was replaced by another one.
    #[error("checkpoint log replaced: its checkpoint {n} is not the one the database recorded")]
    CheckpointLogReplaced {
        /// The checkpoint number.
        n: i64,
    },
    /// A checkpoint whose signature does not verify with this installation's key.
    #[error("checkpoint {n} (event {seq}): bad signature: {reason}")]
    CheckpointBadSignature {
        /// The checkpoint's number in the log.
        n: i64,
        /// The event it claims to record.
        seq: i64,
        /// Why.
        reason: String,
    },
    /// A line of the checkpoint log that is not a well-formed link of its chain.
    #[error("checkpoint log broken at line {line}: {reason}")]
    CheckpointLogBroken {
        /// The line (from 1).
        line: i64,
        /// Why.
        reason: String,
    },
    /// The checkpoint key cannot be used to verify (missing while a log exists, unreadable,
    /// or not a key).
    #[error("checkpoint key unusable: {reason}")]
    CheckpointKey {
        /// Why.
        reason: String,
    },
    /// An execution event whose execution record is gone or no longer matches the digests
    /// the event carries.
    #[error("audit event {seq}: execution {execution_id} {problem}")]
    ExecutionRecord {
        /// The event.
        seq: i64,
        /// The execution it records.
        execution_id: String,
        /// What does not match.
        problem: String,
    },
    /// An `audit.chain_opened` or `audit.chains_anchored` event whose payload is not what that
    /// kind records (its hash verifies, so it was written that way, or forged and re-hashed).
    #[error("audit event {seq}: its {kind} payload does not parse: {reason}")]
    BadPayload {
        /// The event.
        seq: i64,
        /// Its kind.
        kind: String,
        /// Why.
        reason: String,
    },
    /// A chain other than 1 that does not verify (its own events, named within it).
    #[error("audit chain {chain}: {error}")]
    InChain {
        /// The chain.
        chain: i64,
        /// What its walk found.
        error: Box<ChainError>,
    },
    /// Events or a head of a chain that no `audit.chain_opened` event on chain 1 names.
    #[error("audit chain {chain} has no opening event on chain 1 (forged)")]
    ChainNotOpened {
        /// The chain.
        chain: i64,
    },
    /// A chain opened on chain 1 whose head is gone from the database.
    #[error("audit chain {chain}, opened by audit event {opened_seq}, does not exist (deleted)")]
    ChainMissing {
        /// The chain.
        chain: i64,
        /// The opening event on chain 1.
        opened_seq: i64,
    },
    /// An anchor on chain 1 names an event of another chain that is gone, or that has another
    /// hash: the chain was truncated, or rewritten and re-hashed.
    #[error("audit chain {chain}: anchor at audit event {anchor_seq} records its event {seq}, {problem}")]
    AnchorMismatch {
        /// The anchored chain.
        chain: i64,
        /// The event the anchor names.
        seq: i64,
        /// The anchor event on chain 1.
        anchor_seq: i64,
        /// What was found instead.
        problem: String,
    },
    /// Chain 1's anchors, read again after its walk to check them against the other chains,
    /// are not the ones the walk verified: chain 1 was rewritten while it was being verified.
    #[error(
        "audit chain 1 changed while it was being verified: its anchors up to event {up_to} read back differently"
    )]
    AnchorsChanged {
        /// Chain 1's head when the walk began.
        up_to: i64,
    },
}

impl ChainError {
    /// The first event that does not fit; 0 when the fault is in the checkpoint log or its key
    /// rather than at an event of the trail.
    pub fn seq(&self) -> i64 {
        match self {
            ChainError::ContentMismatch { seq }
            | ChainError::BrokenLink { seq, .. }
            | ChainError::BadSequence { seq, .. }
            | ChainError::ExecutionRecord { seq, .. }
            | ChainError::BadPayload { seq, .. } => *seq,
            ChainError::Truncated { last_seq, .. } => last_seq + 1,
            ChainError::InChain { error, .. } => error.seq(),
            ChainError::ChainNotOpened { .. }
            | ChainError::ChainMissing { .. }
            | ChainError::AnchorsChanged { .. } => 0,
            ChainError::AnchorMismatch { seq, .. } => *seq,
            ChainError::CheckpointMismatch { last_good, .. } => last_good + 1,
            ChainError::BehindCheckpoint { head_seq, .. } => head_seq + 1,
            ChainError::CheckpointLogMissing { .. }
            | ChainError::CheckpointLogRolledBack { .. }
            | ChainError::CheckpointLogReplaced { .. }
            | ChainError::CheckpointBadSignature { .. }
            | ChainError::CheckpointLogBroken { .. }
            | ChainError::CheckpointKey { .. } => 0,
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
    /// A verifier that continues a chain already checked up to event `seq` with hash `hash`.
    pub fn resume(seq: i64, hash: &str) -> ChainVerifier {
        ChainVerifier {
            expected_seq: seq + 1,
            prev_hash: hash.to_string(),
        }
    }

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
                    chain: 1,
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
