//! An instance's lease is renewed even while the runtime that serves its calls cannot run
//! anything: its only worker thread is blocked by a call. Several instances share PostgreSQL
//! (`docs/deployment.md`); an instance whose renewal waited for that worker would be declared
//! dead by the others, with every call it has in flight. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use slovo_core::time::now_ms;
use slovo_runtime::{Runtime, RuntimeSettings};
use slovo_sandbox::Backends;
use slovo_store::Store;
use slovo_test_support::test_dbs;

const LEASE: Duration = Duration::from_millis(1500);

/// This instance's heartbeat as the database has it.
async fn heartbeat_at(store: &Store, id: &str) -> i64 {
    let rows = store.instances().await.unwrap();
    rows.iter().find(|r| r.id == id).expect("registered").heartbeat_at
}

#[test]
fn the_lease_is_renewed_while_the_serving_runtime_is_blocked() {
    // The test's own runtime: what reads the database while the serving one is blocked.
    let checking = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for db in checking.block_on(test_dbs()) {
        // One worker thread, as a busy two-core machine effectively has none to spare.
        let serving = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let runtime = serving.block_on(async {
            let store = Store::connect(&db.url).await.unwrap();
            Arc::new(
                Runtime::new(store, Backends::new(), db.dir.path().join("data")).with_settings(
                    RuntimeSettings {
                        instance_lease: LEASE,
                        ..RuntimeSettings::default()
                    },
                ),
            )
        });
        let id = runtime.instance_id().to_string();
        let heartbeats = serving.block_on(async {
            runtime.register_instance().await.unwrap();
            runtime.spawn_heartbeat()
        });
        let observer = checking.block_on(Store::connect(&db.url)).unwrap();

        // A call that blocks the serving runtime's only worker for three leases.
        let blocked_at = now_ms();
        serving.spawn(async { std::thread::sleep(3 * LEASE) });
        std::thread::sleep(2 * LEASE);
        let renewed_at = checking.block_on(heartbeat_at(&observer, &id));
        assert!(
            renewed_at > blocked_at + 200,
            "{}: no renewal while the serving runtime was blocked (last heartbeat {} ms after the block began)",
            db.label,
            renewed_at - blocked_at
        );
        let row = checking
            .block_on(observer.instances())
            .unwrap()
            .into_iter()
            .find(|r| r.id == id)
            .unwrap();
        assert!(!row.lapsed(now_ms()), "{}: the lease lapsed: {row:?}", db.label);

        // Stopped, it renews no more: marking the instance stopped is final.
        serving.block_on(async {
            heartbeats.stop().await;
            runtime.stop_instance().await.unwrap();
        });
        std::thread::sleep(LEASE);
        let rows = checking.block_on(observer.instances()).unwrap();
        let row = rows.iter().find(|r| r.id == id).unwrap();
        assert!(
            row.stopped_at.is_some(),
            "{}: registered again after stopping: {row:?}",
            db.label
        );
        checking.block_on(observer.close());
        serving.block_on(runtime.store().close());
    }
}
