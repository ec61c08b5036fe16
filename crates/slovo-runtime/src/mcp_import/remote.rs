//! Importing a remote MCP server: a registry `server.json` whose `remotes` offer a
//! `streamable-http` endpoint (and no package Slovo can run, which is preferred since it runs
//! in the sandbox). Nothing is fetched: the server is asked for its tools at its endpoint,
//! under the same address rules a call meets, and the proposal grants the endpoint's host and
//! port alone.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use slovo_core::manifest::{Execution, McpTransport};
use tracing::info;

use super::{McpImport, McpImportReport, McpToolView, manifest, write_json};
use crate::mcp_pin::{MCP_IMPORT_RECORD, digest_of};
use crate::{Actor, ImportSource, Result, Runtime, RuntimeError};

/// A remote endpoint of a `server.json`, with what the person must provide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Remote {
    /// The server's registry name (`io.example/weather`), for the tool's name.
    pub server_name: Option<String>,
    /// The server's version, when `server.json` gives one.
    pub version: Option<String>,
    pub description: Option<String>,
    pub url: String,
    /// Headers with their values.
    pub headers: BTreeMap<String, String>,
    /// Header → secret name, for the headers marked `isSecret`.
    pub secret_headers: BTreeMap<String, String>,
    /// What of the source was not used, and why.
    pub notes: Vec<String>,
}

/// The first `streamable-http` entry of `remotes`; `None` when there is none. Errors name the
/// field (`remotes[0].headers[1]: …`).
pub(crate) fn from_server_json(server: &Value) -> Option<std::result::Result<Remote, String>> {
    let remotes = server.get("remotes").and_then(Value::as_array)?;
    let mut notes = Vec::new();
    for (i, r) in remotes.iter().enumerate() {
        let kind = r.get("type").and_then(Value::as_str).unwrap_or("");
        if kind != "streamable-http" {
            notes.push(format!(
                "remotes[{i}]: transport {kind:?} not used (streamable-http is)"
            ));
            continue;
        }
        return Some(remote(server, r, i, notes));
    }
    None
}

fn remote(
    server: &Value,
    entry: &Value,
    i: usize,
    notes: Vec<String>,
) -> std::result::Result<Remote, String> {
    let at = |f: &str, why: String| format!("remotes[{i}].{f}: {why}");
    let url = entry
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| at("url", "missing".into()))?;
    if url.contains('{') {
        return Err(at(
            "url",
            format!("{url} has template variables; name the endpoint itself"),
        ));
    }
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let mut headers = BTreeMap::new();
    let mut secret_headers = BTreeMap::new();
    for (j, h) in entry
        .get("headers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let field = format!("headers[{j}]");
        let name = text(h, "name").ok_or_else(|| at(&field, "a header without a name".into()))?;
        if h.get("isSecret").and_then(Value::as_bool) == Some(true) {
            secret_headers.insert(name.clone(), secret_name(&name));
            continue;
        }
        match text(h, "value").or_else(|| text(h, "default")) {
            Some(v) if v.contains('{') => {
                return Err(at(
                    &field,
                    format!("{name} has template variables in its value; mark it isSecret or give the value"),
                ));
            }
            Some(v) => {
                headers.insert(name, v);
            }
            None if h.get("isRequired").and_then(Value::as_bool) == Some(true) => {
                return Err(at(&field, format!("{name} is required and has no value")));
            }
            None => {}
        }
    }
    Ok(Remote {
        server_name: text(server, "name"),
        version: text(server, "version"),
        description: text(server, "description"),
        url: url.to_string(),
        headers,
        secret_headers,
        notes,
    })
}

/// A header's secret: the header's name, in the letters a secret name may hold.
fn secret_name(header: &str) -> String {
    header
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_-.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

/// The `host:port` a proposal grants for `url`.
fn endpoint_host(url: &str) -> std::result::Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url} is not a URL: {e}"))?;
    let host = parsed.host_str().ok_or_else(|| format!("{url} has no host"))?;
    let port = parsed.port_or_known_default().unwrap_or(443);
    Ok(format!("{host}:{port}"))
}

impl Runtime {
    /// Imports the remote server `remote` as a proposal: its tools read at its endpoint, the
    /// endpoint's host and port its only network.
    pub(super) async fn import_remote_mcp(
        &self,
        remote: Remote,
        request: &McpImport,
        actor: &Actor,
    ) -> Result<McpImportReport> {
        let failed = |reason: String| RuntimeError::McpImport {
            source_name: remote.url.clone(),
            reason,
        };
        if !request.env.is_empty() || !request.args.is_empty() {
            return Err(failed(
                "--env and --arg start a package; a remote server takes only its headers".into(),
            ));
        }
        let host = endpoint_host(&remote.url).map_err(failed)?;
        let work = self.work_dir()?;
        let bundle = work.0.join("bundle");
        std::fs::create_dir_all(&bundle).map_err(|e| RuntimeError::io("create", &bundle, e))?;
        let short = remote
            .server_name
            .as_deref()
            .and_then(|n| n.rsplit('/').next())
            .unwrap_or("remote-mcp");
        let name = request
            .name
            .clone()
            .unwrap_or_else(|| slovo_openapi::tool_name(short));
        let version = slovo_openapi::version(remote.version.as_deref().unwrap_or("1.0.0")).to_string();
        let execution = Execution::Mcp {
            transport: McpTransport::StreamableHttp,
            command: Vec::new(),
            image: None,
            system_paths: false,
            env: BTreeMap::new(),
            secret_env: BTreeMap::new(),
            tool_names: BTreeMap::new(),
            url: Some(remote.url.clone()),
            headers: remote.headers.clone(),
            secret_headers: remote.secret_headers.clone(),
        };
        super::check_given_secrets(
            &remote.url,
            remote.secret_headers.values(),
            "secret headers",
            &request.secrets,
        )?;
        let sealed = self.seal_given_secrets(&name, &request.secrets)?;
        let super::Listed { server, tools, .. } = self
            .list_server_tools(&name, &version, execution, &bundle, &request.secrets)
            .await
            .map_err(failed)?;
        let (capabilities, renamed) = manifest::capabilities(&tools).map_err(failed)?;
        let description = remote
            .description
            .clone()
            .unwrap_or_else(|| format!("The MCP server at {}", remote.url));
        let doc = json!({
            "name": name,
            "version": version,
            "description": description,
            "capabilities": capabilities,
            "permissions": {"network_allow": [host]},
            "execution": {
                "type": "mcp", "transport": "streamable-http", "url": remote.url,
                "headers": remote.headers, "secret_headers": remote.secret_headers,
                "tool_names": renamed,
            },
        });
        let record = json!({
            "source": remote.url,
            "integrity": Value::Null,
            "server": server,
            "tools_sha256": digest_of(&tools),
            "tools": tools,
            "notes": remote.notes,
        });
        write_json(&bundle.join("slovo.json"), &doc)?;
        write_json(&bundle.join(MCP_IMPORT_RECORD), &record)?;
        let import = self
            .import_with_secrets(ImportSource::Bundle(bundle), &sealed, actor)
            .await?;
        info!(tool = %import.tool, url = %remote.url, secrets = sealed.len(), "remote MCP server imported");
        let tools = McpToolView::of(&capabilities, &tools);
        Ok(McpImportReport {
            import,
            package: Some(remote.url.clone()),
            integrity: Value::Null,
            server,
            tools,
            secrets: remote.secret_headers.into_values().collect(),
            secrets_stored: super::stored_names(&sealed),
            notes: remote.notes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_gives_its_url_headers_and_secret_headers() {
        let server = json!({
            "name": "io.example/weather", "version": "2.1.0",
            "remotes": [
                {"type": "sse", "url": "https://weather.example/sse"},
                {"type": "streamable-http", "url": "https://weather.example/mcp",
                 "headers": [
                    {"name": "Authorization", "isSecret": true, "isRequired": true},
                    {"name": "X-Region", "default": "eu"}]}
            ]
        });
        let remote = from_server_json(&server).unwrap().unwrap();
        assert_eq!(remote.url, "https://weather.example/mcp");
        assert_eq!(remote.headers["X-Region"], "eu");
        assert_eq!(remote.secret_headers["Authorization"], "Authorization");
        assert!(remote.notes[0].contains("\"sse\""), "{:?}", remote.notes);
        let templated =
            json!({"remotes": [{"type": "streamable-http", "url": "https://{tenant}.example/mcp"}]});
        let e = from_server_json(&templated).unwrap().unwrap_err();
        assert!(e.starts_with("remotes[0].url: "), "{e}");
        let missing = json!({"remotes": [{"type": "streamable-http", "url": "https://x.example/mcp",
            "headers": [{"name": "X-Tenant", "isRequired": true}]}]});
        let e = from_server_json(&missing).unwrap().unwrap_err();
        assert!(
            e.contains("headers[0]") && e.contains("X-Tenant is required"),
            "{e}"
        );
        assert!(from_server_json(&json!({"packages": []})).is_none());
        assert_eq!(secret_name("X-Api+Key"), "X-Api_Key");
    }
}
