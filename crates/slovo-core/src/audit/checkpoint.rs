//! Signed checkpoints of the audit chain, kept outside the database.
//!
//! A checkpoint says "event `seq` of the chain has hash `hash`", signed with an Ed25519 key the
//! database never holds. Checkpoints are appended to a log, one JSON object per line; each line
//! carries the SHA-256 of the line before it (`prev`), so the log is a chain of its own and a
//! line cannot be dropped or reordered without breaking the next one. Someone who can rewrite
//! the database but not sign can then neither truncate the trail below a checkpoint nor
//! recompute its hashes: the checkpointed event no longer matches.
//!
//! This module is the pure part: the record, its signature, and parsing a log's text. Files,
//! keys on disk and the database walk live in `slovo-runtime`.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{ChainError, GENESIS_HASH};

/// The record format this code writes and reads.
pub const CHECKPOINT_VERSION: u32 = 1;

/// Domain separation: a checkpoint signature can never be mistaken for a signature over
/// anything else the key might sign.
const SIGNING_CONTEXT: &str = "slovo-audit-checkpoint";

/// One signed checkpoint, as one line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Record format ([`CHECKPOINT_VERSION`]).
    pub v: u32,
    /// Position in the log, from 1, without gaps.
    pub n: i64,
    /// The audit event checkpointed (the chain head when it was written).
    pub seq: i64,
    /// That event's hash.
    pub hash: String,
    /// When the checkpoint was written (Unix milliseconds).
    pub at_ms: i64,
    /// SHA-256 of the previous line of the log ([`GENESIS_HASH`] for the first).
    pub prev: String,
    /// The public key that signed it (hex).
    pub key: String,
    /// Ed25519 signature over the fields above (hex).
    pub sig: String,
}

impl Checkpoint {
    fn signed_message(&self) -> String {
        serde_json::json!([
            SIGNING_CONTEXT,
            self.v,
            self.n,
            self.seq,
            self.hash,
            self.at_ms,
            self.prev,
            self.key
        ])
        .to_string()
    }

    /// The line as written to the log (without the newline).
    pub fn line(&self) -> String {
        // Serializing a struct of strings and integers cannot fail; the fallback is never taken.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// SHA-256 of a log line (without its newline), as lowercase hex: the next line's `prev`.
pub fn line_hash(line: &str) -> String {
    hex::encode(Sha256::digest(line.as_bytes()))
}

/// The key that signs checkpoints.
pub struct CheckpointSigner {
    key: SigningKey,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("public", &self.public_hex())
            .finish_non_exhaustive()
    }
}

impl CheckpointSigner {
    /// The signer for a 32-byte Ed25519 seed (the private key).
    pub fn from_seed(seed: &Zeroizing<[u8; 32]>) -> CheckpointSigner {
        CheckpointSigner {
            key: SigningKey::from_bytes(seed),
        }
    }

    /// The public key, as hex: what each checkpoint names and the verifier expects.
    pub fn public_hex(&self) -> String {
        hex::encode(self.key.verifying_key().to_bytes())
    }

    /// Signs checkpoint `n` of event `seq` with hash `hash`, following the line whose hash is
    /// `prev`.
    pub fn sign(&self, n: i64, seq: i64, hash: &str, at_ms: i64, prev: &str) -> Checkpoint {
        let mut c = Checkpoint {
            v: CHECKPOINT_VERSION,
            n,
            seq,
            hash: hash.to_string(),
            at_ms,
            prev: prev.to_string(),
            key: self.public_hex(),
            sig: String::new(),
        };
        c.sig = hex::encode(self.key.sign(c.signed_message().as_bytes()).to_bytes());
        c
    }
}

/// A checkpoint whose signature and place in the log were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    /// The record.
    pub checkpoint: Checkpoint,
    /// The hash of its line (what the database records as the newest checkpoint seen).
    pub line_hash: String,
}

/// Splits a log's text into its complete lines and an unterminated tail. Every checkpoint is
/// written as one `line\n` append, so a tail without its newline can only be a write cut short
/// (a crash or a full disk); it was never acknowledged, and the database never recorded it.
pub fn complete_lines(text: &str) -> (&str, &str) {
    match text.rfind('\n') {
        Some(i) => (&text[..=i], &text[i + 1..]),
        None => ("", text),
    }
}

/// Checks a whole checkpoint log against `public_hex`: every line parses, is signed by that
/// key, follows the line before it (`n` and `prev`), and never moves the chain backwards.
/// An unterminated tail is ignored (see [`complete_lines`]). Returns the checkpoints in order.
pub fn verify_log(text: &str, public_hex: &str) -> Result<Vec<VerifiedCheckpoint>, ChainError> {
    let key = parse_public_key(public_hex)?;
    let (complete, _cut_short) = complete_lines(text);
    let mut out: Vec<VerifiedCheckpoint> = Vec::new();
    for (i, line) in complete.lines().enumerate() {
        let line_no = i as i64 + 1;
        let broken = |reason: String| ChainError::CheckpointLogBroken {
            line: line_no,
            reason,
        };
        let c: Checkpoint =
            serde_json::from_str(line).map_err(|e| broken(format!("not a checkpoint record: {e}")))?;
        if c.v != CHECKPOINT_VERSION {
            return Err(broken(format!("unknown record version {}", c.v)));
        }
        verify_signature(&c, &key, public_hex)?;
        if c.n != line_no {
            return Err(broken(format!(
                "it is checkpoint {} where checkpoint {line_no} belongs (lines removed or reordered)",
                c.n
            )));
        }
        let prev = out.last();
        let expected_prev = prev.map_or(GENESIS_HASH, |p| p.line_hash.as_str());
        if c.prev != expected_prev {
            return Err(broken(
                "it does not follow the line before it (lines removed, inserted or edited)".into(),
            ));
        }
        if let Some(p) = prev
            && c.seq < p.checkpoint.seq
        {
            return Err(broken(format!(
                "it checkpoints event {} after checkpoint {} checkpointed event {}",
                c.seq, p.checkpoint.n, p.checkpoint.seq
            )));
        }
        if c.seq < 1 {
            return Err(broken(format!("it checkpoints event {}", c.seq)));
        }
        out.push(VerifiedCheckpoint {
            line_hash: line_hash(line),
            checkpoint: c,
        });
    }
    Ok(out)
}

/// Checks one checkpoint's record version and signature against `public_hex`, without its place
/// in the log (what a writer checks of the newest line before appending after it).
pub fn verify_checkpoint(c: &Checkpoint, public_hex: &str) -> Result<(), ChainError> {
    if c.v != CHECKPOINT_VERSION {
        return Err(ChainError::CheckpointBadSignature {
            n: c.n,
            seq: c.seq,
            reason: format!("unknown record version {}", c.v),
        });
    }
    verify_signature(c, &parse_public_key(public_hex)?, public_hex)
}

fn parse_public_key(public_hex: &str) -> Result<VerifyingKey, ChainError> {
    let bad = |why: &str| ChainError::CheckpointKey {
        reason: format!("public key {public_hex:?}: {why}"),
    };
    let bytes: [u8; 32] = hex::decode(public_hex)
        .map_err(|_| bad("not hex"))?
        .try_into()
        .map_err(|_| bad("not 32 bytes"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| bad("not an Ed25519 key"))
}

fn verify_signature(c: &Checkpoint, key: &VerifyingKey, public_hex: &str) -> Result<(), ChainError> {
    let bad = |reason: &str| ChainError::CheckpointBadSignature {
        n: c.n,
        seq: c.seq,
        reason: reason.to_string(),
    };
    if c.key != public_hex {
        return Err(bad("signed by another key than this installation's"));
    }
    let sig: [u8; 64] = hex::decode(&c.sig)
        .map_err(|_| bad("the signature is not hex"))?
        .try_into()
        .map_err(|_| bad("the signature is not 64 bytes"))?;
    key.verify(c.signed_message().as_bytes(), &Signature::from_bytes(&sig))
        .map_err(|_| bad("the signature does not match the record"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(byte: u8) -> CheckpointSigner {
        CheckpointSigner::from_seed(&Zeroizing::new([byte; 32]))
    }

    fn log(s: &CheckpointSigner, seqs: &[i64]) -> Vec<String> {
        let mut prev = GENESIS_HASH.to_string();
        seqs.iter()
            .enumerate()
            .map(|(i, seq)| {
                let line = s
                    .sign(i as i64 + 1, *seq, &format!("{seq:064x}"), 1000, &prev)
                    .line();
                prev = line_hash(&line);
                line
            })
            .collect()
    }

    fn text(lines: &[String]) -> String {
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    #[test]
    fn an_intact_log_verifies() {
        let s = signer(7);
        let lines = log(&s, &[3, 3, 10]);
        let got = verify_log(&text(&lines), &s.public_hex()).unwrap();
        assert_eq!(
            got.iter().map(|c| c.checkpoint.seq).collect::<Vec<_>>(),
            [3, 3, 10]
        );
        assert_eq!(got[2].line_hash, line_hash(&lines[2]));
        assert_eq!(verify_log("", &s.public_hex()), Ok(vec![]));
    }

    #[test]
    fn a_cut_short_last_line_is_ignored() {
        let s = signer(7);
        let lines = log(&s, &[3, 10]);
        let t = format!("{}{}", text(&lines[..1]), &lines[1][..20]);
        assert_eq!(verify_log(&t, &s.public_hex()).unwrap().len(), 1);
    }

    #[test]
    fn tampering_with_the_log_is_named() {
        let s = signer(7);
        let key = s.public_hex();
        let lines = log(&s, &[3, 10, 12]);

        let mut edited = lines.clone();
        edited[1] = edited[1].replace("\"seq\":10", "\"seq\":11");
        assert!(matches!(
            verify_log(&text(&edited), &key),
            Err(ChainError::CheckpointBadSignature { n: 2, .. })
        ));

        let other = log(&signer(8), &[3]);
        assert!(matches!(
            verify_log(&text(&other), &key),
            Err(ChainError::CheckpointBadSignature { n: 1, .. })
        ));

        let mut dropped = lines.clone();
        dropped.remove(1);
        assert!(matches!(
            verify_log(&text(&dropped), &key),
            Err(ChainError::CheckpointLogBroken { line: 2, .. })
        ));

        assert!(matches!(
            verify_log("{\"v\":1}\n", &key),
            Err(ChainError::CheckpointLogBroken { line: 1, .. })
        ));
    }

    #[test]
    fn a_log_that_moves_the_chain_backwards_is_refused() {
        let s = signer(7);
        let lines = log(&s, &[10, 4]);
        assert!(matches!(
            verify_log(&text(&lines), &s.public_hex()),
            Err(ChainError::CheckpointLogBroken { line: 2, .. })
        ));
    }
}
