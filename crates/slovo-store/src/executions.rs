//! Calls: recorded as `running`, finished with their audit event, read back.

use std::sync::atomic::Ordering;

use slovo_core::audit::AuditEvent;
use slovo_core::execution::ExecutionStatus;
use sqlx::{AssertSqlSafe, Row};

use crate::rows::EXECUTION_COLUMNS;
use crate::{
    ExecutionFilter, ExecutionResult, ExecutionRow, ExecutionText, FinishAudit, NewExecution, Result, Store,
    StoreError, Tx,
};

impl Store {
    /// Records a call as `running` before its sandbox starts (its own statement, committed at
    /// once, so a crash mid-call leaves a visible trace), but only while the tool is still
    /// `active` at `revision`: the check and the insert are one statement, so no call starts on
    /// a grant, version or secret that a concurrent change has just replaced. False (nothing
    /// written) when the tool has changed.
    pub async fn insert_running_execution_at(&self, e: &NewExecution, revision: i64) -> Result<bool> {
        if let Some(w) = &self.writer {
            return w.insert_running(e, revision).await;
        }
        let n = insert_running_query(e, revision)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Records the result of a call recorded as `running` and its audit event, in one
    /// transaction. A `Conflict` when the execution is no longer running (nothing written).
    pub async fn finish_call(
        &self,
        id: &str,
        result: &ExecutionResult,
        audit: &FinishAudit<'_>,
    ) -> Result<AuditEvent> {
        if let Some(w) = &self.writer {
            let event = w.finish(id, result, audit).await?;
            self.appended.fetch_max(event.seq, Ordering::AcqRel);
            return Ok(event);
        }
        if let Some(b) = &self.batcher {
            return b.finish(self, id, result, audit).await;
        }
        self.finish_call_alone(id, result, audit).await
    }

    /// [`Store::finish_call`] in a transaction of its own.
    pub(crate) async fn finish_call_alone(
        &self,
        id: &str,
        result: &ExecutionResult,
        audit: &FinishAudit<'_>,
    ) -> Result<AuditEvent> {
        let mut tx = self.begin_on_chain(self.call_chain()).await?;
        tx.finish_execution(id, result).await?;
        let event = tx
            .append_audit(audit.kind, audit.tool, audit.actor, audit.payload)
            .await?;
        tx.commit().await?;
        Ok(event)
    }

    /// One execution.
    pub async fn execution(&self, id: &str) -> Result<Option<ExecutionRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(ExecutionRow::from_row).transpose()
    }

    /// Executions, newest first, filtered and paged.
    pub async fn executions(&self, filter: &ExecutionFilter) -> Result<Vec<ExecutionRow>> {
        // Optional filters are written as `($n IS NULL OR col = $n)` so that one statement
        // serves every combination and the placeholders stay in order for SQLite.
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions \
             WHERE ($1 IS NULL OR tool = $1) AND ($2 IS NULL OR status = $2) \
               AND ($3 IS NULL OR started_at < $3 OR (started_at = $3 AND id < $4)) \
             ORDER BY started_at DESC, id DESC LIMIT $5"
        )))
        .bind(filter.tool.as_deref())
        .bind(filter.status.map(|s| s.as_str()))
        .bind(filter.before.as_ref().map(|c| c.started_at))
        .bind(filter.before.as_ref().map(|c| c.id.clone()))
        .bind(filter.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ExecutionRow::from_row).collect()
    }

    /// Number of executions with each status, for metrics.
    pub async fn count_executions(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM executions")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// The status and the stored text of the arguments and output of each execution in
    /// `ids` that exists (in no particular order): what the digests on execution events are
    /// compared with. The text is returned as stored, not re-serialized, so the digests
    /// reproduce exactly.
    pub async fn execution_texts(&self, ids: &[String]) -> Result<Vec<ExecutionText>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders = (1..=ids.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql =
            format!("SELECT id, status, arguments, output FROM executions WHERE id IN ({placeholders})");
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for id in ids {
            q = q.bind(id);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(ExecutionText {
                    id: r.try_get("id")?,
                    status: r.try_get("status")?,
                    arguments: r.try_get("arguments")?,
                    output: r.try_get("output")?,
                })
            })
            .collect()
    }

    /// The ids of executions recorded as `running` by `instance_id`, or by any instance
    /// before `started_before`, oldest first.
    pub async fn stale_running_execution_ids(
        &self,
        instance_id: &str,
        started_before: i64,
    ) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT id FROM executions WHERE status = 'running' AND (instance_id = $1 OR started_at < $2) \
             ORDER BY started_at",
        )
        .bind(instance_id)
        .bind(started_before)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get::<String, _>("id")?)).collect()
    }
}

impl Tx {
    /// Stores the result of a call that was recorded as `running`.
    pub async fn finish_execution(&mut self, id: &str, r: &ExecutionResult) -> Result<()> {
        let affected = sqlx::query(
            "UPDATE executions SET status = $1, output = $2, stderr = $3, error = $4, exit_code = $5, \
             duration_ms = $6, cpu_ms = $7, peak_memory_bytes = $8, sandbox_id = $9, finished_at = $10 \
             WHERE id = $11 AND status = 'running'",
        )
        .bind(r.status.as_str())
        .bind(r.output.as_ref().map(|o| o.to_string()))
        .bind(&r.stderr)
        .bind(&r.error)
        .bind(r.exit_code.map(i64::from))
        .bind(r.duration_ms)
        .bind(r.cpu_ms)
        .bind(r.peak_memory_bytes)
        .bind(&r.sandbox_id)
        .bind(r.finished_at)
        .bind(id)
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        if affected != 1 {
            return Err(StoreError::Conflict(format!("execution {id} is not running")));
        }
        // Separate and only when there is something to keep: most calls have no denials and
        // are not warm.
        if let Some(denials) = denials_text(r)? {
            sqlx::query("UPDATE executions SET network_denials = $1 WHERE id = $2")
                .bind(denials)
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
        }
        if let Some(warm) = warm_text(r)? {
            sqlx::query("UPDATE executions SET warm = $1 WHERE id = $2")
                .bind(warm)
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    /// Ends an execution that is still `running` without a result (`interrupted` after a
    /// crash, `cancelled` at shutdown); false when it is no longer running.
    pub async fn abandon_execution(
        &mut self,
        id: &str,
        status: ExecutionStatus,
        at: i64,
        reason: &str,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE executions SET status = $1, error = $2, finished_at = $3 \
             WHERE id = $4 AND status = 'running'",
        )
        .bind(status.as_str())
        .bind(reason)
        .bind(at)
        .bind(id)
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        Ok(n == 1)
    }
}

/// Inserts a call as `running` only while its tool is `active` at `revision` (see
/// [`Store::insert_running_execution_at`]).
pub(crate) fn insert_running_query(
    e: &NewExecution,
    revision: i64,
) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments> {
    sqlx::query(
        "INSERT INTO executions (id, tool, version, capability, arguments, status, conversation_id, \
         turn_id, actor, started_at, instance_id, parent_execution_id) \
         SELECT $1, $2, $3, $4, $5, 'running', $6, $7, $8, $9, $10, $12 \
         WHERE EXISTS (SELECT 1 FROM tools WHERE name = $2 AND revision = $11 AND status = 'active')",
    )
    .bind(&e.id)
    .bind(&e.tool)
    .bind(&e.version)
    .bind(&e.capability)
    .bind(e.arguments.to_string())
    .bind(&e.conversation_id)
    .bind(&e.turn_id)
    .bind(&e.actor)
    .bind(e.started_at)
    .bind(&e.instance_id)
    .bind(revision)
    .bind(&e.parent_execution_id)
}

/// How a warm sandbox served a call, as stored: `None` for a cold start.
pub(crate) fn warm_text(r: &ExecutionResult) -> Result<Option<String>> {
    r.warm
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("executions.warm: {e}")))
}

/// A call's network denials as stored: `None` when there were none (most calls).
pub(crate) fn denials_text(r: &ExecutionResult) -> Result<Option<String>> {
    if r.network_denials.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(&r.network_denials)
        .map(Some)
        .map_err(|e| StoreError::Corrupt(format!("executions.network_denials: {e}")))
}
