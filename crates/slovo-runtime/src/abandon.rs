//! Calls that never finished: cancelled at shutdown, cut short by a crash, or whose result
//! could not be written. Each is recorded with its `execution.finished` event.

use slovo_core::audit::AuditRecord;
use slovo_core::audit::record::CallAbandoned;
use slovo_core::execution::ExecutionStatus;
use slovo_core::time::now_ms;

use crate::audit_record::AppendRecord;
use crate::call::sha256_json;
use crate::{Result, Runtime};

impl Runtime {
    /// Records every execution this runtime started whose call never finished (its future
    /// was dropped) as `status` (`cancelled` at shutdown), each with an audit event. Returns
    /// how many were recorded.
    pub async fn abandon_inflight(&self, status: ExecutionStatus, reason: &str) -> Result<usize> {
        let ids: Vec<String> = match self.inflight.lock() {
            Ok(mut set) => set.drain().collect(),
            Err(_) => Vec::new(),
        };
        self.abandon(&ids, status, reason).await
    }

    /// Records the executions whose result could not be written (the database failed at that
    /// moment) as `interrupted`, once the database takes writes again. Returns how many.
    pub(crate) async fn record_unrecorded(&self) -> Result<usize> {
        let ids: Vec<String> = match self.unrecorded.lock() {
            Ok(set) => set.iter().cloned().collect(),
            Err(_) => Vec::new(),
        };
        if ids.is_empty() {
            return Ok(0);
        }
        let n = self
            .abandon(
                &ids,
                ExecutionStatus::Interrupted,
                "the database failed while the call's result was being recorded; the result is lost",
            )
            .await?;
        for set in [&self.unrecorded, &self.inflight] {
            if let Ok(mut set) = set.lock() {
                set.retain(|id| !ids.contains(id));
            }
        }
        Ok(n)
    }

    /// At start-up: records executions left `running` by a crash as `interrupted`. With
    /// SQLite (one process per database) every running execution is stale. With PostgreSQL,
    /// where several instances may share the database, the stale ones are this instance's own
    /// (a crash cut them short) and any other instance's older than the longest possible call.
    pub async fn recover_interrupted(&self) -> Result<usize> {
        let longest_call_ms = (slovo_core::permissions::TIMEOUT_S_RANGE.1 as i64 + 60) * 1000;
        let ids = match self.store.kind() {
            slovo_store::DbKind::Sqlite => {
                self.store
                    .stale_running_execution_ids(&self.instance_id, i64::MAX)
                    .await?
            }
            slovo_store::DbKind::Postgres => {
                self.store
                    .stale_running_execution_ids(&self.instance_id, now_ms() - longest_call_ms)
                    .await?
            }
        };
        self.abandon(
            &ids,
            ExecutionStatus::Interrupted,
            "the server stopped while the call was running",
        )
        .await
    }

    pub(crate) async fn abandon(
        &self,
        ids: &[String],
        status: ExecutionStatus,
        reason: &str,
    ) -> Result<usize> {
        let mut n = 0;
        for id in ids {
            let Some(e) = self.store.execution(id).await? else {
                continue;
            };
            let mut tx = self.store.begin().await?;
            if tx.abandon_execution(id, status, now_ms(), reason).await? {
                tx.append_record(
                    Some(&e.tool),
                    "system",
                    &AuditRecord::CallAbandoned(CallAbandoned {
                        execution_id: id.clone(),
                        version: e.version,
                        capability: e.capability,
                        status,
                        error: reason.to_string(),
                        arguments_sha256: sha256_json(Some(&e.arguments)),
                    }),
                )
                .await?;
                tx.commit().await?;
                n += 1;
            } else {
                tx.rollback().await?;
            }
        }
        Ok(n)
    }
}
