//! Load on several instances: 1, 2 and 3 `slovo serve` processes on this machine share one
//! PostgreSQL database; a fixed number of clients, spread evenly over the instances, call a
//! cheap tool through `POST /v1/calls` for a fixed time. Reports, in one run, calls/s, p50/p99,
//! the per-instance efficiency (calls/s per instance relative to one instance), the share of
//! the database's busy backends that were waiting for a lock (the audit chain's head), the
//! database's CPU per call and the cores that it, the instances and the clients kept busy
//! (what bounds a row's total when they share this machine's cores), and
//! checks that records = events = calls answered and that `slovo audit verify` passes on every
//! instance.
//!
//! Run (as root, for the process sandbox):
//! `SLOVO_BENCH_DATABASE_URL=postgres://… cargo bench -p slovo-cli --bench instances`
//! (falls back to `SLOVO_TEST_DATABASE_URL`; an administrative URL: each configuration gets a
//! fresh database). `SLOVO_LOAD_SECONDS` (default 8), `SLOVO_LOAD_CLIENTS` (in all, default
//! 16), `SLOVO_LOAD_INSTANCES` (default `1,2,3`) and `SLOVO_LOAD_KINDS` (default
//! `wasm,process`) tune it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../slovo-server/benches/support/cheap_tools.rs"]
mod cheap_tools;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use cheap_tools::{Tool, drive, percentile, process_tool, wasm_tool};
use serde_json::{Value, json};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// One instance: its data directory and, once started, its process and port.
struct Instance {
    data: PathBuf,
    url: String,
    secret_key: String,
    server: Option<(Child, u16)>,
}

impl Instance {
    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_slovo"));
        c.env("SLOVO_DATA_DIR", &self.data)
            .env("SLOVO_DATABASE_URL", &self.url)
            .env("SLOVO_SECRET_KEY", &self.secret_key)
            .env_remove("RUST_LOG");
        c
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "slovo {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn start(&mut self, max_calls: usize) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = self
            .cmd()
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--max-concurrent-calls", &max_calls.to_string()])
            .args(["--max-queued-calls", &max_calls.to_string()])
            .args(["--shutdown-grace", "5"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.data.with_extension("serve.log")).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !healthy(port) {
            assert!(
                Instant::now() < deadline,
                "slovo serve did not start; see {}",
                self.data.with_extension("serve.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.server = Some((child, port));
    }

    /// Stops the server the way an operator does (SIGTERM), so that it signs its last
    /// checkpoint.
    fn stop(&mut self) {
        if let Some((mut child, _)) = self.server.take() {
            // SAFETY: kill(2) on the id of a child this benchmark started and has not reaped.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let status = child.wait().unwrap();
            assert!(status.success(), "slovo serve ended with {status}");
        }
    }

    fn port(&self) -> u16 {
        self.server.as_ref().map(|(_, p)| *p).unwrap()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some((mut child, _)) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn healthy(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
}

struct Outcome {
    latencies: Vec<Duration>,
    elapsed: Duration,
    rejected: usize,
    lock_wait_share: f64,
    /// CPU time used while the clients called: by the PostgreSQL server (when it runs on this
    /// machine), by the instances (with the sandboxes they ran) and by this process's clients.
    database_cpu: Option<Duration>,
    instances_cpu: Duration,
    clients_cpu: Duration,
    /// The most frequent lock waits: what waited, for whom, and its share of the waits.
    top_waits: Vec<(String, f64)>,
    /// `None` when records = events = answered and every instance's `audit verify` passed.
    inconsistency: Option<String>,
}

/// One call through each instance, which must succeed.
async fn warm_up(ports: &[u16], token: &str, tool: &str) {
    let http = reqwest::Client::new();
    for port in ports {
        let resp = http
            .post(format!("http://127.0.0.1:{port}/v1/calls"))
            .bearer_auth(token)
            .json(&json!({"tool": tool, "capability": "ping"}))
            .send()
            .await
            .unwrap();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["status"], "success", "instance on port {port}: {body}");
    }
}

async fn run(admin: &str, root: &Path, tool: &Tool, n: usize, clients: usize, seconds: u64) -> Outcome {
    let url = slovo_test_support::fresh_database(admin).await;
    let secret_key: String = (0..32).map(|i| format!("{:02x}", (i * 37 + n) % 256)).collect();
    let mut instances: Vec<Instance> = (0..n)
        .map(|i| Instance {
            data: root.join(format!("{}-{n}-of-{n}-{i}", tool.kind)),
            url: url.clone(),
            secret_key: secret_key.clone(),
            server: None,
        })
        .collect();
    let first = &instances[0];
    first.run(&["tool", "import", tool.bundle.to_str().unwrap()]);
    let name = format!("cheap-{}", tool.kind);
    first.run(&["tool", "approve", &name]);
    let token = first
        .run(&["token", "create", "--role", "agent"])
        .trim()
        .to_string();
    // Each instance serves at most its share of the clients at once, so none turns a call away.
    let share = clients.div_ceil(n);
    for i in &mut instances {
        i.start(share);
    }
    let ports: Vec<u16> = instances.iter().map(Instance::port).collect();
    // One call through each instance first: each installs the tool from the database (the
    // bundle is fetched and verified), which is not what is measured.
    warm_up(&ports, &token, &name).await;
    let store = slovo_store::Store::connect(&url).await.unwrap();
    let records_before = store.count_executions().await.unwrap();
    let events_before = store
        .count_audit_events(slovo_core::audit::kinds::EXECUTION_FINISHED)
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(slovo_test_support::sample_lock_waits(url.clone(), stop.clone()));
    let server = slovo_test_support::ServerCpu::of(&url).await;
    let cpu_now = |instances: &[Instance]| {
        let serving: Duration = instances
            .iter()
            .filter_map(|i| i.server.as_ref())
            .map(|(child, _)| slovo_test_support::process_cpu(child.id()))
            .sum();
        (server.map(|s| s.used()), serving, slovo_test_support::own_cpu())
    };
    let before = cpu_now(&instances);
    let (latencies, rejected, elapsed) = drive(&ports, &token, &name, clients, seconds).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let waits = sampler.await.unwrap();
    let after = cpu_now(&instances);

    for i in &mut instances {
        i.stop();
    }
    let answered = latencies.len() as i64;
    let records = store.count_executions().await.unwrap() - records_before;
    let events = store
        .count_audit_events(slovo_core::audit::kinds::EXECUTION_FINISHED)
        .await
        .unwrap()
        - events_before;
    store.close().await;
    let mut problems = Vec::new();
    if records != answered || events != answered {
        problems.push(format!("{records} records, {events} events, {answered} answered"));
    }
    for i in &instances {
        let out = i.cmd().args(["audit", "verify"]).output().unwrap();
        if !out.status.success() {
            problems.push(format!(
                "audit verify on {}: {}",
                i.data.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Outcome {
        latencies,
        elapsed,
        rejected,
        lock_wait_share: waits.share(),
        database_cpu: after
            .0
            .zip(before.0)
            .map(|(a, b)| a.saturating_sub(b).saturating_sub(waits.sampler_cpu)),
        instances_cpu: after.1.saturating_sub(before.1),
        clients_cpu: after.2.saturating_sub(before.2),
        top_waits: waits.top(5),
        inconsistency: (!problems.is_empty()).then(|| problems.join("; ")),
    }
}

/// What the backends waiting for a lock waited in, and for whom, by row (the sampler's
/// statements as PostgreSQL shows them, without their parameters).
fn print_waits(rows: &[(String, Vec<(String, f64)>)]) {
    if rows.is_empty() {
        return;
    }
    println!("lock waits: kind of lock: waiting statement <- the statements holding it [their state]");
    for (row, top) in rows {
        for (what, share) in top {
            println!("  {row}: {:.0} % {what}", share * 100.0);
        }
    }
}

fn main() {
    slovo_sandbox::http::ensure_tls_provider();
    let admin = std::env::var("SLOVO_BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("SLOVO_TEST_DATABASE_URL"))
        .expect(
            "set SLOVO_BENCH_DATABASE_URL (or SLOVO_TEST_DATABASE_URL) to an administrative PostgreSQL URL",
        );
    let seconds: u64 = env_or("SLOVO_LOAD_SECONDS", 8);
    let clients: usize = env_or("SLOVO_LOAD_CLIENTS", 16);
    let counts: Vec<usize> = std::env::var("SLOVO_LOAD_INSTANCES")
        .unwrap_or_else(|_| "1,2,3".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let wanted = std::env::var("SLOVO_LOAD_KINDS").unwrap_or_else(|_| "wasm,process".into());
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut tools = Vec::new();
    if wanted.contains("wasm") {
        tools.push(wasm_tool(dir.path()));
    }
    if wanted.contains("process") {
        match process_tool(dir.path()) {
            Some(t) => tools.push(t),
            None => eprintln!("gcc -static failed: skipping the process tool"),
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("load average before: {}", load_average());
    println!(
        "| tool | instances | clients | seconds | calls answered | calls/s | per-instance efficiency | p50 (ms) | p99 (ms) | lock-wait share | database CPU per call (µs) | cores busy: database / instances / clients | records = events = answered, audit verified |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut failures = Vec::new();
    let mut waits = Vec::new();
    for tool in &tools {
        let mut one_instance_rate = None;
        for &n in &counts {
            let o = rt.block_on(run(&admin, dir.path(), tool, n, clients, seconds));
            let rate = o.latencies.len() as f64 / o.elapsed.as_secs_f64();
            let base = *one_instance_rate.get_or_insert(rate / n as f64);
            let (per_call, database_cores) =
                slovo_test_support::database_cpu_columns(o.database_cpu, o.latencies.len(), o.elapsed);
            let busy = |cpu: Duration| cpu.as_secs_f64() / o.elapsed.as_secs_f64();
            println!(
                "| {} | {n} | {clients} | {:.1} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.0} % | {per_call} | {database_cores} / {:.2} / {:.2} | {} |",
                tool.kind,
                o.elapsed.as_secs_f64(),
                o.latencies.len(),
                rate,
                rate / n as f64 / base,
                percentile(&o.latencies, 0.5).as_secs_f64() * 1000.0,
                percentile(&o.latencies, 0.99).as_secs_f64() * 1000.0,
                o.lock_wait_share * 100.0,
                busy(o.instances_cpu),
                busy(o.clients_cpu),
                o.inconsistency
                    .as_deref()
                    .map_or("yes".to_string(), |e| format!("NO: {e}")),
            );
            if o.rejected > 0 {
                println!(
                    "({} calls were turned away by back-pressure and are not counted)",
                    o.rejected
                );
            }
            failures.extend(o.inconsistency);
            if !o.top_waits.is_empty() {
                waits.push((format!("{}, {n} instance(s)", tool.kind), o.top_waits));
            }
        }
    }
    println!("load average after: {}", load_average());
    print_waits(&waits);
    assert!(failures.is_empty(), "{failures:?}");
}
