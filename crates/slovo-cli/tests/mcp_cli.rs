//! An MCP server (the npm reference server `everything`) as a tool through the `slovo`
//! binary: bundle import, approval (which lists the server's tools in its sandbox) and a call.
//! The server is installed by `scripts/ci-mcp-servers-setup.sh`; without it the test skips, or
//! fails under CI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::{Value, json};
use support::{ok, run};

fn installed_everything() -> Option<PathBuf> {
    // SAFETY: a plain getter.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: MCP servers run in the process sandbox, which needs root");
        return None;
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/root".into());
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cache"));
    let dir = cache.join("slovo-test/mcp/bundles/everything");
    if dir.join(".ready").is_file() {
        return Some(dir);
    }
    let reason = format!(
        "{} is missing: run scripts/ci-mcp-servers-setup.sh",
        dir.display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("{reason}");
    }
    eprintln!("skipped: {reason}");
    None
}

/// Links `from`'s files under `to` (the import copies them anyway).
fn link_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dst).unwrap();
            link_tree(&src, &dst);
        } else if entry.file_name() != ".ready" && std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

#[test]
fn an_mcp_server_is_imported_approved_and_called() {
    let Some(server) = installed_everything() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bundle = dir.path().join("everything");
    std::fs::create_dir_all(&bundle).unwrap();
    link_tree(&server, &bundle);
    let manifest = json!({
        "name": "everything",
        "version": "2026.8.31",
        "description": "The MCP reference server everything",
        "capabilities": [{
            "name": "echo", "description": "Echoes back the input string",
            "parameters": {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}
        }],
        "permissions": {"memory_limit_mb": 512, "timeout_s": 20, "storage_quota_mb": 1},
        "execution": {
            "type": "mcp", "transport": "stdio", "system_paths": true,
            "command": ["/usr/bin/node", "node_modules/@modelcontextprotocol/server-everything/dist/index.js", "stdio"]
        }
    });
    std::fs::write(bundle.join("slovo.json"), manifest.to_string()).unwrap();

    ok(&data, &["tool", "import", bundle.to_str().unwrap()]);
    ok(&data, &["tool", "approve", "everything"]);
    let out = ok(
        &data,
        &[
            "--json",
            "call",
            "everything",
            "echo",
            "--args",
            r#"{"message": "from the command line"}"#,
        ],
    );
    let exec: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(exec["status"], "success", "{exec:#}");
    assert_eq!(exec["output"], "Echo: from the command line", "{exec:#}");

    // The arguments are checked against the approved schema before any server starts.
    let refused = run(&data, &["call", "everything", "echo", "--args", "{}"]);
    assert!(!refused.status.success());
}

/// The npm cache `scripts/ci-mcp-servers-setup.sh` fills, once the memory server is installed.
fn npm_cache() -> Option<PathBuf> {
    installed_everything()?;
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache")
        });
    let root = cache.join("slovo-test/mcp");
    if !root.join("bundles/memory/.ready").is_file() {
        let reason = "the memory server is missing: run scripts/ci-mcp-servers-setup.sh";
        assert!(std::env::var_os("CI").is_none(), "{reason}");
        eprintln!("skipped: {reason}");
        return None;
    }
    Some(root.join("npm-cache"))
}

#[test]
fn an_mcp_server_imported_by_name_is_approved_and_called() {
    let Some(cache) = npm_cache() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let import = |extra: &[&str]| {
        let mut args = vec![
            "mcp-server",
            "import",
            "npm:@modelcontextprotocol/server-memory@2026.8.31",
        ];
        args.extend_from_slice(extra);
        Command::cargo_bin("slovo")
            .unwrap()
            .env("SLOVO_DATA_DIR", &data)
            .env_remove("SLOVO_DATABASE_URL")
            .env("SLOVO_MCP_NPM_CACHE", &cache)
            .args(&args)
            .output()
            .unwrap()
    };
    // A range is refused, as invalid input (exit 3), before anything is fetched.
    let mut ranged = Command::cargo_bin("slovo").unwrap();
    let ranged = ranged
        .env("SLOVO_DATA_DIR", &data)
        .env_remove("SLOVO_DATABASE_URL")
        .args([
            "mcp-server",
            "import",
            "npm:@modelcontextprotocol/server-memory@^2026",
        ])
        .output()
        .unwrap();
    assert_eq!(
        ranged.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&ranged.stderr)
    );
    assert!(String::from_utf8_lossy(&ranged.stderr).contains("must be exact"));

    // `--secret` reaches the runtime: a name the server does not declare is refused.
    let out = import(&["--secret", "API_KEY=k"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "the secret \"API_KEY\" is not one of the server's (its secret environment variables: none)"
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = import(&["--name", "memory", "--env", "MEMORY_FILE_PATH=/data/memory.jsonl"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("memory 2026.8.31: imported; waiting for approval"),
        "{stdout}"
    );
    assert!(stdout.contains("integrity sha512-"), "{stdout}");
    assert!(
        stdout.contains("capability read_graph") && stdout.contains("\"readOnlyHint\":true"),
        "{stdout}"
    );

    ok(&data, &["tool", "approve", "memory"]);
    let entities = r#"{"entities": [{"name": "Ada", "entityType": "person", "observations": []}]}"#;
    ok(&data, &["call", "memory", "create_entities", "--args", entities]);
    let out = ok(&data, &["--json", "call", "memory", "read_graph", "--args", "{}"]);
    let exec: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(exec["status"], "success", "{exec:#}");
    assert_eq!(exec["output"]["entities"][0]["name"], "Ada", "{exec:#}");
}

#[test]
fn a_package_servers_secret_given_at_import_is_read_from_stdin_and_stored_with_the_proposal() {
    let Some(cache) = npm_cache() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    const TOKEN: &str = "graph-token-7d31c0aa";
    // The memory server with a secret variable: a call is refused until its secret is set.
    let server = json!({
        "name": "io.github.modelcontextprotocol/server-memory",
        "description": "A knowledge graph kept in the tool's state",
        "version": "2026.8.31",
        "packages": [{
            "registryType": "npm", "identifier": "@modelcontextprotocol/server-memory",
            "version": "2026.8.31", "runtimeHint": "npx", "transport": {"type": "stdio"},
            "environmentVariables": [
                {"name": "MEMORY_FILE_PATH", "default": "/data/graph.jsonl"},
                {"name": "MEMORY_TOKEN", "isSecret": true}
            ]
        }]
    });
    let path = dir.path().join("server.json");
    std::fs::write(&path, server.to_string()).unwrap();
    // `--secret NAME` reads the value from stdin: it never appears on the command line.
    let out = Command::cargo_bin("slovo")
        .unwrap()
        .env("SLOVO_DATA_DIR", &data)
        .env_remove("SLOVO_DATABASE_URL")
        .env("SLOVO_MCP_NPM_CACHE", &cache)
        .args(["mcp-server", "import", path.to_str().unwrap(), "--name", "graph"])
        .args(["--secret", "MEMORY_TOKEN"])
        .write_stdin(format!("{TOKEN}\n"))
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("secret stored: MEMORY_TOKEN (given at import)") && !stdout.contains("secret to set"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(TOKEN) && !stderr.contains(TOKEN),
        "{stdout}{stderr}"
    );

    // Stored with the proposal: once approved, the server is called without `secret set`.
    assert!(ok(&data, &["secret", "list", "graph"]).contains("MEMORY_TOKEN"));
    ok(&data, &["tool", "approve", "graph"]);
    let out = ok(&data, &["--json", "call", "graph", "read_graph", "--args", "{}"]);
    let exec: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(exec["status"], "success", "{exec:#}");
    // Encrypted at rest: the database (audit trail included) never holds the value.
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("slovo.db")
        {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
                "{} holds the secret",
                path.display()
            );
        }
    }
}
