//! Two instances over one PostgreSQL: a lifecycle change made through one reaches the other's
//! MCP sessions and `resolve` promptly, by `LISTEN`/`NOTIFY` rather than by polling, and still
//! does after the listening connection was killed.
//!
//! Both runtimes poll only every [`POLL`] (a minute), so a notification that does not arrive
//! cannot be covered up by a poll within [`BOUND`].
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::json;
use slovo_core::access::Role;
use slovo_core::execution::{ExecutionStatus, Outcome, SandboxSpec};
use slovo_core::install::{DockerDeferred, DockerFacts, InstallFacts};
use slovo_core::permissions::Narrowing;
use slovo_runtime::{Actor, ImportSource, Runtime, RuntimeSettings};
use slovo_sandbox::{Backend, BackendError, Backends, InstallRequest};
use slovo_server::{AppState, ServerConfig};
use slovo_store::{LISTENER_APPLICATION_NAME, Store};
use sqlx::{Connection, PgConnection, Row};
use tokio::sync::mpsc;

/// How often each runtime polls: far longer than the test waits for any change.
const POLL: Duration = Duration::from_secs(60);

/// How long a change may take to reach the other instance's session.
const BOUND: Duration = Duration::from_secs(2);

/// Echoes its arguments.
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

const ECHO: &str = r#"{
  "name": "echo", "version": "1.0.0", "description": "Echoes what it is told",
  "capabilities": [
    {"name": "say", "description": "Say something back", "read_only": true,
     "parameters": {"type": "object", "properties": {"text": {"type": "string"}},
                    "required": ["text"], "additionalProperties": false}}
  ],
  "execution": {"type": "docker", "image": "echo:1"}
}"#;

/// Reports each `notifications/tools/list_changed` with when it arrived.
#[derive(Clone)]
struct Recorder {
    changed: mpsc::UnboundedSender<Instant>,
}

impl ClientHandler for Recorder {
    async fn on_tool_list_changed(&self, _: NotificationContext<RoleClient>) {
        let _ = self.changed.send(Instant::now());
    }
}

async fn instance(url: &str, dir: &std::path::Path) -> Arc<Runtime> {
    Arc::new(
        Runtime::new(
            Store::connect(url).await.unwrap(),
            Backends::new().with(Arc::new(EchoBackend)),
            dir,
        )
        .with_settings(RuntimeSettings {
            change_poll_interval: POLL,
            ..RuntimeSettings::default()
        }),
    )
}

/// Serves `runtime` on a loopback port; returns its MCP URL.
async fn serve(runtime: &Arc<Runtime>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AppState::new(runtime.clone(), ServerConfig::default());
    tokio::spawn(slovo_server::serve(listener, state, std::future::pending()));
    format!("http://{addr}/mcp")
}

async fn session(
    url: &str,
    token: &str,
) -> (
    RunningService<RoleClient, Recorder>,
    mpsc::UnboundedReceiver<Instant>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url.to_string()).auth_header(token.to_string()),
    );
    (Recorder { changed: tx }.serve(transport).await.unwrap(), rx)
}

/// How long after `since` the session heard of a change; fails past [`BOUND`].
async fn heard(rx: &mut mpsc::UnboundedReceiver<Instant>, since: Instant, what: &str) -> Duration {
    let at = tokio::time::timeout(BOUND, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no tools/list_changed within {BOUND:?} after {what}"))
        .unwrap();
    at.saturating_duration_since(since)
}

async fn wait_listening(runtime: &Runtime) {
    let mut listening = runtime.change_feed_listening();
    tokio::time::timeout(Duration::from_secs(10), listening.wait_for(|l| *l))
        .await
        .expect("the change feed never started listening")
        .unwrap();
}

/// Kills every listening connection on the test database; returns how many.
async fn kill_listeners(admin: &mut PgConnection) -> i64 {
    sqlx::query(
        "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
         WHERE application_name = $1 AND datname = current_database()",
    )
    .bind(LISTENER_APPLICATION_NAME)
    .fetch_one(&mut *admin)
    .await
    .unwrap()
    .get("n")
}

/// Waits until a listening connection started after `since` (a database timestamp) is back.
async fn wait_listener_back(admin: &mut PgConnection, since: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let back: i64 = sqlx::query(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 \
             AND datname = current_database() AND backend_start > $2::timestamptz AND query LIKE 'LISTEN%'",
        )
        .bind(LISTENER_APPLICATION_NAME)
        .bind(since)
        .fetch_one(&mut *admin)
        .await
        .unwrap()
        .get("n");
        if back > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the listener did not reconnect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_through_one_instance_reaches_the_others_sessions_promptly() {
    let Some(url) = slovo_test_support::fresh_postgres_url().await else {
        eprintln!("skipped: PostgreSQL only, and SLOVO_TEST_SKIP_POSTGRES=1 is set");
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let actor = Actor("test".into());
    let a = instance(&url, &dir.path().join("a")).await;
    let b = instance(&url, &dir.path().join("b")).await;
    let token = b.create_token(Role::Agent, None, &actor).await.unwrap().token;
    let mcp = serve(&b).await;
    wait_listening(&b).await;
    let (client, mut changed) = session(&mcp, &token).await;
    assert_eq!(
        client.list_all_tools().await.unwrap().len(),
        1,
        "only slovo_resolve"
    );
    // B's resolve index is built before the tool exists, so it must follow the change.
    let before = b.resolve("say something back", 5, &actor).await.unwrap();
    assert!(before.resolution.candidates.iter().all(|c| c.tool != "echo"));
    // The legacy session subscribes after `initialized`.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut latencies = Vec::new();
    let report = a
        .import(
            ImportSource::Manifest {
                name: "echo.json".into(),
                bytes: ECHO.as_bytes().to_vec(),
            },
            &actor,
        )
        .await
        .unwrap();
    a.approve(&report.tool, &Narrowing::default(), &actor)
        .await
        .unwrap();
    let approved = Instant::now();
    latencies.push(heard(&mut changed, approved, "approval through A").await);
    let names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(names.contains(&"echo__say".to_string()), "{names:?}");
    let found = b.resolve("say something back", 5, &actor).await.unwrap();
    let best = found.resolution.candidates.first().expect("a candidate");
    assert_eq!((best.tool.as_str(), best.status.as_str()), ("echo", "active"));
    let call = b
        .call(slovo_runtime::CallRequest {
            tool: "echo".into(),
            capability: "say".into(),
            arguments: json!({"text": "hi"}),
            conversation_id: None,
            turn_id: None,
            actor: actor.clone(),
        })
        .await
        .unwrap();
    assert_eq!(call.status, ExecutionStatus::Success);

    // B cached a snapshot of echo for that call; disabling it through A reaches B's session.
    a.disable("echo", &actor).await.unwrap();
    let disabled = Instant::now();
    latencies.push(heard(&mut changed, disabled, "disable through A").await);
    assert_eq!(client.list_all_tools().await.unwrap().len(), 1);

    // The listening connection is killed; sqlx reconnects it, and it hears the next change.
    let mut admin = PgConnection::connect(&url).await.unwrap();
    let killed_at: String = sqlx::query("SELECT now()::text AS t")
        .fetch_one(&mut admin)
        .await
        .unwrap()
        .get("t");
    assert!(kill_listeners(&mut admin).await >= 1, "no listener to kill");
    wait_listener_back(&mut admin, &killed_at).await;
    // A reconnection counts as a change; what it sends (nothing here: the list is as it was)
    // must not be taken for the next one.
    tokio::time::sleep(Duration::from_millis(200)).await;
    while changed.try_recv().is_ok() {}
    a.enable("echo", &actor).await.unwrap();
    let enabled = Instant::now();
    latencies.push(heard(&mut changed, enabled, "enable through A after the kill").await);
    assert_eq!(client.list_all_tools().await.unwrap().len(), 2);

    eprintln!("tools/list_changed on B after a change committed through A: {latencies:?}");
    client.cancel().await.unwrap();
}
