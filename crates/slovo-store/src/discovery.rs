//! Discovery requests: needs no installed tool serves, and what the worker found for them.

use std::str::FromStr;

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use crate::{Result, Store, StoreError, Tx};

impl Store {
    /// Discovery requests, oldest first; only those in `status` when given.
    pub async fn discovery_requests(&self, status: Option<DiscoveryStatus>) -> Result<Vec<DiscoveryRow>> {
        let rows = match status {
            Some(st) => sqlx::query(AssertSqlSafe(format!(
                "SELECT {DISCOVERY_COLUMNS} FROM discovery_requests WHERE status = $1 ORDER BY created_at, id"
            )))
            .bind(st.as_str())
            .fetch_all(&self.pool)
            .await?,
            None => {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT {DISCOVERY_COLUMNS} FROM discovery_requests ORDER BY created_at, id"
                )))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(DiscoveryRow::from_row).collect()
    }

    /// One discovery request.
    pub async fn discovery_request(&self, id: &str) -> Result<Option<DiscoveryRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {DISCOVERY_COLUMNS} FROM discovery_requests WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(DiscoveryRow::from_row).transpose()
    }
}

impl Tx {
    /// Discovery requests still open (`pending`, `searching` or `found`), oldest first, read
    /// inside this transaction (which holds the audit head, so a check-then-insert is atomic).
    pub async fn open_discovery_requests(&mut self) -> Result<Vec<DiscoveryRow>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {DISCOVERY_COLUMNS} FROM discovery_requests \
             WHERE status IN ('pending', 'searching', 'found') ORDER BY created_at, id"
        )))
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(DiscoveryRow::from_row).collect()
    }

    /// One discovery request, read inside this transaction.
    pub async fn discovery_request(&mut self, id: &str) -> Result<Option<DiscoveryRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {DISCOVERY_COLUMNS} FROM discovery_requests WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.as_ref().map(DiscoveryRow::from_row).transpose()
    }

    /// Stores a new discovery request.
    pub async fn insert_discovery_request(&mut self, r: &DiscoveryRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO discovery_requests (id, description, status, result, error, proposal_tool, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&r.id)
        .bind(&r.description)
        .bind(r.status.as_str())
        .bind(r.result.as_ref().map(|v| v.to_string()))
        .bind(&r.error)
        .bind(&r.proposal_tool)
        .bind(r.created_at)
        .bind(r.updated_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Writes a request's new status, result, error and proposal, if it is still in
    /// `expected`; false when it is not (another worker or person got there first).
    pub async fn update_discovery_request(
        &mut self,
        r: &DiscoveryRow,
        expected: DiscoveryStatus,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE discovery_requests SET status = $1, result = $2, error = $3, proposal_tool = $4, updated_at = $5 \
             WHERE id = $6 AND status = $7",
        )
        .bind(r.status.as_str())
        .bind(r.result.as_ref().map(|v| v.to_string()))
        .bind(&r.error)
        .bind(&r.proposal_tool)
        .bind(r.updated_at)
        .bind(&r.id)
        .bind(expected.as_str())
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        Ok(n == 1)
    }
}

const DISCOVERY_COLUMNS: &str =
    "id, description, status, result, error, proposal_tool, created_at, updated_at";

/// Where a discovery request stands: `pending → searching → found | failed`, and `rejected`
/// by the person from any state but `rejected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscoveryStatus {
    /// Waiting for the worker.
    Pending,
    /// The worker is searching the sources.
    Searching,
    /// A proposal was imported and waits for the person's approval.
    Found,
    /// Nothing good enough was found; `error` says why.
    Failed,
    /// The person does not want it.
    Rejected,
}

impl DiscoveryStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DiscoveryStatus::Pending => "pending",
            DiscoveryStatus::Searching => "searching",
            DiscoveryStatus::Found => "found",
            DiscoveryStatus::Failed => "failed",
            DiscoveryStatus::Rejected => "rejected",
        }
    }
}

impl std::fmt::Display for DiscoveryStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DiscoveryStatus {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(match s {
            "pending" => DiscoveryStatus::Pending,
            "searching" => DiscoveryStatus::Searching,
            "found" => DiscoveryStatus::Found,
            "failed" => DiscoveryStatus::Failed,
            "rejected" => DiscoveryStatus::Rejected,
            other => return Err(format!("unknown discovery status {other:?}")),
        })
    }
}

/// A request to find a tool for a need no installed tool serves.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DiscoveryRow {
    /// Id (UUID v7).
    pub id: String,
    /// The need, in the person's or planner's words.
    pub description: String,
    /// Where it stands.
    pub status: DiscoveryStatus,
    /// What the worker found (JSON): the chosen candidate, the runners-up, the sources.
    pub result: Option<serde_json::Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// The tool proposed for it (`pending_approval` until the person decides).
    pub proposal_tool: Option<String>,
    /// Created (Unix ms).
    pub created_at: i64,
    /// Last change (Unix ms).
    pub updated_at: i64,
}

impl DiscoveryRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        let status: String = row.try_get("status")?;
        let result: Option<String> = row.try_get("result")?;
        Ok(DiscoveryRow {
            id: row.try_get("id")?,
            description: row.try_get("description")?,
            status: status
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("discovery_requests.status: {e}")))?,
            result: result
                .map(|t| serde_json::from_str(&t))
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("discovery_requests.result: {e}")))?,
            error: row.try_get("error")?,
            proposal_tool: row.try_get("proposal_tool")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}
