//! Install and calls of `transport: streamable-http` servers: the same steps as over stdio
//! (`initialize` or `server/discover`, the pinned `tools/list`, `tools/call`, shutdown), with a
//! fresh session per call and no sandbox, since no foreign code runs here. A call that meets
//! its timeout cancels its waiting request and ends its session before it returns
//! ([`RemoteSession::abandon`]).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use slovo_core::execution::{ExecutionStatus, NetworkPolicy, Outcome, SandboxSpec};
use slovo_core::install::{InstallFacts, McpFacts};
use slovo_core::manifest::Execution;
use slovo_core::permissions::HostPattern;

use super::remote::{Endpoint, RemoteSession};
use super::{ToolListChange, pin, result};
use crate::InstallRequest;
use crate::http::HttpConfig;
use crate::process::Verdict;

/// Seconds the install gets to list a remote server's tools.
const LIST_TIMEOUT: Duration = Duration::from_secs(30);

/// The endpoint and headers of a streamable-http tool.
struct RemoteTool<'a> {
    url: &'a str,
    headers: &'a BTreeMap<String, String>,
    /// Header → secret name.
    secret_headers: &'a BTreeMap<String, String>,
}

fn remote_of(execution: &Execution) -> Result<RemoteTool<'_>, String> {
    match execution {
        Execution::Mcp {
            url: Some(url),
            headers,
            secret_headers,
            ..
        } => Ok(RemoteTool {
            url,
            headers,
            secret_headers,
        }),
        other => Err(format!("a {} tool is not a remote MCP server", other.kind())),
    }
}

/// The network an install may use: the endpoint's host and port, nothing else (a redirect
/// elsewhere is refused), still under the address policy.
fn endpoint_only(url: &str) -> Result<NetworkPolicy, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url} is not a URL: {e}"))?;
    let host = parsed.host_str().ok_or_else(|| format!("{url} has no host"))?;
    let port = parsed.port_or_known_default().unwrap_or(443);
    let pattern: HostPattern = format!("{host}:{port}")
        .parse()
        .map_err(|e| format!("{url}: {e}"))?;
    Ok(NetworkPolicy::AllowList { hosts: vec![pattern] })
}

/// Reads the server's `initialize` answer and its tool list, for install: only its own host,
/// the plain headers and the secret headers whose secrets are set (given at import, or set
/// before approval), 30 seconds.
pub(crate) async fn list_tools(
    config: &HttpConfig,
    request: &InstallRequest,
) -> Result<(Value, Vec<Value>), String> {
    let RemoteTool {
        url,
        headers,
        secret_headers,
    } = remote_of(&request.execution)?;
    let network = endpoint_only(url)?;
    let credentials = secret_headers
        .iter()
        .filter_map(|(header, secret)| {
            let value = request.secrets.get(secret)?;
            Some((header.clone(), value.to_string()))
        })
        .collect();
    let endpoint = Endpoint {
        url,
        network: &network,
        headers,
        credentials,
        timeout: LIST_TIMEOUT,
    };
    let mut session = RemoteSession::open(endpoint, config).map_err(|e| e.to_string())?;
    let conversation = async {
        let listed = match session.initialize().await {
            Ok(()) => session.list_tools().await,
            Err(e) => Err(e),
        };
        session.shutdown().await;
        listed
    };
    match tokio::time::timeout(LIST_TIMEOUT, conversation).await {
        Ok(listed) => {
            let tools = listed.map_err(|e| e.to_string())?;
            Ok((session.server.clone().unwrap_or(Value::Null), tools))
        }
        Err(_) => {
            session.abandon().await;
            Err(format!("no answer within {} s", LIST_TIMEOUT.as_secs()))
        }
    }
}

/// The install facts of a remote server.
pub(crate) async fn install(config: &HttpConfig, request: &InstallRequest) -> Result<InstallFacts, String> {
    let url = remote_of(&request.execution)?.url;
    let (server, tools) = list_tools(config, request).await?;
    Ok(InstallFacts::Mcp(McpFacts::Remote {
        url: url.to_string(),
        listed: pin::listed(&server, tools),
    }))
}

/// One call: a fresh session, `initialize` (or `server/discover`), the pinned tool list
/// compared, `tools/call`, the session ended; all within the grant's timeout, after which the
/// waiting request is cancelled and the session ended within the cancel grace.
pub(crate) async fn run(config: &HttpConfig, spec: &SandboxSpec, tool: &str, arguments: &Value) -> Outcome {
    let RemoteTool {
        url,
        headers,
        secret_headers,
    } = match remote_of(&spec.execution) {
        Ok(r) => r,
        Err(e) => return Outcome::failed(e),
    };
    let mut credentials = Vec::new();
    for (header, secret) in secret_headers {
        match spec.secrets.get(secret) {
            Some(value) => credentials.push((header.clone(), value.to_string())),
            None => {
                return Outcome::failed(format!(
                    "the secret {secret:?} (the server's {header} header) is not set: `slovo secret set {} {secret}`",
                    spec.tool
                ));
            }
        }
    }
    let endpoint = Endpoint {
        url,
        network: &spec.network,
        headers,
        credentials,
        timeout: spec.limits.timeout,
    };
    let mut session = match RemoteSession::open(endpoint, config) {
        Ok(s) => s,
        Err(e) => return outcome(e.verdict(), url, &[]),
    };
    let pinned = pin::pinned(spec);
    let conversation = async {
        let verdict = talk(&mut session, pinned.as_deref(), tool, arguments).await;
        session.shutdown().await;
        verdict
    };
    match tokio::time::timeout(spec.limits.timeout, conversation).await {
        Ok(verdict) => outcome(verdict, url, &session.notes),
        Err(_) => {
            session.abandon().await;
            let verdict = Verdict {
                status: ExecutionStatus::Timeout,
                output: None,
                error: Some(format!(
                    "the MCP server did not answer within {} s",
                    spec.limits.timeout.as_secs()
                )),
            };
            outcome(verdict, url, &session.notes)
        }
    }
}

async fn talk(
    session: &mut RemoteSession,
    pinned: Option<&[Value]>,
    tool: &str,
    arguments: &Value,
) -> Verdict {
    if let Err(e) = session.initialize().await {
        return e.verdict();
    }
    if let Some(pinned) = pinned {
        match session.list_tools().await {
            Ok(served) => {
                if let Some(difference) = pin::difference(pinned, &served) {
                    let change = ToolListChange {
                        difference,
                        served_sha256: pin::digest(&served),
                    };
                    return Verdict {
                        status: ExecutionStatus::Failure,
                        output: None,
                        error: Some(change.refusal()),
                    };
                }
            }
            Err(e) => return e.verdict(),
        }
    }
    match session.call_tool(tool, arguments).await {
        Ok(r) => result::verdict_of(&r),
        Err(e) => e.verdict(),
    }
}

/// The call's outcome; protocol notes go on the record where a stdio server's stderr would.
fn outcome(verdict: Verdict, url: &str, notes: &[String]) -> Outcome {
    Outcome {
        status: verdict.status,
        output: verdict.output,
        error: verdict.error,
        stderr: notes
            .iter()
            .map(|n| format!("[mcp] {n}"))
            .collect::<Vec<_>>()
            .join("\n"),
        sandbox_id: Some(format!("mcp-http:{url}")),
        ..Outcome::default()
    }
}
