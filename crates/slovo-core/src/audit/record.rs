//! What an audit event says: one variant per kind, each with its typed payload.
//!
//! The kind and the payload's JSON text are covered by the event's hash, so both are pinned
//! exactly as they have always been written (field names, field order, `null`s, which fields
//! are left out): a change here would make new events read differently from old ones, and a
//! test below pins every variant. Field order matters because the workspace keeps JSON objects
//! in insertion order.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::access::Role;
use crate::execution::{ExecutionStatus, NetworkPolicy, ResourceLimits};
use crate::install::InstallFacts;
use crate::lifecycle::{ImportOutcome, ToolStatus};
use crate::permissions::{Grant, Permissions, Widening};
use crate::upgrade::Change;

/// The spelling of every kind, for readers that pick events by kind.
pub mod kinds {
    /// A new tool or version was imported (or a revoked tool imported again).
    pub const TOOL_IMPORTED: &str = "tool.imported";
    /// A newer version replaced the serving one without approval.
    pub const TOOL_UPGRADED: &str = "tool.upgraded";
    /// A newer version waits for approval while the approved one keeps serving.
    pub const TOOL_UPGRADE_PENDING: &str = "tool.upgrade_pending";
    /// A person approved a version with a grant.
    pub const TOOL_APPROVED: &str = "tool.approved";
    /// The approved version was installed and the tool became active.
    pub const TOOL_INSTALLED: &str = "tool.installed";
    /// The serving version was installed again.
    pub const TOOL_REINSTALLED: &str = "tool.reinstalled";
    /// `active → disabled`.
    pub const TOOL_DISABLED: &str = "tool.disabled";
    /// `disabled → active`.
    pub const TOOL_ENABLED: &str = "tool.enabled";
    /// `* → revoked`.
    pub const TOOL_REVOKED: &str = "tool.revoked";
    /// A revoked tool's state was destroyed.
    pub const TOOL_STATE_PURGED: &str = "tool.state_purged";
    /// A person rejected a new tool.
    pub const TOOL_REJECTED: &str = "tool.rejected";
    /// A person rejected the version that waited as an upgrade.
    pub const TOOL_UPGRADE_REJECTED: &str = "tool.upgrade_rejected";
    /// An MCP server listed other tools than the ones approved; its version waits again.
    pub const TOOL_TOOL_LIST_CHANGED: &str = "tool.tool_list_changed";
    /// A call ended (or was recorded as cancelled or interrupted).
    pub const EXECUTION_FINISHED: &str = "execution.finished";
    /// Another instance stopped renewing its lease; its running calls were closed.
    pub const INSTANCE_LAPSED: &str = "instance.lapsed";
    /// An instance opened an audit chain of its own for its calls' results (on chain 1).
    pub const AUDIT_CHAIN_OPENED: &str = "audit.chain_opened";
    /// The checkpointer recorded every chain's head on chain 1, before signing it.
    pub const AUDIT_CHAINS_ANCHORED: &str = "audit.chains_anchored";
    /// A secret of a tool was set.
    pub const SECRET_SET: &str = "secret.set";
    /// A secret of a tool was deleted.
    pub const SECRET_DELETED: &str = "secret.deleted";
    /// An API token was created.
    pub const TOKEN_CREATED: &str = "token.created";
    /// An API token was revoked.
    pub const TOKEN_REVOKED: &str = "token.revoked";
    /// A one-time dashboard sign-in link was created.
    pub const DASHBOARD_SIGNIN_LINK_CREATED: &str = "dashboard.signin_link_created";
    /// A one-time dashboard sign-in link was used.
    pub const DASHBOARD_SIGNIN_LINK_USED: &str = "dashboard.signin_link_used";
    /// Someone asked discovery for a tool.
    pub const DISCOVERY_REQUESTED: &str = "discovery.requested";
    /// A discovery request went back to waiting for the worker.
    pub const DISCOVERY_PENDING: &str = "discovery.pending";
    /// The worker started searching for a request.
    pub const DISCOVERY_SEARCHING: &str = "discovery.searching";
    /// Discovery found a tool and proposed it.
    pub const DISCOVERY_FOUND: &str = "discovery.found";
    /// Discovery found nothing good enough.
    pub const DISCOVERY_FAILED: &str = "discovery.failed";
    /// A person rejected a discovery request.
    pub const DISCOVERY_REJECTED: &str = "discovery.rejected";

    /// Every kind, in the order `docs/audit.md` lists them.
    pub const ALL: &[&str] = &[
        TOOL_IMPORTED,
        TOOL_UPGRADED,
        TOOL_UPGRADE_PENDING,
        TOOL_APPROVED,
        TOOL_INSTALLED,
        TOOL_REINSTALLED,
        TOOL_DISABLED,
        TOOL_ENABLED,
        TOOL_REVOKED,
        TOOL_STATE_PURGED,
        TOOL_REJECTED,
        TOOL_UPGRADE_REJECTED,
        TOOL_TOOL_LIST_CHANGED,
        EXECUTION_FINISHED,
        INSTANCE_LAPSED,
        AUDIT_CHAIN_OPENED,
        AUDIT_CHAINS_ANCHORED,
        SECRET_SET,
        SECRET_DELETED,
        TOKEN_CREATED,
        TOKEN_REVOKED,
        DASHBOARD_SIGNIN_LINK_CREATED,
        DASHBOARD_SIGNIN_LINK_USED,
        DISCOVERY_REQUESTED,
        DISCOVERY_PENDING,
        DISCOVERY_SEARCHING,
        DISCOVERY_FOUND,
        DISCOVERY_FAILED,
        DISCOVERY_REJECTED,
    ];
}

/// One audit event's kind and payload. The tool it concerns and who acted are columns of
/// their own, passed beside it.
#[derive(Debug, Clone, PartialEq)]
pub enum AuditRecord {
    /// `tool.imported`, `tool.upgraded` or `tool.upgrade_pending`, by the import's outcome.
    ToolImported(ToolImported),
    /// `tool.approved`.
    ToolApproved(ToolApproved),
    /// `tool.installed`.
    ToolInstalled(ToolInstalled),
    /// `tool.reinstalled`.
    ToolReinstalled(ToolReinstalled),
    /// `tool.disabled`.
    ToolDisabled(StatusChange),
    /// `tool.enabled`.
    ToolEnabled(StatusChange),
    /// `tool.revoked`.
    ToolRevoked(StatusChange),
    /// `tool.state_purged`.
    ToolStatePurged(StatePurged),
    /// `tool.rejected` (a new tool) or `tool.upgrade_rejected`.
    ToolRejected(ProposalRejected),
    /// `tool.tool_list_changed`.
    ToolListChanged(ToolListChanged),
    /// `execution.finished`, written by the call path when a call ends.
    CallFinished(Box<CallFinished>),
    /// `execution.finished`, written for a call that never finished (cancelled at shutdown,
    /// interrupted by a crash or a lapsed lease).
    CallAbandoned(CallAbandoned),
    /// `instance.lapsed`.
    InstanceLapsed(InstanceLapsed),
    /// `audit.chain_opened`.
    AuditChainOpened(AuditChainOpened),
    /// `audit.chains_anchored`.
    AuditChainsAnchored(AuditChainsAnchored),
    /// `secret.set`.
    SecretSet(SecretName),
    /// `secret.deleted`.
    SecretDeleted(SecretName),
    /// `token.created`.
    TokenCreated(TokenCreated),
    /// `token.revoked`.
    TokenRevoked(TokenRevoked),
    /// `dashboard.signin_link_created`.
    SigninLinkCreated(SigninLinkCreated),
    /// `dashboard.signin_link_used`.
    SigninLinkUsed(SigninLinkUsed),
    /// `discovery.requested`.
    DiscoveryRequested(DiscoveryRequested),
    /// `discovery.rejected`, by a person.
    DiscoveryRejected(DiscoveryRejected),
    /// `discovery.<status>`: the worker moved a request (`pending`, `searching`, `found`,
    /// `failed`).
    DiscoveryMoved(DiscoveryMoved),
}

impl AuditRecord {
    /// The event's kind, as stored and hashed.
    pub fn kind(&self) -> &'static str {
        match self {
            AuditRecord::ToolImported(p) => match p.outcome {
                ImportOutcome::UpgradedInPlace => kinds::TOOL_UPGRADED,
                ImportOutcome::UpgradePending => kinds::TOOL_UPGRADE_PENDING,
                ImportOutcome::New
                | ImportOutcome::PendingReplaced
                | ImportOutcome::Reimported
                | ImportOutcome::Unchanged => kinds::TOOL_IMPORTED,
            },
            AuditRecord::ToolApproved(_) => kinds::TOOL_APPROVED,
            AuditRecord::ToolInstalled(_) => kinds::TOOL_INSTALLED,
            AuditRecord::ToolReinstalled(_) => kinds::TOOL_REINSTALLED,
            AuditRecord::ToolDisabled(_) => kinds::TOOL_DISABLED,
            AuditRecord::ToolEnabled(_) => kinds::TOOL_ENABLED,
            AuditRecord::ToolRevoked(_) => kinds::TOOL_REVOKED,
            AuditRecord::ToolStatePurged(_) => kinds::TOOL_STATE_PURGED,
            AuditRecord::ToolRejected(p) if p.to == ToolStatus::Revoked => kinds::TOOL_REJECTED,
            AuditRecord::ToolRejected(_) => kinds::TOOL_UPGRADE_REJECTED,
            AuditRecord::ToolListChanged(_) => kinds::TOOL_TOOL_LIST_CHANGED,
            AuditRecord::CallFinished(_) | AuditRecord::CallAbandoned(_) => kinds::EXECUTION_FINISHED,
            AuditRecord::InstanceLapsed(_) => kinds::INSTANCE_LAPSED,
            AuditRecord::AuditChainOpened(_) => kinds::AUDIT_CHAIN_OPENED,
            AuditRecord::AuditChainsAnchored(_) => kinds::AUDIT_CHAINS_ANCHORED,
            AuditRecord::SecretSet(_) => kinds::SECRET_SET,
            AuditRecord::SecretDeleted(_) => kinds::SECRET_DELETED,
            AuditRecord::TokenCreated(_) => kinds::TOKEN_CREATED,
            AuditRecord::TokenRevoked(_) => kinds::TOKEN_REVOKED,
            AuditRecord::SigninLinkCreated(_) => kinds::DASHBOARD_SIGNIN_LINK_CREATED,
            AuditRecord::SigninLinkUsed(_) => kinds::DASHBOARD_SIGNIN_LINK_USED,
            AuditRecord::DiscoveryRequested(_) => kinds::DISCOVERY_REQUESTED,
            AuditRecord::DiscoveryRejected(_) => kinds::DISCOVERY_REJECTED,
            AuditRecord::DiscoveryMoved(p) => match p.status {
                DiscoveryState::Pending => kinds::DISCOVERY_PENDING,
                DiscoveryState::Searching => kinds::DISCOVERY_SEARCHING,
                DiscoveryState::Found => kinds::DISCOVERY_FOUND,
                DiscoveryState::Failed => kinds::DISCOVERY_FAILED,
                DiscoveryState::Rejected => kinds::DISCOVERY_REJECTED,
            },
        }
    }

    /// The event's payload, as stored and hashed.
    pub fn payload(&self) -> Value {
        let serialized = match self {
            AuditRecord::ToolImported(p) => serde_json::to_value(p),
            AuditRecord::ToolApproved(p) => serde_json::to_value(p),
            AuditRecord::ToolInstalled(p) => serde_json::to_value(p),
            AuditRecord::ToolReinstalled(p) => serde_json::to_value(p),
            AuditRecord::ToolDisabled(p) | AuditRecord::ToolEnabled(p) | AuditRecord::ToolRevoked(p) => {
                serde_json::to_value(p)
            }
            AuditRecord::ToolStatePurged(p) => serde_json::to_value(p),
            AuditRecord::ToolRejected(p) => serde_json::to_value(p),
            AuditRecord::ToolListChanged(p) => serde_json::to_value(p),
            AuditRecord::CallFinished(p) => serde_json::to_value(p),
            AuditRecord::CallAbandoned(p) => serde_json::to_value(p),
            AuditRecord::InstanceLapsed(p) => serde_json::to_value(p),
            AuditRecord::AuditChainOpened(p) => serde_json::to_value(p),
            AuditRecord::AuditChainsAnchored(p) => serde_json::to_value(p),
            AuditRecord::SecretSet(p) | AuditRecord::SecretDeleted(p) => serde_json::to_value(p),
            AuditRecord::TokenCreated(p) => serde_json::to_value(p),
            AuditRecord::TokenRevoked(p) => serde_json::to_value(p),
            AuditRecord::SigninLinkCreated(p) => serde_json::to_value(p),
            AuditRecord::SigninLinkUsed(p) => serde_json::to_value(p),
            AuditRecord::DiscoveryRequested(p) => serde_json::to_value(p),
            AuditRecord::DiscoveryRejected(p) => serde_json::to_value(p),
            AuditRecord::DiscoveryMoved(p) => serde_json::to_value(p),
        };
        // Every payload is a struct of strings, numbers, booleans, lists and maps with string
        // keys, which `serde_json` always serializes; the fallback keeps the event anyway.
        serialized.unwrap_or_else(|e| serde_json::json!({"unserializable_payload": e.to_string()}))
    }
}

/// `tool.imported`, `tool.upgraded`, `tool.upgrade_pending`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolImported {
    /// The imported version.
    pub version: String,
    /// What the import did (decides the kind).
    pub outcome: ImportOutcome,
    /// The version's digest (manifest and bundle).
    pub digest: String,
    /// Where it came from (a path, a URL, `-`).
    pub source: String,
    /// What the manifest asks for.
    pub requested: Permissions,
    /// How it asks for more than the grant.
    pub widenings: Vec<Widening>,
    /// How it runs something other than the serving version. Absent from the event of a
    /// revoked tool's same version imported again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<Change>>,
}

/// `tool.approved`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolApproved {
    /// The approved version.
    pub version: String,
    /// The version that served before, if any.
    pub previous_version: Option<String>,
    /// What the manifest asked for.
    pub requested: Permissions,
    /// What the person granted.
    pub granted: Grant,
    /// For a chain: the grant each step tool held at approval.
    pub step_grants: Vec<StepGrant>,
}

/// A chain's step tool and the grant pinned for it at the chain's approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepGrant {
    /// The step tool.
    pub tool: String,
    /// Its grant's id.
    pub grant_id: i64,
}

/// `tool.installed`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolInstalled {
    /// The installed version.
    pub version: String,
    /// The state volume's path.
    pub volume: String,
    /// What the backend's install found.
    pub install: InstallFacts,
}

/// `tool.reinstalled`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolReinstalled {
    /// The serving version.
    pub version: String,
    /// What the backend's install found now.
    pub install: InstallFacts,
    /// What it found before (boxed: two install records would make every audit record as
    /// large as this one).
    pub previous_install: Option<Box<InstallFacts>>,
}

/// `tool.disabled`, `tool.enabled`, `tool.revoked`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusChange {
    /// Revocation only: whether the tool's state is destroyed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purge_state: Option<bool>,
    /// The status before.
    pub from: ToolStatus,
    /// The status after.
    pub to: ToolStatus,
    /// Chains approved with this tool as a step, which need a new approval now.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chains_needing_approval: Vec<String>,
}

/// `tool.state_purged`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatePurged {
    /// The destroyed state directory.
    pub path: PathBuf,
}

/// `tool.rejected`, `tool.upgrade_rejected`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProposalRejected {
    /// The rejected version.
    pub version: String,
    /// The person's reason.
    pub reason: String,
    /// The status before.
    pub from: ToolStatus,
    /// The status after: `revoked` for a new tool (`tool.rejected`); unchanged for an upgrade.
    pub to: ToolStatus,
}

/// `tool.tool_list_changed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolListChanged {
    /// The version whose server listed other tools.
    pub version: String,
    /// The difference, for a person.
    pub difference: String,
    /// SHA-256 of the list the server served.
    pub served_sha256: String,
    /// The pending version this one replaced as the one waiting, if any.
    pub replaced_pending: Option<String>,
}

/// `execution.finished` from the call path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallFinished {
    /// The execution record.
    pub execution_id: String,
    /// The version that served the call.
    pub version: String,
    /// The capability called.
    pub capability: String,
    /// How it ended.
    pub status: ExecutionStatus,
    /// The program's exit code, if it exited.
    pub exit_code: Option<i32>,
    /// Why it failed, if it did (secrets redacted).
    pub error: Option<String>,
    /// Wall-clock time.
    pub duration_ms: i64,
    /// CPU time, where the backend measures it.
    pub cpu_ms: Option<i64>,
    /// Peak memory, where the backend measures it.
    pub peak_memory_bytes: Option<i64>,
    /// The sandbox's id, where the backend has one.
    pub sandbox_id: Option<String>,
    /// SHA-256 of the arguments' compact JSON.
    pub arguments_sha256: Option<String>,
    /// SHA-256 of the output's compact JSON.
    pub output_sha256: Option<String>,
    /// The limits the call ran under.
    pub limits: ResourceLimits,
    /// The network the call was given.
    pub network: NetworkPolicy,
    /// For a chain's step: the chain's execution.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_execution_id: Option<String>,
    /// For a chain: its steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<StepRecord>>,
}

/// One step of a chain as the chain's execution event (and result) lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepRecord {
    /// The step's id.
    pub step: String,
    /// `tool.capability`.
    pub call: String,
    /// How it ended, or why it did not run.
    pub status: String,
    /// Its execution, if it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `execution.finished` for a call that never finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallAbandoned {
    /// The execution record.
    pub execution_id: String,
    /// The version that served the call.
    pub version: String,
    /// The capability called.
    pub capability: String,
    /// `cancelled` or `interrupted`.
    pub status: ExecutionStatus,
    /// Why.
    pub error: String,
    /// SHA-256 of the arguments' compact JSON.
    pub arguments_sha256: Option<String>,
}

/// `instance.lapsed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceLapsed {
    /// The instance that stopped renewing its lease.
    pub instance: String,
    /// Its host.
    pub host: String,
    /// Its process id.
    pub pid: i64,
    /// Its last heartbeat (Unix milliseconds).
    pub heartbeat_at: i64,
    /// Its lease.
    pub lease_ms: i64,
    /// How many of its running calls were recorded as interrupted.
    pub interrupted: usize,
}

/// `audit.chain_opened`: the chain an instance writes its calls' results to. The chain's first
/// event takes this event's hash as its `prev_hash`, which binds the chain to its opening.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditChainOpened {
    /// The new chain's number (2 and up; chain 1 is the one every installation starts with).
    pub chain: i64,
    /// The instance that writes it.
    pub instance: String,
}

/// `audit.chains_anchored`: every other chain's head when the checkpointer was about to sign
/// chain 1, so that the signature covers them through chain 1's hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditChainsAnchored {
    /// Each chain's head, by chain number.
    pub chains: Vec<AnchoredHead>,
}

/// One chain's head as an anchor records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchoredHead {
    /// The chain.
    pub chain: i64,
    /// Its newest event's sequence number (0: no event yet).
    pub seq: i64,
    /// That event's hash (the opening event's hash when `seq` is 0).
    pub hash: String,
}

/// `secret.set`, `secret.deleted`: the name only, never the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretName {
    /// The secret's name.
    pub name: String,
}

/// `token.created`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenCreated {
    /// The token's id (not its secret).
    pub id: String,
    /// Its role.
    pub role: Role,
    /// Its label.
    pub label: Option<String>,
}

/// `token.revoked`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRevoked {
    /// The token's id.
    pub id: String,
}

/// `dashboard.signin_link_created`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SigninLinkCreated {
    /// The link's id (not its secret).
    pub link: String,
    /// When it stops working (Unix milliseconds).
    pub expires_at: i64,
}

/// `dashboard.signin_link_used`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SigninLinkUsed {
    /// The link's id.
    pub link: String,
}

/// Where a discovery request stands, as its events spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscoveryState {
    /// Waiting for the worker.
    Pending,
    /// Being searched for.
    Searching,
    /// A proposal was imported.
    Found,
    /// Nothing good enough was found.
    Failed,
    /// The person does not want it.
    Rejected,
}

/// `discovery.requested`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiscoveryRequested {
    /// The request's id.
    pub request: String,
    /// What was asked for.
    pub description: String,
    /// Its status.
    pub status: DiscoveryState,
}

/// `discovery.rejected`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiscoveryRejected {
    /// The request's id.
    pub request: String,
    /// Its status before.
    pub from: DiscoveryState,
    /// Its status after.
    pub status: DiscoveryState,
}

/// `discovery.<status>` (the kind follows `status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiscoveryMoved {
    /// The request's id.
    pub request: String,
    /// Its status before.
    pub from: DiscoveryState,
    /// Its status after.
    pub status: DiscoveryState,
    /// Why it failed.
    pub error: Option<String>,
    /// The tool proposed for it.
    pub proposal_tool: Option<String>,
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
