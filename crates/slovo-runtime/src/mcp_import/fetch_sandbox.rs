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

/// The limits of a fetch sandbox (`mcp.fetch_*` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchLimits {
    /// Memory (MB): npm resolving a tree of packages needs more than a server.
    pub memory_mb: u64,
    /// Size of its `/data` (MB): everything the package manager writes, its cache included.
    pub storage_mb: u64,
    /// Seconds a fetch may take, from start to exit.
    pub timeout_s: u64,
    /// Processes and threads (node's own threads count).
    pub pids: u64,
}

impl Default for FetchLimits {
    fn default() -> FetchLimits {
        FetchLimits {
            memory_mb: 1024,
            storage_mb: 2048,
            timeout_s: 300,
            pids: 128,
        }
    }
}

impl FetchLimits {
    /// Each limit with its configuration key; a limit of 0 would leave the package manager
    /// nothing to run with, and is refused naming its key.
    fn checked(&self) -> Result<FetchLimits, FetchError> {
        for (key, value) in [
            ("mcp.fetch_memory_mb", self.memory_mb),
            ("mcp.fetch_storage_mb", self.storage_mb),
            ("mcp.fetch_timeout_s", self.timeout_s),
            ("mcp.fetch_pids", self.pids),
        ] {
            if value == 0 {
                return Err(FetchError::Grant {
                    setting: key.to_string(),
                    reason: "0 leaves the package manager nothing to run with; set at least 1".into(),
                });
            }
        }
        Ok(*self)
    }

    /// The limit a failed fetch ran into, with its key and value, if its outcome says which.
    fn reached(&self, outcome: &Outcome) -> Option<String> {
        let error = outcome.error.as_deref().unwrap_or("");
        let said = |needle: &str| {
            outcome.stderr.contains(needle)
                || outcome
                    .output
                    .as_ref()
                    .is_some_and(|o| o.to_string().contains(needle))
        };
        let (key, value, unit) = if outcome.status == ExecutionStatus::Timeout {
            ("mcp.fetch_timeout_s", self.timeout_s, "s")
        } else if error.contains("out of memory") {
            ("mcp.fetch_memory_mb", self.memory_mb, "MB")
        } else if error.contains("process limit") {
            ("mcp.fetch_pids", self.pids, "processes")
        } else if said("ENOSPC") || said("No space left on device") {
            ("mcp.fetch_storage_mb", self.storage_mb, "MB")
        } else {
            return None;
        };
        Some(format!("{key} ({value} {unit})"))
    }
}

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
        let limits = config.fetch_limits.checked()?;
        let grant = fetch_grant(registry, &config.fetch_hosts, &limits)?;
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
            _ => Err(Box::new(failure(&run.what, &grant, &limits, &outcome)).into()),
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
/// nothing else; the configured limits.
fn fetch_grant(registry: &str, fetch_hosts: &[String], limits: &FetchLimits) -> Result<Grant, FetchError> {
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
        storage_quota_mb: limits.storage_mb,
        cpu_limit_percent: 100,
        memory_limit_mb: limits.memory_mb,
        timeout_s: limits.timeout_s,
        // More than u32 processes is no limit anyway.
        pids_limit: u32::try_from(limits.pids).unwrap_or(u32::MAX),
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

/// Why a sandboxed fetch failed: the sandbox's reason, the configured limit it ran into, what
/// the package manager said, and every connection the egress proxy refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "{what} failed in its sandbox (network: {granted} only): {error}{limit}{said}{refused}",
    granted = granted.join(", "),
    limit = limit.as_deref().map(|l| format!("; it ran into the limit {l}, which [mcp] in slovo.toml can raise")).unwrap_or_default(),
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
    /// The configured limit it ran into (`mcp.fetch_timeout_s (300 s)`), when the outcome
    /// says which.
    limit: Option<String>,
    /// The start of what the package manager wrote, if anything.
    said: Option<String>,
    /// The connections the egress proxy refused (`host:port (reason)`).
    refused: Vec<String>,
}

fn failure(what: &str, grant: &Grant, limits: &FetchLimits, outcome: &Outcome) -> SandboxFailure {
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
        limit: limits.reached(outcome),
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
        let limits = FetchLimits::default();
        let grant = fetch_grant("https://registry.npmjs.org/", &[], &limits).unwrap();
        assert_eq!(
            grant.network_allow,
            vec!["registry.npmjs.org:443".parse().unwrap()]
        );
        assert!(!grant.internet_access);
        let grant = fetch_grant(
            "http://198.51.100.254:8080/simple/",
            &["files.pythonhosted.org:443".into()],
            &limits,
        )
        .unwrap();
        let hosts: Vec<String> = grant.network_allow.iter().map(|h| h.to_string()).collect();
        assert_eq!(hosts, ["198.51.100.254:8080", "files.pythonhosted.org:443"]);
        let e = fetch_grant("ftp://x.example/", &[], &limits)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an http(s) URL"), "{e}");
        let e = fetch_grant("https://r.example/", &["*".into()], &limits)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("mcp.fetch_hosts[0]: "), "{e}");
    }

    #[test]
    fn the_grant_carries_the_configured_limits_and_a_failure_names_the_one_reached() {
        let limits = FetchLimits {
            memory_mb: 256,
            storage_mb: 64,
            timeout_s: 7,
            pids: 32,
        };
        let grant = fetch_grant("http://198.51.100.254:8080/", &[], &limits.checked().unwrap()).unwrap();
        assert_eq!(
            (
                grant.memory_limit_mb,
                grant.storage_quota_mb,
                grant.timeout_s,
                grant.pids_limit
            ),
            (256, 64, 7, 32)
        );
        let zero = FetchLimits {
            storage_mb: 0,
            ..limits
        };
        let e = zero.checked().unwrap_err().to_string();
        assert!(e.starts_with("mcp.fetch_storage_mb: "), "{e}");

        let ended = |status: ExecutionStatus, error: &str, stderr: &str| Outcome {
            status,
            error: Some(error.to_string()),
            stderr: stderr.to_string(),
            ..Outcome::default()
        };
        let timeout = ended(ExecutionStatus::Timeout, "timed out after 7s", "");
        let e = failure("npm install", &grant, &limits, &timeout).to_string();
        assert!(
            e.contains("it ran into the limit mcp.fetch_timeout_s (7 s)"),
            "{e}"
        );
        let oom = ended(
            ExecutionStatus::Killed,
            "killed: out of memory (limit 256 MB)",
            "",
        );
        assert_eq!(
            limits.reached(&oom).as_deref(),
            Some("mcp.fetch_memory_mb (256 MB)")
        );
        let full = ended(
            ExecutionStatus::Failure,
            "exited with code 1",
            "npm error code ENOSPC",
        );
        assert_eq!(
            limits.reached(&full).as_deref(),
            Some("mcp.fetch_storage_mb (64 MB)")
        );
        let other = ended(ExecutionStatus::Failure, "exited with code 1", "npm error 404");
        assert_eq!(limits.reached(&other), None);
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
