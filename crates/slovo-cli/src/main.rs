//! `slovo`: the command line of Slovo Tools. Each subcommand is one runtime call.

mod cli;
mod commands;
mod progress;
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
    /// The database cannot take writes now (locked by another process, disk full); retry
    /// later (`EX_TEMPFAIL`).
    pub const UNAVAILABLE: u8 = 75;
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
    let loaded = load_config(&cli)?;
    if let cli::Command::Config(cli::ConfigCommand::Show) = &cli.command {
        render::config(&loaded, cli.json)?;
        return Ok(exit::OK);
    }
    let config = &loaded.config;
    let data_dir = config.data_dir.clone();
    slovo_runtime::create_data_dir(&data_dir)?;
    let store = match &config.database.url {
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
    // Warm MCP sandboxes serve the calls of a long-running server; a one-shot command ends
    // before any could be used, so it starts none.
    let long_running = matches!(cli.command, cli::Command::Serve(_) | cli::Command::Mcp);
    let rt = std::sync::Arc::new(
        Runtime::new(store, backends(config, long_running)?, data_dir)
            .with_settings(runtime_settings(config)?),
    );
    let code = match &cli.command {
        cli::Command::Serve(_) => commands::serve(rt.clone(), config).await,
        cli::Command::Doctor => commands::doctor(&rt, config, cli.json).await,
        cli::Command::Mcp => slovo_server::mcp::serve_stdio(rt.clone(), commands::shutdown_signal())
            .await
            .map(|()| exit::OK)
            .context("MCP server failed"),
        _ => commands::dispatch(&rt, &cli, config).await,
    };
    rt.shutdown().await;
    code
}

/// The configuration: defaults < file < environment < these flags.
fn load_config(cli: &Cli) -> anyhow::Result<slovo_config::Loaded> {
    let mut overrides = slovo_config::Overrides::new();
    if let Some(dir) = &cli.data_dir {
        overrides.set("data_dir", dir.to_string_lossy().into_owned(), "--data-dir");
    }
    if let Some(url) = &cli.database_url {
        overrides.set("database.url", url.as_str(), "--database-url");
    }
    let sources = match &cli.command {
        cli::Command::Serve(args) => {
            if let Some(listen) = args.listen {
                overrides.set("server.listen", listen.to_string(), "--listen");
            }
            if args.allow_remote {
                overrides.set("server.allow_remote", true, "--allow-remote");
            }
            let numbers = [
                (
                    "server.max_concurrent_calls",
                    args.max_concurrent_calls,
                    "--max-concurrent-calls",
                ),
                (
                    "server.max_queued_calls",
                    args.max_queued_calls,
                    "--max-queued-calls",
                ),
                ("server.shutdown_grace_s", args.shutdown_grace, "--shutdown-grace"),
                (
                    "discovery.interval_s",
                    args.discovery_interval,
                    "--discovery-interval",
                ),
            ];
            for (key, value, flag) in numbers {
                if let Some(n) = value {
                    overrides.set(key, i64::try_from(n).unwrap_or(i64::MAX), flag);
                }
            }
            Some(&args.discovery)
        }
        cli::Command::Discover(cli::DiscoverCommand::Run(args)) => Some(args),
        _ => None,
    };
    if let Some(args) = sources {
        let paths = |v: &[PathBuf]| v.iter().map(|p| p.display().to_string()).collect::<Vec<_>>();
        overrides
            .set_list("discovery.source_dirs", &paths(&args.source_dirs), "--source-dir")
            .set_list("discovery.catalogues", &paths(&args.catalogues), "--catalogue")
            .set_list("discovery.openapi_urls", &args.openapi_urls, "--openapi-url")
            .set_list(
                "discovery.mcp_registries",
                &paths(&args.mcp_registry),
                "--mcp-registry",
            );
    }
    if let cli::Command::Openapi(cli::OpenapiCommand::Import(args)) = &cli.command {
        if let Some(url) = &args.llm_base_url {
            overrides.set("llm.base_url", url.as_str(), "--llm-base-url");
        }
        if let Some(model) = &args.llm_model {
            overrides.set("llm.model", model.as_str(), "--llm-model");
        }
    }
    let options = slovo_config::LoadOptions {
        config_file: cli.config.clone(),
        default_data_dir: dirs::data_dir().map(|d| d.join("slovo")),
        overrides,
    };
    let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    Ok(slovo_config::load(&env, options)?)
}

/// What the runtime takes from the configuration.
fn runtime_settings(config: &slovo_config::Config) -> anyhow::Result<slovo_runtime::RuntimeSettings> {
    Ok(slovo_runtime::RuntimeSettings {
        secret_key: config.secret_key.clone().map(zeroize::Zeroizing::new),
        http_allow_private: config.http.allow_private,
        public: public_policy(config),
        instance_lease: std::time::Duration::from_millis(config.server.instance_lease_ms.max(300)),
        embedder: embedder(&config.discovery)?.map(std::sync::Arc::new),
        gap_judge: gap_judge(config)?,
        mcp_packages: slovo_runtime::McpPackages {
            npm: config.mcp.npm.clone(),
            npm_cache: config.mcp.npm_cache.clone(),
            npm_registry: config.mcp.npm_registry.clone(),
            python: config.mcp.python.clone(),
            pip_find_links: config.mcp.pip_find_links.clone(),
            pypi_index: config.mcp.pypi_index.clone(),
            fetch_hosts: config.mcp.fetch_hosts.clone(),
            fetch_limits: slovo_runtime::FetchLimits {
                memory_mb: config.mcp.fetch_memory_mb,
                storage_mb: config.mcp.fetch_storage_mb,
                timeout_s: config.mcp.fetch_timeout_s,
                pids: config.mcp.fetch_pids,
            },
        },
        ..slovo_runtime::RuntimeSettings::default()
    })
}

/// The LLM judge of borderline gap decisions: `discovery.judge` with `llm.base_url`.
fn gap_judge(config: &slovo_config::Config) -> anyhow::Result<Option<slovo_runtime::JudgeSettings>> {
    if !config.discovery.judge {
        return Ok(None);
    }
    let base_url = config.llm.base_url.clone().ok_or_else(|| {
        commands::UsageError("discovery.judge is set but llm.base_url is not: the judge is an LLM".into())
    })?;
    Ok(Some(slovo_runtime::JudgeSettings {
        base_url,
        model: config
            .llm
            .model
            .clone()
            .unwrap_or_else(|| "gpt-4o-mini".to_string()),
        deadline: std::time::Duration::from_millis(config.discovery.judge_timeout_ms.max(1)),
    }))
}

/// The sentence-embedding model `resolve` ranks with, if one is configured. A model directory
/// is loaded when first needed; nothing is ever downloaded.
fn embedder(discovery: &slovo_config::DiscoveryConfig) -> anyhow::Result<Option<slovo_runtime::Embedder>> {
    match (&discovery.model_dir, &discovery.embeddings_url) {
        (Some(_), Some(_)) => Err(commands::UsageError(
            "discovery.model_dir and discovery.embeddings_url are both set: configure one embedding model"
                .into(),
        )
        .into()),
        (Some(dir), None) => Ok(Some(slovo_runtime::Embedder::local(dir))),
        (None, Some(url)) => {
            let model = discovery.embeddings_model.as_deref().ok_or_else(|| {
                commands::UsageError(
                    "discovery.embeddings_url is set but discovery.embeddings_model is not".into(),
                )
            })?;
            let client =
                slovo_llm::EmbeddingsClient::new(url, model, None, std::time::Duration::from_secs(30))?;
            Ok(Some(slovo_runtime::Embedder::remote(client)))
        }
        (None, None) => Ok(None),
    }
}

/// The addresses every backend treats as public: the globally routable ones and
/// `egress.also_public`.
fn public_policy(config: &slovo_config::Config) -> slovo_core::net::PublicPolicy {
    slovo_core::net::PublicPolicy::with_ranges(config.egress.also_public.iter().copied())
}

fn usize_of(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// The backends this build runs tools with, each configured from `config`; one egress proxy
/// (and so one address policy) serves them all. Only a `long_running` process keeps warm MCP
/// sandboxes.
fn backends(config: &slovo_config::Config, long_running: bool) -> anyhow::Result<Backends> {
    let data_dir = &config.data_dir;
    let egress = slovo_egress::EgressProxy::new(slovo_egress::EgressConfig {
        public: public_policy(config),
        connect_timeout: std::time::Duration::from_millis(config.egress.connect_timeout_ms),
        max_connections: usize_of(config.egress.max_connections),
    });
    let backends = Backends::new();
    // Docker tools run in hardened containers through the Engine API. Without a daemon the
    // backend stays registered and each docker call fails with the reason; `slovo doctor`
    // says so. Images are never pulled unless their registry is in `docker.registries`.
    // Creating it starts the removal of containers that a crash left behind.
    #[cfg(target_os = "linux")]
    let docker = {
        let mut docker_config =
            slovo_sandbox::docker::DockerConfig::new(data_dir.join("sandbox").join("volumes"));
        docker_config.allow_weaker = config.sandbox.allow_weaker;
        docker_config.tmp_mb = config.sandbox.tmp_mb;
        docker_config.stdout_limit = usize_of(config.sandbox.stdout_limit_bytes);
        docker_config.stderr_limit = usize_of(config.sandbox.stderr_limit_bytes);
        docker_config.allowed_registries = config.docker.registries.clone();
        if let Some(host) = &config.docker.host {
            docker_config.host = host.clone();
        }
        let docker = slovo_sandbox::docker::DockerBackend::new(docker_config);
        docker.set_egress(egress.clone());
        docker
    };
    // Refuses every call (with the reason) on a host that lacks an isolation feature, unless
    // `sandbox.allow_weaker` names the weaker tier explicitly; `slovo doctor` explains.
    #[cfg(target_os = "linux")]
    let backends = {
        let mut process_config = slovo_sandbox::process::ProcessConfig::new(data_dir.join("sandbox"));
        process_config.allow_weaker = config.sandbox.allow_weaker;
        process_config.tmp_mb = config.sandbox.tmp_mb;
        process_config.stdout_limit = usize_of(config.sandbox.stdout_limit_bytes);
        process_config.stderr_limit = usize_of(config.sandbox.stderr_limit_bytes);
        let mut process = slovo_sandbox::process::ProcessBackend::new(process_config)
            .map_err(|e| anyhow::anyhow!("failed to set up the process sandbox: {e}"))?;
        process.set_egress(egress.clone());
        let process = std::sync::Arc::new(process);
        // MCP servers over stdio run in the same process sandbox, one fresh server per call,
        // started ahead of the call by a small pool of single-use sandboxes.
        let pool = slovo_sandbox::mcp::PoolConfig {
            size: if long_running {
                usize_of(config.mcp.pool_size)
            } else {
                0
            },
            idle: std::time::Duration::from_secs(config.mcp.pool_idle_s),
        };
        let mcp = slovo_sandbox::mcp::McpBackend::with_pool(process.clone(), pool);
        // Remote servers (streamable-http) are reached under the HTTP tools' address rules.
        #[cfg(feature = "http")]
        let mcp = mcp.with_remote(http_config(config));
        // Servers that come as OCI images run in the Docker backend's containers.
        let mcp = mcp.with_docker(docker.clone());
        backends.with(process).with(std::sync::Arc::new(mcp))
    };
    // WebAssembly tools: compiled once at install into `wasm-cache` (keyed by module hash and
    // engine configuration), instantiated from the precompiled artifact on every call.
    #[cfg(feature = "wasm")]
    let backends = {
        let wasm_config = slovo_sandbox::wasm::WasmConfig::new(data_dir.join("wasm-cache"));
        let wasm = slovo_sandbox::wasm::WasmBackend::new(wasm_config)
            .map_err(|e| anyhow::anyhow!("failed to set up the WebAssembly engine: {e}"))?;
        wasm.set_egress(egress.clone());
        backends.with(std::sync::Arc::new(wasm))
    };
    #[cfg(target_os = "linux")]
    let backends = backends.with(docker);
    #[cfg(feature = "http")]
    let backends = backends.with(std::sync::Arc::new(slovo_sandbox::http::HttpBackend::new(
        http_config(config),
    )));
    let _ = egress;
    Ok(backends)
}

/// The address rules, limits and redirects of HTTP tools and remote MCP servers.
#[cfg(feature = "http")]
fn http_config(config: &slovo_config::Config) -> slovo_sandbox::http::HttpConfig {
    slovo_sandbox::http::HttpConfig {
        allow_private_addresses: config.http.allow_private,
        public: public_policy(config),
        max_response_bytes: usize_of(config.http.max_response_bytes),
        max_redirects: usize_of(config.http.max_redirects),
        ..Default::default()
    }
}

fn exit_code_of(err: &anyhow::Error) -> u8 {
    match err.downcast_ref::<RuntimeError>().map(RuntimeError::kind) {
        Some(ErrorKind::InvalidInput) => exit::INVALID_INPUT,
        Some(ErrorKind::NotFound) => exit::NOT_FOUND,
        Some(ErrorKind::InvalidState) => exit::INVALID_STATE,
        Some(ErrorKind::AuditBroken) => exit::AUDIT_BROKEN,
        Some(ErrorKind::Unavailable) => exit::UNAVAILABLE,
        Some(ErrorKind::Internal) => exit::INTERNAL,
        None if err.downcast_ref::<commands::UsageError>().is_some() => exit::INVALID_INPUT,
        None => exit::INTERNAL,
    }
}

fn init_tracing(verbose: u8) {
    use std::io::IsTerminal;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour only on a terminal: piped output and files get plain text.
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if verbose == 0 {
        // Without -v a warning is a sentence for a person: `warning: …`, no timestamp or module.
        builder.event_format(Sentence { ansi }).init();
    } else {
        builder.init();
    }
}

/// `warning: the message (field=value …)`: the plain form of log events without `-v`.
struct Sentence {
    ansi: bool,
}

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for Sentence
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let level = *event.metadata().level();
        let (word, colour) = match level {
            tracing::Level::ERROR => ("error", "31"),
            tracing::Level::WARN => ("warning", "33"),
            tracing::Level::INFO => ("info", "32"),
            _ => ("debug", "34"),
        };
        if self.ansi {
            write!(writer, "\x1b[1;{colour}m{word}:\x1b[0m ")?;
        } else {
            write!(writer, "{word}: ")?;
        }
        tracing_subscriber::fmt::FormatFields::format_fields(ctx, writer.by_ref(), event)?;
        writeln!(writer)
    }
}
