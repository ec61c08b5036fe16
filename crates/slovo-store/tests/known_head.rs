//! PostgreSQL: an instance writing calls' results to an audit chain of its own knows the chain's
//! head, and writes each batch of results with their events in one statement hashed against it,
//! without locking the head first. The database checks every link all the same: a head moved
//! behind the instance's back is refused, and the batch is written again the locking way; a
//! call no longer running gets no event; the chain stays one unbroken line from its opening.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use slovo_core::audit::{AuditEvent, ChainVerifier};
use slovo_core::execution::ExecutionStatus;
use slovo_store::{ExecutionResult, FinishAudit, Store, StoreError};
use slovo_test_support::fresh_postgres_url;

mod support;
use sqlx::{Connection, Executor, PgConnection, Row};
use support::{active_tool, start};

async fn finish(store: Store, id: String) -> (String, Result<AuditEvent, StoreError>) {
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
        warm: None,
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

/// Counts, in a table of the test's own, every time a transaction locks an audit chain's head
/// without moving it (`UPDATE audit_head SET seq = seq`, what the locking way begins with):
/// the head row updated to the same sequence number.
async fn count_head_locks(url: &str) {
    let mut conn = PgConnection::connect(url).await.unwrap();
    conn.execute(
        "CREATE TABLE test_head_locks (chain BIGINT NOT NULL); \
         CREATE FUNCTION test_count_head_lock() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN INSERT INTO test_head_locks VALUES (NEW.id); RETURN NEW; END; $$; \
         CREATE TRIGGER test_count_head_lock BEFORE UPDATE ON audit_head FOR EACH ROW \
         WHEN (NEW.seq = OLD.seq) EXECUTE FUNCTION test_count_head_lock();",
    )
    .await
    .unwrap();
}

async fn head_locks(url: &str, chain: i64) -> i64 {
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::query("SELECT count(*) AS n FROM test_head_locks WHERE chain = $1")
        .bind(chain)
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get("n")
}

/// Walks `chain` from its opening event to its head; the number of events.
async fn chain_links(store: &Store, chain: i64) -> i64 {
    let opening = store
        .audit_chain_openings()
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.payload.contains(&format!("\"chain\":{chain}")))
        .expect("the chain's opening event");
    let head = store
        .audit_chain_heads()
        .await
        .unwrap()
        .into_iter()
        .find(|h| h.chain == chain)
        .unwrap();
    let mut verifier = ChainVerifier::resume(0, &opening.hash);
    for e in store.audit_chain_page(chain, 0, 100_000).await.unwrap() {
        verifier.push(&e).unwrap();
    }
    verifier.finish(head.seq, &head.hash).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_on_an_instance_chain_are_written_on_the_known_head_and_link() {
    let Some(url) = fresh_postgres_url().await else {
        return; // SLOVO_TEST_SKIP_POSTGRES=1: instance chains are PostgreSQL's
    };
    let store = Store::connect(&url).await.unwrap();
    let revision = active_tool(&store).await;
    let chain = store.open_audit_chain("instance-a", "test").await.unwrap();
    assert_ne!(chain, 1);
    count_head_locks(&url).await;
    let calls = 60;
    for i in 0..calls {
        start(&store, &format!("run-{i}"), revision, "instance-a").await;
    }
    start(&store, "done", revision, "instance-a").await;
    finish(store.clone(), "done".into()).await.1.unwrap();

    let mut tasks = Vec::new();
    for i in 0..calls {
        tasks.push(tokio::spawn(finish(store.clone(), format!("run-{i}"))));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        let (id, answer) = t.await.unwrap();
        let event = answer.unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(event.chain, chain);
        assert!(event.payload.contains(&format!("\"{id}\"")), "{id}: {event:?}");
        seqs.push(event.seq);
    }
    seqs.sort();
    assert_eq!(seqs, (2..=calls + 1).collect::<Vec<i64>>());
    // Written without locking the head first: no batch began with the lock.
    assert_eq!(head_locks(&url, chain).await, 0);
    assert_eq!(chain_links(&store, chain).await, calls + 1);
    for i in 0..calls {
        let row = store.execution(&format!("run-{i}")).await.unwrap().unwrap();
        assert_eq!(row.status, ExecutionStatus::Success);
        assert_eq!(row.output, Some(json!({"echo": format!("run-{i}")})));
    }

    // A call no longer running, in a batch with calls that are: the statement is refused
    // whole, and the batch written the locking way answers each call for itself.
    for i in 0..8 {
        start(&store, &format!("more-{i}"), revision, "instance-a").await;
    }
    let mut tasks = Vec::new();
    for i in 0..8 {
        tasks.push(tokio::spawn(finish(store.clone(), format!("more-{i}"))));
        tasks.push(tokio::spawn(finish(store.clone(), "done".into())));
        tasks.push(tokio::spawn(finish(store.clone(), format!("never-started-{i}"))));
    }
    for t in tasks {
        let (id, answer) = t.await.unwrap();
        match answer {
            Ok(event) => assert!(id.starts_with("more-"), "{id} got an event: {event:?}"),
            Err(StoreError::Conflict(reason)) => {
                assert!(!id.starts_with("more-"), "{id} refused: {reason}");
                assert!(reason.contains(&id), "{reason}");
            }
            Err(e) => panic!("{id}: {e}"),
        }
    }
    assert!(store.execution("never-started-0").await.unwrap().is_none());
    assert_eq!(chain_links(&store, chain).await, calls + 9);
    assert!(
        head_locks(&url, chain).await > 0,
        "the refused batches were not written the locking way"
    );

    // Turned off, every batch locks the head first (what the benchmarks compare against).
    let locking = store.clone().finish_on_known_head(false);
    let locks = head_locks(&url, chain).await;
    start(&locking, "locked", revision, "instance-a").await;
    finish(locking.clone(), "locked".into()).await.1.unwrap();
    assert_eq!(head_locks(&url, chain).await, locks + 1);
    assert_eq!(chain_links(&store, chain).await, calls + 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_moved_behind_the_instances_back_is_refused_and_the_result_written_after_locking() {
    let Some(url) = fresh_postgres_url().await else {
        return;
    };
    // Two stores writing one chain: a restarted instance whose old process still runs.
    let first = Store::connect(&url).await.unwrap();
    let revision = active_tool(&first).await;
    let chain = first.open_audit_chain("instance-a", "test").await.unwrap();
    let second = Store::connect(&url).await.unwrap();
    assert_eq!(
        second.open_audit_chain("instance-a", "test").await.unwrap(),
        chain
    );
    count_head_locks(&url).await;

    let mut expected_locks = 0;
    for (k, (store, stale)) in [
        (&first, false), // knows the head
        (&second, true), // read it before the first wrote
        (&second, false),
        (&first, true),
        (&first, false),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("call-{k}");
        start(store, &id, revision, "instance-a").await;
        let event = finish(store.clone(), id.clone()).await.1.unwrap();
        assert_eq!((event.chain, event.seq), (chain, k as i64 + 1), "{id}");
        // A stale head costs one refused statement and one locked transaction, no more.
        expected_locks += i64::from(stale);
        assert_eq!(head_locks(&url, chain).await, expected_locks, "{id}");
    }
    assert_eq!(chain_links(&first, chain).await, 5);
}
