//! The audit chain under several writers: what serialised appends on the chain head cost.
//!
//! W writers (each a store with its own connection pool, standing for one `slovo serve`
//! instance) share one fresh PostgreSQL database; each runs C concurrent callers that record a
//! call the way the call path does (`running` row, then its result and audit event). Every
//! configuration runs in three passes in the same run: each result in a transaction of its own
//! (`alone`, the design before batching); results batched, one transaction per batch
//! (`batched`); and a third pass gives each writer a database of its own in the same PostgreSQL server
//! (`own chain`): nothing is shared between the writers but the server itself (its CPU, its
//! WAL), so it is the ceiling that any design with one chain head per writer could reach on
//! this machine, measured without building one. The fourth pass is that design as built
//! (`chain per instance`): one database, each writer writing its results to an audit chain of
//! its own (`Store::open_audit_chain`, `docs/audit.md`), so the writers share the database and
//! chain 1 but no head on the call path. It runs twice: each batch locking its chain's head
//! first and reading it (`head locked first`, the first design built), and each batch written
//! in one statement hashed against the head the writer knows (`known head`, the design now).
//! Reports audited calls/s, p50/p99 of recording a result, the share of the database's busy
//! backends that were waiting for a lock (sampled from `pg_stat_activity`, in the first
//! writer's database), the CPU the PostgreSQL server used per call and how many of the machine's
//! cores it and the writers kept busy (when the server runs on this machine: what a row's total
//! is bounded by), and checks that records = events = calls and that each chain verifies.
//!
//! Run: `SLOVO_BENCH_DATABASE_URL=postgres://… cargo bench -p slovo-store --bench audit_writers`
//! (falls back to `SLOVO_TEST_DATABASE_URL`; an administrative URL: each configuration gets a
//! database of its own). `SLOVO_AUDIT_SECONDS` (default 4), `SLOVO_AUDIT_CALLERS` (callers per
//! writer, default 16), `SLOVO_AUDIT_WRITERS` (default `1,2,3`) and `SLOVO_AUDIT_MODES` (default
//! `alone,batched,own,locked,instance`) tune it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use slovo_core::audit::{ChainVerifier, verify_chain};
use slovo_core::execution::ExecutionStatus;
use slovo_store::{ExecutionResult, FinishAudit, NewExecution, Store};

#[path = "../tests/support/mod.rs"]
mod support;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn admin_url() -> String {
    std::env::var("SLOVO_BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("SLOVO_TEST_DATABASE_URL"))
        .expect(
            "set SLOVO_BENCH_DATABASE_URL (or SLOVO_TEST_DATABASE_URL) to an administrative PostgreSQL URL",
        )
}

/// One call recorded the way the call path records it; the time its result took to record.
async fn one_call(store: &Store, writer: usize, revision: i64) -> Duration {
    let id = uuid_like();
    let now = slovo_core::time::now_ms();
    let started = store
        .insert_running_execution_at(
            &NewExecution {
                id: id.clone(),
                tool: "cheap".into(),
                version: "1.0.0".into(),
                capability: "ping".into(),
                arguments: json!({}),
                conversation_id: None,
                turn_id: None,
                actor: "bench".into(),
                started_at: now,
                instance_id: format!("writer-{writer}"),
                parent_execution_id: None,
            },
            revision,
        )
        .await
        .unwrap();
    assert!(started);
    let result = ExecutionResult {
        status: ExecutionStatus::Success,
        output: Some(json!({"ok": true})),
        stderr: None,
        error: None,
        exit_code: Some(0),
        duration_ms: 1,
        cpu_ms: Some(1),
        peak_memory_bytes: Some(1),
        sandbox_id: None,
        finished_at: now,
        network_denials: Vec::new(),
        warm: None,
    };
    let payload = json!({"execution_id": id, "status": "success"});
    let t = Instant::now();
    store
        .finish_call(
            &id,
            &result,
            &FinishAudit {
                kind: "execution.finished",
                tool: Some("cheap"),
                actor: "bench",
                payload: &payload,
            },
        )
        .await
        .unwrap();
    t.elapsed()
}

fn uuid_like() -> String {
    use std::sync::atomic::AtomicU64;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{:x}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Outcome {
    calls: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    lock_wait_share: f64,
    /// CPU time used during the row by the PostgreSQL server (when it runs on this machine) and
    /// by this process (the writers and their callers).
    database_cpu: Option<Duration>,
    writers_cpu: Duration,
    /// The most frequent lock waits: what waited, for whom, and its share of the waits.
    top_waits: Vec<(String, f64)>,
    consistent: Result<(), String>,
}

/// How the writers record results.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Each result in a transaction of its own, one shared chain head.
    Alone,
    /// Results batched, one shared chain head.
    Batched,
    /// Results batched, each writer with a database (and so a chain head) of its own.
    OwnChain,
    /// Results batched, one database, each writer with an audit chain of its own, each batch
    /// locking its chain's head first and reading it (the design before the known head).
    InstanceChainsLocked,
    /// Results batched, one database, each writer with an audit chain of its own, each batch
    /// one statement hashed against the head the writer knows (the design now).
    InstanceChains,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Alone => "alone",
            Mode::Batched => "batched",
            Mode::OwnChain => "batched, own chain",
            Mode::InstanceChainsLocked => "batched, chain per instance, head locked first",
            Mode::InstanceChains => "batched, chain per instance, known head",
        }
    }
}

/// One database with its tool set up: the store that checks it afterwards.
struct Database {
    url: String,
    setup: Store,
    revision: i64,
    events_before: i64,
}

async fn database(admin: &str) -> Database {
    let url = slovo_test_support::fresh_database(admin).await;
    let setup = Store::connect(&url).await.unwrap();
    let revision = support::active_tool_named(&setup, "cheap").await;
    let events_before = setup.audit_head().await.unwrap().0;
    Database {
        url,
        setup,
        revision,
        events_before,
    }
}

/// Records = events = calls in `db`, and its chain verifies.
async fn check(db: &Database, calls: usize) -> Result<(), String> {
    let records = db.setup.count_executions().await.unwrap() as usize;
    let (head_seq, head_hash) = db.setup.audit_head().await.unwrap();
    let events = db.setup.audit_page(0, i64::MAX).await.unwrap();
    verify_chain(&events, head_seq, &head_hash).map_err(|e| format!("chain broken: {e}"))?;
    let appended = (head_seq - db.events_before) as usize;
    if records == calls && appended == calls {
        Ok(())
    } else {
        Err(format!("{records} records, {appended} events, {calls} calls"))
    }
}

/// Records = calls in `db`, and each writer's chain holds its calls' events and links from its
/// opening event to its head.
async fn check_chains(db: &Database, chains: &[(i64, usize)]) -> Result<(), String> {
    let records = db.setup.count_executions().await.unwrap() as usize;
    let calls: usize = chains.iter().map(|(_, n)| n).sum();
    if records != calls {
        return Err(format!("{records} records, {calls} calls"));
    }
    let openings = db.setup.audit_chain_openings().await.unwrap();
    let heads = db.setup.audit_chain_heads().await.unwrap();
    for &(chain, n) in chains {
        let opening = openings
            .iter()
            .find(|e| serde_json::from_str::<serde_json::Value>(&e.payload).unwrap()["chain"] == chain)
            .ok_or(format!("chain {chain} has no opening event"))?;
        let head = heads.iter().find(|h| h.chain == chain).unwrap();
        let events = db.setup.audit_chain_page(chain, 0, i64::MAX).await.unwrap();
        let mut verifier = ChainVerifier::resume(0, &opening.hash);
        for e in &events {
            verifier
                .push(e)
                .map_err(|e| format!("chain {chain} broken: {e}"))?;
        }
        let verified = verifier
            .finish(head.seq, &head.hash)
            .map_err(|e| format!("chain {chain} broken: {e}"))?;
        if verified as usize != n {
            return Err(format!("chain {chain}: {verified} events, {n} calls"));
        }
    }
    Ok(())
}

async fn run(admin: &str, writers: usize, callers: usize, seconds: u64, mode: Mode) -> Outcome {
    let shared = database(admin).await;
    let mut own = Vec::new();
    if mode == Mode::OwnChain {
        for _ in 1..writers {
            own.push(database(admin).await);
        }
    }
    let db_of = |w: usize| {
        if w == 0 || mode != Mode::OwnChain {
            &shared
        } else {
            &own[w - 1]
        }
    };
    let mut stores = Vec::new();
    for w in 0..writers {
        let store = Store::connect(&db_of(w).url).await.unwrap();
        if matches!(mode, Mode::InstanceChains | Mode::InstanceChainsLocked) {
            store
                .open_audit_chain(&format!("writer-{w}"), "bench")
                .await
                .unwrap();
        }
        stores.push(
            store
                .batch_call_results(mode != Mode::Alone)
                .finish_on_known_head(mode == Mode::InstanceChains),
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(slovo_test_support::sample_lock_waits(
        shared.url.clone(),
        stop.clone(),
    ));
    let server = slovo_test_support::ServerCpu::of(&shared.url).await;
    let database_cpu_before = server.map(|s| s.used());
    let writers_cpu_before = slovo_test_support::own_cpu();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (w, store) in stores.iter().enumerate() {
        let revision = db_of(w).revision;
        for _ in 0..callers {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    latencies.push(one_call(&store, w, revision).await);
                }
                latencies
            }));
        }
    }
    let mut per_writer = vec![0; writers];
    let mut latencies = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let done = t.await.unwrap();
        per_writer[i / callers] += done.len();
        latencies.extend(done);
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let waits = sampler.await.unwrap();
    let database_cpu = server
        .zip(database_cpu_before)
        .map(|(s, before)| s.used().saturating_sub(before).saturating_sub(waits.sampler_cpu));
    let writers_cpu = slovo_test_support::own_cpu().saturating_sub(writers_cpu_before);
    latencies.sort();

    let calls = latencies.len();
    let consistent = if matches!(mode, Mode::InstanceChains | Mode::InstanceChainsLocked) {
        let chains: Vec<(i64, usize)> = stores
            .iter()
            .map(|s| s.call_chain())
            .zip(per_writer.iter().copied())
            .collect();
        check_chains(&shared, &chains).await
    } else if mode == Mode::OwnChain {
        let mut all = Ok(());
        for (w, n) in per_writer.iter().enumerate() {
            if let Err(e) = check(db_of(w), *n).await {
                all = Err(format!("writer {w}: {e}"));
            }
        }
        all
    } else {
        check(&shared, calls).await
    };
    for s in stores {
        s.close().await;
    }
    shared.setup.close().await;
    for db in own {
        db.setup.close().await;
    }
    Outcome {
        calls,
        elapsed,
        latencies,
        lock_wait_share: waits.share(),
        database_cpu,
        writers_cpu,
        top_waits: waits.top(3),
        consistent,
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn main() {
    let admin = admin_url();
    let seconds: u64 = env_or("SLOVO_AUDIT_SECONDS", 4);
    let callers: usize = env_or("SLOVO_AUDIT_CALLERS", 16);
    let writers: Vec<usize> = std::env::var("SLOVO_AUDIT_WRITERS")
        .unwrap_or_else(|_| "1,2,3".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("load average before: {}", load_average());
    println!(
        "| writers | callers each | results | seconds | audited calls/s | vs 1 writer | p50 (ms) | p99 (ms) | lock-wait share | database CPU per call (µs) | cores busy: database / writers | records = events = calls, chain verified |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut failures = Vec::new();
    let mut waits = Vec::new();
    let modes: Vec<Mode> = std::env::var("SLOVO_AUDIT_MODES")
        .unwrap_or_else(|_| "alone,batched,own,locked,instance".into())
        .split(',')
        .filter_map(|m| match m.trim() {
            "alone" => Some(Mode::Alone),
            "batched" => Some(Mode::Batched),
            "own" => Some(Mode::OwnChain),
            "locked" => Some(Mode::InstanceChainsLocked),
            "instance" => Some(Mode::InstanceChains),
            _ => None,
        })
        .collect();
    for mode in modes {
        let mut one_writer_rate = None;
        for &w in &writers {
            let o = rt.block_on(run(&admin, w, callers, seconds, mode));
            let rate = o.calls as f64 / o.elapsed.as_secs_f64();
            let base = *one_writer_rate.get_or_insert(rate);
            let (per_call, database_cores) =
                slovo_test_support::database_cpu_columns(o.database_cpu, o.calls, o.elapsed);
            println!(
                "| {w} | {callers} | {} | {:.1} | {:.0} | {:.2} | {:.2} | {:.2} | {:.0} % | {per_call} | {database_cores} / {:.2} | {} |",
                mode.label(),
                o.elapsed.as_secs_f64(),
                rate,
                rate / base,
                percentile(&o.latencies, 0.5).as_secs_f64() * 1000.0,
                percentile(&o.latencies, 0.99).as_secs_f64() * 1000.0,
                o.lock_wait_share * 100.0,
                o.writers_cpu.as_secs_f64() / o.elapsed.as_secs_f64(),
                match &o.consistent {
                    Ok(()) => "yes".to_string(),
                    Err(e) => format!("NO: {e}"),
                },
            );
            if let Err(e) = o.consistent {
                failures.push(e);
            }
            if !o.top_waits.is_empty() {
                waits.push((format!("{}, {w} writer(s)", mode.label()), o.top_waits));
            }
        }
    }
    println!("load average after: {}", load_average());
    if !waits.is_empty() {
        println!("lock waits: kind of lock: waiting statement <- the statements holding it [their state]");
        for (row, top) in &waits {
            for (what, share) in top {
                println!("  {row}: {:.0} % {what}", share * 100.0);
            }
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}
