//! One call of a trivial tool through the process backend, against baselines measured in the
//! same run: a bare fork+exec of the same program, and bubblewrap with equivalent isolation.
//!
//! Run (as root): `cargo bench -p slovo-sandbox --bench process_call`.
//! `SLOVO_BENCH_ITERS` sets the number of calls per variant (default 300).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use slovo_core::execution::{CallTarget, SandboxSpec};
use slovo_core::manifest::{Capability, Execution};
use slovo_core::permissions::Grant;
use slovo_sandbox::Backend;
use slovo_sandbox::process::{ProcessBackend, ProcessConfig, Support, seccomp};

const TRIVIAL: &str = r#"
#include <unistd.h>
int main(void) {
    char buf[4096];
    while (read(0, buf, sizeof buf) > 0) {}
    static const char out[] = "{\"ok\":true}\n";
    return write(1, out, sizeof out - 1) < 0;
}
"#;

/// A weaker tier of the breakdown: its name and how it edits the host's support.
type Variant = (&'static str, fn(&mut Support));

const REQUEST: &[u8] = br#"{"capability":"probe","arguments":{}}"#;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

struct Row {
    name: &'static str,
    samples: Vec<Duration>,
}

/// A variant under test: its name and one call.
type Call<'a> = (&'static str, Box<dyn FnMut() + 'a>);

/// Runs every variant `iters` times, interleaved (one call of each per round, in rotating
/// order), so that all see the same machine load; warm-up rounds first.
fn measure(variants: &mut [Call<'_>], iters: usize) -> Vec<Row> {
    for _ in 0..iters / 10 + 1 {
        for (_, f) in variants.iter_mut() {
            f();
        }
    }
    let mut samples = vec![Vec::with_capacity(iters); variants.len()];
    let n = variants.len();
    for round in 0..iters {
        // Rotate the order: a call pays for the previous one's asynchronous teardown (network
        // namespaces are destroyed by a kernel worker), so no variant always follows another.
        for k in 0..n {
            let i = (round + k) % n;
            let t = Instant::now();
            (variants[i].1)();
            samples[i].push(t.elapsed());
        }
    }
    variants
        .iter()
        .zip(samples)
        .map(|((name, _), mut samples)| {
            samples.sort();
            Row { name, samples }
        })
        .collect()
}

fn run_piped(cmd: &mut Command) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(REQUEST).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"{\"ok\":true}\n");
}

fn main() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("the process sandbox benchmark needs root");
        return;
    }
    let iters: usize = std::env::var("SLOVO_BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bundle = dir.path().join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::set_permissions(&bundle, std::fs::Permissions::from_mode(0o755)).unwrap();
    let src = dir.path().join("trivial.c");
    std::fs::write(&src, TRIVIAL).unwrap();
    let program = bundle.join("trivial");
    let st = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&program)
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success(), "gcc -static failed");
    let state = dir.path().join("state");

    // 3. Ours: ProcessBackend::run, cgroup limits, Landlock, seccomp, quota-backed /data.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let backend = ProcessBackend::new(ProcessConfig::new(dir.path().join("work"))).unwrap();
    if let Some(r) = backend.refusal() {
        panic!("the process backend refuses on this host: {r}");
    }
    let grant = Grant {
        internet_access: false,
        network_allow: Vec::new(),
        storage_quota_mb: 16,
        cpu_limit_percent: 100,
        memory_limit_mb: 64,
        timeout_s: 10,
        pids_limit: 32,
        expires_at: None,
    };
    let capability = Capability {
        name: "probe".into(),
        description: "bench".into(),
        parameters: json!({"type": "object"}),
        returns: None,
        endpoint: None,
        method: None,
        examples: vec![],
        read_only: None,
        destructive: None,
    };
    let spec = SandboxSpec::from_grant(
        &grant,
        CallTarget {
            execution_id: "bench",
            tool: "bench",
            version: "1.0.0",
            capability: &capability,
            execution: &Execution::Process {
                command: vec!["trivial".into()],
                system_paths: false,
            },
            api: None,
            bundle_dir: Some(bundle.clone()),
            state_dir: dir.path().join("state-volume"),
            arguments: &json!({}),
        },
    );
    let call = |b: &ProcessBackend| {
        let o = rt.block_on(b.run(&spec));
        assert_eq!(o.output, Some(json!({"ok": true})), "{o:#?}");
    };

    // Optional breakdown: the same call with single mechanisms off (weaker tiers).
    let mut weaker = Vec::new();
    if std::env::var_os("SLOVO_BENCH_BREAKDOWN").is_some() {
        let edits: [Variant; 3] = [
            ("  without cgroups", |s| s.cgroups = None),
            ("  without landlock", |s| s.landlock_abi = 0),
            ("  without cgroups, landlock, quota", |s| {
                s.cgroups = None;
                s.landlock_abi = 0;
                s.quota = false;
            }),
        ];
        for (i, (name, edit)) in edits.into_iter().enumerate() {
            let mut support = backend.support().clone();
            edit(&mut support);
            let config = ProcessConfig {
                allow_weaker: true,
                ..ProcessConfig::new(dir.path().join(format!("work{i}")))
            };
            weaker.push((name, ProcessBackend::with_support(config, support).unwrap()));
        }
    }
    // 4. End to end: `Runtime::call` on SQLite with the same backend configuration — lookup,
    //    grant and expiry check, argument validation, the `running` record, the sandbox, the
    //    result record and its audit event.
    let e2e_bundle = dir.path().join("e2e-bundle");
    std::fs::create_dir_all(&e2e_bundle).unwrap();
    std::fs::copy(&program, e2e_bundle.join("trivial")).unwrap();
    std::fs::write(
        e2e_bundle.join("slovo.yaml"),
        "name: bench\nversion: 1.0.0\ndescription: bench\ncapabilities:\n  - name: probe\n    description: probe\n\
         permissions: {memory_limit_mb: 64, cpu_limit_percent: 100, pids_limit: 32, storage_quota_mb: 16}\n\
         execution: {type: process, command: [trivial], system_paths: false}\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let runtime = rt.block_on(async {
        let store = slovo_store::Store::open_sqlite(&{
            std::fs::create_dir_all(&data).unwrap();
            data.join("slovo.db")
        })
        .await
        .unwrap();
        let process = ProcessBackend::new(ProcessConfig::new(data.join("sandbox"))).unwrap();
        let runtime = slovo_runtime::Runtime::new(
            store,
            slovo_sandbox::Backends::new().with(std::sync::Arc::new(process)),
            &data,
        );
        let actor = slovo_runtime::Actor("bench".into());
        runtime
            .import(slovo_runtime::ImportSource::Bundle(e2e_bundle.clone()), &actor)
            .await
            .unwrap();
        runtime
            .approve("bench", &Default::default(), &actor)
            .await
            .unwrap();
        runtime
    });
    let mut variants: Vec<Call<'_>> = Vec::new();

    // 1. Bare fork+exec of the same program (std::process::Command, pipes, wait).
    variants.push((
        "bare fork+exec",
        Box::new(|| run_piped(&mut Command::new(&program))),
    ));

    // 2. bubblewrap with equivalent isolation: all namespaces, unprivileged uid, read-only
    //    bundle, writable /data, tmpfs /tmp, minimal /dev, fresh /proc, no capabilities, the same
    //    seccomp program, clean environment. (bwrap has no cgroup limits, Landlock or quota.)
    let bwrap = ["/usr/bin/bwrap", "/usr/local/bin/bwrap"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    if let Some(bwrap) = bwrap {
        std::fs::create_dir_all(&state).unwrap();
        let bpf = seccomp::compile(&seccomp::policy(), seccomp::AUDIT_ARCH);
        // SAFETY: sock_filter is plain old data.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                bpf.as_ptr().cast::<u8>(),
                bpf.len() * std::mem::size_of::<libc::sock_filter>(),
            )
        };
        let bpf_path = dir.path().join("seccomp.bpf");
        std::fs::write(&bpf_path, bytes).unwrap();
        let bwrap_call = move || {
            let filter = std::fs::File::open(&bpf_path).unwrap();
            let fd = filter.as_raw_fd();
            let mut cmd = Command::new(bwrap);
            cmd.args([
                "--unshare-all",
                "--die-with-parent",
                "--new-session",
                "--cap-drop",
                "ALL",
            ])
            .args(["--uid", "1000", "--gid", "1000", "--hostname", "slovo"])
            .arg("--ro-bind")
            .arg(&bundle)
            .arg("/tool")
            .arg("--bind")
            .arg(&state)
            .arg("/data")
            .args([
                "--tmpfs", "/tmp", "--dev", "/dev", "--proc", "/proc", "--chdir", "/tool",
            ])
            .args([
                "--clearenv",
                "--setenv",
                "SLOVO_CAPABILITY",
                "probe",
                "--seccomp",
                "3",
                "/tool/trivial",
            ]);
            // SAFETY: dup2 and fcntl are async-signal-safe.
            unsafe {
                cmd.pre_exec(move || {
                    // Put the filter at fd 3, without close-on-exec.
                    let r = if fd == 3 {
                        libc::fcntl(3, libc::F_SETFD, 0)
                    } else {
                        libc::dup2(fd, 3)
                    };
                    if r < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            run_piped(&mut cmd);
            drop(filter);
        };
        variants.push(("bwrap (equivalent isolation)", Box::new(bwrap_call)));
    } else {
        eprintln!("bwrap not found (apt-get install bubblewrap): skipping the bubblewrap baseline");
    }

    variants.push(("slovo process backend", Box::new(|| call(&backend))));

    let e2e = || {
        let exec = rt
            .block_on(runtime.call(slovo_runtime::CallRequest {
                tool: "bench".into(),
                capability: "probe".into(),
                arguments: json!({}),
                conversation_id: None,
                turn_id: None,
                actor: slovo_runtime::Actor("bench".into()),
            }))
            .unwrap();
        assert_eq!(exec.output, Some(json!({"ok": true})), "{exec:#?}");
    };
    variants.push(("slovo end to end (Runtime::call, SQLite)", Box::new(e2e)));
    for (name, b) in &weaker {
        variants.push((name, Box::new(move || call(b))));
    }
    let rows = measure(&mut variants, iters);
    drop(variants);
    let _ = backend.release_state(&spec.state_dir, true);

    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1000.0);
    println!(
        "\none call of a trivial static tool, {iters} calls per variant, interleaved (after {} warm-up rounds)\n",
        iters / 10 + 1
    );
    println!("| variant | p50 (ms) | p95 (ms) | mean (ms) |");
    println!("|---|---:|---:|---:|");
    for r in &rows {
        let mean = r.samples.iter().sum::<Duration>() / r.samples.len() as u32;
        println!(
            "| {} | {} | {} | {} |",
            r.name,
            ms(percentile(&r.samples, 0.5)),
            ms(percentile(&r.samples, 0.95)),
            ms(mean)
        );
    }
    if let Some(b) = rows.iter().find(|r| r.name.starts_with("bwrap")) {
        for o in rows.iter().filter(|r| r.name.starts_with("slovo")) {
            let ratio = percentile(&o.samples, 0.5).as_secs_f64() / percentile(&b.samples, 0.5).as_secs_f64();
            println!("p50 ratio, {} / bwrap: {ratio:.2} (target ≤ 0.55)", o.name);
        }
    }
}
