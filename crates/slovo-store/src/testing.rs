//! Helpers for tests that tamper with the database or compare it before and after.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use crate::{Result, Store};

impl Store {
    /// Runs a raw statement. For tests that tamper with the database on purpose.
    #[doc(hidden)]
    pub async fn execute_raw(&self, sql: &str) -> Result<u64> {
        Ok(sqlx::query(AssertSqlSafe(sql.to_string()))
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// A snapshot of every table's rows as text, for tests that check a failed operation left
    /// the database exactly as it was. `audit_checkpoints` is left out: a checkpoint may be
    /// written in the background at any time, and it records the log, not an operation.
    #[doc(hidden)]
    pub async fn dump(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for (table, order) in [
            ("tools", "name"),
            ("tool_versions", "tool, version"),
            ("grants", "id"),
            ("volumes", "tool"),
            ("executions", "id"),
            ("discovery_requests", "id"),
            ("secrets", "tool, name"),
            ("audit_events", "chain, seq"),
            ("audit_head", "id"),
            ("api_tokens", "id"),
            ("chain_pins", "chain_grant_id, step_tool"),
        ] {
            let rows = sqlx::query(AssertSqlSafe(format!("SELECT * FROM {table} ORDER BY {order}")))
                .fetch_all(&self.pool)
                .await?;
            for row in rows {
                out.push(format!("{table}: {}", describe_row(&row)));
            }
        }
        Ok(out)
    }
}

fn describe_row(row: &AnyRow) -> String {
    use sqlx::Column;
    (0..row.columns().len())
        .map(|i| {
            let name = row.columns()[i].name().to_string();
            let value = row
                .try_get::<Option<String>, _>(i)
                .map(|v| format!("{v:?}"))
                .or_else(|_| row.try_get::<Option<i64>, _>(i).map(|v| format!("{v:?}")))
                .or_else(|_| row.try_get::<Option<Vec<u8>>, _>(i).map(|v| format!("{v:?}")))
                .unwrap_or_else(|_| "?".to_string());
            format!("{name}={value}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}
