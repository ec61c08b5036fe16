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
    Some(fresh_database(&admin).await)
}

/// Creates a new, empty database on the server of the administrative URL `admin`; its URL.
pub async fn fresh_database(admin: &str) -> String {
    let name = format!("slovo_test_{}", uuid::Uuid::now_v7().simple());
    let mut conn = PgConnection::connect(admin)
        .await
        .unwrap_or_else(|e| panic!("connect {admin}: {e}"));
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap_or_else(|e| panic!("create database: {e}"));
    conn.close().await.ok();
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin);
    format!("{base}/{name}")
}

/// What [`sample_lock_waits`] saw: over all its samples, the backends of the database that were
/// busy with a statement, and those of them waiting for a lock, with what they waited in and
/// for.
#[derive(Debug, Clone, Default)]
pub struct LockWaits {
    /// Busy backends counted over the samples.
    pub active: i64,
    /// Of those, waiting for a lock.
    pub waiting: i64,
    /// The waiting backends counted by what they waited in and for: the kind of lock, the
    /// statement that waited, and the last statement of each backend holding the lock (with
    /// its state, `idle in transaction` when the holder's transaction waits for its client).
    pub by_statement: std::collections::BTreeMap<String, i64>,
    /// The CPU time the sampling itself cost the database server (its backend's), to be taken
    /// out of the server's CPU figures; zero when the server is not on this machine.
    pub sampler_cpu: std::time::Duration,
}

impl LockWaits {
    /// The share of busy backends that were waiting for a lock, 0 to 1.
    pub fn share(&self) -> f64 {
        if self.active == 0 {
            0.0
        } else {
            self.waiting as f64 / self.active as f64
        }
    }

    /// The `n` most frequent waits, most frequent first, each with its share of the samples'
    /// waiting backends.
    pub fn top(&self, n: usize) -> Vec<(String, f64)> {
        let mut all: Vec<(&String, &i64)> = self.by_statement.iter().collect();
        all.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        all.into_iter()
            .take(n)
            .map(|(what, count)| (what.clone(), *count as f64 / self.waiting.max(1) as f64))
            .collect()
    }
}

/// Samples `pg_stat_activity` of the database at `url` every 10 ms until `stop` is set (for the
/// benchmarks: how much of the database's work is waiting for a lock, and on what).
pub async fn sample_lock_waits(
    url: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> LockWaits {
    use sqlx::Row;
    let mut conn = PgConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    let mut seen = LockWaits::default();
    let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("pg_backend_pid: {e}"));
    let backend_cpu = || ProcStat::read(backend).map(|s| ticks_to_duration(s.own_ticks));
    let cpu_before = backend_cpu();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        // One statement, so that the waits described are the waits counted (most last less
        // than a millisecond).
        let row = sqlx::query(
            "SELECT count(*) FILTER (WHERE a.wait_event_type = 'Lock') AS waiting, count(*) AS active, \
             coalesce(array_agg(a.wait_event || ': ' || left(regexp_replace(a.query, '\\s+', ' ', 'g'), 90) || \
             coalesce((SELECT ' (chain ' || string_agg(DISTINCT h.id::text, ', ') || ')' FROM pg_locks l \
             JOIN audit_head h ON h.ctid = format('(%s,%s)', l.page, l.tuple)::tid \
             WHERE l.pid = a.pid AND l.locktype = 'tuple' AND l.relation = 'audit_head'::regclass), '') || ' <- ' || \
             coalesce((SELECT string_agg(left(regexp_replace(b.query, '\\s+', ' ', 'g'), 90) || ' [' || b.state || ']', \
             ' + ' ORDER BY b.pid) FROM pg_stat_activity b WHERE b.pid = ANY(pg_blocking_pids(a.pid))), '?')) \
             FILTER (WHERE a.wait_event_type = 'Lock'), '{}') AS waits \
             FROM pg_stat_activity a WHERE a.datname = current_database() AND a.state = 'active' \
             AND a.pid <> pg_backend_pid()",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("pg_stat_activity: {e}"));
        seen.waiting += row.get::<i64, _>("waiting");
        seen.active += row.get::<i64, _>("active");
        // What each waiting backend waited in (the kind of lock and its statement, with the
        // audit chain whose head row it waits for when the row of its tuple lock tells), and
        // behind whom (each blocking backend's last statement and state).
        for what in row.get::<Vec<String>, _>("waits") {
            *seen.by_statement.entry(what).or_default() += 1;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    seen.sampler_cpu = backend_cpu()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before))
        .unwrap_or_default();
    seen
}

/// The CPU time a PostgreSQL server running on this machine has used: its postmaster's and every
/// backend's, living or ended (an ended backend's time is in the postmaster's children's
/// totals). For the benchmarks: how much of the machine the database takes, and its CPU per
/// call, as opposed to the clients' share.
#[derive(Debug, Clone, Copy)]
pub struct ServerCpu {
    postmaster: i32,
}

impl ServerCpu {
    /// The server behind `url`, found as the parent of the connection's backend; `None` when
    /// the server is not on this machine (its backend's process cannot be read here).
    pub async fn of(url: &str) -> Option<Self> {
        let mut conn = PgConnection::connect(url).await.ok()?;
        let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .ok()?;
        let stat = ProcStat::read(backend)?;
        Some(Self {
            postmaster: stat.parent,
        })
    }

    /// The server's CPU time so far (user and system).
    pub fn used(&self) -> std::time::Duration {
        let mut ticks = ProcStat::read(self.postmaster)
            .map(|s| s.own_ticks + s.ended_children_ticks)
            .unwrap_or(0);
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return ticks_to_duration(ticks);
        };
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if let Some(s) = ProcStat::read(pid).filter(|s| s.parent == self.postmaster) {
                ticks += s.own_ticks + s.ended_children_ticks;
            }
        }
        ticks_to_duration(ticks)
    }
}

/// This process's CPU time so far (user and system, every thread).
pub fn own_cpu() -> std::time::Duration {
    ProcStat::read(std::process::id() as i32)
        .map(|s| ticks_to_duration(s.own_ticks))
        .unwrap_or_default()
}

/// The CPU time so far of the process `pid` and of its descendants that have ended and been
/// waited for (a `slovo serve` and the sandboxes it ran); zero once it is gone.
pub fn process_cpu(pid: u32) -> std::time::Duration {
    ProcStat::read(pid as i32)
        .map(|s| ticks_to_duration(s.own_ticks + s.ended_children_ticks))
        .unwrap_or_default()
}

/// A benchmark row's database columns: the server's CPU per call in microseconds, and how many
/// cores it kept busy over `elapsed`; `?` each when the server's CPU is unknown.
pub fn database_cpu_columns(
    cpu: Option<std::time::Duration>,
    calls: usize,
    elapsed: std::time::Duration,
) -> (String, String) {
    match cpu {
        Some(cpu) => (
            format!("{:.0}", cpu.as_secs_f64() * 1e6 / calls.max(1) as f64),
            format!("{:.2}", cpu.as_secs_f64() / elapsed.as_secs_f64()),
        ),
        None => ("?".into(), "?".into()),
    }
}

/// The fields of `/proc/PID/stat` the CPU figures need.
struct ProcStat {
    parent: i32,
    own_ticks: u64,
    ended_children_ticks: u64,
}

impl ProcStat {
    fn read(pid: i32) -> Option<Self> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) may hold spaces and parentheses: the fields after it start
        // after its last ')'. Counted from there: state, ppid, …, utime (12th), stime, cutime,
        // cstime.
        let rest = &text[text.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        Some(Self {
            parent: fields.get(1)?.parse().ok()?,
            own_ticks: number(11)? + number(12)?,
            ended_children_ticks: number(13)? + number(14)?,
        })
    }
}

fn ticks_to_duration(ticks: u64) -> std::time::Duration {
    // SAFETY: sysconf reads a constant of the system and has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    std::time::Duration::from_micros(ticks * 1_000_000 / per_second)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend kept busy for a while shows in the server's CPU, while it lives and once it
    /// has ended; the benchmarks' database figures rest on both.
    #[tokio::test]
    async fn a_busy_backend_shows_in_the_servers_cpu_while_it_lives_and_after() {
        let Some(url) = fresh_postgres_url().await else {
            return;
        };
        let server = ServerCpu::of(&url).await.expect("the test server runs here");
        let before = server.used();
        let mut conn = PgConnection::connect(&url).await.unwrap();
        let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let busy = std::time::Instant::now();
        let _: i64 = sqlx::query_scalar("SELECT count(*) FROM generate_series(1, 5000000)")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let took = busy.elapsed();
        let while_alive = server.used().saturating_sub(before);
        conn.close().await.unwrap();
        // Once the backend has ended and been reaped, its time is the postmaster's.
        for _ in 0..100 {
            if ProcStat::read(backend).is_none() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(ProcStat::read(backend).is_none(), "the backend did not end");
        let after_end = server.used().saturating_sub(before);
        // The count takes a backend about half a second of CPU here (the clock ticks every
        // 10 ms); a fifth of that is asked for, so a loaded machine still passes.
        assert!(
            while_alive >= std::time::Duration::from_millis(100),
            "{while_alive:?} of CPU for a {took:?} query"
        );
        assert!(
            after_end >= while_alive,
            "{after_end:?} after the backend ended, {while_alive:?} while it lived"
        );
    }
}
