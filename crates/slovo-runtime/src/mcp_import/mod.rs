//! Importing an MCP server by name (`npm:PACKAGE@VERSION`, `pypi:PACKAGE==VERSION`) or from a
//! registry `server.json`: one operation, [`Runtime::import_mcp`], behind every front end.
//!
//! 1. **Fetch** the package once into a private directory, install scripts disabled (npm
//!    `--ignore-scripts`) or wheels only (pip `--only-binary=:all:`), from the configured cache
//!    (on the host) or registry (in a sandbox whose only network is that registry,
//!    [`fetch_sandbox`]) only; its integrity data is checked and recorded ([`fetch`]).
//! 2. **List** its tools: the server is started once in its sandbox (no network, no state;
//!    the secrets given with the import in its environment, for a server that lists its
//!    tools only with its key) and answers `initialize` and `tools/list` (the MCP backend's
//!    install run).
//! 3. **Propose**: each tool becomes a capability ([`manifest`]); the manifest and the import
//!    record (`slovo-mcp.json`: package, integrity, server, tools) are written beside the
//!    package, and the directory is imported as a bundle — hashed, read-only, waiting for
//!    approval like any other tool —, with the secrets given sealed and stored in the same
//!    transaction. Approval holds the server to the tool list recorded here
//!    (`mcp_pin.rs`).

mod discovered;
mod fetch;
mod fetch_sandbox;
mod image;
mod manifest;
mod remote;
mod source;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};
use slovo_core::install::{InstallFacts, McpFacts};
use slovo_core::manifest::{Execution, McpTransport};
use slovo_core::secrets::Secrets;
use slovo_sandbox::InstallRequest;
use tracing::info;

pub use fetch::McpPackages;
pub use fetch_sandbox::FetchLimits;

use crate::mcp_pin::{MCP_IMPORT_RECORD, digest_of};
use crate::{Actor, ImportReport, ImportSource, Result, Runtime, RuntimeError};
use image::Image;
use slovo_store::SecretRow;
use source::{Launch, Package, Runnable};

/// Where an MCP server comes from.
#[derive(Debug, Clone)]
pub enum McpSource {
    /// `npm:PACKAGE@VERSION`, `pypi:PACKAGE==VERSION` or `oci:IMAGE@sha256:DIGEST`.
    Named(String),
    /// A registry `server.json`, as read.
    ServerJson(Value),
    /// A `server.json` file, a directory holding one, or a bundle directory with its own
    /// manifest.
    Path(PathBuf),
}

impl McpSource {
    /// `npm:…`, `pypi:…` and `oci:…` name a package or an image; anything else is a path.
    pub fn parse(text: &str) -> McpSource {
        if ["npm:", "pypi:", "oci:"].iter().any(|p| text.starts_with(p)) {
            McpSource::Named(text.to_string())
        } else {
            McpSource::Path(PathBuf::from(text))
        }
    }
}

/// What to import as an MCP server tool.
#[derive(Debug, Clone)]
pub struct McpImport {
    /// The package, `server.json` or bundle.
    pub source: McpSource,
    /// The tool's name; by default, from the package's (`@scope/server-memory` →
    /// `server-memory`).
    pub name: Option<String>,
    /// Environment variables for the server (over those of `server.json`).
    pub env: BTreeMap<String, String>,
    /// Arguments after the server's program (after those of `server.json`).
    pub args: Vec<String>,
    /// Values of the server's secrets, given up front by their secret names (a remote
    /// server's secret headers; a package or image server's secret environment variables):
    /// used to list its tools at import and at approval, and stored encrypted as the tool's
    /// secrets in the same transaction as the proposal. `Debug` shows their names only.
    pub secrets: Secrets,
}

/// What an MCP server import did.
#[derive(Debug, Clone, Serialize)]
pub struct McpImportReport {
    /// The proposal, as any import reports it.
    pub import: ImportReport,
    /// The package (`npm:…@…`, `pypi:…==…`, `oci:…@sha256:…`) or the remote endpoint; none
    /// for a bundle with its own manifest.
    pub package: Option<String>,
    /// The registry's integrity data, as checked.
    pub integrity: Value,
    /// The server's `serverInfo` and protocol version, from its `initialize` answer.
    pub server: Value,
    /// One entry per tool the server listed.
    pub tools: Vec<McpToolView>,
    /// The server's secrets (`slovo secret set TOOL NAME`): each must be set before the server
    /// can be called, unless it is in `secrets_stored`.
    pub secrets: Vec<String>,
    /// The secrets given at import, stored encrypted with the proposal (names only).
    pub secrets_stored: Vec<String>,
    /// What of the source was not used, and why.
    pub notes: Vec<String>,
}

/// One tool of an imported server.
#[derive(Debug, Clone, Serialize)]
pub struct McpToolView {
    /// The capability that serves it.
    pub capability: String,
    /// The server's name of it.
    pub tool: String,
    /// The server's annotations (`readOnlyHint`, `destructiveHint`, …): its own claims,
    /// unverified, never a grant.
    pub annotations: Value,
}

impl McpToolView {
    /// The views of a server's `tools` and the `capabilities` made of them, pair by pair.
    fn of(capabilities: &[Value], tools: &[Value]) -> Vec<McpToolView> {
        capabilities
            .iter()
            .zip(tools)
            .map(|(cap, tool)| McpToolView {
                capability: cap["name"].as_str().unwrap_or_default().to_string(),
                tool: tool["name"].as_str().unwrap_or_default().to_string(),
                annotations: tool.get("annotations").cloned().unwrap_or(Value::Null),
            })
            .collect()
    }
}

/// Removes the private directory a package was fetched into, whatever happens.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.0.display(), error = %e, "failed to remove an import's work directory");
        }
    }
}

impl Runtime {
    /// Imports an MCP server as a proposal waiting for approval (see the module
    /// documentation): fetched once, its integrity checked, its tools read in its sandbox.
    pub async fn import_mcp(&self, request: &McpImport, actor: &Actor) -> Result<McpImportReport> {
        match self.mcp_source(request)? {
            Resolved::Package(package, launch) => {
                self.import_mcp_package(package, launch, request, actor).await
            }
            Resolved::Image(image, launch) => self.import_mcp_image(image, launch, request, actor).await,
            Resolved::Remote(remote) => self.import_remote_mcp(remote, request, actor).await,
            Resolved::Bundle => self.import_mcp_bundle(request, actor).await,
        }
    }

    /// A bundle directory with its own manifest: imported as it is.
    async fn import_mcp_bundle(&self, request: &McpImport, actor: &Actor) -> Result<McpImportReport> {
        let McpSource::Path(dir) = &request.source else {
            return Err(RuntimeError::McpImport {
                source_name: "-".into(),
                reason: "only a path names a bundle".into(),
            });
        };
        if !request.secrets.is_empty() {
            return Err(RuntimeError::McpImport {
                source_name: dir.display().to_string(),
                reason: "a bundle is imported as it is, without listing its tools: set its secrets after import (slovo secret set TOOL NAME)".into(),
            });
        }
        let import = self.import(ImportSource::Bundle(dir.clone()), actor).await?;
        Ok(McpImportReport {
            import,
            package: None,
            integrity: Value::Null,
            server: Value::Null,
            tools: Vec::new(),
            secrets: Vec::new(),
            secrets_stored: Vec::new(),
            notes: Vec::new(),
        })
    }

    /// A package: fetched, its tools listed in its sandbox, proposed.
    async fn import_mcp_package(
        &self,
        package: Package,
        launch: Launch,
        request: &McpImport,
        actor: &Actor,
    ) -> Result<McpImportReport> {
        let work = self.work_dir()?;
        let fetched =
            self.fetch_mcp_package(&package, &work.0)
                .await
                .map_err(|e| RuntimeError::McpImport {
                    source_name: package.spec(),
                    reason: e.to_string(),
                })?;
        let proposed = self
            .propose_mcp_package(
                &package,
                &launch,
                &fetched.bundle,
                fetched.integrity.clone(),
                request,
                actor,
            )
            .await;
        // Before the work directory goes: the fetch sandbox's volume may hold the bundle.
        self.release_fetched(fetched).await;
        drop(work);
        proposed
    }

    /// A fetched package in `bundle`: its tools listed in its sandbox, proposed.
    async fn propose_mcp_package(
        &self,
        package: &Package,
        launch: &Launch,
        bundle: &Path,
        integrity: Value,
        request: &McpImport,
        actor: &Actor,
    ) -> Result<McpImportReport> {
        let spec = package.spec();
        let failed = |reason: String| RuntimeError::McpImport {
            source_name: spec.clone(),
            reason,
        };
        let (command, env) = manifest::command(package, bundle, launch).map_err(failed)?;
        let name = request
            .name
            .clone()
            .unwrap_or_else(|| manifest::tool_name(package));
        let version = manifest::tool_version(package);
        let secret_env = launch.secret_env_by_name();
        let sealed = self.seal_given_secrets(&name, &request.secrets)?;
        let execution = Execution::Mcp {
            transport: McpTransport::Stdio,
            command: command.clone(),
            image: None,
            system_paths: true,
            env: env.clone(),
            secret_env: secret_env.clone(),
            tool_names: BTreeMap::new(),
            url: None,
            headers: BTreeMap::new(),
            secret_headers: BTreeMap::new(),
        };
        let Listed { server, tools, .. } = self
            .list_server_tools(&name, &version, execution, bundle, &request.secrets)
            .await
            .map_err(failed)?;
        let (capabilities, renamed) = manifest::capabilities(&tools).map_err(failed)?;

        let description = launch
            .description
            .clone()
            .or_else(|| manifest::package_description(package, bundle))
            .unwrap_or_else(|| format!("The MCP server {spec}"));
        let doc = json!({
            "name": name,
            "version": version,
            "description": description,
            "capabilities": capabilities,
            "execution": {
                "type": "mcp", "transport": "stdio", "system_paths": true,
                "command": command, "env": env, "secret_env": secret_env, "tool_names": renamed,
            },
        });
        let record = json!({
            "source": spec,
            "integrity": integrity,
            "server": server,
            "tools_sha256": digest_of(&tools),
            "tools": tools,
            "notes": launch.notes,
        });
        write_json(&bundle.join("slovo.json"), &doc)?;
        write_json(&bundle.join(MCP_IMPORT_RECORD), &record)?;
        let import = self
            .import_with_secrets(ImportSource::Bundle(bundle.to_path_buf()), &sealed, actor)
            .await?;
        info!(tool = %import.tool, package = %spec, secrets = sealed.len(), "MCP server imported");
        let tools = McpToolView::of(&capabilities, &tools);
        Ok(McpImportReport {
            import,
            package: Some(spec),
            integrity,
            server,
            tools,
            secrets: secret_env.into_values().collect(),
            secrets_stored: stored_names(&sealed),
            notes: launch.notes.clone(),
        })
    }

    /// What `request` names: a package with its launch settings, a remote endpoint, or a
    /// bundle with its own manifest.
    fn mcp_source(&self, request: &McpImport) -> Result<Resolved> {
        let invalid = |name: &str, reason: String| RuntimeError::McpImport {
            source_name: name.to_string(),
            reason,
        };
        let (package, mut launch) = match &request.source {
            McpSource::Named(text) => match source::parse_spec(text.trim()) {
                Some(parsed) => (
                    Runnable::Package(parsed.map_err(|e| invalid(text, e))?),
                    Launch::default(),
                ),
                None => match text.trim().strip_prefix("oci:") {
                    Some(rest) => (
                        Runnable::Image(Image::parse(rest).map_err(|e| invalid(text, e))?),
                        Launch::default(),
                    ),
                    None => {
                        return Err(invalid(
                            text,
                            "name npm:PACKAGE@VERSION, pypi:PACKAGE==VERSION or oci:IMAGE@sha256:DIGEST"
                                .into(),
                        ));
                    }
                },
            },
            McpSource::ServerJson(server) => {
                return resolve_server_json(server, "server.json", request);
            }
            McpSource::Path(path) => {
                let file = if path.is_dir() {
                    let has_manifest = slovo_bundle::BUNDLE_MANIFEST_NAMES
                        .iter()
                        .any(|m| path.join(m).exists());
                    if has_manifest || !path.join("server.json").is_file() {
                        return Ok(Resolved::Bundle);
                    }
                    path.join("server.json")
                } else {
                    path.to_path_buf()
                };
                let origin = file.display().to_string();
                let bytes = std::fs::read(&file).map_err(|e| RuntimeError::io("read", &file, e))?;
                let server: Value =
                    serde_json::from_slice(&bytes).map_err(|e| invalid(&origin, format!("not JSON: {e}")))?;
                return resolve_server_json(&server, &origin, request);
            }
        };
        launch.args.extend(request.args.iter().cloned());
        launch.env.extend(request.env.clone());
        check_given_secrets(
            text_of(&request.source),
            launch.secret_env.keys(),
            "secret environment variables",
            &request.secrets,
        )?;
        Ok(Resolved::of(package, launch))
    }

    /// A private directory for one import under the data directory, removed when dropped.
    fn work_dir(&self) -> Result<WorkDir> {
        use std::os::unix::fs::DirBuilderExt;
        let parent = self.data_dir.join("imports");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&parent)
            .map_err(|e| RuntimeError::io("create", &parent, e))?;
        let dir = parent.join(uuid::Uuid::now_v7().to_string());
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| RuntimeError::io("create", &dir, e))?;
        Ok(WorkDir(dir))
    }

    /// Starts the server in `bundle` once in its sandbox, as approval will, and returns its
    /// `initialize` facts and its tool list.
    async fn list_server_tools(
        &self,
        name: &str,
        version: &str,
        execution: Execution,
        bundle: &Path,
        secrets: &Secrets,
    ) -> std::result::Result<Listed, String> {
        let backend = self
            .backends
            .get("mcp")
            .map_err(|e| format!("MCP servers cannot run here: {e}"))?;
        // The sandbox reads the bundle as whichever account it runs the server as.
        open_for_reading(bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
        let request = InstallRequest {
            tool: name.to_string(),
            version: version.to_string(),
            execution,
            bundle_dir: Some(bundle.to_path_buf()),
            // The listing run has no state: nothing is written here.
            state_dir: bundle.with_file_name("state"),
            secrets: secrets.clone(),
        };
        let info = backend.install(&request).await.map_err(|e| e.to_string())?;
        if let InstallFacts::Mcp(McpFacts::Refused { refusal, .. }) = &info {
            return Err(format!(
                "the sandbox cannot run the server to list its tools: {refusal}"
            ));
        }
        let listed = info.listed_tools().ok_or("the server's tool list was not read")?;
        let server = json!({
            "protocol_version": listed.protocol_version,
            "server_info": listed.server_info,
        });
        Ok(Listed {
            server,
            tools: listed.tools.clone(),
            install: info,
        })
    }
}

/// What the install run read of a server.
struct Listed {
    /// Its `initialize` facts (protocol version, `serverInfo`).
    server: Value,
    /// Its tools.
    tools: Vec<Value>,
    /// Everything the backend's install run recorded (an image's id, for one).
    install: InstallFacts,
}

/// What an MCP import names, once read.
enum Resolved {
    /// A package at an exact version, with its launch settings.
    Package(Package, Launch),
    /// An image named by its digest, with its launch settings.
    Image(Image, Launch),
    /// A remote endpoint.
    Remote(remote::Remote),
    /// A bundle directory with its own manifest.
    Bundle,
}

/// A `server.json`: its first package Slovo can run, which is preferred (it runs in the
/// sandbox), otherwise its first streamable-http remote. `origin` names it in errors.
fn resolve_server_json(server: &Value, origin: &str, request: &McpImport) -> Result<Resolved> {
    let invalid = |reason: String| RuntimeError::McpImport {
        source_name: origin.to_string(),
        reason,
    };
    if !source::has_runnable_package(server)
        && let Some(remote) = remote::from_server_json(server)
    {
        return remote.map(Resolved::Remote).map_err(invalid);
    }
    let (runnable, mut launch) = source::from_server_json(server).map_err(invalid)?;
    launch.args.extend(request.args.iter().cloned());
    launch.env.extend(request.env.clone());
    check_given_secrets(
        origin,
        launch.secret_env.keys(),
        "secret environment variables",
        &request.secrets,
    )?;
    Ok(Resolved::of(runnable, launch))
}

impl Resolved {
    fn of(runnable: Runnable, launch: Launch) -> Resolved {
        match runnable {
            Runnable::Package(package) => Resolved::Package(package, launch),
            Runnable::Image(image) => Resolved::Image(image, launch),
        }
    }
}

/// Every secret given with the import must be one the server declares (`declared`: its
/// secret names, `what` says of which kind); an unknown name is refused naming it, before
/// anything is fetched, started or sent.
fn check_given_secrets<'a>(
    origin: &str,
    declared: impl Iterator<Item = &'a String>,
    what: &str,
    given: &Secrets,
) -> Result<()> {
    let declared: Vec<&str> = declared.map(String::as_str).collect();
    match given.names().find(|name| !declared.contains(name)) {
        None => Ok(()),
        Some(name) => Err(RuntimeError::McpImport {
            source_name: origin.to_string(),
            reason: format!(
                "the secret {name:?} is not one of the server's (its {what}: {})",
                if declared.is_empty() {
                    "none".to_string()
                } else {
                    declared.join(", ")
                }
            ),
        }),
    }
}

/// The names of the secrets stored with a proposal.
fn stored_names(sealed: &[SecretRow]) -> Vec<String> {
    sealed.iter().map(|row| row.name.clone()).collect()
}

impl Runtime {
    /// The secrets given with the import, sealed as the tool `tool`'s, to be stored with its
    /// proposal ([`Runtime::import_with_secrets`]); their names were checked against the
    /// server's ([`check_given_secrets`]).
    fn seal_given_secrets(&self, tool: &str, given: &Secrets) -> Result<Vec<SecretRow>> {
        given
            .names()
            .map(|name| self.seal_secret(tool, name, given.get(name).unwrap_or_default()))
            .collect()
    }
}

/// The source as a person named it, for errors.
fn text_of(source: &McpSource) -> &str {
    match source {
        McpSource::Named(text) => text,
        McpSource::ServerJson(_) => "server.json",
        McpSource::Path(path) => path.to_str().unwrap_or("the path given"),
    }
}

pub(super) fn write_json(path: &Path, value: &Value) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| RuntimeError::McpImport {
        source_name: path.display().to_string(),
        reason: e.to_string(),
    })?;
    std::fs::write(path, bytes).map_err(|e| RuntimeError::io("write", path, e))
}

/// `chmod -R a+rX`: every file readable, every directory searchable.
fn open_for_reading(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_symlink() {
                continue;
            }
            let mode = entry.metadata()?.permissions().mode();
            let wanted = if kind.is_dir() {
                stack.push(entry.path());
                mode | 0o555
            } else if mode & 0o111 != 0 {
                mode | 0o555
            } else {
                mode | 0o444
            };
            if wanted != mode {
                std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(wanted))?;
            }
        }
    }
    let mode = std::fs::metadata(dir)?.permissions().mode();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o555))
}
