//! Fetching a package from where the configuration says: offline from a local cache on the
//! host, or online from a registry — then in a process sandbox of its own whose only network is
//! that registry's host and port through the egress proxy (a grant naming that one host, as a
//! tool's network grant does; its address must be public to the egress policy or in
//! `egress.also_public`), whose only writable place is the import's work directory (`/data`, a
//! volume with a size limit), install scripts still off and wheels only. The integrity checks
//! after it are the same either way ([`fetch::integrity`]).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use slovo_core::execution::{CallTarget, ExecutionStatus, Outcome, SandboxSpec};
use slovo_core::manifest::{Capability, Execution};
use slovo_core::permissions::{Grant, HostPattern};

use super::fetch::{self, FetchError, Origin, Places};
use super::source::{Package, Registry};
use crate::Runtime;

/// Memory of a fetch sandbox (MB): npm resolving a tree of packages needs more than a server.
const FETCH_MEMORY_MB: u64 = 1024;
/// Size of its `/data` (MB): everything the package manager writes, its cache included.
const FETCH_STORAGE_MB: u64 = 2048;
/// Seconds a fetch may take, from start to exit.
const FETCH_TIMEOUT_S: u64 = 300;
/// Processes and threads (node's own threads count).
const FETCH_PIDS: u32 = 128;

/// Where the package manager writes inside the fetch sandbox, all under `/data`.
const SANDBOX_DATA: &str = "/data";

/// A package fetched into an import's work directory.
pub(crate) struct Fetched {
    /// The directory that becomes the bundle.
    pub bundle: PathBuf,
    /// The registry's integrity data, as checked.
    pub integrity: Value,
    /// The fetch sandbox's `/data` volume, which holds `bundle`: released ([`Runtime::release_fetched`])
    /// once the bundle is imported or refused.
    volume: Option<PathBuf>,
}

impl Runtime {
    /// Installs `package` under `work` from its configured place (see the module
    /// documentation).
    pub(super) async fn fetch_mcp_package(
        &self,
        package: &Package,
        work: &Path,
    ) -> Result<Fetched, FetchError> {
        let config = &self.settings.mcp_packages;
        match fetch::origin(package, config)? {
            Origin::Cache(cache) => {
                let bundle = work.join("bundle");
                std::fs::create_dir_all(&bundle).map_err(|e| setup(&bundle, e))?;
                let integrity = fetch::fetch_offline(package, config, &cache, &bundle).await?;
                Ok(Fetched {
                    bundle,
                    integrity,
                    volume: None,
                })
            }
            Origin::Registry(registry) => self.fetch_in_sandbox(package, &registry, work).await,
        }
    }

    /// Lets go of the fetch sandbox's volume, if the fetch had one (its files are gone with it).
    pub(super) async fn release_fetched(&self, fetched: Fetched) {
        if let Some(volume) = &fetched.volume {
            self.release_fetch_volume(volume).await;
        }
    }

    /// Runs the package manager in its sandbox, fetching from `registry` alone, and checks
    /// what it installed.
    async fn fetch_in_sandbox(
        &self,
        package: &Package,
        registry: &str,
        work: &Path,
    ) -> Result<Fetched, FetchError> {
        let config = &self.settings.mcp_packages;
        let backend = self.backends.get("mcp").map_err(|e| FetchError::Setup {
            what: "MCP server packages cannot be fetched here".into(),
            reason: e.to_string(),
        })?;
        let grant = fetch_grant(registry, &config.fetch_hosts)?;
        // The sandbox's `/tool`: nothing of the package exists yet.
        let empty = work.join("installer");
        std::fs::create_dir_all(&empty).map_err(|e| setup(&empty, e))?;
        let volume = work.join("fetch");
        let inside = Places {
            bundle: Path::new(SANDBOX_DATA).join("bundle"),
            npm_cache: Path::new(SANDBOX_DATA).join("npm-cache"),
            pip_report: Path::new(SANDBOX_DATA).join("pip-report.json"),
        };
        let run = fetch::command(
            package,
            config,
            &Origin::Registry(registry.to_string()),
            &inside,
            sandbox_program,
        );
        let execution = Execution::Process {
            command: run.command.clone(),
            system_paths: true,
        };
        let execution_id = format!("fetch-{}", uuid::Uuid::now_v7());
        let spec = SandboxSpec::from_grant(
            &grant,
            CallTarget {
                execution_id: &execution_id,
                tool: &package.spec(),
                version: &package.version,
                capability: &fetch_capability(),
                execution: &execution,
                api: None,
                bundle_dir: Some(empty),
                state_dir: volume.clone(),
                arguments: &json!({}),
            },
        );
        let outcome = backend.run_installer(&spec, &installer_env(package)).await;
        let host = |p: &Path| volume.join(p.strip_prefix(SANDBOX_DATA).unwrap_or(p));
        let checked = match outcome.status {
            ExecutionStatus::Success => {
                fetch::integrity(package, &host(&inside.bundle), &host(&inside.pip_report))
            }
            _ => Err(failure(&run.what, &grant, &outcome).into()),
        };
        match checked {
            Ok(integrity) => Ok(Fetched {
                bundle: host(&inside.bundle),
                integrity,
                volume: Some(volume),
            }),
            Err(e) => {
                self.release_fetch_volume(&volume).await;
                Err(e)
            }
        }
    }

    async fn release_fetch_volume(&self, volume: &Path) {
        let released = match self.backends.get("mcp") {
            Ok(backend) => backend
                .release_state(volume, true)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = released {
            tracing::warn!(volume = %volume.display(), error = %e, "failed to release a package fetch's volume");
        }
    }
}

/// The fetch sandbox's grant: the registry's `host:port` and the configured `fetch_hosts`,
/// nothing else; the limits above.
fn fetch_grant(registry: &str, fetch_hosts: &[String]) -> Result<Grant, FetchError> {
    let mut network_allow = vec![registry_host(registry)?];
    for (i, host) in fetch_hosts.iter().enumerate() {
        let pattern = host.parse::<HostPattern>().map_err(|e| FetchError::Grant {
            setting: format!("mcp.fetch_hosts[{i}]"),
            reason: e.to_string(),
        })?;
        network_allow.push(pattern);
    }
    Ok(Grant {
        internet_access: false,
        network_allow,
        storage_quota_mb: FETCH_STORAGE_MB,
        cpu_limit_percent: 100,
        memory_limit_mb: FETCH_MEMORY_MB,
        timeout_s: FETCH_TIMEOUT_S,
        pids_limit: FETCH_PIDS,
        expires_at: None,
    })
}

/// The `host:port` of a registry URL, as a grant names it.
fn registry_host(registry: &str) -> Result<HostPattern, FetchError> {
    let refused = |reason: String| FetchError::Grant {
        setting: format!("the registry {registry:?}"),
        reason,
    };
    let url = url::Url::parse(registry).map_err(|e| refused(format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refused("not an http(s) URL".into()));
    }
    let host = url.host_str().ok_or_else(|| refused("it names no host".into()))?;
    let port = url.port_or_known_default().unwrap_or(443);
    format!("{}:{port}", host.to_ascii_lowercase())
        .parse::<HostPattern>()
        .map_err(|e| refused(format!("its host cannot be granted: {e}")))
}

/// The configured program as the sandbox runs it: an absolute path as it is (it must exist in
/// the sandbox's system directories), a bare name looked up on the sandbox's own `PATH`.
fn sandbox_program(program: &Path) -> Vec<String> {
    if program.is_absolute() {
        vec![program.display().to_string()]
    } else {
        vec!["/usr/bin/env".to_string(), program.display().to_string()]
    }
}

/// The package manager's variables: pip unpacks wheels in its temporary directory, which must
/// be on `/data` (the sandbox's `/tmp` is small).
fn installer_env(package: &Package) -> Vec<(String, String)> {
    match package.registry {
        Registry::Npm => Vec::new(),
        Registry::Pypi => vec![("TMPDIR".to_string(), SANDBOX_DATA.to_string())],
    }
}

/// What the fetch sandbox's run is recorded as (it has no tool yet).
fn fetch_capability() -> Capability {
    Capability {
        name: "fetch".into(),
        description: "fetching an MCP server's package".into(),
        parameters: json!({"type": "object"}),
        returns: None,
        endpoint: None,
        method: None,
        examples: Vec::new(),
        read_only: None,
        destructive: None,
    }
}

/// Why a sandboxed fetch failed: the sandbox's reason, what the package manager said, and
/// every connection the egress proxy refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "{what} failed in its sandbox (network: {granted} only): {error}{said}{refused}",
    granted = granted.join(", "),
    said = said.as_deref().map(|s| format!("; it said: {s}")).unwrap_or_default(),
    refused = if refused.is_empty() { String::new() } else { format!("; the egress proxy refused {}", refused.join(", ")) },
)]
pub(crate) struct SandboxFailure {
    /// The command, for a person.
    what: String,
    /// The hosts the fetch sandbox was granted.
    granted: Vec<String>,
    /// The sandbox's reason.
    error: String,
    /// The start of what the package manager wrote, if anything.
    said: Option<String>,
    /// The connections the egress proxy refused (`host:port (reason)`).
    refused: Vec<String>,
}

fn failure(what: &str, grant: &Grant, outcome: &Outcome) -> SandboxFailure {
    let output = outcome.output.as_ref().map(|o| match o {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    let said = fetch::said(&outcome.stderr, output.as_deref().unwrap_or(""));
    SandboxFailure {
        what: what.to_string(),
        granted: grant.network_allow.iter().map(|h| h.to_string()).collect(),
        error: outcome
            .error
            .clone()
            .unwrap_or_else(|| "it did not succeed".to_string()),
        said: (!said.is_empty()).then_some(said),
        refused: outcome
            .network_denials
            .iter()
            .map(|d| format!("{}:{} ({})", d.host, d.port, d.reason))
            .collect(),
    }
}

/// A directory of the work directory could not be made.
fn setup(path: &Path, e: std::io::Error) -> FetchError {
    FetchError::Setup {
        what: path.display().to_string(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grant_names_the_registry_and_the_configured_hosts_alone() {
        let grant = fetch_grant("https://registry.npmjs.org/", &[]).unwrap();
        assert_eq!(
            grant.network_allow,
            vec!["registry.npmjs.org:443".parse().unwrap()]
        );
        assert!(!grant.internet_access);
        let grant = fetch_grant(
            "http://198.51.100.254:8080/simple/",
            &["files.pythonhosted.org:443".into()],
        )
        .unwrap();
        let hosts: Vec<String> = grant.network_allow.iter().map(|h| h.to_string()).collect();
        assert_eq!(hosts, ["198.51.100.254:8080", "files.pythonhosted.org:443"]);
        let e = fetch_grant("ftp://x.example/", &[]).unwrap_err().to_string();
        assert!(e.contains("not an http(s) URL"), "{e}");
        let e = fetch_grant("https://r.example/", &["*".into()])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("mcp.fetch_hosts[0]: "), "{e}");
    }

    #[test]
    fn a_bare_program_name_is_looked_up_on_the_sandbox_path() {
        assert_eq!(sandbox_program(Path::new("npm")), ["/usr/bin/env", "npm"]);
        assert_eq!(
            sandbox_program(Path::new("/usr/bin/python3")),
            ["/usr/bin/python3"]
        );
    }
}
