//! Secrets given at import for a server run here (a PyPI package in the process sandbox),
//! through `Runtime::import_mcp`: a `server.json` whose `environmentVariables` mark the API key
//! `isSecret`, for a server that will not list its tools without it (the hostile test server's
//! `keyed` mode, built into a wheel). Without the key, or with a wrong one, nothing can be
//! proposed; a name the server does not declare is refused before anything is fetched; with
//! the key the tools are listed, the key is stored encrypted with the proposal, approval lists
//! the tools again with it, and a call sees it. Its value is found nowhere: not in the import
//! report, the errors, the audit trail, the execution record, the bundle or the database file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "mcp_support/mod.rs"]
mod mcp_support;

use std::path::Path;

use mcp_support::{Harness, actor, build_wheel, hostile_server};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use slovo_core::execution::ExecutionStatus;
use slovo_core::permissions::Narrowing;
use slovo_runtime::{McpImport, McpSource};

/// The API key the server wants.
const KEY: &str = "sk-live-4f1c9a7e2b8d";
/// A key it refuses, which it writes to its stderr.
const WRONG_KEY: &str = "sk-wrong-93e0b2c4d7";

/// The registry entry of the keyed server: its API key is a secret the person sets.
fn keyed_server_json() -> Value {
    json!({
        "name": "io.example/keyed",
        "description": "Lists its tools only with its API key",
        "version": "1.0.0",
        "packages": [{
            "registryType": "pypi", "identifier": "slovo-keyed-mcp", "version": "1.0.0",
            "runtimeHint": "uvx", "transport": {"type": "stdio"},
            "packageArguments": [{"type": "positional", "value": "keyed"}],
            "environmentVariables": [
                {"name": "SERVER_API_KEY", "isSecret": true, "isRequired": true,
                 "description": "The API key"},
                {"name": "API_KEY_SHA256", "default": hex::encode(Sha256::digest(KEY))}
            ]
        }]
    })
}

fn import_with(path: &Path, secrets: &[(&str, &str)]) -> McpImport {
    McpImport {
        source: McpSource::parse(path.to_str().unwrap()),
        name: Some("keyed".into()),
        env: Default::default(),
        args: Vec::new(),
        secrets: slovo_core::secrets::Secrets::new(
            secrets
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
    }
}

/// Every file under `dir`, read.
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                found.push((entry.path(), std::fs::read(entry.path()).unwrap()));
            }
        }
    }
    found
}

fn holds(bytes: &[u8], needle: &str) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn a_package_servers_secret_given_at_import_lists_its_tools_and_is_stored_with_the_proposal() {
    let Some(server) = hostile_server() else { return };
    let wheels = tempfile::tempdir().unwrap();
    build_wheel(&server, wheels.path(), "slovo-keyed-mcp");
    let h = Harness::with_wheelhouse(wheels.path()).await;
    let path = h.dir.path().join("server.json");
    std::fs::write(&path, keyed_server_json().to_string()).unwrap();

    // Without its key the server will not list its tools: nothing can be proposed.
    let e =
        h.rt.import_mcp(&import_with(&path, &[]), &actor())
            .await
            .unwrap_err()
            .to_string();
    assert!(e.contains("tools/list needs a valid SERVER_API_KEY"), "{e}");

    // A secret the server does not declare: refused naming it, before anything is fetched.
    let e =
        h.rt.import_mcp(&import_with(&path, &[("API_TOKEN", KEY)]), &actor())
            .await
            .unwrap_err()
            .to_string();
    assert!(
        e.contains(
            "the secret \"API_TOKEN\" is not one of the server's (its secret environment variables: SERVER_API_KEY)"
        ),
        "{e}"
    );
    assert!(!e.contains(KEY), "the value is never echoed: {e}");

    // A wrong key: the server refuses it and writes it to its stderr, which the error quotes
    // with the key redacted. Neither the tool nor the secret is stored.
    let e =
        h.rt.import_mcp(&import_with(&path, &[("SERVER_API_KEY", WRONG_KEY)]), &actor())
            .await
            .unwrap_err()
            .to_string();
    assert!(e.contains("tools/list needs a valid SERVER_API_KEY"), "{e}");
    assert!(
        e.contains("refusing to list tools for the key '[redacted]'"),
        "the server's stderr is quoted, redacted: {e}"
    );
    assert!(!e.contains(WRONG_KEY), "{e}");
    assert!(h.rt.show("keyed").await.is_err(), "nothing is proposed");
    assert!(h.rt.secret_names("keyed").await.unwrap().is_empty());

    // With it: listed in the sandbox, proposed, and the key stored with the proposal.
    let report =
        h.rt.import_mcp(&import_with(&path, &[("SERVER_API_KEY", KEY)]), &actor())
            .await
            .unwrap();
    let tools: Vec<&str> = report.tools.iter().map(|t| t.tool.as_str()).collect();
    assert_eq!(tools, ["probe"]);
    assert_eq!(report.secrets, ["SERVER_API_KEY"]);
    assert_eq!(report.secrets_stored, ["SERVER_API_KEY"]);
    assert_eq!(h.rt.secret_names("keyed").await.unwrap(), ["SERVER_API_KEY"]);
    let shown = h.rt.show("keyed").await.unwrap();
    assert_eq!(
        shown.manifest["execution"]["secret_env"],
        json!({"SERVER_API_KEY": "SERVER_API_KEY"})
    );

    // Approval lists the tools again in the sandbox, with the stored key (the server lists
    // nothing without it); then a call sees the key in its environment.
    h.rt.approve("keyed", &Narrowing::default(), &actor())
        .await
        .unwrap();
    let call = h.call("keyed", "probe", json!({})).await;
    assert_eq!(call.status, ExecutionStatus::Success, "{call:#?}");
    let output = call.output.clone().unwrap();
    assert_eq!(
        output["api_key_sha256"],
        hex::encode(Sha256::digest(KEY)),
        "{output:#}"
    );
    assert_eq!(output["api_key"], "[redacted]", "{output:#}");

    // The key's value is nowhere: not in the report, the audit trail (which records the
    // secret's name), the execution record, the bundle, or the database file (encrypted).
    let report_text = serde_json::to_string(&report).unwrap();
    assert!(!report_text.contains(KEY), "{report_text}");
    let events = h.rt.store().audit_events_in_display_order(10_000).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert!(kinds.contains(&"secret.set"), "{kinds:?}");
    let trail = format!("{events:?}");
    assert!(trail.contains("SERVER_API_KEY"), "the secret's name is recorded");
    assert!(!trail.contains(KEY) && !trail.contains(WRONG_KEY), "{trail}");
    let record = format!("{call:?}");
    assert!(!record.contains(KEY), "{record}");
    let data = h.rt.data_dir();
    let mut scanned = files_under(&data.join("bundles"));
    for entry in std::fs::read_dir(h.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("slovo.db")
        {
            scanned.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    assert!(
        scanned.iter().any(|(p, _)| p.ends_with("slovo-mcp.json")),
        "the bundle was scanned: {:?}",
        scanned.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    for (path, bytes) in &scanned {
        assert!(
            !holds(bytes, KEY) && !holds(bytes, WRONG_KEY),
            "{} holds a key",
            path.display()
        );
    }
}
