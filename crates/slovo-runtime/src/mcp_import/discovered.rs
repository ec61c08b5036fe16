//! The proposal for a discovery candidate. A server from an MCP registry (`server.json`) is
//! imported exactly as `slovo mcp-server import` would import that file — its package fetched
//! from the configured places only, its integrity checked, its tools listed in its sandbox —
//! so the proposal is callable once approved. When that import cannot be made (nothing
//! configured to fetch from, a range instead of a version, no package or remote Slovo can
//! run), the server's description is proposed as it is (reviewable, not callable) and the
//! reason goes on the discovery request's result.

use serde_json::{Value, json};
use slovo_discovery::sources::{Candidate, SourceKind};
use tracing::warn;

use super::{McpImport, McpSource};
use crate::{Actor, ImportReport, ImportSource, Result, Runtime};

impl Runtime {
    /// Imports `candidate` as a proposal; returns the import and, for an MCP server, how it
    /// was imported (`{callable, package, integrity, secrets}` or `{callable: false, reason}`).
    pub(crate) async fn propose_candidate(
        &self,
        candidate: &Candidate,
        actor: &Actor,
    ) -> Result<(ImportReport, Option<Value>)> {
        let mcp = if candidate.kind == SourceKind::McpServer {
            match self.import_registry_server(candidate, actor).await {
                Ok(report) => {
                    let how = json!({
                        "callable": true, "package": report.package, "integrity": report.integrity,
                        "secrets": report.secrets, "notes": report.notes,
                    });
                    return Ok((report.import, Some(how)));
                }
                Err(reason) => {
                    warn!(origin = %candidate.origin, %reason, "the registry server is proposed without a way to run it");
                    Some(json!({"callable": false, "reason": reason}))
                }
            }
        } else {
            None
        };
        let bytes = serde_json::to_vec(&candidate.manifest.to_canonical()).map_err(|e| {
            crate::RuntimeError::McpImport {
                source_name: candidate.origin.clone(),
                reason: format!("cannot serialise the proposal: {e}"),
            }
        })?;
        let name = if candidate.origin.ends_with(".json") {
            candidate.origin.clone()
        } else {
            format!("{}.json", candidate.origin)
        };
        let report = self.import(ImportSource::Manifest { name, bytes }, actor).await?;
        Ok((report, mcp))
    }

    /// `slovo mcp-server import` of the candidate's `server.json`, under the candidate's name.
    async fn import_registry_server(
        &self,
        candidate: &Candidate,
        actor: &Actor,
    ) -> std::result::Result<super::McpImportReport, String> {
        let bytes = std::fs::read(&candidate.origin).map_err(|e| format!("{}: {e}", candidate.origin))?;
        let server: Value =
            serde_json::from_slice(&bytes).map_err(|e| format!("{}: not JSON: {e}", candidate.origin))?;
        let request = McpImport {
            source: McpSource::ServerJson(server),
            name: Some(candidate.manifest.name.clone()),
            env: Default::default(),
            args: Vec::new(),
            secrets: Default::default(),
        };
        self.import_mcp(&request, actor).await.map_err(|e| e.to_string())
    }
}
