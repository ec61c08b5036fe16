//! What the server tests share: a slow API on loopback, an installation (data directory and
//! database) driven through the `slovo` binary, and calls through REST.
#![allow(dead_code)] // each test file uses a different part

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use slovo_store::Store;

/// Runs `slovo ARGS` on the data directory `data` (SQLite, whatever the environment says).
pub fn run(data: &Path, args: &[&str]) -> std::process::Output {
    assert_cmd::Command::cargo_bin("slovo")
        .unwrap()
        .env("SLOVO_DATA_DIR", data)
        .env_remove("SLOVO_DATABASE_URL")
        .args(args)
        .output()
        .unwrap()
}

/// [`run`], which must succeed: its stdout.
pub fn ok(data: &Path, args: &[&str]) -> String {
    let out = run(data, args);
    assert!(
        out.status.success(),
        "slovo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A slow upstream API on loopback: each request takes `ms` milliseconds.
pub async fn slow_api(ms: u64) -> u16 {
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

pub fn healthy(port: u16) -> bool {
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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Install {
    /// The data directory.
    pub data: std::path::PathBuf,
    /// PostgreSQL's URL, or `None` for SQLite in the data directory.
    pub url: Option<String>,
}

impl Install {
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_slovo"));
        c.env("SLOVO_DATA_DIR", &self.data)
            .env("SLOVO_HTTP_ALLOW_PRIVATE", "1")
            // A short lease, so that a killed instance is declared dead within the test.
            .env("SLOVO_SERVER_INSTANCE_LEASE_MS", "5000")
            .env_remove("RUST_LOG");
        match &self.url {
            Some(u) => c.env("SLOVO_DATABASE_URL", u),
            None => c.env_remove("SLOVO_DATABASE_URL"),
        };
        c
    }

    pub fn run(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "slovo {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn serve(&self, port: u16) -> Child {
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
            // Kept beside the data directory, for the failure message of a test that reads it.
            .stderr(std::fs::File::create(self.data.with_extension("serve.log")).unwrap())
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

    pub async fn store(&self) -> Store {
        match &self.url {
            Some(u) => Store::connect(u).await.unwrap(),
            None => Store::open_sqlite(&self.data.join("slovo.db")).await.unwrap(),
        }
    }
}

pub fn setup(data: &Path, url: Option<String>, api_port: u16) -> (Install, String) {
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

pub async fn statuses(store: &Store) -> Vec<String> {
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

/// One HTTP call to `slow.wait` through instance `port`: the execution id when answered.
pub async fn call_through(client: &reqwest::Client, port: u16, token: &str) -> Result<String, String> {
    let answer = client
        .post(format!("http://127.0.0.1:{port}/v1/calls"))
        .bearer_auth(token)
        .json(&json!({"tool": "slow", "capability": "wait"}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = answer.status();
    let body: Value = answer.json().await.map_err(|e| e.to_string())?;
    if status != reqwest::StatusCode::OK {
        return Err(format!("{status}: {body}"));
    }
    body["id"]
        .as_str()
        .map(str::to_string)
        .ok_or(format!("no id in {body}"))
}

/// The ```sh blocks of a piece of Markdown, in order, each as the text between its fences.
pub fn sh_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), text) => {
                block.push_str(text);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// The repository's root.
pub fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A shell whose `slovo` is the binary under test, with no Slovo setting of the caller's.
pub fn shell(script: &str) -> Command {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_slovo"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(script).current_dir(repo()).env("PATH", path);
    for (k, _) in std::env::vars() {
        if k.starts_with("SLOVO_") || k == "DOCKER_HOST" || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Waits up to `limit` until no execution is `running`; returns every status.
pub async fn no_call_left_running(store: &Store, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    loop {
        let all = statuses(store).await;
        if !all.iter().any(|s| s == "running") {
            return all;
        }
        assert!(Instant::now() < deadline, "calls stay running: {all:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
