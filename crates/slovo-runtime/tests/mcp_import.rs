//! Importing real MCP servers by name, through `Runtime::import_mcp`: fetched offline from the
//! caches `scripts/ci-mcp-servers-setup.sh` fills (npm cache, wheelhouse), integrity checked,
//! tools read in the sandbox, proposed, approved and called. Without the caches the tests
//! skip, or fail under CI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "mcp_support/mod.rs"]
mod mcp_support;

use std::collections::BTreeMap;

use mcp_support::{Harness, actor, installed_server};
use serde_json::{Value, json};
use slovo_core::execution::ExecutionStatus;
use slovo_core::lifecycle::ToolStatus;
use slovo_core::permissions::Narrowing;
use slovo_runtime::{CallRequest, ErrorKind, ImportOutcome, McpImport, McpSource, RuntimeError};

const MEMORY: &str = "npm:@modelcontextprotocol/server-memory@2026.8.31";
const TIME: &str = "pypi:mcp-server-time==2026.10.19";

fn request(source: &str, env: &[(&str, &str)], args: &[&str]) -> McpImport {
    McpImport {
        source: McpSource::parse(source),
        name: None,
        env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        args: args.iter().map(|a| a.to_string()).collect(),
        secrets: Default::default(),
    }
}

/// The capability `name` of the tool's proposed (or serving) manifest.
fn capability<'a>(manifest: &'a Value, name: &str) -> &'a Value {
    manifest["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no capability {name} in {manifest:#}"))
}

#[tokio::test]
async fn memory_from_npm_is_fetched_listed_proposed_approved_and_called() {
    if installed_server("memory").is_none() {
        return;
    }
    let h = Harness::with_package_caches().await;
    let report =
        h.rt.import_mcp(
            &request(MEMORY, &[("MEMORY_FILE_PATH", "/data/memory.jsonl")], &[]),
            &actor(),
        )
        .await
        .unwrap();
    assert_eq!(report.import.tool, "server-memory");
    assert_eq!(report.import.version, "2026.8.31");
    assert_eq!(report.import.outcome, ImportOutcome::New);
    assert_eq!(report.import.status, ToolStatus::PendingApproval);
    // npm's integrity for the package, and one for every package installed with it.
    let integrity = report.integrity["integrity"].as_str().unwrap();
    assert!(integrity.starts_with("sha512-"), "{:#}", report.integrity);
    let packages = report.integrity["packages"].as_object().unwrap();
    assert!(packages.len() > 10, "{packages:?}");
    assert!(
        packages
            .values()
            .all(|v| v.as_str().is_some_and(|s| s.starts_with("sha")))
    );
    assert_eq!(
        report.server["server_info"]["name"], "memory-server",
        "{:#}",
        report.server
    );

    // Every tool the server listed is a capability, its inputSchema the parameters.
    let names: Vec<&str> = report.tools.iter().map(|t| t.capability.as_str()).collect();
    for expected in ["create_entities", "read_graph", "search_nodes", "delete_entities"] {
        assert!(names.contains(&expected), "{names:?}");
    }
    let shown = h.rt.show("server-memory").await.unwrap();
    let create = capability(&shown.manifest, "create_entities");
    assert_eq!(
        create["parameters"]["properties"]["entities"]["type"], "array",
        "{create:#}"
    );
    assert!(create["description"].as_str().unwrap().len() > 10);
    assert_eq!(shown.manifest["execution"]["type"], "mcp");
    assert_eq!(
        shown.manifest["execution"]["command"],
        json!([
            "/usr/bin/node",
            "node_modules/@modelcontextprotocol/server-memory/dist/index.js"
        ])
    );
    // The server's annotations are its own claims: kept as hints, shown at import.
    let read = report
        .tools
        .iter()
        .find(|t| t.capability == "read_graph")
        .unwrap();
    assert_eq!(read.annotations["readOnlyHint"], true, "{:?}", read.annotations);
    assert_eq!(capability(&shown.manifest, "read_graph")["read_only"], true);

    // A proposal is not callable.
    let early =
        h.rt.call(CallRequest {
            tool: "server-memory".into(),
            capability: "read_graph".into(),
            arguments: json!({}),
            conversation_id: None,
            turn_id: None,
            actor: actor(),
        })
        .await
        .unwrap_err();
    assert_eq!(early.kind(), ErrorKind::InvalidState, "{early}");

    // The bundle is the fetched package with its import record, installed under its hash.
    let version =
        h.rt.store()
            .version("server-memory", "2026.8.31")
            .await
            .unwrap()
            .unwrap();
    let bundle =
        h.rt.data_dir()
            .join("bundles")
            .join(version.bundle_digest.unwrap());
    let record: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("slovo-mcp.json")).unwrap()).unwrap();
    assert_eq!(record["source"], MEMORY);
    assert_eq!(record["integrity"]["integrity"], integrity);
    assert!(
        std::fs::metadata(bundle.join("slovo-mcp.json"))
            .unwrap()
            .permissions()
            .readonly()
    );
    assert!(
        !h.rt.data_dir().join("imports").read_dir().unwrap().any(|_| true),
        "work directory removed"
    );

    h.rt.approve("server-memory", &Narrowing::default(), &actor())
        .await
        .unwrap();
    let created = h
        .call(
            "server-memory",
            "create_entities",
            json!({"entities": [{"name": "Ada", "entityType": "person", "observations": ["wrote the first program"]}]}),
        )
        .await;
    assert_eq!(created.status, ExecutionStatus::Success, "{created:#?}");
    let graph = h.call("server-memory", "read_graph", json!({})).await;
    assert_eq!(graph.status, ExecutionStatus::Success, "{graph:#?}");
    assert_eq!(graph.output.unwrap()["entities"][0]["name"], "Ada");

    // The same package again is the same proposal: nothing changed.
    let again =
        h.rt.import_mcp(
            &request(MEMORY, &[("MEMORY_FILE_PATH", "/data/memory.jsonl")], &[]),
            &actor(),
        )
        .await
        .unwrap();
    assert_eq!(again.import.outcome, ImportOutcome::Unchanged);
}

#[tokio::test]
async fn time_from_pypi_installs_wheels_with_their_hashes_and_answers_in_a_timezone() {
    if installed_server("time").is_none() {
        return;
    }
    let h = Harness::with_package_caches().await;
    let report =
        h.rt.import_mcp(&request(TIME, &[], &["--local-timezone", "UTC"]), &actor())
            .await
            .unwrap();
    assert_eq!(report.import.tool, "mcp-server-time");
    let wheels = report.integrity["wheels"].as_object().unwrap();
    assert!(
        wheels.contains_key("mcp-server-time") && wheels.contains_key("pydantic"),
        "{wheels:?}"
    );
    for (name, wheel) in wheels {
        let sha = wheel["sha256"].as_str().unwrap();
        assert_eq!(sha.len(), 64, "{name}");
        assert!(wheel["file"].as_str().unwrap().ends_with(".whl"), "{name}");
    }
    let shown = h.rt.show("mcp-server-time").await.unwrap();
    assert_eq!(
        shown.manifest["execution"]["command"],
        json!([
            "/usr/bin/python3",
            "-m",
            "mcp_server_time",
            "--local-timezone",
            "UTC"
        ])
    );
    let get = capability(&shown.manifest, "get_current_time");
    assert_eq!(get["parameters"]["required"], json!(["timezone"]), "{get:#}");

    h.rt.approve("mcp-server-time", &Narrowing::default(), &actor())
        .await
        .unwrap();
    let now = h
        .call(
            "mcp-server-time",
            "get_current_time",
            json!({"timezone": "Asia/Tokyo"}),
        )
        .await;
    assert_eq!(now.status, ExecutionStatus::Success, "{now:#?}");
    let output = now.output.unwrap();
    assert!(
        output["datetime"].as_str().unwrap().ends_with("+09:00"),
        "{output}"
    );
}

#[tokio::test]
async fn a_server_json_gives_arguments_environment_and_secrets_the_person_sets() {
    if installed_server("memory").is_none() {
        return;
    }
    let h = Harness::with_package_caches().await;
    let server = json!({
        "name": "io.github.modelcontextprotocol/server-memory",
        "description": "A knowledge graph kept in the tool's state",
        "version": "2026.8.31",
        "remotes": [{"type": "streamable-http", "url": "https://memory.invalid/mcp"}],
        "packages": [{
            "registryType": "npm", "identifier": "@modelcontextprotocol/server-memory",
            "version": "2026.8.31", "runtimeHint": "npx", "transport": {"type": "stdio"},
            "environmentVariables": [
                {"name": "MEMORY_FILE_PATH", "default": "/data/graph.jsonl"},
                {"name": "MEMORY_TOKEN", "isSecret": true, "description": "not used by the server"}
            ]
        }]
    });
    let path = h.dir.path().join("server.json");
    std::fs::write(&path, server.to_string()).unwrap();
    let mut req = request(path.to_str().unwrap(), &[], &[]);
    req.name = Some("graph".into());
    let report = h.rt.import_mcp(&req, &actor()).await.unwrap();
    assert_eq!(report.import.tool, "graph");
    assert_eq!(report.secrets, ["MEMORY_TOKEN"]);
    assert!(
        report.notes.iter().any(|n| n.contains("package is preferred")),
        "{:?}",
        report.notes
    );
    let shown = h.rt.show("graph").await.unwrap();
    assert_eq!(
        shown.manifest["description"],
        "A knowledge graph kept in the tool's state"
    );
    assert_eq!(
        shown.manifest["execution"]["env"]["MEMORY_FILE_PATH"],
        "/data/graph.jsonl"
    );
    assert_eq!(
        shown.manifest["execution"]["secret_env"]["MEMORY_TOKEN"],
        "MEMORY_TOKEN"
    );
    h.rt.approve("graph", &Narrowing::default(), &actor())
        .await
        .unwrap();

    // Without its secret the server is not started.
    let refused = h.call("graph", "read_graph", json!({})).await;
    assert_eq!(refused.status, ExecutionStatus::Failure);
    let error = refused.error.unwrap();
    assert!(
        error.contains("\"MEMORY_TOKEN\"") && error.contains("is not set"),
        "{error}"
    );

    h.rt.set_secret(
        "graph",
        "MEMORY_TOKEN",
        zeroize::Zeroizing::new("token-value-1".into()),
        &actor(),
    )
    .await
    .unwrap();
    let created = h
        .call(
            "graph",
            "create_entities",
            json!({"entities": [{"name": "Grace", "entityType": "person", "observations": []}]}),
        )
        .await;
    assert_eq!(created.status, ExecutionStatus::Success, "{created:#?}");
    let graph = h.call("graph", "read_graph", json!({})).await;
    assert_eq!(graph.output.unwrap()["entities"][0]["name"], "Grace");
}

#[tokio::test]
async fn nothing_is_fetched_unless_configured_and_ranges_are_refused() {
    if installed_server("memory").is_none() {
        return;
    }
    let unconfigured = Harness::new().await;
    let e = unconfigured
        .rt
        .import_mcp(&request(MEMORY, &[], &[]), &actor())
        .await
        .unwrap_err();
    assert!(matches!(e, RuntimeError::McpImport { .. }), "{e:?}");
    assert!(e.to_string().contains("mcp.npm_cache"), "{e}");
    let e = unconfigured
        .rt
        .import_mcp(&request(TIME, &[], &[]), &actor())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("mcp.pip_find_links"), "{e}");

    let h = Harness::with_package_caches().await;
    for (source, says) in [
        (
            "npm:@modelcontextprotocol/server-memory@^2026.8.31",
            "must be exact",
        ),
        (
            "npm:@modelcontextprotocol/server-memory",
            "name the exact version",
        ),
        ("pypi:mcp-server-time>=2026", "name the exact version"),
    ] {
        let e =
            h.rt.import_mcp(&request(source, &[], &[]), &actor())
                .await
                .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains(says), "{source}: {e}");
    }
    // A version the cache does not hold is not fetched from anywhere else.
    let e =
        h.rt.import_mcp(
            &request("npm:@modelcontextprotocol/server-memory@2026.1.1", &[], &[]),
            &actor(),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("npm install"), "{e}");
    assert!(h.rt.list().await.unwrap().is_empty(), "nothing was proposed");
    let leftovers: BTreeMap<_, _> =
        h.rt.data_dir()
            .join("imports")
            .read_dir()
            .unwrap()
            .map(|e| (e.unwrap().file_name(), ()))
            .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// The memory server's registry entry, as an MCP registry lists it.
fn memory_server_json(version: &str) -> Value {
    json!({
        "name": "io.github.modelcontextprotocol/server-memory",
        "description": "Knowledge graph memory: remember entities, relations and observations about people",
        "version": "2026.8.31",
        "packages": [{
            "registryType": "npm", "identifier": "@modelcontextprotocol/server-memory",
            "version": version, "runtimeHint": "npx", "transport": {"type": "stdio"},
            "environmentVariables": [{"name": "MEMORY_FILE_PATH", "default": "/data/memory.jsonl"}]
        }]
    })
}

#[tokio::test]
async fn a_registry_server_found_by_discovery_is_imported_callable_and_called_after_approval() {
    if installed_server("memory").is_none() {
        return;
    }
    let h = Harness::with_package_caches().await;
    let registry = h.dir.path().join("registry");
    std::fs::create_dir_all(&registry).unwrap();
    std::fs::write(
        registry.join("memory.json"),
        memory_server_json("2026.8.31").to_string(),
    )
    .unwrap();
    let (request, _) =
        h.rt.request_discovery("remember entities and observations about people", &actor())
            .await
            .unwrap();
    let sources = slovo_runtime::SourceConfig {
        mcp_registry: vec![registry.clone()],
        ..slovo_runtime::SourceConfig::default()
    };
    let run = h.rt.run_discovery_once(&sources, &actor()).await.unwrap();
    assert_eq!(run.processed.len(), 1, "{run:?}");
    let found = h.rt.discovery_request(&request.id).await.unwrap();
    assert_eq!(found.proposal_tool.as_deref(), Some("server-memory"), "{found:?}");
    let mcp = &found.result.as_ref().unwrap()["proposal"]["mcp"];
    assert_eq!(mcp["callable"], true, "{mcp:#}");
    assert_eq!(mcp["package"], MEMORY);
    assert!(
        mcp["integrity"]["integrity"]
            .as_str()
            .unwrap()
            .starts_with("sha512-"),
        "{mcp:#}"
    );

    // The proposal is the package's own: its real tools, run over stdio from its bundle.
    let shown = h.rt.show("server-memory").await.unwrap();
    assert_eq!(shown.manifest["execution"]["type"], "mcp");
    assert_eq!(shown.manifest["execution"]["transport"], "stdio");
    capability(&shown.manifest, "create_entities");
    h.rt.approve("server-memory", &Narrowing::default(), &actor())
        .await
        .unwrap();
    let created = h
        .call(
            "server-memory",
            "create_entities",
            json!({"entities": [{"name": "Ada", "entityType": "person", "observations": ["wrote the first program"]}]}),
        )
        .await;
    assert_eq!(created.status, ExecutionStatus::Success, "{created:#?}");
    let graph = h.call("server-memory", "read_graph", json!({})).await;
    assert_eq!(graph.output.unwrap()["entities"][0]["name"], "Ada");
}

#[tokio::test]
async fn a_registry_server_that_cannot_be_fetched_is_proposed_reviewable_with_the_reason() {
    if installed_server("memory").is_none() {
        return;
    }
    // A range instead of a version: nothing is fetched; the description is still proposed.
    let h = Harness::with_package_caches().await;
    let path = h.dir.path().join("memory.json");
    std::fs::write(&path, memory_server_json("^2026.8.0").to_string()).unwrap();
    let (request, _) =
        h.rt.request_discovery("remember entities and observations about people", &actor())
            .await
            .unwrap();
    let sources = slovo_runtime::SourceConfig {
        mcp_registry: vec![path],
        ..slovo_runtime::SourceConfig::default()
    };
    h.rt.run_discovery_once(&sources, &actor()).await.unwrap();
    let found = h.rt.discovery_request(&request.id).await.unwrap();
    let mcp = &found.result.as_ref().unwrap()["proposal"]["mcp"];
    assert_eq!(mcp["callable"], false, "{mcp:#}");
    let reason = mcp["reason"].as_str().unwrap();
    assert!(
        reason.contains("packages[0].version") && reason.contains("must be exact"),
        "{reason}"
    );
    let shown = h.rt.show("server-memory").await.unwrap();
    assert!(
        shown.manifest.get("execution").is_none_or(Value::is_null),
        "{:#}",
        shown.manifest
    );
}
