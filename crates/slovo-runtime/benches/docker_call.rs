//! One call of a trivial Docker tool, end to end through the call path (`Runtime::call` on
//! SQLite: lookup → grant → validation → record as running → Docker backend → record → audit)
//! against a bare `docker run --rm` of the same image with the same flags (no network,
//! read-only root, every capability dropped, no-new-privileges, Slovo's seccomp profile,
//! non-root user, memory without swap, CPU quota, pids limit, small /tmp and /dev/shm, no log
//! driver, the /data bind mount of the same quota volume, the request on stdin), measured in
//! the same run, interleaved.
//!
//! Run: `cargo bench -p slovo-runtime --bench docker_call` (needs a Docker daemon, see
//! `scripts/ci-docker-setup.sh`, and `gcc` for the static test tool). `SLOVO_BENCH_ITERS` sets
//! the calls per variant (default 40; 3 when run by `cargo test --all-targets`, as a smoke test).
//! SLOVO_TEST_SKIP_DOCKER=1 skips it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use slovo_core::execution::ExecutionStatus;
use slovo_core::permissions::Narrowing;
use slovo_runtime::{Actor, CallRequest, ImportSource, Runtime};
use slovo_sandbox::Backends;
use slovo_sandbox::docker::{DockerBackend, DockerConfig};
use slovo_store::Store;

const IMAGE: &str = "slovo-bench-echo:1";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(name: &str, mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (p50, p95) = (ms(percentile(&samples, 0.50)), ms(percentile(&samples, 0.95)));
    println!(
        "{name:<36} n={:<4} p50 {p50:>7.1} ms   p95 {p95:>7.1} ms   min {:>7.1} ms",
        samples.len(),
        ms(samples[0]),
    );
    (p50, p95)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A FROM-scratch image holding the static hostile tool (`echo` copies stdin to stdout).
fn build_image(dir: &Path) {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::create_dir_all(root.join("data")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../slovo-sandbox/tests/suite/tools/hostile.c");
    run(Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(root.join("hostile"))
        .arg(&src));
    let tar = dir.join("rootfs.tar");
    run(Command::new("tar")
        .args(["--owner=0", "--group=0", "--numeric-owner", "-C"])
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    run(Command::new("docker").arg("import").arg(&tar).arg(IMAGE));
}

fn manifest() -> String {
    json!({
        "name": "docker-echo",
        "version": "1.0.0",
        "description": "Echoes its request (benchmark)",
        "capabilities": [{
            "name": "echo",
            "description": "Echo",
            "parameters": {"type": "object", "properties": {"text": {"type": "string"}}}
        }],
        "permissions": {"memory_limit_mb": 64, "storage_quota_mb": 4, "cpu_limit_percent": 100, "timeout_s": 10},
        "execution": {"type": "docker", "image": IMAGE, "entrypoint": ["/hostile", "echo"]}
    })
    .to_string()
}

fn main() {
    if std::env::var("SLOVO_TEST_SKIP_DOCKER").as_deref() == Ok("1") {
        println!("skipped: SLOVO_TEST_SKIP_DOCKER=1");
        return;
    }
    let bench = std::env::args().any(|a| a == "--bench");
    let iters: usize = std::env::var("SLOVO_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 40 } else { 3 });
    let dir = tempfile::tempdir().unwrap();
    build_image(dir.path());
    let data = dir.path().join("data");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = DockerConfig::new(data.join("sandbox").join("volumes"));
    let user = format!("{}:{}", config.uid, config.gid);
    let runtime = rt.block_on(async {
        let backend = DockerBackend::new(config);
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("slovo.db").display());
        let store = Store::connect(&url).await.unwrap();
        let runtime = Runtime::new(store, Backends::new().with(backend), &data);
        let actor = Actor("bench".into());
        let m = ImportSource::Manifest {
            name: "docker-echo.json".into(),
            bytes: manifest().into_bytes(),
        };
        runtime.import(m, &actor).await.unwrap();
        runtime
            .approve("docker-echo", &Narrowing::default(), &actor)
            .await
            .unwrap();
        runtime
    });
    let call = || CallRequest {
        tool: "docker-echo".into(),
        capability: "echo".into(),
        arguments: json!({"text": "hi"}),
        conversation_id: None,
        turn_id: None,
        actor: Actor("bench".into()),
    };
    // The first call mounts the state volume; the bare runs bind the same directory.
    let first = rt.block_on(runtime.call(call())).unwrap();
    assert_eq!(first.status, ExecutionStatus::Success, "{first:?}");
    let state = data.join("volumes").join("docker-echo");
    assert!(state.exists(), "state directory {}", state.display());
    let request = serde_json::to_vec(&json!({"capability": "echo", "arguments": {"text": "hi"}})).unwrap();
    // The same seccomp profile as the backend's, so the baseline does the same work.
    let profile = data.join("seccomp.json");
    std::fs::write(&profile, slovo_sandbox::docker::seccomp::profile_json()).unwrap();
    let seccomp = format!("seccomp={}", profile.display());
    let bare = || {
        let mut child = Command::new("docker")
            .args([
                "run",
                "--rm",
                "-i",
                "--network",
                "none",
                "--read-only",
                "--cap-drop",
                "ALL",
                "--security-opt",
                "no-new-privileges",
                "--security-opt",
                &seccomp,
                "--user",
                &user,
                "--memory",
                "64m",
                "--memory-swap",
                "64m",
                "--memory-swappiness",
                "0",
                "--cpu-period",
                "100000",
                "--cpu-quota",
                "100000",
                "--pids-limit",
                "64",
                "--tmpfs",
                "/tmp:rw,nosuid,nodev,noexec,size=16m,mode=1777",
                "--shm-size",
                "16m",
                "--ipc",
                "private",
                "--log-driver",
                "none",
                "--hostname",
                "slovo",
                "--mount",
            ])
            .arg(format!("type=bind,src={},dst=/data", state.display()))
            .args(["--entrypoint", "/hostile", IMAGE, "echo"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&request).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout, request);
    };

    println!(
        "docker client {}, server {}",
        run(Command::new("docker").args(["version", "--format", "{{.Client.Version}}"])),
        run(Command::new("docker").args(["version", "--format", "{{.Server.Version}}"]))
    );
    let warm = iters / 10 + 1;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for i in 0..warm + iters {
        let t = Instant::now();
        bare();
        let b = t.elapsed();
        let t = Instant::now();
        let row = rt.block_on(runtime.call(call())).unwrap();
        let c = t.elapsed();
        assert_eq!(row.status, ExecutionStatus::Success, "{row:?}");
        if i >= warm {
            theirs.push(b);
            ours.push(c);
        }
    }
    let (b50, b95) = report("bare `docker run --rm` (CLI)", theirs);
    let (c50, c95) = report("docker Runtime::call (SQLite)", ours);
    println!(
        "ratio Runtime::call / docker run: p50 {:.2}x   p95 {:.2}x",
        c50 / b50,
        c95 / b95
    );
    let _ = Command::new("docker").args(["rmi", "-f", IMAGE]).output();
}
