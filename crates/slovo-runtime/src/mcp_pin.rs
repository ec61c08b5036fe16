//! The tool list an MCP server tool was approved with is the one it serves
//! (`docs/mcp-servers.md`, Pinning):
//! - at install, the list the server answers in its sandbox must be the one the person was
//!   shown: the import record's list for a first approval, the changed list shown for a new
//!   approval after a change, the pinned list for a reinstall;
//! - a call refused because the server answered differently sends the version back to
//!   approval, with the difference on the audit trail and on the version's install record.

use serde_json::Value;
use slovo_core::audit::AuditRecord;
use slovo_core::audit::record::ToolListChanged;
use slovo_core::install::{InstallFacts, ToolListChangedNote};
use slovo_core::lifecycle::ToolStatus;
use slovo_core::manifest::Manifest;
use slovo_core::time::now_ms;
use slovo_sandbox::mcp::{ToolListChange, tool_list_difference, tools_digest};
use slovo_store::ToolRow;
use tracing::warn;

use crate::audit_record::AppendRecord;
use crate::{Actor, Result, Runtime, RuntimeError};

/// The file of an imported MCP server's bundle that records what the import found: the
/// package, its integrity, the server's `initialize` answer and its tool list.
pub const MCP_IMPORT_RECORD: &str = "slovo-mcp.json";

impl Runtime {
    /// Checks the tool list an MCP server listed at install (`info`) against the one the person
    /// approved; any other install (one that listed no tools) passes. `stored` is the version's
    /// install record so far.
    pub(crate) fn check_mcp_pin(
        &self,
        manifest: &Manifest,
        bundle_dir: Option<&std::path::Path>,
        stored: Option<&InstallFacts>,
        info: &InstallFacts,
    ) -> Result<()> {
        let Some(listed) = info.listed_tools() else {
            return Ok(());
        };
        let refuse = |reason: String| RuntimeError::Install {
            tool: manifest.name.clone(),
            reason,
        };
        let served_sha = listed.tools_sha256.as_str();
        let stored = stored.and_then(InstallFacts::listed_tools);
        // A new approval after a change holds the server to the list that was shown.
        if let Some(shown) = stored
            .and_then(|s| s.tool_list_changed.as_ref())
            .map(|c| c.served_sha256.as_str())
        {
            if shown != served_sha {
                return Err(refuse(format!(
                    "the server lists other tools when installed than it served when called \
                     (the list shown has tools_sha256 {shown}, installed it lists {served_sha}): \
                     it behaves differently when watched; revoke it"
                )));
            }
            return Ok(());
        }
        let served = &listed.tools;
        let reference = match stored {
            // A reinstall: the pinned list.
            Some(pinned) => Some((pinned.tools.clone(), "the list pinned at approval")),
            None => read_import_record(bundle_dir)?.map(|tools| (tools, "the list shown at import")),
        };
        if let Some((expected, which)) = reference
            && let Some(difference) = tool_list_difference(&expected, served)
        {
            return Err(refuse(format!(
                "the server's tool list differs from {which}: {difference}"
            )));
        }
        Ok(())
    }

    /// After a call of `tool`'s serving `version` was refused for `change`: the version goes
    /// back to approval (as a pending version of the tool, which keeps its status and grant;
    /// calls are refused by the pin meanwhile) and the difference is recorded. A change already
    /// recorded is not recorded again.
    pub(crate) async fn mcp_tool_list_changed(
        &self,
        tool: &str,
        version: &str,
        change: &ToolListChange,
        actor: &Actor,
    ) -> Result<()> {
        let mut tx = self.store.begin().await?;
        let Some(current) = tx.tool(tool).await? else {
            return Ok(());
        };
        let serving = current.active_version.as_deref() == Some(version)
            && matches!(current.status, ToolStatus::Active | ToolStatus::Disabled);
        let Some(row) = tx.version(tool, version).await? else {
            return Ok(());
        };
        let mut info = row.install_info.clone();
        // A call is refused for a changed list only against the list its install pinned, so
        // the record has one; without it there is nowhere to note the change but the trail.
        let listed = info.as_mut().and_then(InstallFacts::listed_tools_mut);
        let known = listed
            .as_ref()
            .and_then(|l| l.tool_list_changed.as_ref())
            .is_some_and(|c| c.served_sha256 == change.served_sha256);
        if !serving || (known && current.pending_version.as_deref() == Some(version)) {
            tx.rollback().await?;
            return Ok(());
        }
        if let Some(listed) = listed {
            listed.tool_list_changed = Some(ToolListChangedNote {
                difference: change.difference.clone(),
                served_sha256: change.served_sha256.clone(),
                at: now_ms(),
            });
        }
        if let Some(info) = &info {
            tx.set_install_info(tool, version, info).await?;
        }
        let pending = ToolRow {
            pending_version: Some(version.to_string()),
            revision: current.revision + 1,
            updated_at: now_ms(),
            ..current.clone()
        };
        tx.save_tool(&pending, Some(current.revision)).await?;
        tx.append_record(
            Some(tool),
            &actor.0,
            &AuditRecord::ToolListChanged(ToolListChanged {
                version: version.to_string(),
                difference: change.difference.clone(),
                served_sha256: change.served_sha256.clone(),
                replaced_pending: current.pending_version.clone(),
            }),
        )
        .await?;
        tx.commit().await?;
        warn!(tool, version, difference = %change.difference, "the MCP server's tool list changed: back to approval");
        Ok(())
    }
}

/// The tool list an MCP server's bundle was imported with, if it was imported by name.
fn read_import_record(bundle_dir: Option<&std::path::Path>) -> Result<Option<Vec<Value>>> {
    let Some(path) = bundle_dir.map(|d| d.join(MCP_IMPORT_RECORD)) else {
        return Ok(None);
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RuntimeError::io("read", &path, e)),
    };
    let record: Value = serde_json::from_slice(&bytes).map_err(|e| RuntimeError::InvalidBundle {
        path: path.clone(),
        reason: format!("not JSON: {e}"),
    })?;
    Ok(record.get("tools").and_then(Value::as_array).cloned())
}

/// The digest an import record's tools have, as the install facts write it.
pub(crate) fn digest_of(tools: &[Value]) -> String {
    tools_digest(tools)
}
