//! Chains: the grants a chain's approval pinned for the tools its steps reach, and the step
//! executions of a chain call (`docs/chains.md`).

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use crate::rows::EXECUTION_COLUMNS;
use crate::{ExecutionRow, Result, Store, Tx};

/// For one approval of a chain: a tool its steps reach and the grant that tool held then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainPin {
    /// The chain's grant (one per approval).
    pub chain_grant_id: i64,
    /// The chain.
    pub chain: String,
    /// A tool one of its steps calls.
    pub step_tool: String,
    /// The grant that tool held when the chain was approved.
    pub step_grant_id: i64,
    /// When the tool was disabled or revoked after that (the pin no longer holds).
    pub invalidated_at: Option<i64>,
}

impl ChainPin {
    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(ChainPin {
            chain_grant_id: row.try_get("chain_grant_id")?,
            chain: row.try_get("chain")?,
            step_tool: row.try_get("step_tool")?,
            step_grant_id: row.try_get("step_grant_id")?,
            invalidated_at: row.try_get("invalidated_at")?,
        })
    }
}

impl Store {
    /// The pins of one approval of a chain, by step tool.
    pub async fn chain_pins(&self, chain_grant_id: i64) -> Result<Vec<ChainPin>> {
        let rows = sqlx::query(
            "SELECT chain_grant_id, chain, step_tool, step_grant_id, invalidated_at FROM chain_pins \
             WHERE chain_grant_id = $1 ORDER BY step_tool",
        )
        .bind(chain_grant_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ChainPin::from_row).collect()
    }

    /// The executions recorded as steps of `parent`, oldest first.
    pub async fn child_executions(&self, parent: &str) -> Result<Vec<ExecutionRow>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions WHERE parent_execution_id = $1 \
             ORDER BY started_at, id"
        )))
        .bind(parent)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ExecutionRow::from_row).collect()
    }
}

impl Tx {
    /// Records what an approval of a chain (its grant `chain_grant_id`) saw of each step tool.
    pub async fn insert_chain_pins(
        &mut self,
        chain_grant_id: i64,
        chain: &str,
        pins: &[(String, i64)],
    ) -> Result<()> {
        for (step_tool, step_grant_id) in pins {
            sqlx::query(
                "INSERT INTO chain_pins (chain_grant_id, chain, step_tool, step_grant_id) VALUES ($1, $2, $3, $4)",
            )
            .bind(chain_grant_id)
            .bind(chain)
            .bind(step_tool)
            .bind(step_grant_id)
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(())
    }

    /// Marks every pin on `step_tool` that still holds as no longer holding, and returns the
    /// chains affected (each needs a new approval).
    pub async fn invalidate_chain_pins(&mut self, step_tool: &str, at: i64) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "UPDATE chain_pins SET invalidated_at = $2 WHERE step_tool = $1 AND invalidated_at IS NULL \
             RETURNING chain",
        )
        .bind(step_tool)
        .bind(at)
        .fetch_all(&mut *self.tx)
        .await?;
        let mut chains: Vec<String> = rows
            .iter()
            .map(|r| r.try_get("chain"))
            .collect::<std::result::Result<_, _>>()?;
        chains.sort();
        chains.dedup();
        Ok(chains)
    }
}
