//! Dashboard sessions: stored by the hash of their id, found until they expire, gone once
//! deleted, expired rows dropped when a new session opens, kept across a reopen. Against
//! SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use slovo_store::{SessionRow, Store};
use slovo_test_support::test_dbs;

fn session(id_hash: &str, created_at: i64, expires_at: i64) -> SessionRow {
    SessionRow {
        id_hash: id_hash.into(),
        principal: "token:0123456789abcdef".into(),
        created_at,
        expires_at,
    }
}

#[tokio::test]
async fn sessions_live_until_they_expire_or_are_deleted_and_survive_a_reopen() {
    for db in test_dbs().await {
        let store = db.store().await;
        store.insert_session(&session("old", 1_000, 2_000)).await.unwrap();
        store
            .insert_session(&session("live", 1_500, 10_000))
            .await
            .unwrap();
        assert_eq!(
            store.live_session("live", 5_000).await.unwrap(),
            Some(session("live", 1_500, 10_000)),
            "{}",
            db.label
        );
        assert!(
            store.live_session("live", 10_000).await.unwrap().is_none(),
            "expired at its end"
        );
        assert!(store.live_session("absent", 5_000).await.unwrap().is_none());

        // Opening a session after `old` ended drops its row.
        store
            .insert_session(&session("new", 3_000, 20_000))
            .await
            .unwrap();
        assert!(
            !store.delete_session("old").await.unwrap(),
            "{}: the expired row was dropped",
            db.label
        );
        store.close().await;

        let store = Store::connect(&db.url).await.unwrap();
        assert!(
            store.live_session("new", 4_000).await.unwrap().is_some(),
            "{}",
            db.label
        );
        assert!(store.delete_session("new").await.unwrap());
        assert!(
            store.live_session("new", 4_000).await.unwrap().is_none(),
            "{}",
            db.label
        );
    }
}
