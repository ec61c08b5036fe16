//! The embedding cache: vectors come back bit for bit by (model, text hash), a second write of
//! the same key keeps the first vector, models do not see each other's vectors, and the cache
//! survives closing and reopening the database. Against SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use slovo_store::Store;
use slovo_test_support::test_dbs;

fn vector(seed: usize) -> Vec<f32> {
    (0..384).map(|i| ((seed * 1000 + i) as f32).sin()).collect()
}

#[tokio::test]
async fn vectors_round_trip_by_model_and_hash_and_survive_a_reopen() {
    for db in test_dbs().await {
        let store = db.store().await;
        // More than one statement's worth, so the chunking is exercised.
        let rows: Vec<(String, Vec<f32>)> = (0..450).map(|i| (format!("h{i:04}"), vector(i))).collect();
        store.put_embeddings("mini@abc", &rows).await.unwrap();
        // The same key again with another vector: the first one stays.
        store
            .put_embeddings("mini@abc", &[("h0000".into(), vector(999))])
            .await
            .unwrap();
        assert_eq!(
            store.count_embeddings("mini@abc").await.unwrap(),
            450,
            "{}",
            db.label
        );
        store.close().await;

        let store = Store::connect(&db.url).await.unwrap();
        let mut asked: Vec<String> = rows.iter().map(|(h, _)| h.clone()).collect();
        asked.push("absent".into());
        let got = store.embeddings("mini@abc", &asked).await.unwrap();
        assert_eq!(got.len(), 450, "{}", db.label);
        for (h, v) in &rows {
            assert_eq!(&got[h], v, "{} {h}", db.label);
        }
        assert!(store.embeddings("other@def", &asked).await.unwrap().is_empty());
    }
}
