//! `slovo`: the command line of Slovo Tools. Each subcommand is one runtime call.

mod cli;
mod commands;
mod render;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use slovo_runtime::{ErrorKind, Runtime, RuntimeError};
use slovo_sandbox::Backends;
use slovo_store::Store;

use crate::cli::Cli;

/// Exit codes, documented in docs/cli.md.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// An internal error (database, file system).
    pub const INTERNAL: u8 = 1;
    /// Bad input: manifest, bundle, arguments, flags.
    pub const INVALID_INPUT: u8 = 3;
    /// A tool, capability or execution that does not exist.
    pub const NOT_FOUND: u8 = 4;
    /// Not allowed in the current state (lifecycle, expired grant, conflict).
    pub const INVALID_STATE: u8 = 5;
    /// A call ran and did not succeed (failure, timeout, killed, …).
    pub const CALL_FAILED: u8 = 6;
    /// The audit trail does not verify.
    pub const AUDIT_BROKEN: u8 = 7;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::from(exit::INTERNAL);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit_code_of(&err))
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let data_dir = data_dir(cli.data_dir.clone())?;
    slovo_runtime::create_data_dir(&data_dir)?;
    let store = match &cli.database_url {
        Some(url) => Store::connect(url)
            .await
            .with_context(|| format!("failed to open database {}", slovo_store::redact_url(url)))?,
        None => {
            let path = data_dir.join("slovo.db");
            Store::open_sqlite(&path)
                .await
                .with_context(|| format!("failed to open {}", path.display()))?
        }
    };
    let rt = std::sync::Arc::new(Runtime::new(store, backends(&data_dir)?, data_dir));
    let code = match &cli.command {
        cli::Command::Serve(args) => commands::serve(rt.clone(), args).await,
        cli::Command::Doctor => commands::doctor(cli.json),
        cli::Command::Mcp => slovo_server::mcp::serve_stdio(rt.clone(), commands::shutdown_signal())
            .await
            .map(|()| exit::OK)
            .context("MCP server failed"),
        _ => commands::dispatch(&rt, &cli).await,
    };
    rt.shutdown().await;
    code
}

/// The backends this build runs tools with.
fn backends(data_dir: &std::path::Path) -> anyhow::Result<Backends> {
    let backends = Backends::new();
    // Refuses every call (with the reason) on a host that lacks an isolation feature, unless
    // SLOVO_SANDBOX_ALLOW_WEAKER=1 names the weaker tier explicitly; `slovo doctor` explains.
    #[cfg(target_os = "linux")]
    let backends = {
        let mut config = slovo_sandbox::process::ProcessConfig::new(data_dir.join("sandbox"));
        config.allow_weaker = std::env::var("SLOVO_SANDBOX_ALLOW_WEAKER").as_deref() == Ok("1");
        let process = slovo_sandbox::process::ProcessBackend::new(config)
            .map_err(|e| anyhow::anyhow!("failed to set up the process sandbox: {e}"))?;
        backends.with(std::sync::Arc::new(process))
    };
    // WebAssembly tools: compiled once at install into `wasm-cache` (keyed by module hash and
    // engine configuration), instantiated from the precompiled artifact on every call.
    #[cfg(feature = "wasm")]
    let backends = {
        let config = slovo_sandbox::wasm::WasmConfig::new(data_dir.join("wasm-cache"));
        let wasm = slovo_sandbox::wasm::WasmBackend::new(config)
            .map_err(|e| anyhow::anyhow!("failed to set up the WebAssembly engine: {e}"))?;
        backends.with(std::sync::Arc::new(wasm))
    };
    // Docker tools run in hardened containers through the Engine API (DOCKER_HOST or the
    // default socket). Without a daemon the backend stays registered and each docker call fails
    // with the reason; `slovo doctor` says so. Images are never pulled unless their registry is
    // listed in SLOVO_DOCKER_REGISTRIES (comma-separated). Creating it starts the removal of
    // containers that a crash left behind.
    #[cfg(target_os = "linux")]
    let backends = {
        let mut config = slovo_sandbox::docker::DockerConfig::new(data_dir.join("sandbox").join("volumes"));
        config.allow_weaker = std::env::var("SLOVO_SANDBOX_ALLOW_WEAKER").as_deref() == Ok("1");
        config.allowed_registries = std::env::var("SLOVO_DOCKER_REGISTRIES")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_string)
            .collect();
        backends.with(slovo_sandbox::docker::DockerBackend::new(config))
    };
    #[cfg(feature = "http")]
    let backends = backends.with(std::sync::Arc::new(slovo_sandbox::http::HttpBackend::new(
        slovo_sandbox::http::HttpConfig {
            allow_private_addresses: std::env::var("SLOVO_HTTP_ALLOW_PRIVATE").as_deref() == Ok("1"),
            ..Default::default()
        },
    )));
    Ok(backends)
}

fn data_dir(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir);
    }
    dirs::data_dir()
        .map(|d| d.join("slovo"))
        .context("no data directory: set SLOVO_DATA_DIR or pass --data-dir")
}

fn exit_code_of(err: &anyhow::Error) -> u8 {
    match err.downcast_ref::<RuntimeError>().map(RuntimeError::kind) {
        Some(ErrorKind::InvalidInput) => exit::INVALID_INPUT,
        Some(ErrorKind::NotFound) => exit::NOT_FOUND,
        Some(ErrorKind::InvalidState) => exit::INVALID_STATE,
        Some(ErrorKind::AuditBroken) => exit::AUDIT_BROKEN,
        Some(ErrorKind::Internal) => exit::INTERNAL,
        None if err.downcast_ref::<commands::UsageError>().is_some() => exit::INVALID_INPUT,
        None => exit::INTERNAL,
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
