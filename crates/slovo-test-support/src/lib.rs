//! Test helpers: every test that touches the store runs against both databases.
//!
//! PostgreSQL comes from `SLOVO_TEST_DATABASE_URL` (an administrative URL such as
//! `postgres://slovo:slovo@127.0.0.1:5432/postgres`, set by `scripts/test.sh`, which starts the
//! server). Each call makes a fresh database so tests never see each other's rows. Without the
//! variable the helpers fail loudly instead of skipping, so a run that forgot PostgreSQL cannot
//! pass by testing half; `SLOVO_TEST_SKIP_POSTGRES=1` opts out explicitly for a quick local run.
#![deny(missing_docs)]
#![allow(clippy::expect_used, clippy::unwrap_used)]

use slovo_store::Store;
use sqlx::{Connection, Executor, PgConnection};
use tempfile::TempDir;

/// Name of the variable holding the administrative PostgreSQL URL.
pub const PG_ENV: &str = "SLOVO_TEST_DATABASE_URL";

/// A database for one test; the temporary directory lives as long as it does.
pub struct TestDb {
    /// `sqlite` or `postgres`.
    pub label: &'static str,
    /// Its URL.
    pub url: String,
    /// Holds the SQLite file (and gives tests a scratch data directory).
    pub dir: TempDir,
}

impl TestDb {
    /// Opens the store.
    pub async fn store(&self) -> Store {
        Store::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.label))
    }
}

/// A fresh SQLite database and, unless explicitly skipped, a fresh PostgreSQL database.
pub async fn test_dbs() -> Vec<TestDb> {
    let mut out = Vec::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("slovo.db").display());
    out.push(TestDb {
        label: "sqlite",
        url,
        dir,
    });
    if let Some(url) = fresh_postgres_url().await {
        out.push(TestDb {
            label: "postgres",
            url,
            dir: tempfile::tempdir().expect("tempdir"),
        });
    }
    out
}

/// The URL of a new, empty PostgreSQL database, or `None` when explicitly skipped.
pub async fn fresh_postgres_url() -> Option<String> {
    let admin = match std::env::var(PG_ENV) {
        Ok(url) => url,
        Err(_) if std::env::var("SLOVO_TEST_SKIP_POSTGRES").as_deref() == Ok("1") => return None,
        Err(_) => panic!(
            "{PG_ENV} is not set: run the tests with scripts/test.sh (which starts PostgreSQL), \
             or set SLOVO_TEST_SKIP_POSTGRES=1 to test SQLite only"
        ),
    };
    let name = format!("slovo_test_{}", uuid::Uuid::now_v7().simple());
    let mut conn = PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("connect {admin}: {e}"));
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap_or_else(|e| panic!("create database: {e}"));
    conn.close().await.ok();
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    Some(format!("{base}/{name}"))
}
