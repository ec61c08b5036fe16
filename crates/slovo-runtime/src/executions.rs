//! Executions as the front ends see them: the runtime's own wire type and query, so that no
//! front end names a store row. The JSON is the record's as it has always been served.

use serde::Serialize;
use serde_json::Value;
use slovo_core::execution::{ExecutionStatus, NetworkDenial, WarmStart};
use slovo_store::ExecutionRow;

use crate::{Result, Runtime, RuntimeError};

/// One call's record: what was called with what, how it ended, what it used.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecutionView {
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
    /// Set when a warm (pooled) MCP sandbox served the call: how long its server had waited.
    /// `null` for a cold start, for other kinds of tool, and for calls recorded before this
    /// was kept.
    pub warm: Option<WarmStart>,
}

impl From<ExecutionRow> for ExecutionView {
    fn from(row: ExecutionRow) -> Self {
        ExecutionView {
            id: row.id,
            tool: row.tool,
            version: row.version,
            capability: row.capability,
            arguments: row.arguments,
            status: row.status,
            output: row.output,
            stderr: row.stderr,
            error: row.error,
            exit_code: row.exit_code,
            duration_ms: row.duration_ms,
            cpu_ms: row.cpu_ms,
            peak_memory_bytes: row.peak_memory_bytes,
            sandbox_id: row.sandbox_id,
            conversation_id: row.conversation_id,
            turn_id: row.turn_id,
            actor: row.actor,
            started_at: row.started_at,
            finished_at: row.finished_at,
            network_denials: row.network_denials,
            parent_execution_id: row.parent_execution_id,
            warm: row.warm,
        }
    }
}

/// Where a page of executions ends: the next page starts strictly after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionCursor {
    /// `started_at` of the last execution seen.
    pub started_at: i64,
    /// `id` of the last execution seen.
    pub id: String,
}

/// Which executions to list.
#[derive(Debug, Clone)]
pub struct ExecutionFilter {
    /// Only this tool.
    pub tool: Option<String>,
    /// Only this status.
    pub status: Option<ExecutionStatus>,
    /// Only executions older than this cursor.
    pub before: Option<ExecutionCursor>,
    /// At most this many.
    pub limit: i64,
}

impl Default for ExecutionFilter {
    fn default() -> Self {
        let store = slovo_store::ExecutionFilter::default();
        ExecutionFilter {
            tool: store.tool,
            status: store.status,
            before: None,
            limit: store.limit,
        }
    }
}

impl ExecutionFilter {
    fn to_store(&self) -> slovo_store::ExecutionFilter {
        slovo_store::ExecutionFilter {
            tool: self.tool.clone(),
            status: self.status,
            before: self.before.as_ref().map(|c| slovo_store::ExecutionCursor {
                started_at: c.started_at,
                id: c.id.clone(),
            }),
            limit: self.limit,
        }
    }
}

impl Runtime {
    /// Executions, newest first.
    pub async fn executions(&self, filter: &ExecutionFilter) -> Result<Vec<ExecutionView>> {
        Ok(self
            .store
            .executions(&filter.to_store())
            .await?
            .into_iter()
            .map(ExecutionView::from)
            .collect())
    }

    /// One execution.
    pub async fn execution(&self, id: &str) -> Result<ExecutionView> {
        self.store
            .execution(id)
            .await?
            .map(ExecutionView::from)
            .ok_or_else(|| RuntimeError::NotFound {
                what: "execution",
                name: id.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use slovo_core::execution::NetworkDenial;

    use super::*;

    fn row(denials: Vec<NetworkDenial>, parent: Option<String>, warm: Option<WarmStart>) -> ExecutionRow {
        ExecutionRow {
            id: "e1".into(),
            tool: "t".into(),
            version: "1.0.0".into(),
            capability: "c".into(),
            arguments: serde_json::json!({"q": 1}),
            status: ExecutionStatus::Failure,
            output: None,
            stderr: Some("oops".into()),
            error: Some("exit 1".into()),
            exit_code: Some(1),
            duration_ms: Some(5),
            cpu_ms: None,
            peak_memory_bytes: Some(1024),
            sandbox_id: Some("s".into()),
            conversation_id: Some("conv".into()),
            turn_id: None,
            actor: "cli".into(),
            started_at: 10,
            finished_at: Some(15),
            network_denials: denials,
            parent_execution_id: parent,
            warm,
        }
    }

    /// The wire JSON is the stored row's, field for field and in the same order, with and
    /// without the fields that are left out when empty.
    #[test]
    fn the_view_serializes_as_the_row_did() {
        let denial = NetworkDenial {
            host: "example.org".into(),
            port: 443,
            reason: "not granted".into(),
        };
        let warm = WarmStart {
            started_ms_before_call: 1500,
            ready_ms_before_call: 1200,
        };
        for r in [
            row(vec![], None, None),
            row(vec![denial], Some("e0".into()), Some(warm)),
        ] {
            let as_row = serde_json::to_string(&r).expect("a row serializes");
            let as_view = serde_json::to_string(&ExecutionView::from(r)).expect("a view serializes");
            assert_eq!(as_view, as_row);
        }
    }
}
