//! One call: the spec a backend receives and the outcome it returns.
//!
//! Architecture invariant: a [`SandboxSpec`] is built by [`SandboxSpec::from_grant`] from the
//! stored [`Grant`] only. Nothing in it comes from the manifest's requested permissions, so an
//! approval that narrowed a request is what every sandbox enforces.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::install::InstallFacts;
use crate::manifest::{ApiRequirements, Capability, Execution};
use crate::permissions::{Grant, HostPattern};
use crate::secrets::Secrets;

/// How a call ended (or that it has not yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    /// Recorded before the backend starts; a crash leaves it visible.
    Running,
    /// Exit code 0.
    Success,
    /// The tool failed (non-zero exit, trap, bad output) or could not be started.
    #[default]
    Failure,
    /// The wall-clock timeout expired; everything was killed.
    Timeout,
    /// Killed by a limit (out of memory, pids, a signal); the reason says which.
    Killed,
    /// Cancelled by the caller or by shutdown.
    Cancelled,
    /// Left `running` by a crash and found at start-up.
    Interrupted,
}

impl ExecutionStatus {
    /// Every status.
    pub const ALL: [ExecutionStatus; 7] = [
        ExecutionStatus::Running,
        ExecutionStatus::Success,
        ExecutionStatus::Failure,
        ExecutionStatus::Timeout,
        ExecutionStatus::Killed,
        ExecutionStatus::Cancelled,
        ExecutionStatus::Interrupted,
    ];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Running => "running",
            ExecutionStatus::Success => "success",
            ExecutionStatus::Failure => "failure",
            ExecutionStatus::Timeout => "timeout",
            ExecutionStatus::Killed => "killed",
            ExecutionStatus::Cancelled => "cancelled",
            ExecutionStatus::Interrupted => "interrupted",
        }
    }
}

impl fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An execution status name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown execution status {0:?} (one of running, success, failure, timeout, killed, cancelled, interrupted)"
)]
pub struct UnknownExecutionStatus(pub String);

impl FromStr for ExecutionStatus {
    type Err = UnknownExecutionStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ExecutionStatus::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownExecutionStatus(s.to_string()))
    }
}

/// What the network of a sandbox allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum NetworkPolicy {
    /// No network: at most a loopback of the sandbox's own.
    None,
    /// Only these hosts, through the egress proxy.
    AllowList {
        /// The granted hosts.
        hosts: Vec<HostPattern>,
    },
    /// Any public host, through the egress proxy.
    Public,
}

impl NetworkPolicy {
    /// True unless the policy is [`NetworkPolicy::None`].
    pub fn allows_network(&self) -> bool {
        !matches!(self, NetworkPolicy::None)
    }

    /// Whether the grant lets a tool reach `host` (a name or an address literal, without
    /// brackets) on `port`, by name only: the address it resolves to is checked separately
    /// against a [`crate::net::PublicPolicy`]. The error says why not, for a person.
    pub fn permits(&self, host: &str, port: u16) -> Result<(), NetworkRefusal> {
        match self {
            NetworkPolicy::None => Err(NetworkRefusal::NoNetwork),
            NetworkPolicy::Public => Ok(()),
            NetworkPolicy::AllowList { hosts } => {
                if hosts.iter().any(|h| h.matches(host, port)) {
                    Ok(())
                } else {
                    Err(NetworkRefusal::NotAllowed {
                        host: host.to_string(),
                        port,
                        allowed: hosts
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
                }
            }
        }
    }
}

/// Why a grant's network policy refuses a destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkRefusal {
    /// The grant gives no network at all.
    #[error("the grant allows no network access")]
    NoNetwork,
    /// The destination is not on the grant's allow list.
    #[error("{host}:{port} is not in the grant's allow list ({allowed})")]
    NotAllowed {
        /// The host asked for.
        host: String,
        /// The port asked for.
        port: u16,
        /// The allow list, as a person reads it.
        allowed: String,
    },
}

/// One connection a tool attempted and the egress check refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkDenial {
    /// The host asked for (a name or an address), as the tool wrote it.
    pub host: String,
    /// The port asked for.
    pub port: u16,
    /// Why it was refused, for a person.
    pub reason: String,
}

/// A call served by a warm sandbox: an MCP server started and initialised ahead of the call
/// by the pool, used for this call alone and then destroyed (`docs/mcp-servers.md`, "Warm,
/// but never reused"). A call started cold has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarmStart {
    /// Milliseconds from the sandbox's start to the call taking it.
    pub started_ms_before_call: u64,
    /// Milliseconds from the server being ready (initialised, its tool list checked) to the
    /// call taking it.
    pub ready_ms_before_call: u64,
}

/// Resource limits of one sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceLimits {
    /// Memory, swap included (MB).
    pub memory_mb: u64,
    /// CPU share, percent of one CPU.
    pub cpu_percent: u32,
    /// Processes and threads.
    pub pids: u32,
    /// Persistent `/data` quota (MB).
    pub storage_mb: u64,
    /// Wall-clock timeout.
    pub timeout: Duration,
}

/// Everything a backend needs to run one call, and nothing it may choose for itself.
///
/// Only [`SandboxSpec::from_grant`] makes one: a private field keeps struct literals out of
/// every other module, tests included, so limits and network always start from a grant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SandboxSpec {
    /// The execution record this call fills.
    pub execution_id: String,
    /// The tool.
    pub tool: String,
    /// The version that serves the call.
    pub version: String,
    /// The capability called (with its endpoint and method, for HTTP tools).
    pub capability: Capability,
    /// How to run the tool.
    pub execution: Execution,
    /// The remote API of an HTTP tool.
    pub api: Option<ApiRequirements>,
    /// The tool's installed bundle, read-only (process and wasm tools).
    pub bundle_dir: Option<PathBuf>,
    /// The tool's persistent state, mounted at `/data`.
    pub state_dir: PathBuf,
    /// Limits, from the grant.
    pub limits: ResourceLimits,
    /// Network, from the grant.
    pub network: NetworkPolicy,
    /// The JSON written to the tool's stdin: `{"capability": …, "arguments": …}`.
    pub request: Value,
    /// Credentials the backend injects (HTTP tools); never serialized.
    #[serde(skip)]
    pub secrets: Secrets,
    /// What the backend's install step reported for this version (an image digest, an
    /// artifact key), so that a call can refuse to run something other than what was approved.
    pub install_info: Option<InstallFacts>,
    /// Proof of [`SandboxSpec::from_grant`]: it cannot be written outside this module.
    #[serde(skip)]
    from_grant: FromGrant,
}

/// The private field of [`SandboxSpec`]: see there.
#[derive(Debug, Clone, PartialEq)]
struct FromGrant;

/// Where a call runs and with what: the inputs of [`SandboxSpec::from_grant`] besides the grant.
#[derive(Debug, Clone)]
pub struct CallTarget<'a> {
    /// The execution record.
    pub execution_id: &'a str,
    /// The tool.
    pub tool: &'a str,
    /// The serving version.
    pub version: &'a str,
    /// The capability.
    pub capability: &'a Capability,
    /// How the tool runs.
    pub execution: &'a Execution,
    /// Its API, for HTTP tools.
    pub api: Option<&'a ApiRequirements>,
    /// Installed bundle.
    pub bundle_dir: Option<PathBuf>,
    /// State directory.
    pub state_dir: PathBuf,
    /// The validated arguments.
    pub arguments: &'a Value,
}

impl SandboxSpec {
    /// The spec for one call. Limits and network come from `grant` and nowhere else.
    pub fn from_grant(grant: &Grant, target: CallTarget<'_>) -> SandboxSpec {
        let network = if grant.internet_access {
            NetworkPolicy::Public
        } else if !grant.network_allow.is_empty() {
            NetworkPolicy::AllowList {
                hosts: grant.network_allow.clone(),
            }
        } else {
            NetworkPolicy::None
        };
        SandboxSpec {
            execution_id: target.execution_id.to_string(),
            tool: target.tool.to_string(),
            version: target.version.to_string(),
            capability: target.capability.clone(),
            execution: target.execution.clone(),
            api: target.api.cloned(),
            bundle_dir: target.bundle_dir,
            state_dir: target.state_dir,
            limits: ResourceLimits {
                memory_mb: grant.memory_limit_mb,
                cpu_percent: grant.cpu_limit_percent,
                pids: grant.pids_limit,
                storage_mb: grant.storage_quota_mb,
                timeout: Duration::from_secs(grant.timeout_s),
            },
            network,
            request: serde_json::json!({
                "capability": target.capability.name,
                "arguments": target.arguments,
            }),
            secrets: Secrets::default(),
            install_info: None,
            from_grant: FromGrant,
        }
    }
}

/// What a backend reports about one call. Duration is measured by the caller.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Outcome {
    /// How it ended; never [`ExecutionStatus::Running`].
    pub status: ExecutionStatus,
    /// The result: stdout as JSON if it parses, otherwise as text.
    pub output: Option<Value>,
    /// Captured stderr (capped).
    pub stderr: String,
    /// Why it failed, for a person.
    pub error: Option<String>,
    /// Exit code, when the tool exited.
    pub exit_code: Option<i32>,
    /// CPU time used (ms).
    pub cpu_ms: Option<u64>,
    /// Peak memory (bytes).
    pub peak_memory_bytes: Option<u64>,
    /// The sandbox's identity (container id, cgroup name, …).
    pub sandbox_id: Option<String>,
    /// Connections the egress check refused during the call, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_denials: Vec<NetworkDenial>,
    /// Set when a warm (pooled) sandbox served the call; `None` for a cold start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm: Option<WarmStart>,
}

impl Outcome {
    /// A failure before or outside the tool (no backend, bad bundle, daemon down).
    pub fn failed(error: impl Into<String>) -> Outcome {
        Outcome {
            status: ExecutionStatus::Failure,
            error: Some(error.into()),
            ..Outcome::default()
        }
    }

    /// The contract's reading of stdout: a JSON document is the result, otherwise the text.
    pub fn output_from_stdout(stdout: &[u8]) -> Option<Value> {
        if stdout.is_empty() {
            return None;
        }
        match serde_json::from_slice::<Value>(stdout) {
            Ok(v) => Some(v),
            Err(_) => Some(Value::String(String::from_utf8_lossy(stdout).into_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permissions::{Narrowing, Permissions};
    use serde_json::json;

    #[test]
    fn spec_carries_the_grant_not_the_request() {
        let request = Permissions {
            internet_access: true,
            memory_limit_mb: 256,
            cpu_limit_percent: 80,
            ..Permissions::default()
        };
        let grant = Grant::narrowed(
            &request,
            &Narrowing {
                no_network: true,
                memory_limit_mb: Some(64),
                cpu_limit_percent: Some(20),
                ..Default::default()
            },
        )
        .unwrap();
        let cap = Capability {
            name: "c".into(),
            description: "d".into(),
            parameters: json!({"type": "object"}),
            returns: None,
            endpoint: None,
            method: None,
            examples: vec![],
            read_only: None,
            destructive: None,
        };
        let exec = Execution::Process {
            command: vec!["bin/t".into()],
            system_paths: true,
        };
        let args = json!({"x": 1});
        let spec = SandboxSpec::from_grant(
            &grant,
            CallTarget {
                execution_id: "e1",
                tool: "t",
                version: "1.0.0",
                capability: &cap,
                execution: &exec,
                api: None,
                bundle_dir: None,
                state_dir: "/s".into(),
                arguments: &args,
            },
        );
        assert_eq!(spec.network, NetworkPolicy::None);
        assert_eq!(spec.limits.memory_mb, 64);
        assert_eq!(spec.limits.cpu_percent, 20);
        assert_eq!(spec.request, json!({"capability": "c", "arguments": {"x": 1}}));
    }

    #[test]
    fn network_policies_permit_by_name_and_port() {
        let hp = |s: &str| s.parse::<HostPattern>().unwrap_or_else(|e| panic!("{e}"));
        let list = NetworkPolicy::AllowList {
            hosts: vec![hp("api.example.org:443"), hp("*.cdn.example.org")],
        };
        assert_eq!(list.permits("api.example.org", 443), Ok(()));
        assert_eq!(
            list.permits("api.example.org", 80).map_err(|e| e.to_string()),
            Err("api.example.org:80 is not in the grant's allow list (api.example.org:443, *.cdn.example.org)".to_string())
        );
        assert_eq!(
            NetworkPolicy::None.permits("a.example", 1),
            Err(NetworkRefusal::NoNetwork)
        );
        assert_eq!(list.permits("img.cdn.example.org", 8080), Ok(()));
        assert!(list.permits("cdn.example.org", 443).is_err());
        assert!(
            list.permits("evil.org", 443)
                .unwrap_err()
                .to_string()
                .contains("allow list")
        );
        assert!(NetworkPolicy::None.permits("api.example.org", 443).is_err());
        assert_eq!(NetworkPolicy::Public.permits("anything.org", 1), Ok(()));
    }

    #[test]
    fn stdout_is_json_or_text() {
        assert_eq!(Outcome::output_from_stdout(b"{\"a\":1}\n"), Some(json!({"a": 1})));
        assert_eq!(Outcome::output_from_stdout(b"hello"), Some(json!("hello")));
        assert_eq!(Outcome::output_from_stdout(b""), None);
    }
}
