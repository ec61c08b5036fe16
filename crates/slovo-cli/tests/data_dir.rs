//! A private data directory is the normal case: created 0700 with private files, every backend
//! works under it, and no mount of a `slovo` process outlives it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn is_root() -> bool {
    // SAFETY: a plain getter.
    unsafe { libc::geteuid() == 0 }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn slovo(data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slovo"));
    cmd.env("SLOVO_DATA_DIR", data).current_dir(repo());
    for (k, _) in std::env::vars() {
        if k.starts_with("SLOVO_") && k != "SLOVO_DATA_DIR" || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn run(data: &Path, args: &[&str]) -> String {
    ok(
        slovo(data).args(args).output().unwrap(),
        &format!("slovo {args:?}"),
    )
}

/// The mounts of this mount namespace below `dir`.
fn mounts_below(dir: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| Path::new(mp).starts_with(dir))
        .map(str::to_string)
        .collect()
}

/// A process tool that keeps a counter in its state and takes `seconds` to answer.
fn waiting_tool(dir: &Path) -> PathBuf {
    let b = dir.join("waiter");
    std::fs::create_dir_all(b.join("bin")).unwrap();
    std::fs::write(
        b.join("slovo.yaml"),
        "name: waiter\nversion: 1.0.0\ndescription: Waits a moment and keeps a counter\n\
         capabilities:\n  - name: wait\n    description: Wait\n    parameters: {type: object}\n\
         permissions:\n  storage_quota_mb: 5\n  timeout_s: 30\n\
         execution:\n  type: process\n  command: [bin/wait]\n  system_paths: true\n",
    )
    .unwrap();
    std::fs::write(
        b.join("bin/wait"),
        "#!/usr/bin/python3\nimport json, sys, time\n\
         time.sleep(json.load(sys.stdin)['arguments'].get('seconds', 0))\n\
         with open('/data/count', 'a+') as f:\n    f.write('x')\n    f.seek(0)\n    print(len(f.read()))\n",
    )
    .unwrap();
    std::fs::set_permissions(b.join("bin/wait"), std::fs::Permissions::from_mode(0o755)).unwrap();
    b
}

#[test]
fn the_data_directory_and_its_files_are_private() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("fresh").join("slovo");
    run(&data, &["tool", "import", "examples/unit-converter"]);
    let out = slovo(&data)
        .args(["secret", "set", "unit-converter", "api_key"])
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b"s3cret\n")?;
            c.wait_with_output()
        })
        .unwrap();
    ok(out, "secret set");
    assert_eq!(mode(&data), 0o700, "the data directory");
    for f in ["slovo.db", "secret.key"] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    for f in ["slovo.db-wal", "slovo.db-shm"] {
        if data.join(f).exists() {
            assert_eq!(mode(&data.join(f)), 0o600, "{f}");
        }
    }
    // An existing directory open to others is used, with a warning that says what to do.
    let open = root.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = slovo(&open).args(["tool", "list"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success());
    assert!(
        stderr.contains("is open to other accounts (mode 755); `chmod 700` it"),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\x1b'),
        "colour codes in piped output: {stderr:?}"
    );
}

#[test]
fn a_process_tool_with_state_runs_under_a_0700_directory_and_leaves_no_mount() {
    if !is_root() {
        eprintln!("skipped: the process sandbox's state volumes need root");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let tool = waiting_tool(root.path());
    run(&data, &["tool", "import", tool.to_str().unwrap()]);
    run(&data, &["tool", "approve", "waiter"]);
    assert_eq!(mounts_below(&data), Vec::<String>::new(), "approve left a mount");
    for n in ["1", "2"] {
        let out = run(&data, &["call", "waiter", "wait"]);
        assert_eq!(out.trim(), n, "the state persists across calls");
        assert_eq!(mounts_below(&data), Vec::<String>::new(), "a call left a mount");
    }
    std::fs::remove_dir_all(&data).unwrap();
}

#[test]
fn a_mount_in_use_is_kept_and_one_a_killed_process_left_is_reclaimed() {
    if !is_root() {
        eprintln!("skipped: the process sandbox's state volumes need root");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let tool = waiting_tool(root.path());
    run(&data, &["tool", "import", tool.to_str().unwrap()]);
    run(&data, &["tool", "approve", "waiter"]);

    let mut calling = slovo(&data)
        .args(["call", "waiter", "wait", "--args", r#"{"seconds": 8}"#])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while mounts_below(&data).is_empty() {
        assert!(Instant::now() < deadline, "the call never mounted its volume");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Another process using the same volume and ending while the call runs leaves it mounted,
    // and so does one that only starts and ends.
    run(&data, &["call", "waiter", "wait"]);
    assert_eq!(
        mounts_below(&data).len(),
        1,
        "a mount in use by another process was taken away"
    );
    run(&data, &["tool", "list"]);
    assert_eq!(mounts_below(&data).len(), 1, "a mount in use was reclaimed");

    // The calling process dies without letting go: its mount stays, until the next start.
    calling.kill().unwrap();
    calling.wait().unwrap();
    assert_eq!(
        mounts_below(&data).len(),
        1,
        "precondition: the killed process left its mount"
    );
    run(&data, &["tool", "list"]);
    assert_eq!(
        mounts_below(&data),
        Vec::<String>::new(),
        "the stale mount was not reclaimed"
    );
    std::fs::remove_dir_all(&data).unwrap();
}

/// An HTTP server on loopback answering every request with `{"ok": true}`; counts requests.
fn loopback_api() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let body = r#"{"ok": true}"#;
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, hits)
}

/// `SLOVO_EGRESS_ALSO_PUBLIC` decides, for the HTTP and the process backend alike, whether a
/// granted host on an address that is not public is reached: refused without it, reached with.
#[test]
fn egress_also_public_reaches_the_http_and_process_backends() {
    let (port, hits) = loopback_api();
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let http = root.path().join("api.yaml");
    std::fs::write(
        &http,
        format!(
            "name: api\nversion: 1.0.0\ndescription: A local API\ncapabilities:\n  - name: get\n    description: Get\n    endpoint: /\n    method: GET\n\
             permissions:\n  network_allow: [\"127.0.0.1:{port}\"]\napi_requirements:\n  base_url: http://127.0.0.1:{port}\n"
        ),
    )
    .unwrap();
    run(&data, &["tool", "import", http.to_str().unwrap()]);
    run(&data, &["tool", "approve", "api"]);

    let refused = slovo(&data).args(["call", "api", "get"]).output().unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not a public address"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    let reached = slovo(&data)
        .env("SLOVO_EGRESS_ALSO_PUBLIC", "127.0.0.1/32")
        .args(["call", "api", "get"])
        .output()
        .unwrap();
    assert!(ok(reached, "HTTP call with the range declared public").contains("\"ok\": true"));
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);

    if !is_root() {
        eprintln!("process part skipped: the process sandbox's network needs root");
        return;
    }
    // A process tool fetching through the egress proxy its sandbox hands it.
    let bundle = root.path().join("fetcher");
    std::fs::create_dir_all(bundle.join("bin")).unwrap();
    std::fs::write(
        bundle.join("slovo.yaml"),
        format!(
            "name: fetcher\nversion: 1.0.0\ndescription: Fetches the local API\ncapabilities:\n  - name: get\n    description: Get\n    parameters: {{type: object}}\n\
             permissions:\n  network_allow: [\"127.0.0.1:{port}\"]\n  storage_quota_mb: 0\n\
             execution:\n  type: process\n  command: [bin/fetch]\n  system_paths: true\n"
        ),
    )
    .unwrap();
    std::fs::write(
        bundle.join("bin/fetch"),
        format!(
            "#!/usr/bin/python3\nimport sys, urllib.request\ntry:\n    print(urllib.request.urlopen('http://127.0.0.1:{port}/', timeout=10).read().decode())\nexcept Exception as e:\n    print('refused:', e, file=sys.stderr)\n    sys.exit(1)\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(bundle.join("bin/fetch"), std::fs::Permissions::from_mode(0o755)).unwrap();
    run(&data, &["tool", "import", bundle.to_str().unwrap()]);
    run(&data, &["tool", "approve", "fetcher"]);
    let before = hits.load(std::sync::atomic::Ordering::SeqCst);
    let refused = slovo(&data)
        .args(["--json", "call", "fetcher", "get"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let record = String::from_utf8_lossy(&refused.stdout);
    assert!(record.contains("not a public address"), "{record}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), before);
    let reached = slovo(&data)
        .env("SLOVO_EGRESS_ALSO_PUBLIC", "127.0.0.1/32")
        .args(["call", "fetcher", "get"])
        .output()
        .unwrap();
    assert!(ok(reached, "process call with the range declared public").contains("\"ok\": true"));
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), before + 1);
}

#[test]
fn config_show_explains_each_value_and_hides_secrets() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(
        data.join("slovo.toml"),
        "[server]\nmax_queued_calls = 9\n\n[mcp]\nfetch_timeout_s = 60\n",
    )
    .unwrap();
    let out = slovo(&data)
        .env("SLOVO_EGRESS_ALSO_PUBLIC", "198.51.100.0/24")
        .env("SLOVO_SECRET_KEY", "ab".repeat(32))
        .args(["config", "show", "--data-dir", data.to_str().unwrap()])
        .output()
        .unwrap();
    let text = ok(out, "config show");
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
            .to_string()
    };
    assert!(
        line("server.max_queued_calls").contains("= 9")
            && line("server.max_queued_calls").contains("# file ")
    );
    assert!(
        line("egress.also_public").contains("198.51.100.0/24")
            && line("egress.also_public").contains("environment SLOVO_EGRESS_ALSO_PUBLIC")
    );
    assert!(line("data_dir").contains("# flag --data-dir"));
    assert!(line("server.listen").contains("# default"));
    // The fetch sandbox's limits, each with where it came from.
    assert!(
        line("mcp.fetch_timeout_s").contains("= 60") && line("mcp.fetch_timeout_s").contains("# file "),
        "{text}"
    );
    assert!(
        line("mcp.fetch_memory_mb").contains("= 1024") && line("mcp.fetch_memory_mb").contains("# default"),
        "{text}"
    );
    assert!(line("secret_key").contains("<redacted>") && !text.contains("abab"));

    std::fs::write(data.join("slovo.toml"), "[server]\nmax_queued_cals = 9\n").unwrap();
    let out = slovo(&data).args(["tool", "list"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("slovo.toml") && stderr.contains("line 2") && stderr.contains("max_queued_cals"),
        "{stderr}"
    );
}
