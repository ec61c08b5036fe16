//! The audit trail against someone who can write to the database: signed checkpoints outside
//! it, the execution records the trail pins, and the triggers that keep events append-only.
//! Every attack runs against SQLite and PostgreSQL; an attacker with database access drops the
//! triggers first, so most attacks do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Value, json};
use slovo_core::audit::checkpoint::{CheckpointSigner, line_hash};
use slovo_core::audit::{AuditEvent, ChainError, GENESIS_HASH, event_hash};
use slovo_core::execution::{ExecutionStatus, Outcome, SandboxSpec};
use slovo_core::install::{DockerDeferred, DockerFacts, InstallFacts};
use slovo_core::permissions::Narrowing;
use slovo_runtime::{
    Actor, AuditReport, CHECKPOINT_EVERY_EVENTS, CHECKPOINT_KEY_FILE, CHECKPOINT_LOG_FILE, CallRequest,
    ImportSource, Runtime, RuntimeError,
};
use slovo_sandbox::{Backend, BackendError, Backends, InstallRequest};
use slovo_store::{DbKind, Store};
use slovo_test_support::test_dbs;
use zeroize::Zeroizing;

/// Echoes its arguments; nothing runs.
struct Echo;

#[async_trait]
impl Backend for Echo {
    fn kind(&self) -> &'static str {
        "docker"
    }
    async fn install(&self, r: &InstallRequest) -> Result<InstallFacts, BackendError> {
        Ok(InstallFacts::Docker(DockerFacts::Deferred(DockerDeferred {
            image: "test".into(),
            entrypoint: None,
            reason: format!("installed {}", r.version),
        })))
    }
    async fn run(&self, spec: &SandboxSpec) -> Outcome {
        Outcome {
            status: ExecutionStatus::Success,
            output: Some(json!({"echo": spec.request["arguments"]})),
            exit_code: Some(0),
            ..Outcome::default()
        }
    }
}

struct Harness {
    rt: Runtime,
    label: &'static str,
    data_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn store(&self) -> &Store {
        self.rt.store()
    }

    fn log_path(&self) -> PathBuf {
        self.data_dir.join(CHECKPOINT_LOG_FILE)
    }

    /// `tool.imported`, `tool.approved`, `tool.installed`: events 1 to 3.
    async fn install_echo(&self) {
        let manifest = json!({
            "name": "echo",
            "version": "1.0.0",
            "description": "Echoes its arguments",
            "capabilities": [{
                "name": "say",
                "description": "Say something",
                "parameters": {"type": "object", "required": ["text"],
                               "properties": {"text": {"type": "string"}},
                               "additionalProperties": false}
            }],
            "permissions": {"memory_limit_mb": 64},
            "execution": {"type": "docker", "image": "slovo-test/echo:1"}
        });
        self.rt
            .import(
                ImportSource::Manifest {
                    name: "echo.json".into(),
                    bytes: manifest.to_string().into_bytes(),
                },
                &actor(),
            )
            .await
            .unwrap();
        self.rt
            .approve("echo", &Narrowing::default(), &actor())
            .await
            .unwrap();
    }

    /// One `execution.finished` event per call.
    async fn calls(&self, n: usize) {
        for i in 0..n {
            self.rt
                .call(CallRequest {
                    tool: "echo".into(),
                    capability: "say".into(),
                    arguments: json!({"text": format!("call {i}")}),
                    conversation_id: None,
                    turn_id: None,
                    actor: actor(),
                })
                .await
                .unwrap();
        }
    }

    async fn checkpoint(&self) -> i64 {
        self.rt.checkpoint_audit().await.unwrap().unwrap().seq
    }

    async fn broken(&self) -> ChainError {
        match self.rt.verify_audit().await {
            Err(RuntimeError::AuditBroken(e)) => e,
            other => panic!("{}: expected a broken trail, got {other:?}", self.label),
        }
    }

    async fn verified(&self) -> AuditReport {
        self.rt
            .verify_audit()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.label))
    }

    async fn events(&self) -> Vec<AuditEvent> {
        self.store().audit_page(0, 100_000).await.unwrap()
    }

    /// What an attacker with write access to the database does first: drops the triggers that
    /// keep audit events append-only and the chain head moving forward.
    async fn drop_audit_guards(&self) {
        for (trigger, table) in [
            ("audit_events_no_update", "audit_events"),
            ("audit_events_no_delete", "audit_events"),
            ("audit_head_forward_only", "audit_head"),
        ] {
            let sql = match self.store().kind() {
                DbKind::Sqlite => format!("DROP TRIGGER {trigger}"),
                DbKind::Postgres => format!("DROP TRIGGER {trigger} ON {table}"),
            };
            self.store().execute_raw(&sql).await.unwrap();
        }
    }

    /// Deletes every event after `keep` and moves the head back onto it.
    async fn truncate_to(&self, keep: i64) {
        let events = self.events().await;
        let kept = &events[usize::try_from(keep).unwrap() - 1];
        self.store()
            .execute_raw(&format!("DELETE FROM audit_events WHERE seq > {keep}"))
            .await
            .unwrap();
        self.store()
            .execute_raw(&format!(
                "UPDATE audit_head SET seq = {keep}, hash = '{}' WHERE id = 1",
                kept.hash
            ))
            .await
            .unwrap();
    }

    /// Rewrites the whole chain from the genesis head with every hash recomputed, after
    /// `edit` changed what it likes: a chain that links perfectly.
    async fn rewrite_chain(&self, edit: impl Fn(&mut AuditEvent)) {
        let events = self.events().await;
        self.store()
            .execute_raw("DELETE FROM audit_events")
            .await
            .unwrap();
        self.store()
            .execute_raw(&format!(
                "UPDATE audit_head SET seq = 0, hash = '{GENESIS_HASH}' WHERE id = 1"
            ))
            .await
            .unwrap();
        let mut prev = GENESIS_HASH.to_string();
        for mut e in events {
            edit(&mut e);
            e.prev_hash = prev.clone();
            e.hash = event_hash(
                e.seq,
                e.at_ms,
                &e.kind,
                e.tool.as_deref(),
                &e.actor,
                &e.payload,
                &e.prev_hash,
            );
            let tool = e.tool.as_ref().map_or("NULL".into(), |t| format!("'{t}'"));
            self.store()
                .execute_raw(&format!(
                    "INSERT INTO audit_events (seq, at_ms, kind, tool, actor, payload, prev_hash, hash) \
                     VALUES ({}, {}, '{}', {tool}, '{}', '{}', '{}', '{}')",
                    e.seq,
                    e.at_ms,
                    e.kind,
                    e.actor.replace('\'', "''"),
                    e.payload.replace('\'', "''"),
                    e.prev_hash,
                    e.hash
                ))
                .await
                .unwrap();
            prev = e.hash;
        }
    }
}

fn actor() -> Actor {
    Actor("test".into())
}

async fn harnesses() -> Vec<Harness> {
    let mut out = Vec::new();
    for db in test_dbs().await {
        let store = db.store().await;
        let data_dir = db.dir.path().join("data");
        let rt = Runtime::new(store, Backends::new().with(Arc::new(Echo)), &data_dir);
        out.push(Harness {
            rt,
            label: db.label,
            data_dir,
            _dir: db.dir,
        });
    }
    out
}

#[tokio::test]
async fn checkpoints_are_signed_chained_and_kept_outside_the_database() {
    use std::os::unix::fs::PermissionsExt;
    for h in harnesses().await {
        h.install_echo().await;
        assert_eq!(h.checkpoint().await, 3);
        h.calls(2).await;
        // Nothing new since a checkpoint: nothing written.
        assert_eq!(h.checkpoint().await, 5);
        assert!(h.rt.checkpoint_audit().await.unwrap().is_none());

        let key = h.data_dir.join(CHECKPOINT_KEY_FILE);
        for path in [&key, &h.log_path()] {
            let mode = std::fs::metadata(path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}: {}", h.label, path.display());
        }
        let text = std::fs::read_to_string(h.log_path()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let second: Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(second["n"], 2);
        assert_eq!(second["seq"], 5);
        assert_eq!(second["prev"], line_hash(lines[0]));
        assert_eq!(second["hash"], h.store().audit_head().await.unwrap().1);

        let report = h.verified().await;
        assert_eq!(
            (
                report.events,
                report.checkpoints,
                report.checkpoint_seq,
                report.unchecked_events
            ),
            (5, 2, 5, 0),
            "{}",
            h.label
        );
        h.calls(1).await;
        assert_eq!(h.verified().await.unchecked_events, 1, "{}", h.label);
        // The end of a command: this runtime appended, so its events get a checkpoint.
        assert_eq!(h.rt.flush_audit_checkpoints().await.unwrap().unwrap().seq, 6);
        assert!(h.rt.flush_audit_checkpoints().await.unwrap().is_none());
    }
}

#[tokio::test]
async fn a_checkpoint_follows_every_so_many_calls_without_being_asked() {
    for h in harnesses().await {
        h.install_echo().await;
        h.calls(usize::try_from(CHECKPOINT_EVERY_EVENTS).unwrap()).await;
        // The checkpoint is written on a task of its own; wait for it (bounded).
        let deadline = Instant::now() + Duration::from_secs(20);
        let seq = loop {
            let text = std::fs::read_to_string(h.log_path()).unwrap_or_default();
            if let Some(last) = text.lines().last() {
                break serde_json::from_str::<Value>(last).unwrap()["seq"]
                    .as_i64()
                    .unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "{}: no checkpoint was written",
                h.label
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(seq >= CHECKPOINT_EVERY_EVENTS, "{}: {seq}", h.label);
        assert!(h.verified().await.checkpoints >= 1);
    }
}

#[tokio::test]
async fn the_timer_checkpoints_what_this_runtime_appended() {
    for h in harnesses().await {
        let timer = h.rt.spawn_audit_checkpoint_timer();
        h.install_echo().await;
        let deadline = Instant::now() + slovo_runtime::CHECKPOINT_INTERVAL * 3;
        while std::fs::read_to_string(h.log_path())
            .unwrap_or_default()
            .is_empty()
        {
            assert!(
                Instant::now() < deadline,
                "{}: no checkpoint was written",
                h.label
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        timer.abort();
        let report = h.verified().await;
        assert_eq!((report.checkpoints, report.checkpoint_seq), (1, 3), "{}", h.label);
    }
}

#[tokio::test]
async fn truncating_the_trail_below_a_checkpoint_is_detected() {
    for h in harnesses().await {
        h.install_echo().await;
        h.calls(4).await;
        assert_eq!(h.checkpoint().await, 7);
        h.calls(2).await;

        // The attack: delete the newest events and move the head back onto event 4, which
        // leaves a chain that links perfectly.
        h.drop_audit_guards().await;
        h.truncate_to(4).await;
        let err = h.broken().await;
        assert_eq!(
            err,
            ChainError::BehindCheckpoint {
                head_seq: 4,
                checkpoint: 1,
                checkpoint_seq: 7
            },
            "{}",
            h.label
        );
        assert!(err.to_string().contains("truncated"), "{err}");
        assert!(err.to_string().contains("events 5 to 7 deleted"), "{err}");

        // The checkpointer refuses to sign the truncated chain, so a later checkpoint cannot
        // launder it.
        let lines = std::fs::read_to_string(h.log_path()).unwrap();
        assert!(matches!(
            h.rt.checkpoint_audit().await,
            Err(RuntimeError::AuditBroken(ChainError::BehindCheckpoint { .. }))
        ));
        assert_eq!(lines, std::fs::read_to_string(h.log_path()).unwrap());
    }
}

#[tokio::test]
async fn rewriting_the_trail_with_every_hash_recomputed_is_detected() {
    for h in harnesses().await {
        h.install_echo().await;
        assert_eq!(h.checkpoint().await, 3);
        h.calls(4).await;
        assert_eq!(h.checkpoint().await, 7);
        h.calls(1).await;

        // The attack: blame someone else for call 5 and recompute every hash from there.
        h.drop_audit_guards().await;
        h.rewrite_chain(|e| {
            if e.seq == 5 {
                e.actor = "someone-else".into();
            }
        })
        .await;
        // The chain itself links again...
        let events = h.events().await;
        assert_eq!(
            slovo_core::audit::verify_chain(&events, 8, &events[7].hash),
            Ok(8)
        );
        // ...but event 7 no longer has the hash checkpoint 2 signed; checkpoint 1 still fits.
        let err = h.broken().await;
        assert_eq!(
            err,
            ChainError::CheckpointMismatch {
                seq: 7,
                checkpoint: 2,
                last_good: 3
            },
            "{}",
            h.label
        );
        assert_eq!(err.seq(), 4);
        assert!(err.to_string().contains("rewritten"), "{err}");
        assert!(h.rt.checkpoint_audit().await.is_err(), "{}", h.label);
    }
}

#[tokio::test]
async fn a_deleted_or_edited_execution_record_is_detected() {
    for h in harnesses().await {
        h.install_echo().await;
        h.calls(3).await;
        h.verified().await;
        let events = h.events().await;
        let id_of = |seq: usize| {
            serde_json::from_str::<Value>(&events[seq - 1].payload).unwrap()["execution_id"]
                .as_str()
                .unwrap()
                .to_string()
        };

        // Delete the record of the call in event 5 (the executions table has no trigger, and
        // the event itself is untouched).
        let deleted = id_of(5);
        h.store()
            .execute_raw(&format!("DELETE FROM executions WHERE id = '{deleted}'"))
            .await
            .unwrap();
        let err = h.broken().await;
        assert_eq!(
            err,
            ChainError::ExecutionRecord {
                seq: 5,
                execution_id: deleted.clone(),
                problem: "has no execution record (deleted)".into()
            },
            "{}",
            h.label
        );
        assert!(
            err.to_string()
                .contains(&format!("audit event 5: execution {deleted}"))
        );

        // Edit another call's output: its digest on event 4 no longer matches.
        let edited = id_of(4);
        h.store()
            .execute_raw(&format!(
                "UPDATE executions SET output = '{{\"echo\":\"forged\"}}' WHERE id = '{edited}'"
            ))
            .await
            .unwrap();
        match h.broken().await {
            ChainError::ExecutionRecord {
                seq: 4,
                execution_id,
                problem,
            } => {
                assert_eq!(execution_id, edited);
                assert!(problem.contains("output"), "{problem}");
            }
            other => panic!("{}: {other}", h.label),
        }
    }
}

#[tokio::test]
async fn a_rolled_back_or_missing_checkpoint_log_is_detected() {
    for h in harnesses().await {
        h.install_echo().await;
        h.calls(1).await;
        assert_eq!(h.checkpoint().await, 4);
        let old_copy = std::fs::read(h.log_path()).unwrap();
        h.calls(3).await;
        assert_eq!(h.checkpoint().await, 7);

        // Restore the older copy of the log (it still verifies on its own).
        std::fs::write(h.log_path(), &old_copy).unwrap();
        let err = h.broken().await;
        assert_eq!(
            err,
            ChainError::CheckpointLogRolledBack {
                log_n: 1,
                log_seq: 4,
                recorded_n: 2,
                recorded_seq: 7
            },
            "{}",
            h.label
        );
        assert!(err.to_string().contains("rolled back"), "{err}");

        // Emptied, or removed altogether.
        std::fs::write(h.log_path(), b"").unwrap();
        assert_eq!(
            h.broken().await,
            ChainError::CheckpointLogMissing {
                head_seq: 7,
                recorded: Some(2)
            }
        );
        std::fs::remove_file(h.log_path()).unwrap();
        let err = h.broken().await;
        assert!(err.to_string().starts_with("checkpoint log missing"), "{err}");

        // A log written afresh (same key) is not the one the database recorded either.
        assert_eq!(h.checkpoint().await, 7);
        assert!(matches!(
            h.broken().await,
            ChainError::CheckpointLogRolledBack {
                log_n: 1,
                recorded_n: 2,
                ..
            }
        ));
        // Once that log reaches the recorded number, its line there is not the recorded one.
        h.calls(1).await;
        assert_eq!(h.checkpoint().await, 8);
        assert_eq!(
            h.broken().await,
            ChainError::CheckpointLogReplaced { n: 2 },
            "{}",
            h.label
        );
    }
}

#[tokio::test]
async fn a_long_trail_without_any_checkpoint_log_is_called_missing() {
    for h in harnesses().await {
        h.install_echo().await;
        h.calls(usize::try_from(CHECKPOINT_EVERY_EVENTS).unwrap() - 2)
            .await;
        // Wait for any checkpoint started in the background, then remove every trace of the
        // checkpoints, in the database too (an attacker with the database and the files).
        h.rt.checkpoint_audit().await.unwrap();
        std::fs::remove_file(h.log_path()).unwrap();
        h.store()
            .execute_raw("DELETE FROM audit_checkpoints")
            .await
            .unwrap();
        assert_eq!(
            h.broken().await,
            ChainError::CheckpointLogMissing {
                head_seq: CHECKPOINT_EVERY_EVENTS + 1,
                recorded: None
            },
            "{}",
            h.label
        );
    }
}

#[tokio::test]
async fn a_checkpoint_with_a_bad_signature_is_detected() {
    for h in harnesses().await {
        h.install_echo().await;
        h.calls(2).await;
        assert_eq!(h.checkpoint().await, 5);
        let good = std::fs::read_to_string(h.log_path()).unwrap();

        // Edit the signed record: claim the trail ended at event 3.
        let events = h.events().await;
        let edited = good
            .replace("\"seq\":5", "\"seq\":3")
            .replace(&events[4].hash, &events[2].hash);
        assert_ne!(edited, good);
        std::fs::write(h.log_path(), &edited).unwrap();
        let err = h.broken().await;
        assert!(
            matches!(err, ChainError::CheckpointBadSignature { n: 1, seq: 3, .. }),
            "{}: {err}",
            h.label
        );
        assert!(err.to_string().contains("bad signature"), "{err}");

        // A checkpoint signed properly, but with a key that is not this installation's.
        let forger = CheckpointSigner::from_seed(&Zeroizing::new([42u8; 32]));
        let forged = forger.sign(1, 5, &events[4].hash, 0, GENESIS_HASH).line();
        std::fs::write(h.log_path(), format!("{forged}\n")).unwrap();
        match h.broken().await {
            ChainError::CheckpointBadSignature { n: 1, reason, .. } => {
                assert!(reason.contains("another key"), "{reason}")
            }
            other => panic!("{}: {other}", h.label),
        }
        // Nor does the checkpointer build on a line it cannot verify.
        assert!(h.rt.checkpoint_audit().await.is_err());

        // The key file gone while the log remains: nothing can be verified.
        std::fs::write(h.log_path(), &good).unwrap();
        h.verified().await;
        std::fs::remove_file(h.data_dir.join(CHECKPOINT_KEY_FILE)).unwrap();
        assert!(matches!(h.broken().await, ChainError::CheckpointKey { .. }));
    }
}

#[tokio::test]
async fn the_database_refuses_to_change_or_remove_audit_events() {
    for h in harnesses().await {
        h.install_echo().await;
        h.calls(2).await;
        let before = h.store().dump().await.unwrap();
        let mut attempts = vec![
            "UPDATE audit_events SET actor = 'someone-else' WHERE seq = 2".to_string(),
            "DELETE FROM audit_events WHERE seq = 5".to_string(),
            "DELETE FROM audit_events".to_string(),
            "UPDATE audit_head SET seq = 3 WHERE id = 1".to_string(),
            format!("UPDATE audit_head SET hash = '{GENESIS_HASH}' WHERE id = 1"),
            "UPDATE audit_head SET seq = 9 WHERE id = 1".to_string(),
            "DELETE FROM audit_head".to_string(),
        ];
        if h.store().kind() == DbKind::Postgres {
            attempts.push("TRUNCATE audit_events".into());
            attempts.push("TRUNCATE audit_head".into());
        }
        for sql in &attempts {
            let err = h.store().execute_raw(sql).await.unwrap_err().to_string();
            assert!(
                err.contains("append-only")
                    || err.contains("only moves forward")
                    || err.contains("cannot be deleted"),
                "{}: {sql}: {err}",
                h.label
            );
        }
        assert_eq!(before, h.store().dump().await.unwrap(), "{}", h.label);
        // Appending, and the lock every audited write takes on the head, still work.
        h.calls(1).await;
        assert_eq!(h.verified().await.events, 6);
    }
}
