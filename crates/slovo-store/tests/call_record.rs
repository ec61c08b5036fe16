//! How a call is recorded: the `running` row, then its result and audit event in one
//! transaction; the database's guard on the audit chain; concurrent writers in two processes;
//! calls cancelled half-way. Against SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::task::Poll;
use std::time::Duration;

use serde_json::json;
use slovo_core::audit::verify_chain;
use slovo_core::execution::{ExecutionStatus, WarmStart};
use slovo_store::{ExecutionResult, FinishAudit, NewExecution, Store, StoreError};
use slovo_test_support::test_dbs;

mod support;

use support::active_tool;

fn new_execution(id: &str) -> NewExecution {
    support::new_execution(id, "test-instance")
}

fn result() -> ExecutionResult {
    ExecutionResult {
        status: ExecutionStatus::Success,
        output: Some(json!({"ok": true})),
        stderr: None,
        error: None,
        exit_code: Some(0),
        duration_ms: 1,
        cpu_ms: Some(1),
        peak_memory_bytes: Some(1),
        sandbox_id: None,
        finished_at: 20,
        network_denials: Vec::new(),
        warm: None,
    }
}

async fn finish(store: &Store, id: &str) -> Result<slovo_core::audit::AuditEvent, StoreError> {
    let payload = json!({"execution_id": id});
    store
        .finish_call(
            id,
            &result(),
            &FinishAudit {
                kind: "execution.finished",
                tool: Some("echo"),
                actor: "test",
                payload: &payload,
            },
        )
        .await
}

async fn assert_chain_intact(store: &Store, label: &str) -> i64 {
    let events = store.audit_page(0, 100_000).await.unwrap();
    let (seq, hash) = store.audit_head().await.unwrap();
    verify_chain(&events, seq, &hash).unwrap_or_else(|e| panic!("{label}: {e}"))
}

/// Events that finished `id`, by payload.
async fn events_for(store: &Store, id: &str) -> usize {
    store
        .audit_page(0, 100_000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.kind == "execution.finished" && e.payload.contains(id))
        .count()
}

/// An execution's status and its number of audit events once writes in flight have settled
/// (a dropped SQLite connection closing and rolling back, a PostgreSQL write finishing on its
/// own task): read until two reads 20 ms apart agree. A half-written call is a settled state
/// too, and the caller's assertions catch it.
async fn settled(store: &Store, id: &str) -> (ExecutionStatus, usize) {
    let mut last = None;
    for _ in 0..100 {
        let row = store
            .execution(id)
            .await
            .unwrap()
            .expect("the running record exists");
        let now = (row.status, events_for(store, &format!("\"{id}\"")).await);
        if last == Some(now) {
            return now;
        }
        last = Some(now);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{id} did not settle: {last:?}");
}

#[tokio::test]
async fn a_warm_call_keeps_how_warm_it_was_and_a_cold_one_reads_as_none() {
    for db in test_dbs().await {
        let store = &db.store().await;
        let revision = active_tool(store).await;
        let warm = WarmStart {
            started_ms_before_call: 840,
            ready_ms_before_call: 610,
        };
        for (id, served) in [("warm-call", Some(warm)), ("cold-call", None)] {
            assert!(
                store
                    .insert_running_execution_at(&new_execution(id), revision)
                    .await
                    .unwrap()
            );
            let result = ExecutionResult {
                warm: served,
                ..result()
            };
            let payload = json!({"execution_id": id});
            let audit = FinishAudit {
                kind: "execution.finished",
                tool: Some("echo"),
                actor: "test",
                payload: &payload,
            };
            store.finish_call(id, &result, &audit).await.unwrap();
            let row = store.execution(id).await.unwrap().unwrap();
            assert_eq!(row.warm, served, "{}: {id}", db.label);
        }
        // The same through a transaction of the caller's (chain steps, recovery).
        assert!(
            store
                .insert_running_execution_at(&new_execution("warm-in-tx"), revision)
                .await
                .unwrap()
        );
        let mut tx = store.begin().await.unwrap();
        let result = ExecutionResult {
            warm: Some(warm),
            ..result()
        };
        tx.finish_execution("warm-in-tx", &result).await.unwrap();
        tx.commit().await.unwrap();
        let row = store.execution("warm-in-tx").await.unwrap().unwrap();
        assert_eq!(row.warm, Some(warm), "{}", db.label);
    }
}

#[tokio::test]
async fn the_database_refuses_events_that_do_not_extend_the_chain_head() {
    for db in test_dbs().await {
        let store = db.store().await;
        active_tool(&store).await;
        let (head_seq, head_hash) = store.audit_head().await.unwrap();
        let before = store.dump().await.unwrap();
        let zeros = "0".repeat(64);
        for (what, seq, prev) in [
            ("a wrong prev_hash", head_seq + 1, zeros.as_str()),
            ("a gap in the sequence", head_seq + 2, head_hash.as_str()),
            ("a repeated sequence number", head_seq, head_hash.as_str()),
        ] {
            let err = store
                .execute_raw(&format!(
                    "INSERT INTO audit_events (seq, at_ms, kind, tool, actor, payload, prev_hash, hash) \
                     VALUES ({seq}, 1, 'forged', NULL, 'intruder', '{{}}', '{prev}', '{zeros}')"
                ))
                .await
                .expect_err(what);
            assert!(
                err.to_string().contains("does not extend the audit chain head"),
                "{}: {what}: {err}",
                db.label
            );
        }
        assert_eq!(before, store.dump().await.unwrap(), "{}", db.label);
    }
}

#[tokio::test]
async fn a_result_for_an_execution_that_is_not_running_writes_nothing() {
    for db in test_dbs().await {
        let store = db.store().await;
        let revision = active_tool(&store).await;
        assert!(
            store
                .insert_running_execution_at(&new_execution("e1"), revision)
                .await
                .unwrap()
        );
        finish(&store, "e1").await.unwrap();
        let before = store.dump().await.unwrap();
        // Finished already, and never started.
        for id in ["e1", "e-unknown"] {
            let err = finish(&store, id).await.unwrap_err();
            assert!(matches!(err, StoreError::Conflict(_)), "{}: {err}", db.label);
        }
        assert_eq!(before, store.dump().await.unwrap(), "{}", db.label);
        // A stale revision records nothing either.
        assert!(
            !store
                .insert_running_execution_at(&new_execution("e2"), revision + 1)
                .await
                .unwrap()
        );
        assert_eq!(before, store.dump().await.unwrap(), "{}", db.label);
        // And the writer is still usable afterwards.
        assert!(
            store
                .insert_running_execution_at(&new_execution("e3"), revision)
                .await
                .unwrap()
        );
        finish(&store, "e3").await.unwrap();
        assert_chain_intact(&store, db.label).await;
    }
}

/// Two stores on one database stand for two processes (say `slovo serve` and a `slovo tool`
/// command): each appends while the other's idea of the head goes stale.
#[tokio::test]
async fn two_processes_appending_concurrently_keep_one_unbroken_chain() {
    for db in test_dbs().await {
        let calls = db.store().await;
        let other = db.store().await;
        let revision = active_tool(&calls).await;
        let n = 40;
        let call_side = {
            let calls = calls.clone();
            tokio::spawn(async move {
                for i in 0..n {
                    let id = format!("c{i}");
                    assert!(
                        calls
                            .insert_running_execution_at(&new_execution(&id), revision)
                            .await
                            .unwrap()
                    );
                    finish(&calls, &id).await.unwrap();
                }
            })
        };
        let other_side = {
            let other = other.clone();
            tokio::spawn(async move {
                for i in 0..n {
                    let mut tx = other.begin().await.unwrap();
                    tx.append_audit("secret.set", Some("echo"), "admin", &json!({"i": i}))
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
        };
        call_side.await.unwrap();
        other_side.await.unwrap();
        let last = assert_chain_intact(&calls, db.label).await;
        // The approval, then one event per call and one per change elsewhere.
        assert_eq!(last, 1 + 2 * n, "{}", db.label);
        for i in 0..n {
            assert_eq!(events_for(&calls, &format!("\"c{i}\"")).await, 1, "{}", db.label);
        }
    }
}

/// A caller that goes away mid-write (a client disconnects, the server shuts down) drops the
/// future at whatever point it had reached. Whatever that point, a call's result and its audit
/// event are written together or not at all, and the next call is recorded normally.
#[tokio::test]
async fn a_call_record_cancelled_at_any_point_is_all_or_nothing() {
    for db in test_dbs().await {
        let store = db.store().await;
        let revision = active_tool(&store).await;
        let mut cancelled = 0;
        for i in 0..60u64 {
            let id = format!("x{i}");
            assert!(
                store
                    .insert_running_execution_at(&new_execution(&id), revision)
                    .await
                    .unwrap()
            );
            // Polled one to four times, with pauses that let the database thread get ahead,
            // then dropped: the drop lands before, during and after the command.
            let polls = 1 + i % 4;
            let pause = Duration::from_micros((i / 4) * 25);
            let finished = {
                let mut write = std::pin::pin!(finish(&store, &id));
                let mut finished = false;
                for _ in 0..polls {
                    finished =
                        std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx).is_ready())).await;
                    if finished {
                        break;
                    }
                    std::thread::sleep(pause);
                }
                finished
            };
            if !finished {
                cancelled += 1;
            }
            let (status, events) = settled(&store, &id).await;
            match status {
                ExecutionStatus::Running => assert_eq!(events, 0, "{}: {id} half-written", db.label),
                ExecutionStatus::Success => assert_eq!(events, 1, "{}: {id} half-written", db.label),
                other => panic!("{}: {id} is {other}", db.label),
            }
            // A result for a call left running can still be recorded, exactly once.
            if status == ExecutionStatus::Running {
                finish(&store, &id).await.unwrap();
                assert_eq!(events_for(&store, &format!("\"{id}\"")).await, 1, "{}", db.label);
            }
        }
        assert!(
            cancelled > 0,
            "{}: no write was cancelled; the test proves nothing",
            db.label
        );
        assert_chain_intact(&store, db.label).await;
    }
}
