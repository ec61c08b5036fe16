//! PostgreSQL writes calls' results in batches (group commit): many results arriving together
//! share transactions, and still each call gets its own answer, only a `running` call gets a
//! result and an event, and the chain stays one unbroken line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use slovo_core::audit::verify_chain;
use slovo_core::execution::{ExecutionStatus, WarmStart};
use slovo_store::{ExecutionResult, FinishAudit, Store, StoreError};
use slovo_test_support::fresh_postgres_url;

mod support;
use sqlx::{Connection, PgConnection, Row};
use support::{active_tool, start};

/// Calls whose number is odd were served warm (how long their server waited is their number),
/// the others cold: each result carries its own.
fn warm_of(id: &str) -> Option<WarmStart> {
    let n: u64 = id.rsplit('-').next()?.parse().ok()?;
    (n % 2 == 1).then_some(WarmStart {
        started_ms_before_call: n,
        ready_ms_before_call: n / 2,
    })
}

async fn finish(store: Store, id: String) -> (String, Result<slovo_core::audit::AuditEvent, StoreError>) {
    let result = ExecutionResult {
        status: ExecutionStatus::Success,
        output: Some(json!({"echo": id})),
        stderr: None,
        error: None,
        exit_code: Some(0),
        duration_ms: 1,
        cpu_ms: Some(1),
        peak_memory_bytes: Some(1),
        sandbox_id: None,
        finished_at: 20,
        network_denials: Vec::new(),
        warm: warm_of(&id),
    };
    let payload = json!({"execution_id": id});
    let audit = FinishAudit {
        kind: "execution.finished",
        tool: Some("echo"),
        actor: "test",
        payload: &payload,
    };
    let answer = store.finish_call(&id, &result, &audit).await;
    (id, answer)
}

/// How many transactions wrote the `execution.finished` events (each row's `xmin`).
async fn transactions_that_wrote_results(url: &str) -> i64 {
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::query("SELECT count(DISTINCT xmin::text) AS n FROM audit_events WHERE kind = 'execution.finished'")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get("n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_arriving_together_share_transactions_and_each_call_gets_its_own_answer() {
    let Some(url) = fresh_postgres_url().await else {
        return; // SLOVO_TEST_SKIP_POSTGRES=1: batching is PostgreSQL's
    };
    let store = Store::connect(&url).await.unwrap();
    let revision = active_tool(&store).await;
    let calls = 80;
    for i in 0..calls {
        start(&store, &format!("run-{i}"), revision, "test-instance").await;
    }
    // Already finished: a second result must be refused even inside a batch.
    start(&store, "done", revision, "test-instance").await;
    finish(store.clone(), "done".into()).await.1.unwrap();
    let before_head = store.audit_head().await.unwrap().0;

    let mut tasks = Vec::new();
    for i in 0..calls {
        tasks.push(tokio::spawn(finish(store.clone(), format!("run-{i}"))));
        if i % 8 == 0 {
            tasks.push(tokio::spawn(finish(store.clone(), "done".into())));
            tasks.push(tokio::spawn(finish(store.clone(), format!("never-started-{i}"))));
        }
    }
    let mut seqs = Vec::new();
    for t in tasks {
        let (id, answer) = t.await.unwrap();
        match answer {
            Ok(event) => {
                assert!(id.starts_with("run-"), "{id} got an event");
                assert!(event.payload.contains(&format!("\"{id}\"")), "{id}: {event:?}");
                seqs.push(event.seq);
            }
            Err(StoreError::Conflict(reason)) => {
                assert!(!id.starts_with("run-"), "{id} refused: {reason}");
                assert!(reason.contains(&id), "{reason}");
            }
            Err(e) => panic!("{id}: {e}"),
        }
    }
    // One event for each running call, one link after the other.
    seqs.sort();
    let expected: Vec<i64> = (before_head + 1..=before_head + calls).collect();
    assert_eq!(seqs, expected);
    let events = store.audit_page(0, 100_000).await.unwrap();
    let (head_seq, head_hash) = store.audit_head().await.unwrap();
    verify_chain(&events, head_seq, &head_hash).unwrap();
    for i in 0..calls {
        let id = format!("run-{i}");
        let row = store.execution(&id).await.unwrap().unwrap();
        assert_eq!(row.status, ExecutionStatus::Success);
        // Each row of a batch got its own warm start, or none.
        assert_eq!(row.warm, warm_of(&id), "{id}");
    }
    assert!(store.execution("never-started-0").await.unwrap().is_none());
    // Fewer transactions than calls: the results were batched (one each would be `calls + 1`).
    let transactions = transactions_that_wrote_results(&url).await;
    assert!(
        transactions <= (calls / 2) + 1,
        "{transactions} transactions wrote {calls} results"
    );

    // Turned off, each result has a transaction of its own (what the benchmarks compare).
    let alone = store.clone().batch_call_results(false);
    start(&alone, "alone-1", revision, "test-instance").await;
    start(&alone, "alone-2", revision, "test-instance").await;
    let (a, b) = tokio::join!(
        finish(alone.clone(), "alone-1".into()),
        finish(alone.clone(), "alone-2".into())
    );
    a.1.unwrap();
    b.1.unwrap();
    for id in ["alone-1", "alone-2"] {
        let row = alone.execution(id).await.unwrap().unwrap();
        assert_eq!(row.warm, warm_of(id), "{id}");
    }
    assert_eq!(transactions_that_wrote_results(&url).await, transactions + 2);
}
