//! Upgrades that change what runs, against SQLite and PostgreSQL: a new program (command,
//! bundle, image, `base_url`, credential header) inside the same grant waits for approval when
//! the tool could send something out (a network grant or secrets), and the serving version
//! keeps serving meanwhile.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use slovo_core::execution::{ExecutionStatus, Outcome, SandboxSpec};
use slovo_core::install::{DockerDeferred, DockerFacts, DockerPinned, InstallFacts};
use slovo_core::lifecycle::ToolStatus;
use slovo_core::permissions::Narrowing;
use slovo_runtime::{Actor, CallRequest, ImportOutcome, ImportReport, ImportSource, Runtime};
use slovo_sandbox::http::{HttpBackend, HttpConfig};
use slovo_sandbox::{Backend, BackendError, Backends, InstallRequest};
use slovo_test_support::test_dbs;
use zeroize::Zeroizing;

const KEY: &str = "key-0b7e41d2c9";

fn actor() -> Actor {
    Actor("test".into())
}

fn call(tool: &str, cap: &str) -> CallRequest {
    CallRequest {
        tool: tool.into(),
        capability: cap.into(),
        arguments: json!({}),
        conversation_id: None,
        turn_id: None,
        actor: actor(),
    }
}

fn fields(changes: &[slovo_core::upgrade::Change]) -> Vec<&'static str> {
    changes.iter().map(|c| c.field).collect()
}

/// The payload of the last audit event.
async fn last_event(rt: &Runtime) -> (String, Value) {
    let page = rt.store().audit_page(0, 10_000).await.unwrap();
    let e = page.last().unwrap();
    (e.kind.clone(), serde_json::from_str(&e.payload).unwrap())
}

/// A loopback HTTP server that answers every request with `{"server": name}` and keeps each
/// request's head. It serves at most 64 requests.
fn server(name: &'static str) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65_536 {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            seen.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&head).to_lowercase());
            let body = json!({"server": name}).to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, heads)
}

fn http_tool(version: &str, base_url: &str, auth_header: &str) -> ImportSource {
    let text = json!({
        "name": "weather",
        "version": version,
        "description": "The weather now",
        "capabilities": [{"name": "now", "description": "The weather now",
                          "parameters": {"type": "object"}, "endpoint": "/now", "method": "GET"}],
        "permissions": {"network_allow": ["localhost"], "timeout_s": 10},
        "api_requirements": {"base_url": base_url, "auth_type": "api_key", "auth_header": auth_header},
        "execution": {"type": "http"}
    });
    ImportSource::Manifest {
        name: format!("weather-{version}.json"),
        bytes: text.to_string().into_bytes(),
    }
}

fn http_runtime(db: &slovo_test_support::TestDb, store: slovo_store::Store) -> Runtime {
    let http = HttpBackend::new(HttpConfig {
        allow_private_addresses: true,
        ..HttpConfig::default()
    });
    Runtime::new(
        store,
        Backends::new().with(Arc::new(http)),
        db.dir.path().join("data"),
    )
}

/// The attack: a new version of an HTTP tool holding a credential points `base_url` at
/// another server inside the same grant (`localhost`, any port). Without the rule it
/// activated at once and the next call sent the credential to the new server. It must wait
/// for approval, the old server must keep getting the calls, and the proposal must say what
/// changed; approving it then switches the server under the grant given at approval.
#[tokio::test]
async fn a_new_base_url_inside_the_grant_waits_and_the_credential_stays_put() {
    let (old_port, old_heads) = server("old");
    let (new_port, new_heads) = server("new");
    let old_url = format!("http://localhost:{old_port}");
    let new_url = format!("http://localhost:{new_port}");
    for db in test_dbs().await {
        let label = db.label;
        let rt = http_runtime(&db, db.store().await);
        old_heads.lock().unwrap().clear();
        new_heads.lock().unwrap().clear();

        rt.import(http_tool("1.0.0", &old_url, "X-Key"), &actor())
            .await
            .unwrap();
        rt.approve("weather", &Narrowing::default(), &actor())
            .await
            .unwrap();
        rt.set_secret("weather", "api_key", Zeroizing::new(KEY.into()), &actor())
            .await
            .unwrap();
        let exec = rt.call(call("weather", "now")).await.unwrap();
        assert_eq!(exec.status, ExecutionStatus::Success, "{label}: {exec:?}");
        assert_eq!(exec.output.unwrap()["body"]["server"], "old");

        let r = rt
            .import(http_tool("1.1.0", &new_url, "X-Key"), &actor())
            .await
            .unwrap();
        assert_eq!(r.outcome, ImportOutcome::UpgradePending, "{label}: {r:?}");
        assert_eq!(r.status, ToolStatus::Active);
        assert_eq!(r.widenings, vec![], "{label}: the grant covers both servers");
        assert_eq!(fields(&r.changes), vec!["api_requirements.base_url"]);
        assert_eq!(r.changes[0].serving.as_deref(), Some(old_url.as_str()));
        assert_eq!(r.changes[0].proposed.as_deref(), Some(new_url.as_str()));
        let (kind, payload) = last_event(&rt).await;
        assert_eq!(kind, "tool.upgrade_pending");
        assert_eq!(payload["changes"][0]["field"], "api_requirements.base_url");

        // The serving version keeps serving, and the credential goes where it went before.
        let exec = rt.call(call("weather", "now")).await.unwrap();
        assert_eq!(exec.version, "1.0.0", "{label}");
        assert_eq!(exec.output.unwrap()["body"]["server"], "old", "{label}");
        assert!(
            new_heads.lock().unwrap().is_empty(),
            "{label}: the new server was contacted before approval"
        );
        let old = old_heads.lock().unwrap().clone();
        assert_eq!(old.len(), 2, "{label}");
        assert!(
            old.iter().all(|h| h.contains(&format!("x-key: {KEY}"))),
            "{label}"
        );

        // The proposal shows the change (the REST view is this struct as JSON).
        let view = rt.show("weather").await.unwrap();
        assert_eq!(view.pending_version.as_deref(), Some("1.1.0"));
        assert_eq!(fields(&view.pending_changes), vec!["api_requirements.base_url"]);
        let rest = serde_json::to_value(&view).unwrap();
        assert_eq!(rest["pending_changes"][0]["proposed"], new_url.as_str());

        // Approval with a narrower grant activates it under that grant.
        let narrowing = Narrowing {
            timeout_s: Some(5),
            ..Narrowing::default()
        };
        let row = rt.approve("weather", &narrowing, &actor()).await.unwrap();
        assert_eq!(row.status, ToolStatus::Active);
        assert_eq!(row.active_version.as_deref(), Some("1.1.0"));
        let view = rt.show("weather").await.unwrap();
        assert_eq!(view.granted.unwrap().timeout_s, 5);
        assert_eq!(view.pending_changes, vec![]);
        let exec = rt.call(call("weather", "now")).await.unwrap();
        assert_eq!(exec.version, "1.1.0");
        assert_eq!(exec.output.unwrap()["body"]["server"], "new", "{label}");
        assert_eq!(new_heads.lock().unwrap().len(), 1, "{label}");
        rt.verify_audit().await.unwrap();
    }
}

/// Moving the credential to another header waits too (another header can be what a
/// different service behind the same host reads, or logs); the old header keeps being sent.
#[tokio::test]
async fn a_new_credential_header_waits() {
    let (port, heads) = server("api");
    let url = format!("http://localhost:{port}");
    for db in test_dbs().await {
        let label = db.label;
        let rt = http_runtime(&db, db.store().await);
        heads.lock().unwrap().clear();
        rt.import(http_tool("1.0.0", &url, "X-Key"), &actor())
            .await
            .unwrap();
        rt.approve("weather", &Narrowing::default(), &actor())
            .await
            .unwrap();
        rt.set_secret("weather", "api_key", Zeroizing::new(KEY.into()), &actor())
            .await
            .unwrap();
        let r = rt
            .import(http_tool("1.1.0", &url, "X-Forward-Me"), &actor())
            .await
            .unwrap();
        assert_eq!(r.outcome, ImportOutcome::UpgradePending, "{label}: {r:?}");
        assert_eq!(fields(&r.changes), vec!["api_requirements.auth_header"]);
        let exec = rt.call(call("weather", "now")).await.unwrap();
        assert_eq!(exec.version, "1.0.0", "{label}");
        let seen = heads.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "{label}");
        assert!(seen[0].contains(&format!("x-key: {KEY}")), "{label}");
        assert!(!seen[0].contains("x-forward-me"), "{label}");
    }
}

/// Records installs and calls, for tools whose backend cannot run here; answers with the
/// version and execution it was handed.
struct Recording {
    kind: &'static str,
    installs: Mutex<Vec<String>>,
    /// The image id an install pins, as a Docker install would (none: no `image_id`).
    pin: Mutex<Option<String>>,
}

impl Recording {
    fn new(kind: &'static str) -> Arc<Recording> {
        Arc::new(Recording {
            kind,
            installs: Mutex::new(Vec::new()),
            pin: Mutex::new(None),
        })
    }
    fn installed(&self) -> Vec<String> {
        self.installs.lock().unwrap().clone()
    }
}

#[async_trait]
impl Backend for Recording {
    fn kind(&self) -> &'static str {
        self.kind
    }
    async fn install(&self, r: &InstallRequest) -> Result<InstallFacts, BackendError> {
        self.installs.lock().unwrap().push(r.version.clone());
        // As a Docker install records it: the image id pinned, or why none was.
        Ok(InstallFacts::Docker(match self.pin.lock().unwrap().clone() {
            Some(id) => DockerFacts::Pinned(DockerPinned {
                image: "test".into(),
                image_id: id,
                repo_digests: vec![],
                entrypoint: None,
                user: format!("installed {}", r.version),
            }),
            None => DockerFacts::Deferred(DockerDeferred {
                image: "test".into(),
                entrypoint: None,
                reason: format!("installed {}", r.version),
            }),
        }))
    }
    async fn run(&self, spec: &SandboxSpec) -> Outcome {
        Outcome {
            status: ExecutionStatus::Success,
            output: Some(json!({"version": spec.version, "execution": spec.execution,
                                "install": spec.install_info})),
            exit_code: Some(0),
            ..Outcome::default()
        }
    }
}

fn docker_tool(version: &str, image: &str) -> ImportSource {
    let text = json!({
        "name": "dict",
        "version": version,
        "description": "Definitions",
        "capabilities": [{"name": "define", "description": "Define a word", "parameters": {"type": "object"}}],
        "permissions": {"network_allow": ["api.example.org"]},
        "execution": {"type": "docker", "image": image}
    });
    ImportSource::Manifest {
        name: format!("dict-{version}.json"),
        bytes: text.to_string().into_bytes(),
    }
}

/// A networked Docker tool whose new version names another image waits, and nothing of the
/// new image is installed (pulled, inspected) before approval.
#[tokio::test]
async fn a_new_docker_image_of_a_networked_tool_waits_uninstalled() {
    for db in test_dbs().await {
        let label = db.label;
        let backend = Recording::new("docker");
        let rt = Runtime::new(
            db.store().await,
            Backends::new().with(backend.clone()),
            db.dir.path().join("data"),
        );
        rt.import(docker_tool("1.0.0", "example/dict:1"), &actor())
            .await
            .unwrap();
        rt.approve("dict", &Narrowing::default(), &actor()).await.unwrap();
        assert_eq!(backend.installed(), vec!["1.0.0"]);

        let r = rt
            .import(docker_tool("1.1.0", "evil/dict:1"), &actor())
            .await
            .unwrap();
        assert_eq!(r.outcome, ImportOutcome::UpgradePending, "{label}: {r:?}");
        assert_eq!(fields(&r.changes), vec!["execution.image"]);
        assert_eq!(
            backend.installed(),
            vec!["1.0.0"],
            "{label}: installed before approval"
        );
        let exec = rt.call(call("dict", "define")).await.unwrap();
        assert_eq!(exec.version, "1.0.0", "{label}");
        assert_eq!(exec.output.unwrap()["execution"]["image"], "example/dict:1");

        rt.approve("dict", &Narrowing::default(), &actor()).await.unwrap();
        assert_eq!(backend.installed(), vec!["1.0.0", "1.1.0"], "{label}");
        let exec = rt.call(call("dict", "define")).await.unwrap();
        assert_eq!(exec.version, "1.1.0", "{label}");
        assert_eq!(exec.output.unwrap()["execution"]["image"], "evil/dict:1");

        // Same image, new version: in place, installed first, and its install record kept
        // (calls run from it).
        let r = rt
            .import(docker_tool("1.2.0", "evil/dict:1"), &actor())
            .await
            .unwrap();
        assert_eq!(r.outcome, ImportOutcome::UpgradedInPlace, "{label}: {r:?}");
        assert_eq!(r.changes, vec![]);
        assert_eq!(backend.installed(), vec!["1.0.0", "1.1.0", "1.2.0"]);
        let v = rt.store().version("dict", "1.2.0").await.unwrap().unwrap();
        assert_eq!(
            v.install_info.as_ref().and_then(InstallFacts::deferred),
            Some("installed 1.2.0"),
            "{label}"
        );
        rt.verify_audit().await.unwrap();
    }
}

/// The same image reference naming other content (the tag moved to another image, which the
/// install pins) is a new program too: the new version waits, the serving one keeps running
/// its own pinned image.
#[tokio::test]
async fn the_same_image_reference_pinned_to_other_content_waits() {
    for db in test_dbs().await {
        let label = db.label;
        let backend = Recording::new("docker");
        *backend.pin.lock().unwrap() = Some("sha256:aaaa".into());
        let rt = Runtime::new(
            db.store().await,
            Backends::new().with(backend.clone()),
            db.dir.path().join("data"),
        );
        rt.import(docker_tool("1.0.0", "example/dict:1"), &actor())
            .await
            .unwrap();
        rt.approve("dict", &Narrowing::default(), &actor()).await.unwrap();

        *backend.pin.lock().unwrap() = Some("sha256:bbbb".into());
        let r = rt
            .import(docker_tool("1.1.0", "example/dict:1"), &actor())
            .await
            .unwrap();
        assert_eq!(r.outcome, ImportOutcome::UpgradePending, "{label}: {r:?}");
        assert_eq!(fields(&r.changes), vec!["image_id"]);
        assert_eq!(r.changes[0].serving.as_deref(), Some("sha256:aaaa"));
        assert_eq!(r.changes[0].proposed.as_deref(), Some("sha256:bbbb"));
        let view = rt.show("dict").await.unwrap();
        assert_eq!(fields(&view.pending_changes), vec!["image_id"], "{label}");
        let exec = rt.call(call("dict", "define")).await.unwrap();
        assert_eq!(exec.version, "1.0.0", "{label}");
        assert_eq!(exec.output.unwrap()["install"]["image_id"], "sha256:aaaa");

        rt.approve("dict", &Narrowing::default(), &actor()).await.unwrap();
        let exec = rt.call(call("dict", "define")).await.unwrap();
        assert_eq!(exec.version, "1.1.0", "{label}");
        assert_eq!(exec.output.unwrap()["install"]["image_id"], "sha256:bbbb");
        rt.verify_audit().await.unwrap();
    }
}

/// Writes a process bundle for `tool` at `dir`: its manifest (with `network_allow` hosts) and
/// a script printing `body`.
fn process_bundle(dir: &Path, tool: &str, version: &str, command: &str, hosts: &[&str], body: &str) {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    let manifest = json!({
        "name": tool, "version": version, "description": "A bundled tool",
        "capabilities": [{"name": "run", "description": "Run", "parameters": {"type": "object"}}],
        "permissions": {"network_allow": hosts},
        "execution": {"type": "process", "command": [command], "system_paths": true}
    });
    std::fs::write(dir.join("slovo.json"), manifest.to_string()).unwrap();
    for script in ["bin/tool", "bin/other"] {
        let p = dir.join(script);
        std::fs::write(&p, format!("#!/bin/sh\necho '{body}'\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// A networked process tool: new code in the bundle waits, and so does another command.
#[tokio::test]
async fn new_code_or_command_of_a_networked_process_tool_waits() {
    for db in test_dbs().await {
        let label = db.label;
        let backend = Recording::new("process");
        let rt = Runtime::new(
            db.store().await,
            Backends::new().with(backend.clone()),
            db.dir.path().join("data"),
        );
        let src = tempfile::tempdir().unwrap();
        let b1 = src.path().join("v1");
        process_bundle(&b1, "fetch", "1.0.0", "bin/tool", &["api.example.org"], "{}");
        rt.import(ImportSource::Bundle(b1), &actor()).await.unwrap();
        rt.approve("fetch", &Narrowing::default(), &actor())
            .await
            .unwrap();

        // Same command, other code.
        let b2 = src.path().join("v2");
        process_bundle(
            &b2,
            "fetch",
            "1.1.0",
            "bin/tool",
            &["api.example.org"],
            "{\"x\":1}",
        );
        let r = rt.import(ImportSource::Bundle(b2), &actor()).await.unwrap();
        assert_eq!(r.outcome, ImportOutcome::UpgradePending, "{label}: {r:?}");
        assert_eq!(fields(&r.changes), vec!["bundle"]);
        assert_eq!(backend.installed(), vec!["1.0.0"], "{label}");
        let exec = rt.call(call("fetch", "run")).await.unwrap();
        assert_eq!(exec.version, "1.0.0", "{label}");

        // Another command (replacing the pending version): still compared with the serving one.
        let b3 = src.path().join("v3");
        process_bundle(&b3, "fetch", "1.2.0", "bin/other", &["api.example.org"], "{}");
        let r = rt.import(ImportSource::Bundle(b3), &actor()).await.unwrap();
        assert_eq!(r.outcome, ImportOutcome::UpgradePending, "{label}: {r:?}");
        assert_eq!(fields(&r.changes), vec!["execution.command", "bundle"]);
        let view = rt.show("fetch").await.unwrap();
        assert_eq!(fields(&view.pending_changes), vec!["execution.command", "bundle"]);
        let exec = rt.call(call("fetch", "run")).await.unwrap();
        assert_eq!(exec.version, "1.0.0", "{label}");

        rt.approve("fetch", &Narrowing::default(), &actor())
            .await
            .unwrap();
        let exec = rt.call(call("fetch", "run")).await.unwrap();
        assert_eq!(exec.version, "1.2.0", "{label}");
        rt.verify_audit().await.unwrap();
    }
}

/// A tool with no network and no secrets takes new code at once (it can reach nothing the
/// old code could not), with the change on the record; once it holds a secret, new code
/// waits like a networked tool's.
#[tokio::test]
async fn new_code_of_a_sealed_tool_activates_until_it_holds_a_secret() {
    for db in test_dbs().await {
        let label = db.label;
        let backend = Recording::new("process");
        let rt = Runtime::new(
            db.store().await,
            Backends::new().with(backend.clone()),
            db.dir.path().join("data"),
        );
        let src = tempfile::tempdir().unwrap();
        let b1 = src.path().join("v1");
        process_bundle(&b1, "count", "1.0.0", "bin/tool", &[], "{}");
        rt.import(ImportSource::Bundle(b1), &actor()).await.unwrap();
        rt.approve("count", &Narrowing::default(), &actor())
            .await
            .unwrap();

        let b2 = src.path().join("v2");
        process_bundle(&b2, "count", "1.1.0", "bin/other", &[], "{\"n\":2}");
        let r: ImportReport = rt.import(ImportSource::Bundle(b2), &actor()).await.unwrap();
        assert_eq!(r.outcome, ImportOutcome::UpgradedInPlace, "{label}: {r:?}");
        assert_eq!(fields(&r.changes), vec!["execution.command", "bundle"]);
        let (kind, payload) = last_event(&rt).await;
        assert_eq!(kind, "tool.upgraded");
        assert_eq!(payload["changes"][1]["field"], "bundle");
        assert_eq!(backend.installed(), vec!["1.0.0", "1.1.0"], "{label}");
        let exec = rt.call(call("count", "run")).await.unwrap();
        assert_eq!(exec.version, "1.1.0", "{label}");

        // A secret makes the tool one that could send something out (in its answer).
        rt.set_secret("count", "token", Zeroizing::new(KEY.into()), &actor())
            .await
            .unwrap();
        let b3 = src.path().join("v3");
        process_bundle(&b3, "count", "1.2.0", "bin/other", &[], "{\"n\":3}");
        let r = rt.import(ImportSource::Bundle(b3), &actor()).await.unwrap();
        assert_eq!(r.outcome, ImportOutcome::UpgradePending, "{label}: {r:?}");
        assert_eq!(fields(&r.changes), vec!["bundle"]);
        let exec = rt.call(call("count", "run")).await.unwrap();
        assert_eq!(exec.version, "1.1.0", "{label}");
        rt.verify_audit().await.unwrap();
    }
}
