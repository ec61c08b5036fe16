//! Plain row types and their decoding.

use serde::Serialize;
use serde_json::Value;
use slovo_core::access::Role;
use slovo_core::execution::{ExecutionStatus, NetworkDenial, WarmStart};
use slovo_core::install::InstallFacts;
use slovo_core::lifecycle::ToolStatus;
use slovo_core::permissions::Grant;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, StoreError};

pub(crate) const TOOL_COLUMNS: &str =
    "name, status, active_version, pending_version, grant_id, revision, created_at, updated_at";
pub(crate) const VERSION_COLUMNS: &str = "tool, version, manifest, digest, source_name, source_text, bundle_digest, install_info, imported_at, analysis";
pub(crate) const GRANT_COLUMNS: &str = "id, tool, version, grant_json, granted_by, granted_at";
pub(crate) const VOLUME_COLUMNS: &str = "tool, path, quota_mb, created_at, purged_at";
pub(crate) const TOKEN_COLUMNS: &str = "id, role, token_hash, label, created_at, last_used_at, revoked_at";
pub(crate) const EXECUTION_COLUMNS: &str = "id, tool, version, capability, arguments, status, output, stderr, \
     error, exit_code, duration_ms, cpu_ms, peak_memory_bytes, sandbox_id, conversation_id, turn_id, actor, \
     started_at, finished_at, network_denials, parent_execution_id, warm";

fn json_column(row: &AnyRow, column: &str) -> Result<Value> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn opt_json_column(row: &AnyRow, column: &str) -> Result<Option<Value>> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("{column}: {e}"))))
        .transpose()
}

/// A tool's lifecycle row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolRow {
    /// The tool's name.
    pub name: String,
    /// Its lifecycle status.
    pub status: ToolStatus,
    /// The version that serves calls (set at approval).
    pub active_version: Option<String>,
    /// A newer version waiting for approval.
    pub pending_version: Option<String>,
    /// The grant in force.
    pub grant_id: Option<i64>,
    /// Bumped on every change (optimistic concurrency).
    pub revision: i64,
    /// First import.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

impl ToolRow {
    pub(crate) fn from_row(row: &AnyRow) -> Result<Self> {
        let status: String = row.try_get("status")?;
        Ok(ToolRow {
            name: row.try_get("name")?,
            status: status
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("tools.status: {e}")))?,
            active_version: row.try_get("active_version")?,
            pending_version: row.try_get("pending_version")?,
            grant_id: row.try_get("grant_id")?,
            revision: row.try_get("revision")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

/// One imported version of a manifest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionRow {
    /// The tool.
    pub tool: String,
    /// Its version.
    pub version: String,
    /// The canonical manifest.
    pub manifest: Value,
    /// SHA-256 of the canonical manifest (and bundle digest), hex.
    pub digest: String,
    /// Where it was imported from.
    pub source_name: String,
    /// The manifest as written.
    pub source_text: String,
    /// Content hash of the installed bundle, if the tool ships files.
    pub bundle_digest: Option<String>,
    /// What the backend's install step reported.
    pub install_info: Option<InstallFacts>,
    /// When it was imported.
    pub imported_at: i64,
    /// What the analysis of an imported OpenAPI document noted: `{"by": "offline" |
    /// "llm:<model>", "notes": [{"capability", "note"}]}`; `None` when nothing analysed it.
    pub analysis: Option<Value>,
}

impl VersionRow {
    pub(crate) fn from_row(row: &AnyRow) -> Result<Self> {
        let tool: String = row.try_get("tool")?;
        let version: String = row.try_get("version")?;
        let install_info = opt_json_column(row, "install_info")?
            .map(InstallFacts::from_value)
            .transpose()
            .map_err(|source| StoreError::InstallRecord {
                tool: tool.clone(),
                version: version.clone(),
                source,
            })?;
        Ok(VersionRow {
            tool,
            version,
            manifest: json_column(row, "manifest")?,
            digest: row.try_get("digest")?,
            source_name: row.try_get("source_name")?,
            source_text: row.try_get("source_text")?,
            bundle_digest: row.try_get("bundle_digest")?,
            install_info,
            imported_at: row.try_get("imported_at")?,
            analysis: opt_json_column(row, "analysis")?,
        })
    }
}

/// A grant to store.
#[derive(Debug, Clone)]
pub struct NewGrant {
    /// The tool.
    pub tool: String,
    /// The version approved.
    pub version: String,
    /// What was granted.
    pub grant: Grant,
    /// Who approved.
    pub granted_by: String,
    /// When.
    pub granted_at: i64,
}

/// A stored grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantRow {
    /// Its id.
    pub id: i64,
    /// The tool.
    pub tool: String,
    /// The version approved.
    pub version: String,
    /// What was granted.
    pub grant: Grant,
    /// Who approved.
    pub granted_by: String,
    /// When.
    pub granted_at: i64,
}

impl GrantRow {
    pub(crate) fn from_row(row: &AnyRow) -> Result<Self> {
        let grant_json: String = row.try_get("grant_json")?;
        Ok(GrantRow {
            id: row.try_get("id")?,
            tool: row.try_get("tool")?,
            version: row.try_get("version")?,
            grant: serde_json::from_str(&grant_json)
                .map_err(|e| StoreError::Corrupt(format!("grants.grant_json: {e}")))?,
            granted_by: row.try_get("granted_by")?,
            granted_at: row.try_get("granted_at")?,
        })
    }
}

/// A tool's persistent state volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeRow {
    /// The tool.
    pub tool: String,
    /// Where it lives on the host.
    pub path: String,
    /// Its quota (MB).
    pub quota_mb: i64,
    /// When it was created.
    pub created_at: i64,
    /// When its contents were destroyed, if they were.
    pub purged_at: Option<i64>,
}

impl VolumeRow {
    pub(crate) fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(VolumeRow {
            tool: row.try_get("tool")?,
            path: row.try_get("path")?,
            quota_mb: row.try_get("quota_mb")?,
            created_at: row.try_get("created_at")?,
            purged_at: row.try_get("purged_at")?,
        })
    }
}

/// A call about to start.
#[derive(Debug, Clone)]
pub struct NewExecution {
    /// Execution id (UUID v7).
    pub id: String,
    /// The tool.
    pub tool: String,
    /// The serving version.
    pub version: String,
    /// The capability.
    pub capability: String,
    /// The validated arguments (already redacted of secrets).
    pub arguments: Value,
    /// The assistant's conversation.
    pub conversation_id: Option<String>,
    /// The turn within it.
    pub turn_id: Option<String>,
    /// Who called.
    pub actor: String,
    /// When.
    pub started_at: i64,
    /// The runtime instance that runs it.
    pub instance_id: String,
    /// The chain call this call is a step of.
    pub parent_execution_id: Option<String>,
}

/// How a call ended.
#[derive(Debug, Clone)]
pub struct ExecutionResult {
    /// Final status.
    pub status: ExecutionStatus,
    /// The result.
    pub output: Option<Value>,
    /// Captured stderr.
    pub stderr: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Exit code.
    pub exit_code: Option<i32>,
    /// Wall-clock duration (ms).
    pub duration_ms: i64,
    /// CPU time (ms).
    pub cpu_ms: Option<i64>,
    /// Peak memory (bytes).
    pub peak_memory_bytes: Option<i64>,
    /// Sandbox identity.
    pub sandbox_id: Option<String>,
    /// When it ended.
    pub finished_at: i64,
    /// Connections the egress proxy refused during the call.
    pub network_denials: Vec<NetworkDenial>,
    /// Set when a warm (pooled) MCP sandbox served the call.
    pub warm: Option<WarmStart>,
}

/// A stored execution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecutionRow {
    /// Execution id.
    pub id: String,
    /// The tool.
    pub tool: String,
    /// The version that served it.
    pub version: String,
    /// The capability.
    pub capability: String,
    /// The arguments.
    pub arguments: Value,
    /// Status.
    pub status: ExecutionStatus,
    /// The result.
    pub output: Option<Value>,
    /// Captured stderr.
    pub stderr: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Exit code.
    pub exit_code: Option<i64>,
    /// Duration (ms).
    pub duration_ms: Option<i64>,
    /// CPU time (ms).
    pub cpu_ms: Option<i64>,
    /// Peak memory (bytes).
    pub peak_memory_bytes: Option<i64>,
    /// Sandbox identity.
    pub sandbox_id: Option<String>,
    /// Conversation id.
    pub conversation_id: Option<String>,
    /// Turn id.
    pub turn_id: Option<String>,
    /// Who called.
    pub actor: String,
    /// Start (Unix ms).
    pub started_at: i64,
    /// End (Unix ms).
    pub finished_at: Option<i64>,
    /// Connections the egress proxy refused during the call.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub network_denials: Vec<NetworkDenial>,
    /// The chain call this call was a step of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_execution_id: Option<String>,
    /// Set when a warm (pooled) MCP sandbox served the call; `None` for a cold start and for
    /// calls recorded before this was kept.
    pub warm: Option<WarmStart>,
}

impl ExecutionRow {
    pub(crate) fn from_row(row: &AnyRow) -> Result<Self> {
        let status: String = row.try_get("status")?;
        Ok(ExecutionRow {
            id: row.try_get("id")?,
            tool: row.try_get("tool")?,
            version: row.try_get("version")?,
            capability: row.try_get("capability")?,
            arguments: json_column(row, "arguments")?,
            status: status
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("executions.status: {e}")))?,
            output: opt_json_column(row, "output")?,
            stderr: row.try_get("stderr")?,
            error: row.try_get("error")?,
            exit_code: row.try_get("exit_code")?,
            duration_ms: row.try_get("duration_ms")?,
            cpu_ms: row.try_get("cpu_ms")?,
            peak_memory_bytes: row.try_get("peak_memory_bytes")?,
            sandbox_id: row.try_get("sandbox_id")?,
            conversation_id: row.try_get("conversation_id")?,
            turn_id: row.try_get("turn_id")?,
            actor: row.try_get("actor")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
            network_denials: match opt_json_column(row, "network_denials")? {
                Some(v) => serde_json::from_value(v)
                    .map_err(|e| StoreError::Corrupt(format!("executions.network_denials: {e}")))?,
                None => Vec::new(),
            },
            parent_execution_id: row.try_get("parent_execution_id")?,
            warm: opt_json_column(row, "warm")?
                .map(|v| {
                    serde_json::from_value(v)
                        .map_err(|e| StoreError::Corrupt(format!("executions.warm: {e}")))
                })
                .transpose()?,
        })
    }
}

/// Where a page of executions ends: the next page starts strictly after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionCursor {
    /// `started_at` of the last row seen.
    pub started_at: i64,
    /// `id` of the last row seen.
    pub id: String,
}

/// Which executions to list.
#[derive(Debug, Clone)]
pub struct ExecutionFilter {
    /// Only this tool.
    pub tool: Option<String>,
    /// Only this status.
    pub status: Option<ExecutionStatus>,
    /// Only rows older than this cursor.
    pub before: Option<ExecutionCursor>,
    /// At most this many rows.
    pub limit: i64,
}

impl Default for ExecutionFilter {
    fn default() -> Self {
        ExecutionFilter {
            tool: None,
            status: None,
            before: None,
            limit: 50,
        }
    }
}

/// An API access token (only a hash of its secret is stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRow {
    /// Public identifier (part of the token).
    pub id: String,
    /// What it may do.
    pub role: Role,
    /// SHA-256 of the token's secret part, hex.
    #[serde(skip)]
    pub token_hash: String,
    /// A person's note on what it is for.
    pub label: Option<String>,
    /// Created (Unix ms).
    pub created_at: i64,
    /// Last used (Unix ms), updated at most once a minute.
    pub last_used_at: Option<i64>,
    /// Revoked (Unix ms).
    pub revoked_at: Option<i64>,
}

impl TokenRow {
    pub(crate) fn from_row(row: &AnyRow) -> Result<Self> {
        let role: String = row.try_get("role")?;
        Ok(TokenRow {
            id: row.try_get("id")?,
            role: role
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("api_tokens.role: {e}")))?,
            token_hash: row.try_get("token_hash")?,
            label: row.try_get("label")?,
            created_at: row.try_get("created_at")?,
            last_used_at: row.try_get("last_used_at")?,
            revoked_at: row.try_get("revoked_at")?,
        })
    }
}

/// An encrypted secret as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRow {
    /// The tool it belongs to.
    pub tool: String,
    /// Its name (e.g. `api_key`).
    pub name: String,
    /// The AEAD nonce.
    pub nonce: Vec<u8>,
    /// The encrypted value and its tag.
    pub ciphertext: Vec<u8>,
    /// First set (Unix ms).
    pub created_at: i64,
    /// Last set (Unix ms).
    pub updated_at: i64,
}

/// The newest signed audit checkpoint an installation wrote to its log outside the database,
/// as the database recorded it (see `docs/audit.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRecord {
    /// The installation's checkpoint public key (hex).
    pub key: String,
    /// The checkpoint's number in the log.
    pub n: i64,
    /// The audit event it records.
    pub seq: i64,
    /// SHA-256 of its line in the log.
    pub line_hash: String,
    /// When it was written (Unix ms).
    pub at_ms: i64,
}

/// An execution's status and the stored text of its arguments and output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionText {
    /// The execution.
    pub id: String,
    /// Its status as stored.
    pub status: String,
    /// Its arguments, as stored JSON text.
    pub arguments: String,
    /// Its output, as stored JSON text.
    pub output: Option<String>,
}
