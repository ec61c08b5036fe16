//! `slovo serve` killed with SIGKILL in the middle of concurrent calls, then restarted: no
//! execution may stay `running`, and the audit chain must still verify. Also a graceful
//! shutdown that cuts calls short records them as `cancelled`. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use slovo_store::Store;
use slovo_test_support::test_dbs;

/// A slow upstream API on loopback: each request takes `ms` milliseconds.
async fn slow_api(ms: u64) -> u16 {
    slovo_sandbox::http::ensure_tls_provider();
    let app = Router::new().route(
        "/slow",
        get(move || async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            axum::Json(json!({"ok": true}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Install {
    data: std::path::PathBuf,
    url: Option<String>,
}

impl Install {
    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_slovo"));
        c.env("SLOVO_DATA_DIR", &self.data)
            .env("SLOVO_HTTP_ALLOW_PRIVATE", "1")
            .env_remove("RUST_LOG");
        match &self.url {
            Some(u) => c.env("SLOVO_DATABASE_URL", u),
            None => c.env_remove("SLOVO_DATABASE_URL"),
        };
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

    fn serve(&self, port: u16) -> Child {
        let child = self
            .cmd()
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--shutdown-grace",
                "0",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Ready means answering /health, which the server does only after its start-up
        // recovery (the port may accept connections before that).
        let deadline = Instant::now() + Duration::from_secs(20);
        while !healthy(port) {
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    async fn store(&self) -> Store {
        match &self.url {
            Some(u) => Store::connect(u).await.unwrap(),
            None => Store::open_sqlite(&self.data.join("slovo.db")).await.unwrap(),
        }
    }
}

fn setup(data: &Path, url: Option<String>, api_port: u16) -> (Install, String) {
    let install = Install {
        data: data.to_path_buf(),
        url,
    };
    let manifest = data.parent().unwrap().join("slow.yaml");
    std::fs::write(
        &manifest,
        format!(
            "name: slow\nversion: 1.0.0\ndescription: A slow API\ncapabilities:\n  - name: wait\n    description: Waits\n    endpoint: /slow\n    method: GET\npermissions:\n  network_allow: [\"localhost:{api_port}\"]\napi_requirements:\n  base_url: http://localhost:{api_port}\n"
        ),
    )
    .unwrap();
    install.run(&["tool", "import", manifest.to_str().unwrap()]);
    install.run(&["tool", "approve", "slow"]);
    let token = install
        .run(&["token", "create", "--role", "agent"])
        .trim()
        .to_string();
    (install, token)
}

fn fire_calls(
    port: u16,
    token: &str,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Result<reqwest::StatusCode, reqwest::Error>>> {
    (0..n)
        .map(|_| {
            let token = token.to_string();
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(format!("http://127.0.0.1:{port}/v1/calls"))
                    .bearer_auth(token)
                    .json(&json!({"tool": "slow", "capability": "wait"}))
                    .send()
                    .await
                    .map(|r| r.status())
            })
        })
        .collect()
}

async fn statuses(store: &Store) -> Vec<String> {
    store
        .executions(&slovo_store::ExecutionFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.status.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_calls_leaves_nothing_running_and_the_chain_intact() {
    let api_port = slow_api(2_000).await;
    for db in test_dbs().await {
        let data = db.dir.path().join("data");
        let url = (db.label == "postgres").then(|| db.url.clone());
        let (install, token) = setup(&data, url, api_port);
        let port = free_port();
        let mut server = install.serve(port);
        let calls = fire_calls(port, &token, 8);
        // Wait until the calls are recorded as running, then kill without warning.
        let store = install.store().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while statuses(&store).await.iter().filter(|s| *s == "running").count() < 8 {
            assert!(
                Instant::now() < deadline,
                "{}: calls never started: {:?}",
                db.label,
                statuses(&store).await
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.kill().unwrap();
        server.wait().unwrap();
        for c in calls {
            assert!(c.await.unwrap().is_err(), "the connection should have dropped");
        }
        assert_eq!(
            statuses(&store).await.iter().filter(|s| *s == "running").count(),
            8
        );

        // Restart: the server records the stale calls before it answers anything.
        let mut server = install.serve(port);
        let after = statuses(&store).await;
        assert_eq!(after.len(), 8);
        assert!(
            after.iter().all(|s| s == "interrupted"),
            "{}: {after:?}",
            db.label
        );
        let verified = install.run(&["--json", "audit", "verify"]);
        let v: Value = serde_json::from_str(&verified).unwrap();
        assert_eq!(v["ok"], true);
        // Every execution has exactly one finishing event in the chain.
        let events = store.audit_page(0, 10_000).await.unwrap();
        assert_eq!(
            events.iter().filter(|e| e.kind == "execution.finished").count(),
            8
        );
        server.kill().unwrap();
        server.wait().unwrap();
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn graceful_shutdown_records_cut_calls_as_cancelled() {
    let api_port = slow_api(3_000).await;
    for db in test_dbs().await {
        let data = db.dir.path().join("data");
        let url = (db.label == "postgres").then(|| db.url.clone());
        let (install, token) = setup(&data, url, api_port);
        let port = free_port();
        let mut server = install.serve(port);
        let calls = fire_calls(port, &token, 3);
        let store = install.store().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while statuses(&store).await.iter().filter(|s| *s == "running").count() < 3 {
            assert!(Instant::now() < deadline, "calls never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // SIGTERM: with a grace of 0 s the calls are cut and must be recorded as cancelled.
        let pid = server.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = server.wait().unwrap();
        assert!(status.success(), "{}: serve exited with {status}", db.label);
        for c in calls {
            let _ = c.await.unwrap();
        }
        let after = statuses(&store).await;
        assert_eq!(after, vec!["cancelled"; 3], "{}", db.label);
        let v: Value = serde_json::from_str(&install.run(&["--json", "audit", "verify"])).unwrap();
        assert_eq!(v["ok"], true);
        store.close().await;
    }
}
