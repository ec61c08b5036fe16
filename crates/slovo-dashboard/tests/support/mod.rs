//! A real `slovo serve` (in-process, on 127.0.0.1 with a temporary SQLite store) and a real
//! headless Chromium driven through chromedriver.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use slovo_core::access::Role;
use slovo_core::execution::{ExecutionStatus, Outcome, SandboxSpec};
use slovo_core::install::{DockerDeferred, DockerFacts, InstallFacts};
use slovo_runtime::{Actor, ImportSource, Runtime};
use slovo_sandbox::{Backend, BackendError, Backends, InstallRequest};
use slovo_server::{AppState, ServerConfig};
use slovo_store::Store;

/// The browser tests share the machine's two cores: one Chromium at a time.
pub static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Echoes a call's arguments back; stands in for a sandbox, which these tests do not exercise.
struct EchoBackend;

#[async_trait]
impl Backend for EchoBackend {
    fn kind(&self) -> &'static str {
        "docker"
    }
    async fn install(&self, _: &InstallRequest) -> Result<InstallFacts, BackendError> {
        Ok(InstallFacts::Docker(DockerFacts::Deferred(DockerDeferred {
            image: "test".into(),
            entrypoint: None,
            reason: "a test backend pins no image".into(),
        })))
    }
    async fn run(&self, spec: &SandboxSpec) -> Outcome {
        Outcome {
            status: ExecutionStatus::Success,
            output: Some(spec.request["arguments"].clone()),
            exit_code: Some(0),
            ..Outcome::default()
        }
    }
}

/// A manifest for a tool `name` at `version` asking for `hosts` and `memory_mb`.
pub fn manifest(name: &str, version: &str, description: &str, hosts: &[&str], memory_mb: u64) -> String {
    json!({
        "name": name, "version": version, "description": description,
        "capabilities": [{"name": "lookup", "description": "Look something up",
            "parameters": {"type": "object", "required": ["query"], "additionalProperties": false,
                "properties": {"query": {"type": "string", "description": "What to look up"}}},
            "read_only": true}],
        "permissions": {"network_allow": hosts, "memory_limit_mb": memory_mb, "storage_quota_mb": 10},
        "execution": {"type": "docker", "image": format!("{name}:{version}")}
    })
    .to_string()
}

/// A runtime over the database at `url` whose calls echo their arguments, with its data
/// directory at `data` (another instance sharing a PostgreSQL database has its own).
pub async fn runtime_on(url: &str, data: &Path) -> Runtime {
    let store = Store::connect(url).await.unwrap();
    Runtime::new(
        store,
        Backends::new().with(Arc::new(EchoBackend)),
        data.to_path_buf(),
    )
}

/// The server under test.
pub struct Server {
    pub base: String,
    pub admin_token: String,
    pub runtime: Arc<Runtime>,
    pub dir: tempfile::TempDir,
    /// The database's URL.
    pub url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<()>,
}

impl Server {
    pub async fn start() -> Server {
        Server::start_in(tempfile::tempdir().unwrap(), None, None).await
    }

    /// A server over the database at `url` (PostgreSQL shared with other instances).
    pub async fn start_on(url: String) -> Server {
        Server::start_in(tempfile::tempdir().unwrap(), None, Some(url)).await
    }

    /// Stops this server (its connections drained) and starts another on the same database.
    pub async fn restart(self) -> Server {
        let Server {
            admin_token,
            dir,
            url,
            stop,
            serving,
            ..
        } = self;
        stop.send(()).unwrap();
        serving.await.unwrap();
        Server::start_in(dir, Some(admin_token), Some(url)).await
    }

    async fn start_in(dir: tempfile::TempDir, admin_token: Option<String>, url: Option<String>) -> Server {
        // reqwest (used by these tests and by the runtime) needs a TLS provider chosen.
        slovo_sandbox::http::ensure_tls_provider();
        let url =
            url.unwrap_or_else(|| format!("sqlite://{}?mode=rwc", dir.path().join("slovo.db").display()));
        let runtime = Arc::new(runtime_on(&url, &dir.path().join("data")).await);
        let admin_token = match admin_token {
            Some(t) => t,
            None => {
                runtime
                    .create_token(Role::Admin, Some("dashboard test".into()), &Actor::cli())
                    .await
                    .unwrap()
                    .token
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = AppState::new(runtime.clone(), ServerConfig::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(async move {
            slovo_server::serve(listener, state, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Server {
            base,
            admin_token,
            runtime,
            dir,
            url,
            stop,
            serving,
        }
    }

    pub async fn import(&self, manifest: &str) {
        self.runtime
            .import(
                ImportSource::Manifest {
                    name: "test.json".into(),
                    bytes: manifest.as_bytes().to_vec(),
                },
                &Actor::cli(),
            )
            .await
            .unwrap();
    }

    /// Audit events of `kind`, as JSON.
    pub async fn audit_events(&self, kind: &str) -> Vec<Value> {
        let events = self
            .runtime
            .store()
            .audit_events_in_display_order(10_000)
            .await
            .unwrap();
        events
            .into_iter()
            .filter(|e| e.kind == kind)
            .map(|e| {
                let mut v = serde_json::to_value(&e).unwrap();
                v["payload"] = serde_json::from_str(&e.payload).unwrap();
                v
            })
            .collect()
    }
}

/// Chromium and chromedriver, or why the test cannot run.
pub fn browser_available() -> bool {
    let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !present {
        let msg = "headless Chromium is missing: install the Debian packages chromium and \
                   chromium-driver (scripts/ci-dashboard-deps.sh lists them for scripts/test.sh)";
        if std::env::var_os("CI").is_some() {
            panic!("{msg}");
        }
        eprintln!("skipping: {msg}");
    }
    present
}

/// A chromedriver process and a Chromium session; both end when this is dropped.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// A headless Chromium with a window `width` × `height` CSS pixels.
    pub async fn start(width: u32, height: u32) -> Browser {
        Browser::launch(width, height, None).await
    }

    /// A headless Chromium whose time zone is `zone` (an IANA name, through `TZ`).
    pub async fn start_in_zone(width: u32, height: u32, zone: &str) -> Browser {
        Browser::launch(width, height, Some(zone)).await
    }

    async fn launch(width: u32, height: u32, zone: Option<&str>) -> Browser {
        let port = free_port();
        let mut driver = Command::new(CHROMEDRIVER);
        if let Some(zone) = zone {
            driver.env("TZ", zone);
        }
        let driver = driver
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let profile = tempfile::tempdir().unwrap();
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--hide-scrollbars".into(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = serde_json::Map::new();
        let mut options = json!({"binary": CHROMIUM, "args": args});
        // Headless windows have a minimum width; a phone is emulated instead (its viewport,
        // pixel ratio and touch), as the browser's device mode does.
        if width < 500 {
            options["mobileEmulation"] = json!({"deviceMetrics": {"width": width, "height": height, "pixelRatio": 3.0, "touch": true}});
        }
        caps.insert("goog:chromeOptions".into(), options);
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("chromedriver on {url}: {e}"),
            }
        };
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    pub async fn sign_in(&self, server: &Server) {
        self.goto(&format!("{}/signin", server.base)).await;
        self.client
            .find(Locator::Css("#token"))
            .await
            .unwrap()
            .send_keys(&server.admin_token)
            .await
            .unwrap();
        self.click("main form button[type=submit]").await;
        // The click returns before the sign-in's answer is loaded: wait for the page it leads
        // to, or a `goto` that follows can be overtaken by the sign-in's redirect.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let url = self.client.current_url().await.unwrap();
            let ready = self.eval("return document.readyState;").await;
            if url.path() != "/signin" && ready.as_str() == Some("complete") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the sign-in did not lead anywhere: still at {url}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn eval(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Waits until `css` matches an element whose text contains `needle`.
    pub async fn wait_for_text(&self, css: &str, needle: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(elems) = self.client.find_all(Locator::Css(css)).await {
                for e in elems {
                    if e.text().await.is_ok_and(|t| t.contains(needle)) {
                        return true;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Saves a screenshot when `SLOVO_DASHBOARD_SCREENSHOTS` names a directory.
    pub async fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("SLOVO_DASHBOARD_SCREENSHOTS").map(PathBuf::from) else {
            return;
        };
        std::fs::create_dir_all(&dir).unwrap();
        // The whole page: a desktop window grows to the page's height for the picture.
        let (width, height) = self.client.get_window_size().await.unwrap();
        let full = self
            .eval("return document.documentElement.scrollHeight;")
            .await
            .as_u64()
            .unwrap_or(0);
        let grow = width >= 500 && full > height;
        if grow {
            self.client
                .set_window_size(width as u32, full.min(4000) as u32 + 120)
                .await
                .unwrap();
        }
        let png = self.client.screenshot().await.unwrap();
        if grow {
            self.client
                .set_window_size(width as u32, height as u32)
                .await
                .unwrap();
        }
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}
