//! One function per subcommand; each is a runtime call plus rendering.

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use serde_json::Value;
use slovo_core::execution::ExecutionStatus;
use slovo_core::manifest::MAX_MANIFEST_BYTES;
use slovo_core::permissions::{HostPattern, Narrowing, parse_size_mb};
use slovo_runtime::{Actor, CallRequest, ImportSource, Runtime};
use slovo_runtime::{ExecutionCursor, ExecutionFilter};

use crate::cli::{
    ApproveArgs, AuditCommand, CallArgs, Cli, Command, ExecutionCommand, ExecutionsArgs, TokenCommand,
    ToolCommand,
};
use crate::cli::{McpServerCommand, McpServerImportArgs, OpenapiCommand, OpenapiImportArgs, SecretCommand};
use crate::{exit, progress, render};

/// A flag or argument the runtime never saw because it was malformed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub async fn dispatch(rt: &Runtime, cli: &Cli, config: &slovo_config::Config) -> anyhow::Result<u8> {
    let code = dispatch_command(rt, cli, config).await;
    // Whatever the outcome, events this command appended get their signed checkpoint before
    // the process ends (docs/audit.md). A failure to write it does not undo the command.
    if let Err(e) = rt.flush_audit_checkpoints().await {
        tracing::warn!("failed to write the audit checkpoint: {e}");
    }
    code
}

async fn dispatch_command(rt: &Runtime, cli: &Cli, config: &slovo_config::Config) -> anyhow::Result<u8> {
    let actor = Actor::cli();
    let json = cli.json;
    match &cli.command {
        Command::Tool(cmd) => tool(rt, cmd, &actor, json).await,
        Command::Call(args) => call(rt, args, actor, json).await,
        Command::Executions(args) => executions(rt, args, json).await,
        Command::Execution(ExecutionCommand::Show { id }) => {
            let e = rt.execution(id).await?;
            render::execution(&e, json)?;
            Ok(exit::OK)
        }
        Command::Audit(AuditCommand::Verify) => {
            let report = rt.verify_audit().await?;
            render::audit(&report, json)?;
            Ok(exit::OK)
        }
        Command::Audit(AuditCommand::Checkpoint) => {
            let written = rt.checkpoint_audit().await?;
            render::checkpoint(written.as_ref(), json)?;
            Ok(exit::OK)
        }
        Command::Instances => {
            render::instances(&rt.instances().await?, json)?;
            Ok(exit::OK)
        }
        Command::Token(cmd) => token(rt, cmd, &actor, json).await,
        Command::Secret(cmd) => secret(rt, cmd, &actor, json).await,
        Command::Openapi(OpenapiCommand::Import(args)) => {
            openapi_import(rt, args, &config.llm, &actor, json).await
        }
        Command::McpServer(McpServerCommand::Import(args)) => mcp_server_import(rt, args, &actor, json).await,
        Command::Resolve(args) => {
            let outcome = rt.resolve(&args.text, usize::from(args.limit), &actor).await?;
            render::resolution(&outcome, json)?;
            Ok(exit::OK)
        }
        Command::Discover(cmd) => discover(rt, cmd, &config.discovery, &actor, json).await,
        Command::Dashboard(args) => dashboard(rt, args, &config.server, &actor, json).await,
        Command::Serve(_) | Command::Doctor | Command::Config(_) => {
            Err(UsageError("handled before dispatch".into()).into())
        }
        Command::Mcp => Err(UsageError("mcp is handled before dispatch".into()).into()),
    }
}

/// `slovo dashboard`: a one-time sign-in link for the dashboard of `slovo serve` at the
/// configured address.
async fn dashboard(
    rt: &Runtime,
    args: &crate::cli::DashboardArgs,
    server: &slovo_config::ServerConfig,
    actor: &Actor,
    json: bool,
) -> anyhow::Result<u8> {
    if args.valid_for == 0 || args.valid_for > 24 * 60 {
        return Err(UsageError("--valid-for: give 1 to 1440 minutes".into()).into());
    }
    let ttl = std::time::Duration::from_secs(args.valid_for * 60);
    let link = rt.create_signin_link(ttl, actor).await?;
    // A server listening on every address is reached here through loopback.
    let mut address = server.listen;
    if address.ip().is_unspecified() {
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("http://{address}/signin/link/{}", link.code);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "url": url, "link": link.id, "expires_at": link.expires_at}))?
        );
    } else {
        println!("{url}");
        eprintln!(
            "slovo: this link signs one browser in once, within {} minute(s); `slovo serve` must be running",
            args.valid_for
        );
    }
    let graphical = std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    if !args.no_open && graphical {
        // Best effort: without a browser opener the printed link is enough.
        let _ = std::process::Command::new("xdg-open")
            .arg(&url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
    Ok(exit::OK)
}

async fn token(rt: &Runtime, cmd: &TokenCommand, actor: &Actor, json: bool) -> anyhow::Result<u8> {
    match cmd {
        TokenCommand::Create { role, label } => {
            let role: slovo_core::access::Role =
                role.parse().map_err(|e| UsageError(format!("--role: {e}")))?;
            let created = rt.create_token(role, label.clone(), actor).await?;
            render::new_token(&created, json)?;
        }
        TokenCommand::List => render::tokens(&rt.tokens().await?, json)?,
        TokenCommand::Revoke { id } => {
            rt.revoke_token(id, actor).await?;
            if !json {
                println!("token {id} revoked");
            }
        }
    }
    Ok(exit::OK)
}

async fn openapi_import(
    rt: &Runtime,
    a: &OpenapiImportArgs,
    llm: &slovo_config::LlmConfig,
    actor: &Actor,
    json: bool,
) -> anyhow::Result<u8> {
    let max = slovo_openapi::DEFAULT_MAX_DOCUMENT_BYTES;
    let source = if a.source.starts_with("http://") || a.source.starts_with("https://") {
        progress::while_running(
            &format!("fetching {}", a.source),
            json,
            rt.fetch_openapi(&a.source),
        )
        .await?
    } else {
        slovo_openapi::Source::from_path(&a.source, max).map_err(slovo_runtime::RuntimeError::from)?
    };
    let options = slovo_openapi::IngestOptions {
        tool_name: a.name.clone(),
        base_url: a.base_url.clone(),
        filter: slovo_openapi::Filter {
            tags: a.tags.clone(),
            paths: a.paths.clone(),
            methods: a.methods.clone(),
        },
        max_operations: a.max_operations,
        strict: a.strict,
        ..slovo_openapi::IngestOptions::default()
    };
    if llm.model.is_some() && llm.base_url.is_none() {
        return Err(UsageError("llm.model (--llm-model) needs llm.base_url (--llm-base-url)".into()).into());
    }
    let analyzer = match &llm.base_url {
        Some(url) => {
            let model = llm.model.clone().unwrap_or_else(|| "gpt-4o-mini".to_string());
            let key = rt.llm_api_key().await?;
            Some((
                slovo_llm::ChatAnalyzer::new(slovo_llm::LlmConfig::new(url, &model, key))?,
                model,
            ))
        }
        None => None,
    };
    let ingest = rt.import_openapi(
        &source,
        &options,
        analyzer.as_ref().map(|(a, m)| (a, m.as_str())),
        actor,
    );
    let result = progress::while_running("ingesting the OpenAPI document", json, ingest).await?;
    render::openapi_import(&result, json)?;
    Ok(exit::OK)
}

/// `slovo mcp-server import`: the flags become one [`Runtime::import_mcp`].
async fn mcp_server_import(
    rt: &Runtime,
    a: &McpServerImportArgs,
    actor: &Actor,
    json: bool,
) -> anyhow::Result<u8> {
    let mut env = std::collections::BTreeMap::new();
    for pair in &a.env {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| UsageError(format!("--env {pair}: give NAME=VALUE")))?;
        env.insert(name.to_string(), value.to_string());
    }
    let request = slovo_runtime::McpImport {
        source: slovo_runtime::McpSource::parse(&a.source),
        name: a.name.clone(),
        env,
        args: a.args.clone(),
        secrets: import_secrets(&a.secrets)?,
    };
    let report = progress::while_running(
        &format!("fetching {} and listing its tools in its sandbox", a.source),
        json,
        rt.import_mcp(&request, actor),
    )
    .await?;
    render::mcp_import(&report, json)?;
    Ok(exit::OK)
}

/// A secret's value: asked for on a terminal, otherwise read from stdin (at most 64 KiB, a
/// trailing newline dropped).
fn read_secret_value(what: &str) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password(format!("value of {what}: ")).context("failed to read the secret");
    }
    let mut s = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut s)
        .context("failed to read the secret from stdin")?;
    // A trailing newline from `echo` or a file is not part of the secret.
    Ok(s.trim_end_matches(['\n', '\r']).to_string())
}

/// `--secret NAME=VALUE` or `--secret NAME` (the value asked for, or read from stdin: for one
/// secret only, since stdin holds one value).
fn import_secrets(given: &[String]) -> anyhow::Result<slovo_core::secrets::Secrets> {
    let mut values = std::collections::BTreeMap::new();
    let asked = given.iter().filter(|g| !g.contains('=')).count();
    if asked > 1 && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(UsageError(
            "--secret NAME without a value reads stdin, which holds one value: give the others as NAME=VALUE"
                .into(),
        )
        .into());
    }
    for item in given {
        let (name, value) = match item.split_once('=') {
            Some((name, value)) => (name.to_string(), value.to_string()),
            None => (item.clone(), read_secret_value(&format!("the secret {item}"))?),
        };
        values.insert(name, value);
    }
    Ok(slovo_core::secrets::Secrets::new(values))
}

async fn secret(rt: &Runtime, cmd: &SecretCommand, actor: &Actor, json: bool) -> anyhow::Result<u8> {
    match cmd {
        SecretCommand::Set { tool, name } => {
            let value = read_secret_value(&format!("{tool}/{name}"))?;
            rt.set_secret(tool, name, zeroize::Zeroizing::new(value), actor)
                .await?;
            if !json {
                println!("secret {tool}/{name} stored (encrypted)");
            }
        }
        SecretCommand::List { tool } => {
            let names = rt.secret_names(tool).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&names)?);
            } else {
                for n in names {
                    println!("{n}");
                }
            }
        }
        SecretCommand::Delete { tool, name } => {
            rt.delete_secret(tool, name, actor).await?;
            if !json {
                println!("secret {tool}/{name} deleted");
            }
        }
    }
    Ok(exit::OK)
}

/// Prints the host probe, and which ranking discovery uses.
pub async fn doctor(rt: &Runtime, config: &slovo_config::Config, json: bool) -> anyhow::Result<u8> {
    let docker_host = config
        .docker
        .host
        .as_deref()
        .unwrap_or(slovo_sandbox::doctor::DEFAULT_DOCKER_HOST);
    let report = slovo_sandbox::doctor::probe_with(config.sandbox.allow_weaker, None, docker_host);
    let ranking = rt.discovery_ranking().await;
    if json {
        let mut value = serde_json::to_value(&report)?;
        if let Some(fields) = value.as_object_mut() {
            fields.insert("discovery_ranking".into(), serde_json::to_value(&ranking)?);
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", report.render());
        println!("{}", ranking.render());
    }
    Ok(exit::OK)
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn serve(rt: std::sync::Arc<Runtime>, config: &slovo_config::Config) -> anyhow::Result<u8> {
    let server = &config.server;
    if !server.listen.ip().is_loopback() && !server.allow_remote {
        return Err(UsageError(format!(
            "server.listen {}: not a loopback address; add --allow-remote (server.allow_remote) to expose the API to the network",
            server.listen
        ))
        .into());
    }
    let listener = tokio::net::TcpListener::bind(server.listen)
        .await
        .with_context(|| format!("failed to listen on {}", server.listen))?;
    let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    let server_config = slovo_server::ServerConfig {
        max_concurrent_calls: count(server.max_concurrent_calls),
        max_queued_calls: count(server.max_queued_calls),
        max_body_bytes: count(server.max_body_bytes),
        shutdown_grace: std::time::Duration::from_secs(server.shutdown_grace_s),
    };
    eprintln!("slovo: serving on http://{}", listener.local_addr()?);
    eprintln!(
        "slovo: approval dashboard at http://{}/ (sign in with an admin token)",
        listener.local_addr()?
    );
    let worker = discovery_worker(rt.clone(), &config.discovery);
    let state = slovo_server::AppState::new(rt, server_config);
    let served = slovo_server::serve(listener, state, shutdown_signal()).await;
    if let Some(w) = worker {
        w.abort();
    }
    served.context("server failed")?;
    Ok(exit::OK)
}

pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    eprintln!("slovo: shutting down");
}

async fn tool(rt: &Runtime, cmd: &ToolCommand, actor: &Actor, json: bool) -> anyhow::Result<u8> {
    match cmd {
        ToolCommand::Import { path } => {
            let source = import_source(path)?;
            let report = progress::while_running("importing", json, rt.import(source, actor)).await?;
            render::import(&report, json)?;
        }
        ToolCommand::List => render::tools(&rt.list().await?, json)?,
        ToolCommand::Show { name } => render::tool(&rt.show(name).await?, json)?,
        ToolCommand::Approve(args) => {
            let narrowing = narrowing(args)?;
            let installing = format!("approving and installing {}", args.name);
            progress::while_running(&installing, json, rt.approve(&args.name, &narrowing, actor)).await?;
            render::tool(&rt.show(&args.name).await?, json)?;
        }
        ToolCommand::Disable { name } => render::status(&rt.disable(name, actor).await?, json)?,
        ToolCommand::Enable { name } => render::status(&rt.enable(name, actor).await?, json)?,
        ToolCommand::Reinstall { name } => {
            progress::while_running(&format!("installing {name}"), json, rt.reinstall(name, actor)).await?;
            render::tool(&rt.show(name).await?, json)?;
        }
        ToolCommand::Revoke { name, purge_state } => {
            render::status(&rt.revoke(name, *purge_state, actor).await?, json)?
        }
    }
    Ok(exit::OK)
}

fn import_source(path: &str) -> anyhow::Result<ImportSource> {
    if path == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .take(MAX_MANIFEST_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .context("failed to read the manifest from stdin")?;
        return Ok(ImportSource::Manifest {
            name: "-".into(),
            bytes,
        });
    }
    let p = Path::new(path);
    let meta = std::fs::metadata(p).with_context(|| format!("failed to read {path}"))?;
    let lower = path.to_ascii_lowercase();
    if meta.is_dir() || lower.ends_with(".tar") || lower.ends_with(".tar.gz") || lower.ends_with(".tgz") {
        return Ok(ImportSource::Bundle(p.to_path_buf()));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(p)
        .and_then(|f| f.take(MAX_MANIFEST_BYTES as u64 + 1).read_to_end(&mut bytes))
        .with_context(|| format!("failed to read {path}"))?;
    Ok(ImportSource::Manifest {
        name: path.to_string(),
        bytes,
    })
}

fn narrowing(a: &ApproveArgs) -> anyhow::Result<Narrowing> {
    let size = |flag: &str, v: &Option<String>| -> anyhow::Result<Option<u64>> {
        v.as_deref()
            .map(|s| parse_size_mb(s).map_err(|e| UsageError(format!("--{flag}: {e}")).into()))
            .transpose()
    };
    let hosts = if a.allow_host.is_empty() {
        None
    } else {
        Some(
            a.allow_host
                .iter()
                .map(|h| {
                    h.parse::<HostPattern>()
                        .map_err(|e| UsageError(format!("--allow-host: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?,
        )
    };
    let expires_at = a
        .expires
        .as_deref()
        .map(|t| {
            slovo_core::time::parse_rfc3339(t)
                .map_err(|e| UsageError(format!("--expires: {t:?} is not an RFC 3339 time: {e}")))
        })
        .transpose()?;
    Ok(Narrowing {
        no_network: a.no_network,
        network_allow: hosts,
        storage_quota_mb: size("storage", &a.storage)?,
        cpu_limit_percent: a.cpu,
        memory_limit_mb: size("memory", &a.memory)?,
        timeout_s: a.timeout,
        pids_limit: a.pids,
        expires_at,
    })
}

async fn call(rt: &Runtime, args: &CallArgs, actor: Actor, json: bool) -> anyhow::Result<u8> {
    let text = if args.args == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("failed to read arguments from stdin")?;
        s
    } else {
        args.args.clone()
    };
    let arguments: Value =
        serde_json::from_str(&text).map_err(|e| UsageError(format!("--args: not valid JSON: {e}")))?;
    let exec = rt
        .call(CallRequest {
            tool: args.tool.clone(),
            capability: args.capability.clone(),
            arguments,
            conversation_id: args.conversation.clone(),
            turn_id: args.turn.clone(),
            actor,
        })
        .await?;
    render::call_result(&exec, json)?;
    Ok(if exec.status == ExecutionStatus::Success {
        exit::OK
    } else {
        exit::CALL_FAILED
    })
}

async fn executions(rt: &Runtime, args: &ExecutionsArgs, json: bool) -> anyhow::Result<u8> {
    let status = args
        .status
        .as_deref()
        .map(|s| {
            s.parse::<ExecutionStatus>()
                .map_err(|e| UsageError(format!("--status: {e}")))
        })
        .transpose()?;
    let before = match &args.before {
        Some(id) => {
            let e = rt.execution(id).await?;
            Some(ExecutionCursor {
                started_at: e.started_at,
                id: e.id,
            })
        }
        None => None,
    };
    let rows = rt
        .executions(&ExecutionFilter {
            tool: args.tool.clone(),
            status,
            before,
            limit: args.limit,
        })
        .await?;
    render::executions(&rows, json)?;
    Ok(exit::OK)
}

fn discovery_sources(rt: &Runtime, sources: &slovo_config::DiscoveryConfig) -> slovo_runtime::SourceConfig {
    let openapi_urls: Vec<String> = sources
        .openapi_urls
        .iter()
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
        .collect();
    // URLs are fetched like `slovo openapi import URL`, under the runtime's address policy.
    let fetcher = (!openapi_urls.is_empty())
        .then(|| std::sync::Arc::new(rt.url_fetcher()) as std::sync::Arc<dyn slovo_openapi::RemoteFetcher>);
    slovo_runtime::SourceConfig {
        manifest_dirs: sources.source_dirs.clone(),
        catalogue_dirs: sources.catalogues.clone(),
        openapi_urls,
        mcp_registry: sources.mcp_registries.clone(),
        fetcher,
    }
}

/// The discovery worker inside `serve`: one pass every `discovery.interval_s` seconds, if a
/// source is configured.
fn discovery_worker(
    rt: std::sync::Arc<Runtime>,
    config: &slovo_config::DiscoveryConfig,
) -> Option<tokio::task::JoinHandle<()>> {
    let sources = discovery_sources(&rt, config);
    if sources.is_empty() {
        return None;
    }
    let interval = config.interval_s;
    let actor = Actor("discovery-worker".into());
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(interval.max(1)));
        loop {
            tick.tick().await;
            match rt.run_discovery_once(&sources, &actor).await {
                Ok(run) if !run.processed.is_empty() => {
                    tracing::info!(processed = run.processed.len(), "discovery pass")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "discovery pass failed"),
            }
        }
    }))
}

async fn discover(
    rt: &Runtime,
    cmd: &crate::cli::DiscoverCommand,
    configured: &slovo_config::DiscoveryConfig,
    actor: &Actor,
    json: bool,
) -> anyhow::Result<u8> {
    use crate::cli::DiscoverCommand;
    match cmd {
        DiscoverCommand::List => render::discovery_requests(&rt.discovery_requests().await?, json)?,
        DiscoverCommand::Run(_) => {
            // The flags were folded into the configuration's `discovery.*` sources.
            let sources = discovery_sources(rt, configured);
            if sources.is_empty() {
                return Err(UsageError(
                    "no discovery source: give --source-dir, --catalogue, --openapi-url or --mcp-registry, or configure discovery.*"
                        .into(),
                )
                .into());
            }
            let run = progress::while_running(
                "discovery pass (loading sources, ranking, proposing)",
                json,
                rt.run_discovery_once(&sources, actor),
            )
            .await?;
            render::discovery_run(&run, json)?;
        }
        DiscoverCommand::Reject { id } => {
            let row = rt.reject_request(id, actor).await?;
            render::discovery_requests(std::slice::from_ref(&row), json)?;
        }
        DiscoverCommand::Eval {
            bfcl: Some(dir),
            model_dir,
            fit_gap,
            ..
        } => {
            let model_dir = model_dir.clone().or_else(|| configured.model_dir.clone());
            let dir = dir.clone();
            let fit = *fit_gap;
            let report = progress::while_running(
                "BFCL evaluation (embedding every text once, then ranking)",
                json,
                tokio::task::spawn_blocking(move || bfcl_eval(&dir, model_dir.as_deref(), fit)),
            )
            .await??;
            render::bfcl_eval(&report, json)?;
        }
        DiscoverCommand::Eval {
            catalogue: Some(catalogue),
            queries: Some(queries),
            ..
        } => {
            let text = std::fs::read_to_string(queries)
                .with_context(|| format!("failed to read {}", queries.display()))?;
            let cases = slovo_discovery::eval::parse_cases(&text)
                .map_err(|e| UsageError(format!("{}: {e}", queries.display())))?;
            let dir = catalogue.clone();
            let started = std::time::Instant::now();
            let cat = tokio::task::spawn_blocking(move || {
                slovo_discovery::sources::Catalogue::load(&slovo_discovery::sources::SourceConfig {
                    catalogue_dirs: vec![dir],
                    ..slovo_discovery::sources::SourceConfig::default()
                })
            })
            .await?;
            let load_ms = started.elapsed().as_millis();
            let (index, _) = cat.index();
            let rule = slovo_discovery::GapRule::default();
            let report = slovo_discovery::eval::evaluate(&index, &cases, &rule);
            let tuned_rule = slovo_discovery::eval::calibrate(&index, &cases);
            let tuned = slovo_discovery::eval::evaluate(&index, &cases, &tuned_rule);
            let flat = slovo_discovery::Index::build_unweighted(index.docs().to_vec());
            let flat_rule = slovo_discovery::eval::calibrate(&flat, &cases);
            let flat_report = slovo_discovery::eval::evaluate(&flat, &cases, &flat_rule);
            let started = std::time::Instant::now();
            let mut lat = Vec::with_capacity(cases.len());
            for c in &cases {
                let t = std::time::Instant::now();
                std::hint::black_box(slovo_discovery::resolve(&index, &c.query, 5, &rule));
                lat.push(t.elapsed().as_secs_f64() * 1e6);
            }
            let total_us = started.elapsed().as_secs_f64() * 1e6;
            lat.sort_by(f64::total_cmp);
            let p50 = lat.get(lat.len() / 2).copied().unwrap_or(0.0);
            render::eval(
                &serde_json::json!({
                    "catalogue": {"candidates": cat.candidates.len(), "capabilities": index.len(),
                                  "problems": cat.problems.len(), "load_ms": load_ms},
                    "engine": "bm25f",
                    "default_rule": report,
                    "calibrated_rule": tuned,
                    "unweighted_bm25_calibrated": flat_report,
                    "resolve_us": {"p50": p50, "mean": total_us / cases.len().max(1) as f64},
                }),
                json,
            )?;
        }
        DiscoverCommand::Eval { .. } => {
            return Err(UsageError("give --bfcl DIR, or --catalogue DIR and --queries FILE".into()).into());
        }
    }
    Ok(exit::OK)
}

/// `slovo discover eval --bfcl`: the live sets, lexical and (with a model) by meaning.
fn bfcl_eval(
    dir: &Path,
    model_dir: Option<&Path>,
    fit: bool,
) -> anyhow::Result<slovo_discovery::measure::LiveReport> {
    let sets = slovo_discovery::bfcl::load_live(dir).map_err(|e| UsageError(e.to_string()))?;
    let model = model_dir
        .map(slovo_discovery::embed::LocalModel::load)
        .transpose()
        .map_err(|e| UsageError(e.to_string()))?;
    let fit_on = fit.then_some(slovo_runtime::FUSED_RANKER);
    let model: Option<&dyn slovo_discovery::measure::Embed> = model.as_ref().map(|m| m as _);
    Ok(slovo_discovery::measure::evaluate_live(&sets, model, fit_on)?)
}
