//! The `slovo` binary end to end, against SQLite (a data directory) and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;
use slovo_store::Store;
use slovo_test_support::test_dbs;

fn shared(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/manifests")
        .join(file)
}

/// One isolated installation: a data directory and a database URL.
struct Env {
    label: &'static str,
    url: String,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

impl Env {
    fn slovo(&self, args: &[&str]) -> Output {
        self.slovo_stdin(args, "")
    }

    fn slovo_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut cmd = Command::cargo_bin("slovo").unwrap();
        cmd.env("SLOVO_DATA_DIR", &self.data)
            .env_remove("RUST_LOG")
            .args(args)
            .write_stdin(stdin);
        if self.label == "postgres" {
            cmd.env("SLOVO_DATABASE_URL", &self.url);
        } else {
            cmd.env_remove("SLOVO_DATABASE_URL");
        }
        cmd.output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.slovo(args);
        assert!(
            out.status.success(),
            "{}: slovo {args:?} failed: {}",
            self.label,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    async fn dump(&self) -> Vec<String> {
        let store = Store::connect(&self.url).await.unwrap();
        let d = store.dump().await.unwrap();
        store.close().await;
        d
    }
}

async fn envs() -> Vec<Env> {
    test_dbs()
        .await
        .into_iter()
        .map(|db| {
            let data = db.dir.path().join("data");
            let url = if db.label == "sqlite" {
                format!("sqlite://{}?mode=rwc", data.join("slovo.db").display())
            } else {
                db.url.clone()
            };
            Env {
                label: db.label,
                url,
                data,
                _dir: db.dir,
            }
        })
        .collect()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn shared_manifests_import_and_show_as_written() {
    for env in envs().await {
        for f in [
            "unit-converter.yaml",
            "air-quality.yaml",
            "dictionary.manifest.json",
        ] {
            env.ok(&["tool", "import", shared(f).to_str().unwrap()]);
        }
        let list = env.json(&["tool", "list"]);
        let names: Vec<_> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            vec!["air-quality", "dictionary", "unit-converter"],
            "{}",
            env.label
        );

        let dict = env.json(&["tool", "show", "dictionary"]);
        assert_eq!(dict["status"], "pending_approval");
        assert_eq!(
            dict["requested"]["network_allow"],
            serde_json::json!(["api.dictionary.example.org"])
        );
        assert_eq!(dict["requested"]["storage_quota_mb"], 50);
        assert_eq!(dict["requested"]["memory_limit_mb"], 128);
        assert_eq!(dict["requested"]["cpu_limit_percent"], 25);
        assert_eq!(dict["granted"], Value::Null);
        let human = env.ok(&["tool", "show", "air-quality"]);
        assert!(
            human.contains("any public host") && human.contains("128 MB"),
            "{human}"
        );

        // Approve narrower than requested; show reports both columns.
        env.ok(&[
            "tool",
            "approve",
            "dictionary",
            "--no-network",
            "--memory",
            "64M",
            "--cpu",
            "20",
            "--storage",
            "10M",
        ]);
        let dict = env.json(&["tool", "show", "dictionary"]);
        assert_eq!(dict["status"], "active");
        assert_eq!(dict["granted"]["network_allow"], serde_json::json!([]));
        assert_eq!(dict["granted"]["memory_limit_mb"], 64);
        assert_eq!(dict["granted"]["cpu_limit_percent"], 20);
        assert_eq!(dict["granted"]["storage_quota_mb"], 10);
        assert_eq!(dict["requested"]["memory_limit_mb"], 128);

        // Asking for more than requested is refused with exit 3 and changes nothing.
        env.ok(&["tool", "import", shared("unit-converter.yaml").to_str().unwrap()]);
        let before = env.dump().await;
        let out = env.slovo(&["tool", "approve", "unit-converter", "--memory", "1G"]);
        assert_eq!(code(&out), 3, "{}", stderr(&out));
        assert!(stderr(&out).contains("memory_limit_mb"), "{}", stderr(&out));
        assert_eq!(before, env.dump().await);

        let verified = env.json(&["audit", "verify"]);
        assert_eq!(verified["ok"], true);
    }
}

/// Every kind of bad input: a clear error, a documented non-zero exit, and the database
/// exactly as it was.
#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    for env in envs().await {
        env.ok(&[
            "tool",
            "import",
            shared("dictionary.manifest.json").to_str().unwrap(),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| -> String {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p.to_str().unwrap().to_string()
        };
        let valid = std::fs::read_to_string(shared("unit-converter.yaml")).unwrap();
        let mut bomb = String::from("a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n");
        for (prev, next) in ["a", "b", "c", "d", "e", "f", "g", "h"]
            .iter()
            .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
        {
            bomb.push_str(&format!(
                "{next}: &{next} [{}]\n",
                vec![format!("*{prev}"); 9].join(",")
            ));
        }
        let cases: Vec<(String, &str)> = vec![
            (write("malformed.yaml", b"name: [oops\n"), "syntax error"),
            (write("malformed.json", b"{\"name\": \"x\",}"), "syntax error"),
            (
                write(
                    "unknown.yaml",
                    valid.replace("internet_access", "internet_acess").as_bytes(),
                ),
                "internet_acess",
            ),
            (
                write(
                    "schema.yaml",
                    valid
                        .replace("value: {type: number}", "value: {type: 12}")
                        .as_bytes(),
                ),
                "capabilities[1].parameters",
            ),
            (
                write(
                    "name.yaml",
                    valid
                        .replace("name: unit-converter", "name: ../../etc")
                        .as_bytes(),
                ),
                "name:",
            ),
            (
                write("semver.yaml", valid.replace("\"1.2.0\"", "\"one\"").as_bytes()),
                "version:",
            ),
            (
                write(
                    "limit.yaml",
                    valid
                        .replace("memory_limit_mb: 64", "memory_limit_mb: 999999")
                        .as_bytes(),
                ),
                "out of range",
            ),
            (write("big.yaml", &vec![b'#'; 1024 * 1024 + 10]), "larger than"),
            (write("bomb.yaml", bomb.as_bytes()), "syntax error"),
            (write("latin1.yaml", b"name: caf\xe9\n"), "not UTF-8"),
            (write("empty.yaml", b""), "empty"),
        ];
        let before = env.dump().await;
        for (path, needle) in &cases {
            let out = env.slovo(&["tool", "import", path]);
            assert_eq!(code(&out), 3, "{}: {path}: {}", env.label, stderr(&out));
            let msg = stderr(&out);
            assert!(msg.contains(path.as_str()), "error should name the file: {msg}");
            assert!(msg.contains(needle), "error should mention {needle:?}: {msg}");
        }
        // The unknown field's error names its line.
        let out = env.slovo(&["tool", "import", &cases[2].0]);
        assert!(
            stderr(&out).contains(&format!("{}:41:", cases[2].0)),
            "{}",
            stderr(&out)
        );
        let out = env.slovo(&["tool", "import", "/nonexistent/manifest.yaml"]);
        assert_eq!(code(&out), 1);
        assert!(stderr(&out).contains("/nonexistent/manifest.yaml"));
        let out = env.slovo_stdin(&["tool", "import", "-"], "name: [");
        assert_eq!(code(&out), 3);
        assert!(stderr(&out).starts_with("error: -:"), "{}", stderr(&out));

        // Calls that must be refused.
        let out = env.slovo(&["call", "dictionary", "run", "--args", "{\"word\": \"x\"}"]);
        assert_eq!(code(&out), 5, "{}", stderr(&out));
        assert!(stderr(&out).contains("pending_approval"));
        let out = env.slovo(&["call", "missing", "run"]);
        assert_eq!(code(&out), 4);
        let out = env.slovo(&["call", "dictionary", "run", "--args", "{not json"]);
        assert_eq!(code(&out), 3);
        let out = env.slovo(&["tool", "approve", "dictionary", "--expires", "tomorrow"]);
        assert_eq!(code(&out), 3);
        assert!(stderr(&out).contains("--expires"));
        assert_eq!(before, env.dump().await, "{}", env.label);

        env.ok(&["tool", "approve", "dictionary"]);
        let before = env.dump().await;
        let out = env.slovo(&["call", "dictionary", "run", "--args", "{\"word\": 7}"]);
        assert_eq!(code(&out), 3);
        assert!(stderr(&out).contains("/word"), "{}", stderr(&out));
        let out = env.slovo(&["call", "dictionary", "run", "--args", "{}"]);
        assert_eq!(code(&out), 3);
        assert!(stderr(&out).contains("required"), "{}", stderr(&out));
        // Installing again keeps the tool serving under the same grant, and is audited.
        let out = env.ok(&["tool", "reinstall", "dictionary"]);
        assert!(out.contains("active"), "{out}");
        let store = Store::connect(&env.url).await.unwrap();
        let events = store.audit_page(0, 1000).await.unwrap();
        assert_eq!(events.last().map(|e| e.kind.as_str()), Some("tool.reinstalled"));
        store.close().await;
        env.ok(&["tool", "disable", "dictionary"]);
        let disabled = env.dump().await;
        let out = env.slovo(&["call", "dictionary", "run", "--args", "{\"word\": \"x\"}"]);
        assert_eq!(code(&out), 5);
        assert!(stderr(&out).contains("disabled"));
        assert_eq!(disabled, env.dump().await);
        let _ = before;
        env.ok(&["tool", "revoke", "dictionary"]);
        let revoked = env.dump().await;
        let out = env.slovo(&["call", "dictionary", "run", "--args", "{\"word\": \"x\"}"]);
        assert_eq!(code(&out), 5);
        assert!(stderr(&out).contains("revoked"));
        assert_eq!(revoked, env.dump().await);
    }
}

#[tokio::test]
async fn expired_grants_and_call_records() {
    for env in envs().await {
        env.ok(&[
            "tool",
            "import",
            shared("dictionary.manifest.json").to_str().unwrap(),
        ]);
        env.ok(&[
            "tool",
            "approve",
            "dictionary",
            "--expires",
            "2000-01-01T00:00:00Z",
        ]);
        let before = env.dump().await;
        let out = env.slovo(&["call", "dictionary", "run", "--args", "{\"word\": \"x\"}"]);
        assert_eq!(code(&out), 5, "{}", stderr(&out));
        assert!(stderr(&out).contains("expired"), "{}", stderr(&out));
        assert_eq!(before, env.dump().await);

        // A fresh approval after re-import renews it. This build has no docker backend in the
        // test environment's configuration, so the call is recorded as a failure with the reason.
        env.ok(&["tool", "revoke", "dictionary"]);
        env.ok(&[
            "tool",
            "import",
            shared("dictionary.manifest.json").to_str().unwrap(),
        ]);
        env.ok(&[
            "tool",
            "approve",
            "dictionary",
            "--expires",
            "2999-01-01T00:00:00Z",
        ]);
        let out = env.slovo(&[
            "--json",
            "call",
            "dictionary",
            "run",
            "--args",
            "{\"word\": \"x\"}",
            "--conversation",
            "c1",
            "--turn",
            "t1",
        ]);
        let rec: Value = serde_json::from_slice(&out.stdout).unwrap();
        if code(&out) == 6 {
            assert_eq!(rec["status"], "failure");
            assert!(rec["error"].as_str().unwrap().contains("docker"), "{rec}");
        }
        assert_eq!(rec["conversation_id"], "c1");
        assert_eq!(rec["turn_id"], "t1");
        let id = rec["id"].as_str().unwrap();
        let shown = env.json(&["execution", "show", id]);
        assert_eq!(shown["id"], id);
        // Not an MCP call served warm: the record says so.
        assert!(shown.get("warm").is_some_and(Value::is_null), "{shown}");
        let listed = env.json(&["executions", "--tool", "dictionary", "--limit", "5"]);
        assert_eq!(listed.as_array().unwrap().len(), 1);
        let none = env.json(&["executions", "--status", "success", "--tool", "nothing"]);
        assert_eq!(none.as_array().unwrap().len(), 0);
        let out = env.slovo(&["executions", "--status", "exploded"]);
        assert_eq!(code(&out), 3);
        let out = env.slovo(&["execution", "show", "no-such-id"]);
        assert_eq!(code(&out), 4);
    }
}

#[tokio::test]
async fn audit_verify_fails_with_exit_7_after_tampering() {
    for env in envs().await {
        env.ok(&["tool", "import", shared("unit-converter.yaml").to_str().unwrap()]);
        env.ok(&["tool", "approve", "unit-converter"]);
        env.ok(&["tool", "disable", "unit-converter"]);
        assert!(env.ok(&["audit", "verify"]).contains("4 events"));
        let store = Store::connect(&env.url).await.unwrap();
        // The database refuses the edit until its guard is dropped, as an attacker would.
        let err = store
            .execute_raw("UPDATE audit_events SET actor = 'someone-else' WHERE seq = 2")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
        let drop_guard = match store.kind() {
            slovo_store::DbKind::Sqlite => "DROP TRIGGER audit_events_no_update",
            slovo_store::DbKind::Postgres => "DROP TRIGGER audit_events_no_update ON audit_events",
        };
        store.execute_raw(drop_guard).await.unwrap();
        store
            .execute_raw("UPDATE audit_events SET actor = 'someone-else' WHERE seq = 2")
            .await
            .unwrap();
        store.close().await;
        let out = env.slovo(&["audit", "verify"]);
        assert_eq!(code(&out), 7, "{}", stderr(&out));
        assert!(stderr(&out).contains("audit event 2"), "{}", stderr(&out));
    }
}

#[tokio::test]
async fn each_command_that_appends_leaves_a_signed_checkpoint_and_verify_catches_truncation() {
    for env in envs().await {
        let log = env.data.join(slovo_runtime::CHECKPOINT_LOG_FILE);
        let lines = || std::fs::read_to_string(&log).unwrap_or_default().lines().count();
        env.ok(&["tool", "import", shared("unit-converter.yaml").to_str().unwrap()]);
        assert_eq!(lines(), 1, "{}", env.label);
        env.ok(&["tool", "approve", "unit-converter"]);
        env.ok(&["tool", "disable", "unit-converter"]);
        assert_eq!(lines(), 3, "{}", env.label);
        // Commands that append nothing write no checkpoint.
        env.ok(&["tool", "list"]);
        env.ok(&["audit", "checkpoint"]);
        assert_eq!(lines(), 3, "{}", env.label);
        let report = env.json(&["audit", "verify"]);
        assert_eq!(report["events"], 4, "{}", env.label);
        assert_eq!(report["checkpoints"], 3);
        assert_eq!(report["unchecked_events"], 0);

        // With write access to the database: drop the guards, delete the newest events and
        // move the head back. The chain still links; the checkpoint outside does not agree.
        let store = Store::connect(&env.url).await.unwrap();
        let keep = store.audit_page(0, 2).await.unwrap();
        for (trigger, table) in [
            ("audit_events_no_delete", "audit_events"),
            ("audit_head_forward_only", "audit_head"),
        ] {
            let sql = match store.kind() {
                slovo_store::DbKind::Sqlite => format!("DROP TRIGGER {trigger}"),
                slovo_store::DbKind::Postgres => format!("DROP TRIGGER {trigger} ON {table}"),
            };
            store.execute_raw(&sql).await.unwrap();
        }
        store
            .execute_raw("DELETE FROM audit_events WHERE seq > 2")
            .await
            .unwrap();
        store
            .execute_raw(&format!(
                "UPDATE audit_head SET seq = 2, hash = '{}' WHERE id = 1",
                keep[1].hash
            ))
            .await
            .unwrap();
        store.close().await;
        let out = env.slovo(&["audit", "verify"]);
        assert_eq!(code(&out), 7, "{}", stderr(&out));
        assert!(stderr(&out).contains("truncated"), "{}", stderr(&out));
        assert!(stderr(&out).contains("events 3 to 4 deleted"), "{}", stderr(&out));
        // Nor will it sign the shortened chain.
        let out = env.slovo(&["audit", "checkpoint"]);
        assert_eq!(code(&out), 7, "{}", stderr(&out));
        assert_eq!(lines(), 3, "{}", env.label);
    }
}

#[test]
fn bundle_directories_are_installed_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bundle = dir.path().join("hello");
    std::fs::create_dir_all(bundle.join("bin")).unwrap();
    std::fs::write(bundle.join("bin/hello"), "#!/bin/sh\necho '{\"hello\": true}'\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bundle.join("bin/hello"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let manifest = "name: hello\nversion: 0.1.0\ndescription: Says hello\ncapabilities:\n  - name: greet\n    description: Greet\nexecution:\n  type: process\n  command: [bin/hello]\n";
    std::fs::write(bundle.join("slovo.yaml"), manifest).unwrap();
    let run = |args: &[&str]| {
        Command::cargo_bin("slovo")
            .unwrap()
            .env("SLOVO_DATA_DIR", &data)
            .env_remove("SLOVO_DATABASE_URL")
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["tool", "import", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bundles: Vec<_> = std::fs::read_dir(data.join("bundles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let installed = bundles
        .iter()
        .find(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .unwrap();
    let mode = std::fs::metadata(installed.join("bin/hello"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o222, 0, "installed bundle files must be read-only");
    assert!(Path::new(installed).join("slovo.yaml").exists());

    // A manifest that names a program the bundle lacks is refused.
    std::fs::write(
        bundle.join("slovo.yaml"),
        manifest
            .replace("bin/hello", "bin/missing")
            .replace("0.1.0", "0.2.0"),
    )
    .unwrap();
    let out = run(&["tool", "import", bundle.to_str().unwrap()]);
    assert_eq!(code(&out), 3);
    assert!(stderr(&out).contains("bin/missing"), "{}", stderr(&out));
    // A process tool imported without its bundle is refused.
    let lone = dir.path().join("lone.yaml");
    std::fs::write(&lone, manifest).unwrap();
    let out = run(&["tool", "import", lone.to_str().unwrap()]);
    assert_eq!(code(&out), 3);
    assert!(stderr(&out).contains("bundle"), "{}", stderr(&out));
}

/// A native tool from import to call: bundle, approval, the process sandbox, the record.
#[test]
fn process_tool_runs_in_the_sandbox_end_to_end() {
    if unsafe_not_root() {
        eprintln!("skipped: the process sandbox tests need root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bundle = dir.path().join("whoami");
    std::fs::create_dir_all(bundle.join("bin")).unwrap();
    std::fs::write(
        bundle.join("bin/whoami"),
        "#!/bin/sh\nread -r request\necho \"{\\\"uid\\\": $(id -u), \\\"request\\\": $request, \\\"state\\\": \\\"$(ls /data | wc -l)\\\"}\"\necho note > /data/seen\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bundle.join("bin/whoami"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        bundle.join("slovo.yaml"),
        "name: whoami\nversion: 1.0.0\ndescription: Who runs me\ncapabilities:\n  - name: ask\n    description: Ask\n    parameters: {type: object, properties: {q: {type: string}}}\npermissions: {storage_quota_mb: 8, memory_limit_mb: 64}\nexecution:\n  type: process\n  command: [bin/whoami]\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::cargo_bin("slovo")
            .unwrap()
            .env("SLOVO_DATA_DIR", &data)
            .env_remove("SLOVO_DATABASE_URL")
            .args(args)
            .output()
            .unwrap()
    };
    assert!(
        run(&["tool", "import", bundle.to_str().unwrap()])
            .status
            .success()
    );
    let out = run(&["tool", "approve", "whoami", "--memory", "32M"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for expected_state in ["0", "1"] {
        let out = run(&["--json", "call", "whoami", "ask", "--args", r#"{"q": "hi"}"#]);
        assert!(out.status.success(), "{}", stderr(&out));
        let rec: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(rec["status"], "success", "{rec}");
        assert_eq!(
            rec["output"]["uid"], 1000,
            "runs as the sandbox's unprivileged user: {rec}"
        );
        assert_eq!(
            rec["output"]["request"],
            serde_json::json!({"capability": "ask", "arguments": {"q": "hi"}})
        );
        assert_eq!(
            rec["output"]["state"], expected_state,
            "/data persists between calls: {rec}"
        );
        assert!(rec["peak_memory_bytes"].as_i64().unwrap() > 0);
        assert!(rec["sandbox_id"].as_str().is_some());
    }
    // Revoking with --purge-state releases the quota volume and deletes the state.
    let out = run(&["tool", "revoke", "whoami", "--purge-state"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!data.join("volumes/whoami").exists());
}

fn unsafe_not_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) != 0)
        .unwrap_or(true)
}
