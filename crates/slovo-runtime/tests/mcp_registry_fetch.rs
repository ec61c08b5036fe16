//! Importing MCP servers online: npm and pip run in a sandbox of their own whose only network is
//! the configured registry, through the egress proxy. The registry is served by this test on a
//! test host in a network namespace it creates (198.51.100.254), with a second test host beside
//! it (198.51.100.255) that is not the registry; the proxy is told to treat 198.51.100.252/30 as
//! public, and nothing leaves this machine. What the registry serves is built from the real
//! packages `scripts/ci-mcp-servers-setup.sh` cached: the memory server's tarballs (from the npm
//! cache, with their real `integrity`) and the PyPI wheelhouse. Nothing of a fetch stays in
//! `sandbox/volumes`, and the fetch sandbox's limits are the configured ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "mcp_support/mod.rs"]
mod mcp_support;
#[path = "../../slovo-sandbox/tests/netns_support/mod.rs"]
mod netns_support;
#[path = "registry_support/mod.rs"]
mod registry_support;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use mcp_support::{actor, installed_server, servers_dir};
use registry_support::{Mode, Packages, Served, TwoHosts, serve};
use serde_json::json;
use sha2::{Digest, Sha256};
use slovo_core::execution::ExecutionStatus;
use slovo_core::permissions::Narrowing;
use slovo_egress::{EgressConfig, EgressProxy, PublicPolicy};
use slovo_runtime::{CallRequest, FetchLimits, McpImport, McpPackages, McpSource, Runtime, RuntimeSettings};
use slovo_sandbox::Backends;
use slovo_sandbox::mcp::McpBackend;
use slovo_sandbox::process::{ProcessBackend, ProcessConfig};

/// A runtime whose sandboxes reach the test network through the egress proxy, fetching npm
/// packages from `npm_registry` and PyPI packages from `pypi_index` in fetch sandboxes with
/// `fetch_limits`.
async fn runtime(
    dir: &std::path::Path,
    npm_registry: String,
    pypi_index: String,
    fetch_limits: FetchLimits,
) -> Runtime {
    let data = dir.join("data");
    let mut process = ProcessBackend::new(ProcessConfig::new(data.join("sandbox"))).unwrap();
    assert_eq!(process.refusal(), None, "this host must support the full sandbox");
    process.set_egress(EgressProxy::new(EgressConfig {
        public: PublicPolicy::with_ranges(["198.51.100.252/30".parse().unwrap()]),
        ..EgressConfig::default()
    }));
    let process = Arc::new(process);
    let backends = Backends::new()
        .with(process.clone())
        .with(Arc::new(McpBackend::new(process)));
    let store = slovo_store::Store::open_sqlite(&dir.join("slovo.db"))
        .await
        .unwrap();
    let settings = RuntimeSettings {
        mcp_packages: McpPackages {
            npm_registry: Some(npm_registry),
            pypi_index: Some(pypi_index),
            fetch_limits,
            ..McpPackages::default()
        },
        ..RuntimeSettings::default()
    };
    Runtime::new(store, backends, data).with_settings(settings)
}

fn memory_import(name: &str) -> McpImport {
    McpImport {
        source: McpSource::parse("npm:@modelcontextprotocol/server-memory@2026.8.31"),
        name: Some(name.into()),
        env: [("MEMORY_FILE_PATH".to_string(), "/data/memory.jsonl".to_string())].into(),
        args: Vec::new(),
        secrets: Default::default(),
    }
}

/// Nothing of an import is left: no work directory, and no file in the process sandbox's
/// volume directory (image, lock file, …) but `volumes` (the called tools' state).
fn nothing_left(data: &std::path::Path, volumes: &[String]) {
    assert_eq!(
        entries(&data.join("imports")),
        Vec::<String>::new(),
        "work directories left"
    );
    assert_eq!(
        volume_files(data),
        volumes,
        "a fetch volume's files were left in sandbox/volumes"
    );
}

fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The files of the process sandbox's volumes: each volume's image and lock file.
fn volume_files(data: &std::path::Path) -> Vec<String> {
    entries(&data.join("sandbox/volumes"))
}

#[tokio::test]
async fn a_package_is_fetched_in_a_sandbox_that_reaches_the_registry_alone() {
    let (Some(memory), Some(_time)) = (installed_server("memory"), installed_server("time")) else {
        return;
    };
    let cache = servers_dir().parent().unwrap().to_path_buf();
    let packages = Arc::new(Packages::load(
        &memory.join("package-lock.json"),
        &cache.join("npm-cache"),
        &cache.join("wheelhouse"),
    ));
    let hosts = TwoHosts::new();
    let Served {
        authority: registry,
        heads: registry_heads,
        mode,
    } = serve(&hosts, &hosts.registry, packages.clone());
    let Served {
        authority: elsewhere,
        heads: elsewhere_heads,
        ..
    } = serve(&hosts, &hosts.other, packages.clone());
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let rt = runtime(
        dir.path(),
        format!("http://{registry}/"),
        format!("http://{registry}/simple/"),
        FetchLimits::default(),
    )
    .await;
    let data = dir.path().join("data");

    // 1. From the registry: fetched with the packument's integrity, listed, approved, called.
    let report = rt.import_mcp(&memory_import("memory"), &actor()).await.unwrap();
    assert_eq!(
        report.integrity["integrity"],
        packages.npm_integrity("@modelcontextprotocol/server-memory"),
        "{report:#?}"
    );
    assert!(
        report.integrity["packages"].as_object().unwrap().len() > 50,
        "every package's integrity is recorded: {:#}",
        report.integrity
    );
    nothing_left(&data, &[]);
    let seen = registry_heads.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|h| h.contains("server-memory") && !h.contains(".tgz")),
        "npm asked the registry for the packument: {seen:?}"
    );
    assert!(
        seen.iter().any(|h| h.contains("/tarballs/")),
        "npm fetched the tarballs from the registry: {seen:?}"
    );
    rt.approve("memory", &Narrowing::default(), &actor())
        .await
        .unwrap();
    let exec = rt
        .call(CallRequest {
            tool: "memory".into(),
            capability: "read_graph".into(),
            arguments: json!({}),
            conversation_id: None,
            turn_id: None,
            actor: actor(),
        })
        .await
        .unwrap();
    assert_eq!(exec.status, ExecutionStatus::Success, "{exec:#?}");
    // From here on, the memory tool's state volume (its image and lock file) is the only one.
    let volumes = volume_files(&data);
    assert_eq!(volumes.len(), 2, "{volumes:?}");

    // 2. A registry whose packument sends npm to another host for the tarballs: the fetch
    //    sandbox cannot reach it, the proxy says so, and the other host sees nothing.
    *mode.lock().unwrap() = Mode::TarballsAt(elsewhere.clone());
    let before = rt.list().await.unwrap().len();
    let err = rt
        .import_mcp(&memory_import("memory-elsewhere"), &actor())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the egress proxy refused") && err.contains(&elsewhere),
        "the refusal names the other host: {err}"
    );
    assert_eq!(
        elsewhere_heads.lock().unwrap().clone(),
        Vec::<String>::new(),
        "nothing reached the other host"
    );
    assert_eq!(rt.list().await.unwrap().len(), before, "nothing was proposed");
    nothing_left(&data, &volumes);

    // 3. A tarball that is not the one the packument's integrity names: refused.
    *mode.lock().unwrap() = Mode::Tampered;
    let err = rt
        .import_mcp(&memory_import("memory-tampered"), &actor())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("EINTEGRITY") || err.contains("integrity checksum failed"),
        "npm refused the tampered tarball: {err}"
    );
    assert_eq!(rt.list().await.unwrap().len(), before, "nothing was proposed");
    nothing_left(&data, &volumes);

    // 4. pip, from the registry's simple index: wheels only, each one's SHA-256 recorded.
    *mode.lock().unwrap() = Mode::Honest;
    let time = McpImport {
        source: McpSource::parse("pypi:mcp-server-time==2026.10.19"),
        name: Some("time".into()),
        env: Default::default(),
        args: vec!["--local-timezone".into(), "UTC".into()],
        secrets: Default::default(),
    };
    let report = rt.import_mcp(&time, &actor()).await.unwrap();
    let wheel = packages.wheel("mcp-server-time");
    assert_eq!(
        report.integrity["sha256"],
        hex::encode(Sha256::digest(std::fs::read(&wheel).unwrap())),
        "{:#}",
        report.integrity
    );
    assert!(
        registry_heads
            .lock()
            .unwrap()
            .iter()
            .any(|h| h.contains("/simple/mcp-server-time/")),
        "pip read the registry's index"
    );
    assert_eq!(elsewhere_heads.lock().unwrap().len(), 0);
    nothing_left(&data, &volumes);

    // 5. The fetch sandbox's limits are the configured ones: with one second, npm cannot
    //    fetch the memory server's tree, and the failure names the limit.
    let tight = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tight.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let hurried = runtime(
        tight.path(),
        format!("http://{registry}/"),
        format!("http://{registry}/simple/"),
        FetchLimits {
            timeout_s: 1,
            ..FetchLimits::default()
        },
    )
    .await;
    let err = hurried
        .import_mcp(&memory_import("memory-hurried"), &actor())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("timed out after 1s") && err.contains("mcp.fetch_timeout_s (1 s)"),
        "the failure names the configured limit: {err}"
    );
    assert!(hurried.list().await.unwrap().is_empty(), "nothing was proposed");
    nothing_left(&tight.path().join("data"), &[]);
    drop(hosts);
}
