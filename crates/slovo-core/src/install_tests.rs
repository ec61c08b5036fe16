//! Each record below is built the way its install has written it (the same `json!` with the
//! same field order), so these tests pin that stored databases keep reading, and that what is
//! written now is the same text.

use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::*;

/// Reads `written` as stored text, checks it is `expected`, and that writing it again gives
/// the same text.
fn reads_and_writes_back(written: Value, expected: InstallFacts) {
    let text = written.to_string();
    let read: InstallFacts = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(read, expected);
    assert_eq!(serde_json::to_string(&read).unwrap(), text);
}

fn tools() -> Vec<Value> {
    vec![json!({"name": "echo", "inputSchema": {"type": "object"}})]
}

#[test]
fn a_tool_without_execution_a_chain_and_a_missing_backend_read_back() {
    reads_and_writes_back(
        json!({"runtime": "none", "note": "no execution section: the tool cannot be called"}),
        InstallFacts::NotCallable {
            note: "no execution section: the tool cannot be called".into(),
        },
    );
    reads_and_writes_back(
        json!({"runtime": "chain", "note": "runs its steps through their own tools"}),
        InstallFacts::Chain {
            note: "runs its steps through their own tools".into(),
        },
    );
    for kind in ["process", "wasm", "docker", "http", "mcp"] {
        reads_and_writes_back(
            json!({"runtime": kind, "deferred": "no backend here"}),
            InstallFacts::NoBackend {
                runtime: kind.into(),
                reason: "no backend here".into(),
            },
        );
    }
}

#[test]
fn a_process_install_reads_back() {
    let (program, system_paths) = ("/tool/run.sh", true);
    for refusal in [None, Some("user namespaces are disabled".to_string())] {
        reads_and_writes_back(
            json!({
                "program": program,
                "system_paths": system_paths,
                "refusal": refusal,
            }),
            InstallFacts::Process(ProcessFacts {
                program: program.into(),
                system_paths,
                refusal,
            }),
        );
    }
}

#[test]
fn a_wasm_install_reads_back() {
    for compile_ms in [Some(42_u64), None] {
        reads_and_writes_back(
            json!({
                "runtime": "wasm",
                "module": "tool.wasm",
                "module_sha256": "ab",
                "module_bytes": 1234_usize,
                "engine": format!("wasmtime 48 ({})", "fp"),
                "engine_fingerprint": "fp",
                "artifact": PathBuf::from("/d/wasm-cache/ab.cwasm"),
                "artifact_sha256": "cd",
                "compiled": compile_ms.is_some(),
                "compile_ms": compile_ms,
                "imports": vec!["wasi_snapshot_preview1::fd_write".to_string()],
            }),
            InstallFacts::Wasm(WasmFacts {
                module: "tool.wasm".into(),
                module_sha256: "ab".into(),
                module_bytes: 1234,
                engine: "wasmtime 48 (fp)".into(),
                engine_fingerprint: "fp".into(),
                artifact: PathBuf::from("/d/wasm-cache/ab.cwasm"),
                artifact_sha256: "cd".into(),
                compiled: compile_ms.is_some(),
                compile_ms,
                imports: vec!["wasi_snapshot_preview1::fd_write".into()],
            }),
        );
    }
}

#[test]
fn a_docker_install_pinned_or_deferred_reads_back() {
    let image = "slovo-example/dict:1".to_string();
    let entrypoint = Some(vec!["/app/run".to_string()]);
    let pinned = InstallFacts::Docker(DockerFacts::Pinned(DockerPinned {
        image: image.clone(),
        image_id: "sha256:ab".into(),
        repo_digests: vec!["slovo-example/dict@sha256:cd".into()],
        entrypoint: entrypoint.clone(),
        user: "65534:65534".into(),
    }));
    reads_and_writes_back(
        json!({
            "image": image,
            "image_id": "sha256:ab",
            "repo_digests": vec!["slovo-example/dict@sha256:cd".to_string()],
            "entrypoint": entrypoint,
            "user": format!("{}:{}", 65534, 65534),
        }),
        pinned.clone(),
    );
    assert_eq!(pinned.pinned_image(), Some("sha256:ab"));
    assert_eq!(pinned.deferred(), None);

    let deferred = InstallFacts::Docker(DockerFacts::Deferred(DockerDeferred {
        image: image.clone(),
        entrypoint: None,
        reason: "the Docker daemon is not reachable".into(),
    }));
    reads_and_writes_back(
        json!({
            "image": image,
            "image_id": null,
            "entrypoint": None::<Vec<String>>,
            "deferred": "the Docker daemon is not reachable",
        }),
        deferred.clone(),
    );
    assert_eq!(deferred.pinned_image(), None);
    assert_eq!(deferred.deferred(), Some("the Docker daemon is not reachable"));
}

#[test]
fn an_http_install_reads_back() {
    reads_and_writes_back(
        json!({"runtime": "http", "tool": "weather"}),
        InstallFacts::Http(HttpFacts {
            tool: "weather".into(),
        }),
    );
}

#[test]
fn mcp_installs_read_back_with_and_without_a_noted_change() {
    let server = json!({"protocolVersion": "2025-06-18", "serverInfo": {"name": "s", "version": "1"}});
    let listed = ListedTools {
        protocol_version: Some(json!("2025-06-18")),
        server_info: Some(json!({"name": "s", "version": "1"})),
        tools_sha256: "ef".into(),
        tools: tools(),
        tool_list_changed: None,
    };
    reads_and_writes_back(
        json!({"transport": "stdio", "program": "node", "refusal": "no user namespaces"}),
        InstallFacts::Mcp(McpFacts::Refused {
            program: "node".into(),
            refusal: "no user namespaces".into(),
        }),
    );
    let stdio = json!({
        "transport": "stdio",
        "program": "node",
        "system_paths": true,
        "protocol_version": server.get("protocolVersion"),
        "server_info": server.get("serverInfo"),
        "tools_sha256": "ef",
        "tools": tools(),
    });
    reads_and_writes_back(
        stdio.clone(),
        InstallFacts::Mcp(McpFacts::Stdio {
            program: "node".into(),
            system_paths: true,
            listed: listed.clone(),
        }),
    );
    let remote = json!({
        "transport": "streamable-http",
        "url": "https://mcp.example.org/mcp",
        "protocol_version": None::<Value>,
        "server_info": None::<Value>,
        "tools_sha256": "ef",
        "tools": tools(),
    });
    let remote_listed = ListedTools {
        protocol_version: None,
        server_info: None,
        ..listed.clone()
    };
    reads_and_writes_back(
        remote,
        InstallFacts::Mcp(McpFacts::Remote {
            url: "https://mcp.example.org/mcp".into(),
            listed: remote_listed,
        }),
    );

    // A server in an OCI image, as `mcp/oci.rs` writes it: calls run the image id found.
    let image = "example.org/srv@sha256:0123";
    let in_image = json!({
        "transport": "stdio",
        "image": image,
        "image_id": "sha256:abcd",
        "repo_digests": ["example.org/srv@sha256:0123"],
        "command": ["serve"],
        "user": "1900000:1900000",
        "protocol_version": server.get("protocolVersion"),
        "server_info": server.get("serverInfo"),
        "tools_sha256": "ef",
        "tools": tools(),
    });
    let image_facts = InstallFacts::Mcp(McpFacts::Image {
        image: image.into(),
        image_id: "sha256:abcd".into(),
        repo_digests: vec!["example.org/srv@sha256:0123".into()],
        command: vec!["serve".into()],
        user: "1900000:1900000".into(),
        listed: listed.clone(),
    });
    reads_and_writes_back(in_image, image_facts.clone());
    assert_eq!(image_facts.pinned_image(), Some("sha256:abcd"));
    assert_eq!(image_facts.listed_tools(), Some(&listed));

    // A call noted a change: the runtime added it to the record as its last field.
    let mut changed = stdio;
    changed.as_object_mut().unwrap().insert(
        "tool_list_changed".into(),
        json!({"difference": "added \"rm\"", "served_sha256": "99", "at": 1_700_000_000_000_i64}),
    );
    let noted = InstallFacts::Mcp(McpFacts::Stdio {
        program: "node".into(),
        system_paths: true,
        listed: ListedTools {
            tool_list_changed: Some(ToolListChangedNote {
                difference: "added \"rm\"".into(),
                served_sha256: "99".into(),
                at: 1_700_000_000_000,
            }),
            ..listed
        },
    });
    reads_and_writes_back(changed, noted.clone());
    assert_eq!(noted.listed_tools().map(|l| l.tools.len()), Some(1));
}

#[test]
fn a_record_of_another_shape_is_a_clear_error() {
    let error = |value: Value| InstallFacts::from_value(value).unwrap_err().to_string();
    assert_eq!(
        error(json!({"installed": "1.0.0"})),
        "the install record has fields [installed], which no install writes (a process, wasm, docker, http or \
         MCP install, a chain, a tool without execution, or a missing backend)"
    );
    assert_eq!(
        error(json!([1])),
        "an install record is a JSON object, not an array"
    );
    assert_eq!(
        error(json!({"runtime": "lua", "module": "x"})),
        "the install record has fields [runtime, module], which no install writes (a process, wasm, docker, \
         http or MCP install, a chain, a tool without execution, or a missing backend)"
    );
    // One field more, one missing, or one of the wrong type: named, never dropped or guessed.
    let extra = error(json!({"program": "/tool/x", "system_paths": false, "refusal": null, "uid": 7}));
    assert!(
        extra.starts_with("the process install record is not as that install writes it: unknown field `uid`"),
        "{extra}"
    );
    let missing = error(json!({"image": "x", "image_id": "sha256:ab", "entrypoint": null, "user": "1:1"}));
    assert!(
        missing.contains("docker install record") && missing.contains("missing field `repo_digests`"),
        "{missing}"
    );
    let wrong = error(json!({"transport": "stdio", "program": "node", "system_paths": "yes", "tools": []}));
    assert!(
        wrong.contains("MCP install record") && wrong.contains("`system_paths`"),
        "{wrong}"
    );
    let transport = error(json!({"transport": "websocket", "url": "wss://x"}));
    assert!(
        transport.contains("unknown transport \"websocket\""),
        "{transport}"
    );
    // Through serde (as the store reads a row) the same error, not a panic.
    let text = r#"{"installed":"1.0.0"}"#;
    let through_serde = serde_json::from_str::<InstallFacts>(text)
        .unwrap_err()
        .to_string();
    assert!(
        through_serde.contains("which no install writes"),
        "{through_serde}"
    );
}
