//! The runtime's lifecycle, call path and audit trail, against SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use slovo_core::execution::{ExecutionStatus, NetworkPolicy, Outcome, SandboxSpec};
use slovo_core::install::{DockerDeferred, DockerFacts, InstallFacts};
use slovo_core::lifecycle::ToolStatus;
use slovo_core::permissions::{HostPattern, Narrowing};
use slovo_runtime::ExecutionFilter;
use slovo_runtime::{Actor, ErrorKind, ImportOutcome, ImportSource, Runtime, RuntimeError};
use slovo_sandbox::{Backend, BackendError, Backends, InstallRequest};
use slovo_store::Store;
use slovo_test_support::test_dbs;

/// A backend that runs nothing: it records the spec it was handed and echoes it back, so tests
/// can see exactly what a real sandbox would have been told.
#[derive(Default)]
struct RecordingBackend {
    specs: Mutex<Vec<SandboxSpec>>,
    installs: Mutex<Vec<String>>,
}

#[async_trait]
impl Backend for RecordingBackend {
    fn kind(&self) -> &'static str {
        "docker"
    }
    async fn install(&self, r: &InstallRequest) -> Result<InstallFacts, BackendError> {
        self.installs
            .lock()
            .unwrap()
            .push(format!("{} {}", r.tool, r.version));
        Ok(InstallFacts::Docker(DockerFacts::Deferred(DockerDeferred {
            image: "test".into(),
            entrypoint: None,
            reason: format!("installed {}", r.version),
        })))
    }
    async fn run(&self, spec: &SandboxSpec) -> Outcome {
        self.specs.lock().unwrap().push(spec.clone());
        let fail = spec.request["arguments"]["fail"].as_bool().unwrap_or(false);
        if let Some(key) = spec.secrets.get("api_key") {
            // A careless tool that echoes its credential everywhere.
            return Outcome {
                status: ExecutionStatus::Failure,
                output: Some(json!({"used_key": key, "note": format!("sent {key}")})),
                stderr: format!("debug: key={key}\n"),
                error: Some(format!("upstream rejected {key}")),
                exit_code: Some(1),
                ..Outcome::default()
            };
        }
        Outcome {
            status: if fail {
                ExecutionStatus::Failure
            } else {
                ExecutionStatus::Success
            },
            output: Some(json!({"version": spec.version, "echo": spec.request["arguments"]})),
            exit_code: Some(if fail { 1 } else { 0 }),
            cpu_ms: Some(3),
            peak_memory_bytes: Some(1 << 20),
            sandbox_id: Some(format!("test-{}", spec.execution_id)),
            ..Outcome::default()
        }
    }
}

fn shared_manifests() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/manifests")
}

fn tool_manifest(version: &str, memory: u64, hosts: &[&str]) -> ImportSource {
    let text = json!({
        "name": "echo",
        "version": version,
        "description": "Echoes its arguments",
        "capabilities": [{
            "name": "say",
            "description": "Say something",
            "parameters": {"type": "object", "required": ["text"],
                           "properties": {"text": {"type": "string", "maxLength": 100}, "fail": {"type": "boolean"}},
                           "additionalProperties": false}
        }],
        "permissions": {"memory_limit_mb": memory, "cpu_limit_percent": 40, "network_allow": hosts, "storage_quota_mb": 10},
        "execution": {"type": "docker", "image": "slovo-test/echo:1"}
    });
    ImportSource::Manifest {
        name: format!("echo-{version}.json"),
        bytes: text.to_string().into_bytes(),
    }
}

struct Harness {
    rt: Runtime,
    backend: Arc<RecordingBackend>,
    label: &'static str,
    url: String,
    data_dir: PathBuf,
    _dir: tempfile::TempDir,
}

async fn harnesses() -> Vec<Harness> {
    let mut out = Vec::new();
    for db in test_dbs().await {
        let store: Store = db.store().await;
        let backend = Arc::new(RecordingBackend::default());
        let rt = Runtime::new(
            store,
            Backends::new().with(backend.clone()),
            db.dir.path().join("data"),
        );
        out.push(Harness {
            rt,
            backend,
            label: db.label,
            url: db.url.clone(),
            data_dir: db.dir.path().join("data"),
            _dir: db.dir,
        });
    }
    out
}

fn actor() -> Actor {
    Actor("test".into())
}

fn call(tool: &str, cap: &str, args: Value) -> slovo_runtime::CallRequest {
    slovo_runtime::CallRequest {
        tool: tool.into(),
        capability: cap.into(),
        arguments: args,
        conversation_id: Some("conv-1".into()),
        turn_id: Some("turn-1".into()),
        actor: actor(),
    }
}

#[tokio::test]
async fn shared_manifests_import_unchanged_and_show_what_they_request() {
    for h in harnesses().await {
        for file in [
            "unit-converter.yaml",
            "air-quality.yaml",
            "dictionary.manifest.json",
        ] {
            let path = shared_manifests().join(file);
            let bytes = std::fs::read(&path).unwrap();
            let report =
                h.rt.import(
                    ImportSource::Manifest {
                        name: path.display().to_string(),
                        bytes,
                    },
                    &actor(),
                )
                .await
                .unwrap_or_else(|e| panic!("{}: {file}: {e}", h.label));
            assert_eq!(report.outcome, ImportOutcome::New);
            assert_eq!(report.status, ToolStatus::PendingApproval);
        }
        let conv = h.rt.show("unit-converter").await.unwrap();
        assert_eq!(conv.requested.storage_quota_mb, 5);
        assert_eq!(conv.requested.cpu_limit_percent, 20);
        assert_eq!(conv.requested.memory_limit_mb, 64);
        assert!(!conv.requested.internet_access);
        assert_eq!(conv.manifest["capabilities"].as_array().unwrap().len(), 2);
        assert!(conv.manifest.get("execution").is_none());

        let air = h.rt.show("air-quality").await.unwrap();
        assert!(air.requested.internet_access);
        assert_eq!(air.requested.storage_quota_mb, 20);
        assert_eq!(air.requested.memory_limit_mb, 128);
        assert_eq!(air.manifest["execution"], json!({"type": "http"}));
        assert_eq!(air.manifest["api_requirements"]["auth_header"], "X-Api-Key");

        let dict = h.rt.show("dictionary").await.unwrap();
        assert!(!dict.requested.internet_access);
        assert_eq!(
            dict.requested.network_allow,
            vec!["api.dictionary.example.org".parse::<HostPattern>().unwrap()]
        );
        assert_eq!(dict.requested.storage_quota_mb, 50);
        assert_eq!(dict.requested.memory_limit_mb, 128);
        assert_eq!(dict.requested.cpu_limit_percent, 25);
        assert_eq!(dict.requested.timeout_s, 20);
        assert_eq!(dict.manifest["execution"]["image"], "example/dictionary:2.0.0");
        assert_eq!(
            dict.manifest["tags"],
            json!(["definitions", "synonyms", "language"])
        );

        // Importing the same file again changes nothing.
        let bytes = std::fs::read(shared_manifests().join("unit-converter.yaml")).unwrap();
        let again =
            h.rt.import(
                ImportSource::Manifest {
                    name: "again.yaml".into(),
                    bytes,
                },
                &actor(),
            )
            .await
            .unwrap();
        assert_eq!(again.outcome, ImportOutcome::Unchanged);
        h.rt.verify_audit().await.unwrap();
    }
}

#[tokio::test]
async fn narrowed_grants_not_requests_reach_the_sandbox() {
    for h in harnesses().await {
        h.rt.import(tool_manifest("1.0.0", 256, &["*.example.org"]), &actor())
            .await
            .unwrap();
        let narrowing = Narrowing {
            memory_limit_mb: Some(64),
            cpu_limit_percent: Some(20),
            storage_quota_mb: Some(5),
            network_allow: Some(vec!["api.example.org".parse().unwrap()]),
            timeout_s: Some(7),
            pids_limit: Some(16),
            ..Narrowing::default()
        };
        let tool = h.rt.approve("echo", &narrowing, &actor()).await.unwrap();
        assert_eq!(tool.status, ToolStatus::Active, "{}", h.label);
        let exec =
            h.rt.call(call("echo", "say", json!({"text": "hi"})))
                .await
                .unwrap();
        assert_eq!(exec.status, ExecutionStatus::Success);
        assert_eq!(
            exec.output,
            Some(json!({"version": "1.0.0", "echo": {"text": "hi"}}))
        );
        assert_eq!(exec.conversation_id.as_deref(), Some("conv-1"));
        assert_eq!(exec.cpu_ms, Some(3));

        let spec = h.backend.specs.lock().unwrap().last().cloned().unwrap();
        assert_eq!(spec.limits.memory_mb, 64);
        assert_eq!(spec.limits.cpu_percent, 20);
        assert_eq!(spec.limits.storage_mb, 5);
        assert_eq!(spec.limits.pids, 16);
        assert_eq!(spec.limits.timeout.as_secs(), 7);
        assert_eq!(
            spec.network,
            NetworkPolicy::AllowList {
                hosts: vec!["api.example.org".parse().unwrap()]
            }
        );
        assert_eq!(
            spec.request,
            json!({"capability": "say", "arguments": {"text": "hi"}})
        );

        // --no-network takes the network away entirely.
        h.rt.import(tool_manifest("1.1.0", 256, &["*.example.org"]), &actor())
            .await
            .unwrap();
        h.rt.revoke("echo", false, &actor()).await.unwrap();
        h.rt.import(tool_manifest("1.2.0", 256, &["*.example.org"]), &actor())
            .await
            .unwrap();
        h.rt.approve(
            "echo",
            &Narrowing {
                no_network: true,
                ..Narrowing::default()
            },
            &actor(),
        )
        .await
        .unwrap();
        h.rt.call(call("echo", "say", json!({"text": "x"})))
            .await
            .unwrap();
        let spec = h.backend.specs.lock().unwrap().last().cloned().unwrap();
        assert_eq!(spec.network, NetworkPolicy::None);
        assert_eq!(spec.limits.memory_mb, 256);

        // Granting more than requested is refused.
        h.rt.import(tool_manifest("1.3.0", 512, &[]), &actor())
            .await
            .unwrap();
        let err =
            h.rt.approve(
                "echo",
                &Narrowing {
                    memory_limit_mb: Some(4096),
                    ..Narrowing::default()
                },
                &actor(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }
}

#[tokio::test]
async fn wider_upgrade_waits_for_approval_while_the_old_version_serves() {
    for h in harnesses().await {
        h.rt.import(tool_manifest("1.0.0", 128, &[]), &actor())
            .await
            .unwrap();
        h.rt.approve("echo", &Narrowing::default(), &actor())
            .await
            .unwrap();

        // Asks for no more: upgraded in place.
        let r =
            h.rt.import(tool_manifest("1.1.0", 64, &[]), &actor())
                .await
                .unwrap();
        assert_eq!(r.outcome, ImportOutcome::UpgradedInPlace, "{}", h.label);
        let exec =
            h.rt.call(call("echo", "say", json!({"text": "a"})))
                .await
                .unwrap();
        assert_eq!(exec.version, "1.1.0");
        assert!(
            h.backend
                .installs
                .lock()
                .unwrap()
                .contains(&"echo 1.1.0".to_string())
        );

        // Asks for more memory and a host: pending, 1.1.0 keeps serving.
        let r =
            h.rt.import(tool_manifest("2.0.0", 1024, &["api.example.org"]), &actor())
                .await
                .unwrap();
        assert_eq!(r.outcome, ImportOutcome::UpgradePending);
        assert_eq!(r.status, ToolStatus::Active);
        let fields: Vec<_> = r.widenings.iter().map(|w| w.field).collect();
        assert_eq!(fields, vec!["network_allow", "memory_limit_mb"]);
        let exec =
            h.rt.call(call("echo", "say", json!({"text": "b"})))
                .await
                .unwrap();
        assert_eq!(exec.version, "1.1.0");
        assert_eq!(
            h.backend.specs.lock().unwrap().last().unwrap().limits.memory_mb,
            128
        );
        let view = h.rt.show("echo").await.unwrap();
        assert_eq!(view.pending_version.as_deref(), Some("2.0.0"));
        assert_eq!(view.pending_widenings.len(), 2);
        let states: Vec<_> = view
            .versions
            .iter()
            .map(|v| (v.version.as_str(), v.state))
            .collect();
        assert_eq!(
            states,
            vec![
                ("1.0.0", "superseded"),
                ("1.1.0", "active"),
                ("2.0.0", "pending_approval")
            ]
        );

        // An older version is refused; the same version with other content too.
        let err =
            h.rt.import(tool_manifest("1.0.5", 64, &[]), &actor())
                .await
                .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
        let err =
            h.rt.import(tool_manifest("2.0.0", 999, &[]), &actor())
                .await
                .unwrap_err();
        assert!(err.to_string().contains("different content"), "{err}");

        // Approval switches the serving version.
        h.rt.approve("echo", &Narrowing::default(), &actor())
            .await
            .unwrap();
        let exec =
            h.rt.call(call("echo", "say", json!({"text": "c"})))
                .await
                .unwrap();
        assert_eq!(exec.version, "2.0.0");
        assert_eq!(
            h.backend.specs.lock().unwrap().last().unwrap().limits.memory_mb,
            1024
        );
        h.rt.verify_audit().await.unwrap();
    }
}

/// Each refused call returns a clear error and leaves the database exactly as it was.
#[tokio::test]
async fn refused_calls_leave_the_database_untouched() {
    for h in harnesses().await {
        h.rt.import(tool_manifest("1.0.0", 128, &[]), &actor())
            .await
            .unwrap();
        let bytes = std::fs::read(shared_manifests().join("unit-converter.yaml")).unwrap();
        h.rt.import(
            ImportSource::Manifest {
                name: "unit-converter.yaml".into(),
                bytes,
            },
            &actor(),
        )
        .await
        .unwrap();

        let check = |expected: ErrorKind, needle: &'static str| {
            move |r: Result<slovo_runtime::ExecutionView, RuntimeError>| {
                let err = r.expect_err("call should be refused");
                assert_eq!(err.kind(), expected, "{err}");
                assert!(err.to_string().contains(needle), "{err} should mention {needle}");
            }
        };
        let before = h.rt.store().dump().await.unwrap();
        check(ErrorKind::InvalidState, "pending_approval")(
            h.rt.call(call("echo", "say", json!({"text": "a"}))).await,
        );
        check(ErrorKind::NotFound, "nope")(h.rt.call(call("nope", "say", json!({}))).await);
        assert_eq!(before, h.rt.store().dump().await.unwrap(), "{}", h.label);

        h.rt.approve("echo", &Narrowing::default(), &actor())
            .await
            .unwrap();
        h.rt.approve("unit-converter", &Narrowing::default(), &actor())
            .await
            .unwrap();
        let before = h.rt.store().dump().await.unwrap();
        check(ErrorKind::InvalidInput, "/text")(h.rt.call(call("echo", "say", json!({"text": 5}))).await);
        check(ErrorKind::InvalidInput, "required")(h.rt.call(call("echo", "say", json!({}))).await);
        check(ErrorKind::InvalidInput, "Additional properties")(
            h.rt.call(call("echo", "say", json!({"text": "a", "rm": "-rf"})))
                .await,
        );
        check(ErrorKind::InvalidInput, "longer")(
            h.rt.call(call("echo", "say", json!({"text": "x".repeat(101)})))
                .await,
        );
        check(ErrorKind::NotFound, "echo.shout")(
            h.rt.call(call("echo", "shout", json!({"text": "a"}))).await,
        );
        check(ErrorKind::InvalidState, "no execution section")(
            h.rt.call(call(
                "unit-converter",
                "convert_length",
                json!({"value": 1, "from": "m", "to": "cm"}),
            ))
            .await,
        );
        assert_eq!(before, h.rt.store().dump().await.unwrap(), "{}", h.label);

        h.rt.disable("echo", &actor()).await.unwrap();
        let before = h.rt.store().dump().await.unwrap();
        check(ErrorKind::InvalidState, "disabled")(
            h.rt.call(call("echo", "say", json!({"text": "a"}))).await,
        );
        assert_eq!(before, h.rt.store().dump().await.unwrap());
        h.rt.enable("echo", &actor()).await.unwrap();
        h.rt.call(call("echo", "say", json!({"text": "back"})))
            .await
            .unwrap();

        h.rt.revoke("echo", false, &actor()).await.unwrap();
        let before = h.rt.store().dump().await.unwrap();
        check(ErrorKind::InvalidState, "revoked")(h.rt.call(call("echo", "say", json!({"text": "a"}))).await);
        assert_eq!(before, h.rt.store().dump().await.unwrap());
    }
}

#[tokio::test]
async fn expired_grants_stop_calls() {
    for h in harnesses().await {
        h.rt.import(tool_manifest("1.0.0", 128, &[]), &actor())
            .await
            .unwrap();
        let soon = chrono::Utc::now() + chrono::Duration::milliseconds(300);
        h.rt.approve(
            "echo",
            &Narrowing {
                expires_at: Some(soon),
                ..Narrowing::default()
            },
            &actor(),
        )
        .await
        .unwrap();
        h.rt.call(call("echo", "say", json!({"text": "in time"})))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        let before = h.rt.store().dump().await.unwrap();
        let err =
            h.rt.call(call("echo", "say", json!({"text": "late"})))
                .await
                .unwrap_err();
        assert!(
            matches!(err, RuntimeError::GrantExpired { .. }),
            "{}: {err}",
            h.label
        );
        assert!(err.to_string().contains("expired"));
        assert_eq!(before, h.rt.store().dump().await.unwrap());
    }
}

#[tokio::test]
async fn lifecycle_transitions_are_audited_one_event_each() {
    for h in harnesses().await {
        h.rt.import(tool_manifest("1.0.0", 128, &[]), &actor())
            .await
            .unwrap();
        // pending → active directly is not a transition; enable needs disabled.
        assert_eq!(
            h.rt.enable("echo", &actor()).await.unwrap_err().kind(),
            ErrorKind::InvalidState
        );
        h.rt.approve("echo", &Narrowing::default(), &actor())
            .await
            .unwrap();
        assert_eq!(
            h.rt.approve("echo", &Narrowing::default(), &actor())
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidState
        );
        h.rt.disable("echo", &actor()).await.unwrap();
        h.rt.enable("echo", &actor()).await.unwrap();
        h.rt.call(call("echo", "say", json!({"text": "a", "fail": true})))
            .await
            .unwrap();

        // State: write a file, revoke keeping it, then purge on a second tool.
        let volume = h.rt.show("echo").await.unwrap().volume.unwrap();
        std::fs::write(PathBuf::from(&volume.path).join("state.txt"), "kept").unwrap();
        h.rt.revoke("echo", false, &actor()).await.unwrap();
        assert!(PathBuf::from(&volume.path).join("state.txt").exists());
        assert_eq!(
            h.rt.disable("echo", &actor()).await.unwrap_err().kind(),
            ErrorKind::InvalidState
        );
        // A revoked tool comes back only through a new import and approval; its state is kept.
        let r =
            h.rt.import(tool_manifest("1.1.0", 128, &[]), &actor())
                .await
                .unwrap();
        assert_eq!(r.outcome, ImportOutcome::Reimported);
        h.rt.approve("echo", &Narrowing::default(), &actor())
            .await
            .unwrap();
        assert!(PathBuf::from(&volume.path).join("state.txt").exists());
        h.rt.revoke("echo", true, &actor()).await.unwrap();
        assert!(!PathBuf::from(&volume.path).exists());
        assert!(
            h.rt.show("echo")
                .await
                .unwrap()
                .volume
                .unwrap()
                .purged_at
                .is_some()
        );

        let events = h.rt.store().audit_page(0, 100).await.unwrap();
        let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            vec![
                "tool.imported",
                "tool.approved",
                "tool.installed",
                "tool.disabled",
                "tool.enabled",
                "execution.finished",
                "tool.revoked",
                "tool.imported",
                "tool.approved",
                "tool.installed",
                "tool.revoked",
                "tool.state_purged",
            ],
            "{}",
            h.label
        );
        let finished: Value = serde_json::from_str(&events[5].payload).unwrap();
        assert_eq!(finished["status"], "failure");
        assert_eq!(finished["exit_code"], 1);
        assert!(finished["arguments_sha256"].as_str().unwrap().len() == 64);
        let execs = h.rt.executions(&ExecutionFilter::default()).await.unwrap();
        assert_eq!(execs.len(), 1);
        assert_eq!(execs[0].status, ExecutionStatus::Failure);
        assert_eq!(h.rt.verify_audit().await.unwrap().events, 12);
    }
}

#[tokio::test]
async fn audit_tampering_is_detected_at_the_first_bad_event() {
    for h in harnesses().await {
        h.rt.import(tool_manifest("1.0.0", 128, &[]), &actor())
            .await
            .unwrap();
        h.rt.approve("echo", &Narrowing::default(), &actor())
            .await
            .unwrap();
        for i in 0..4 {
            h.rt.call(call("echo", "say", json!({"text": format!("call {i}")})))
                .await
                .unwrap();
        }
        assert_eq!(h.rt.verify_audit().await.unwrap().events, 7);
        let store = h.rt.store();
        // Whoever tampers with the database drops the triggers that keep events append-only
        // and the head moving forward first (tests/audit_checkpoints.rs checks they refuse).
        for (trigger, table) in [
            ("audit_events_no_update", "audit_events"),
            ("audit_events_no_delete", "audit_events"),
            ("audit_head_forward_only", "audit_head"),
        ] {
            let sql = match store.kind() {
                slovo_store::DbKind::Sqlite => format!("DROP TRIGGER {trigger}"),
                slovo_store::DbKind::Postgres => format!("DROP TRIGGER {trigger} ON {table}"),
            };
            store.execute_raw(&sql).await.unwrap();
        }
        let snapshot = store.audit_page(0, 100).await.unwrap();
        let restore = || async {
            store.execute_raw("DELETE FROM audit_events").await.unwrap();
            // The database only accepts events that extend the head, so the chain is rebuilt
            // from the genesis head, as it was first written.
            store
                .execute_raw(&format!(
                    "UPDATE audit_head SET seq = 0, hash = '{}' WHERE id = 1",
                    "0".repeat(64)
                ))
                .await
                .unwrap();
            for e in &snapshot {
                let tool = e.tool.as_ref().map(|t| format!("'{t}'")).unwrap_or("NULL".into());
                store
                    .execute_raw(&format!(
                        "INSERT INTO audit_events (seq, at_ms, kind, tool, actor, payload, prev_hash, hash) \
                         VALUES ({}, {}, '{}', {tool}, '{}', '{}', '{}', '{}')",
                        e.seq,
                        e.at_ms,
                        e.kind,
                        e.actor,
                        e.payload.replace('\'', "''"),
                        e.prev_hash,
                        e.hash
                    ))
                    .await
                    .unwrap();
            }
            h.rt.verify_audit().await.unwrap();
        };
        let first_bad = |r: Result<slovo_runtime::AuditReport, RuntimeError>| match r {
            Err(RuntimeError::AuditBroken(e)) => e.seq(),
            other => panic!("{}: expected a broken chain, got {other:?}", h.label),
        };

        // Edit: change a call's recorded status.
        store
            .execute_raw(
                "UPDATE audit_events SET payload = REPLACE(payload, 'success', 'failure') WHERE seq = 5",
            )
            .await
            .unwrap();
        assert_eq!(first_bad(h.rt.verify_audit().await), 5);
        let msg = h.rt.verify_audit().await.unwrap_err().to_string();
        assert!(msg.contains("audit event 5") && msg.contains("edited"), "{msg}");
        restore().await;

        // Delete an event in the middle.
        store
            .execute_raw("DELETE FROM audit_events WHERE seq = 4")
            .await
            .unwrap();
        assert_eq!(first_bad(h.rt.verify_audit().await), 5);
        restore().await;

        // Reorder: swap two events' positions.
        store
            .execute_raw("UPDATE audit_events SET seq = -3 WHERE seq = 3")
            .await
            .unwrap();
        store
            .execute_raw("UPDATE audit_events SET seq = 3 WHERE seq = 6")
            .await
            .unwrap();
        store
            .execute_raw("UPDATE audit_events SET seq = 6 WHERE seq = -3")
            .await
            .unwrap();
        assert_eq!(first_bad(h.rt.verify_audit().await), 3);
        restore().await;

        // Delete the newest event (truncation).
        store
            .execute_raw("DELETE FROM audit_events WHERE seq = 7")
            .await
            .unwrap();
        assert_eq!(first_bad(h.rt.verify_audit().await), 7);
        restore().await;

        // Edit and re-hash one event: the next event's link no longer fits.
        let e = &snapshot[2];
        let forged_payload = r#"{"forged":true}"#.to_string();
        let forged = slovo_core::audit::event_hash(
            e.seq,
            e.at_ms,
            &e.kind,
            e.tool.as_deref(),
            &e.actor,
            &forged_payload,
            &e.prev_hash,
        );
        store
            .execute_raw(&format!(
                "UPDATE audit_events SET payload = '{}', hash = '{forged}' WHERE seq = 3",
                forged_payload.replace('\'', "''")
            ))
            .await
            .unwrap();
        assert_eq!(first_bad(h.rt.verify_audit().await), 4);
        restore().await;
    }
}

#[tokio::test]
async fn bad_manifests_leave_the_database_untouched() {
    for h in harnesses().await {
        h.rt.import(tool_manifest("1.0.0", 128, &[]), &actor())
            .await
            .unwrap();
        let before = h.rt.store().dump().await.unwrap();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty.yaml", vec![]),
            ("bad.yaml", b"name: [".to_vec()),
            ("bad.json", b"{\"name\": ".to_vec()),
            ("latin1.yaml", b"name: caf\xe9\n".to_vec()),
            (
                "unknown.yaml",
                b"name: x\nversion: 1.0.0\ndescription: d\nperms: {}\n".to_vec(),
            ),
            ("big.yaml", vec![b' '; 2 * 1024 * 1024]),
        ];
        for (name, bytes) in cases {
            let err =
                h.rt.import(
                    ImportSource::Manifest {
                        name: name.into(),
                        bytes,
                    },
                    &actor(),
                )
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{name}: {err}");
            assert!(err.to_string().starts_with(name), "{err}");
        }
        assert_eq!(before, h.rt.store().dump().await.unwrap(), "{}", h.label);
    }
}

#[tokio::test]
async fn secrets_are_encrypted_and_never_stored_in_plaintext() {
    let plaintext = "sk-live-7f3a9c1e5b2d4f60";
    for h in harnesses().await {
        h.rt.import(tool_manifest("1.0.0", 128, &[]), &actor())
            .await
            .unwrap();
        h.rt.approve("echo", &Narrowing::default(), &actor())
            .await
            .unwrap();
        h.rt.set_secret(
            "echo",
            "api_key",
            zeroize::Zeroizing::new(plaintext.to_string()),
            &actor(),
        )
        .await
        .unwrap();
        assert_eq!(
            h.rt.secret_names("echo").await.unwrap(),
            vec!["api_key".to_string()]
        );
        let exec =
            h.rt.call(call("echo", "say", json!({"text": "x"})))
                .await
                .unwrap();
        assert_eq!(
            exec.output,
            Some(json!({"used_key": "[redacted]", "note": "sent [redacted]"})),
            "{}",
            h.label
        );
        assert_eq!(exec.stderr.as_deref(), Some("debug: key=[redacted]\n"));
        assert_eq!(exec.error.as_deref(), Some("upstream rejected [redacted]"));
        // The backend did receive the real value.
        assert_eq!(
            h.backend
                .specs
                .lock()
                .unwrap()
                .last()
                .unwrap()
                .secrets
                .get("api_key"),
            Some(plaintext)
        );
        // Not anywhere in the database, in any table.
        let dump = h.rt.store().dump().await.unwrap().join("\n");
        assert!(
            !dump.contains(plaintext),
            "{}: plaintext found in the database",
            h.label
        );
        assert!(
            !dump.contains(&format!("{:?}", plaintext.as_bytes())),
            "plaintext bytes found"
        );
        assert!(dump.contains("secrets: tool=Some(\"echo\")"), "{dump}");
        // The key file is private; a row moved to another name does not decrypt.
        let key = h.rt.data_dir().join("secret.key");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        h.rt.store()
            .execute_raw("UPDATE secrets SET name = 'other' WHERE name = 'api_key'")
            .await
            .unwrap();
        h.rt.set_secret(
            "echo",
            "api_key",
            zeroize::Zeroizing::new("abcd-new-value".into()),
            &actor(),
        )
        .await
        .unwrap();
        let err =
            h.rt.call(call("echo", "say", json!({"text": "x"})))
                .await
                .unwrap_err();
        assert!(err.to_string().contains("does not decrypt"), "{err}");
        // Bad names and unknown tools are refused.
        assert!(
            h.rt.set_secret("echo", "bad name", zeroize::Zeroizing::new("v".into()), &actor())
                .await
                .is_err()
        );
        assert!(
            h.rt.set_secret("nope", "k", zeroize::Zeroizing::new("v".into()), &actor())
                .await
                .is_err()
        );
        h.rt.verify_audit().await.unwrap();
    }
}

/// A runtime keeps what it read of a tool between calls; a change made by another process on
/// the same database (the CLI beside a server) must still take effect on the very next call.
#[tokio::test]
async fn changes_by_another_process_take_effect_on_the_next_call() {
    for h in harnesses().await {
        let other = Runtime::new(
            Store::connect(&h.url).await.unwrap(),
            Backends::new().with(Arc::new(RecordingBackend::default())),
            h.data_dir.clone(),
        );
        h.rt.import(tool_manifest("1.0.0", 128, &[]), &actor())
            .await
            .unwrap();
        h.rt.approve("echo", &Narrowing::default(), &actor())
            .await
            .unwrap();
        let first =
            h.rt.call(call("echo", "say", json!({"text": "a"})))
                .await
                .unwrap();
        // The row a call returns is the row it stored.
        assert_eq!(
            Some(&first),
            h.rt.store()
                .execution(&first.id)
                .await
                .unwrap()
                .map(slovo_runtime::ExecutionView::from)
                .as_ref(),
            "{}",
            h.label
        );

        // Disabled elsewhere: refused here, nothing written.
        other.disable("echo", &actor()).await.unwrap();
        let before = h.rt.store().dump().await.unwrap();
        let err =
            h.rt.call(call("echo", "say", json!({"text": "b"})))
                .await
                .unwrap_err();
        assert!(
            matches!(err, RuntimeError::NotCallable { .. }),
            "{}: {err}",
            h.label
        );
        assert_eq!(before, h.rt.store().dump().await.unwrap(), "{}", h.label);
        other.enable("echo", &actor()).await.unwrap();

        // Upgraded elsewhere to a version whose schema accepts what the old one refused
        // (the new field is unknown to 1.0.0, whose schema forbids extra properties).
        let mut text: Value = serde_json::from_slice(match &tool_manifest("1.1.0", 128, &[]) {
            ImportSource::Manifest { bytes, .. } => bytes,
            _ => unreachable!(),
        })
        .unwrap();
        text["capabilities"][0]["parameters"]["properties"]["loud"] = json!({"type": "boolean"});
        other
            .import(
                ImportSource::Manifest {
                    name: "echo-1.1.0.json".into(),
                    bytes: text.to_string().into_bytes(),
                },
                &actor(),
            )
            .await
            .unwrap();
        let upgraded =
            h.rt.call(call("echo", "say", json!({"text": "c", "loud": true})))
                .await
                .unwrap();
        assert_eq!(upgraded.version, "1.1.0", "{}", h.label);

        // A secret set elsewhere reaches the next call's sandbox.
        other
            .set_secret(
                "echo",
                "api_key",
                zeroize::Zeroizing::new("sk-from-elsewhere".to_string()),
                &actor(),
            )
            .await
            .unwrap();
        h.rt.call(call("echo", "say", json!({"text": "d"})))
            .await
            .unwrap();
        assert_eq!(
            h.backend
                .specs
                .lock()
                .unwrap()
                .last()
                .unwrap()
                .secrets
                .get("api_key"),
            Some("sk-from-elsewhere"),
            "{}",
            h.label
        );

        // Revoked elsewhere: refused.
        other.revoke("echo", false, &actor()).await.unwrap();
        let err =
            h.rt.call(call("echo", "say", json!({"text": "e"})))
                .await
                .unwrap_err();
        assert!(
            matches!(err, RuntimeError::NotCallable { .. }),
            "{}: {err}",
            h.label
        );
        h.rt.verify_audit().await.unwrap();
    }
}

#[tokio::test]
async fn reinstall_prepares_the_serving_version_again_under_the_same_grant() {
    for h in harnesses().await {
        h.rt.import(tool_manifest("1.0.0", 128, &[]), &actor())
            .await
            .unwrap();
        // Nothing is installed before approval: approving installs.
        let e = h.rt.reinstall("echo", &actor()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidState, "{}: {e}", h.label);
        assert!(e.to_string().contains("only an active or disabled tool"), "{e}");
        assert_eq!(
            h.rt.reinstall("nope", &actor()).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        let narrowing = Narrowing {
            memory_limit_mb: Some(64),
            ..Narrowing::default()
        };
        h.rt.approve("echo", &narrowing, &actor()).await.unwrap();
        let before = h.rt.show("echo").await.unwrap();
        let revision = h.rt.store().tool("echo").await.unwrap().unwrap().revision;
        std::fs::write(
            PathBuf::from(&before.volume.as_ref().unwrap().path).join("s"),
            "kept",
        )
        .unwrap();

        let row = h.rt.reinstall("echo", &actor()).await.unwrap();
        assert_eq!(row.revision, revision + 1);
        assert_eq!(row.status, ToolStatus::Active);
        assert_eq!(
            *h.backend.installs.lock().unwrap(),
            ["echo 1.0.0", "echo 1.0.0"],
            "{}",
            h.label
        );
        // Same grant, same state; the next call is served under it.
        let after = h.rt.show("echo").await.unwrap();
        assert_eq!(after.granted, before.granted);
        assert!(PathBuf::from(&after.volume.unwrap().path).join("s").exists());
        h.rt.call(call("echo", "say", json!({"text": "hi"})))
            .await
            .unwrap();
        assert_eq!(
            h.backend.specs.lock().unwrap().last().unwrap().limits.memory_mb,
            64
        );

        // A disabled tool can be installed again and stays disabled; a revoked one cannot.
        h.rt.disable("echo", &actor()).await.unwrap();
        assert_eq!(
            h.rt.reinstall("echo", &actor()).await.unwrap().status,
            ToolStatus::Disabled
        );
        h.rt.revoke("echo", false, &actor()).await.unwrap();
        assert_eq!(
            h.rt.reinstall("echo", &actor()).await.unwrap_err().kind(),
            ErrorKind::InvalidState
        );

        let events = h.rt.store().audit_page(0, 100).await.unwrap();
        let reinstalled: Vec<Value> = events
            .iter()
            .filter(|e| e.kind == "tool.reinstalled")
            .map(|e| serde_json::from_str(&e.payload).unwrap())
            .collect();
        assert_eq!(reinstalled.len(), 2, "{}", h.label);
        assert_eq!(reinstalled[0]["version"], "1.0.0");
        assert_eq!(reinstalled[0]["install"]["deferred"], json!("installed 1.0.0"));
        assert_eq!(
            reinstalled[0]["previous_install"]["deferred"],
            json!("installed 1.0.0")
        );
        h.rt.verify_audit().await.unwrap();
    }
}
