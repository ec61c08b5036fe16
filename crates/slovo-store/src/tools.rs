//! Tools, their imported versions, grants and state volumes.

use slovo_core::install::InstallFacts;
use sqlx::{AssertSqlSafe, Row};

use crate::rows::{GRANT_COLUMNS, TOOL_COLUMNS, VERSION_COLUMNS, VOLUME_COLUMNS};
use crate::{GrantRow, NewGrant, Result, Store, StoreError, ToolRow, Tx, VersionRow, VolumeRow};

impl Store {
    /// The tool called `name`.
    pub async fn tool(&self, name: &str) -> Result<Option<ToolRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TOOL_COLUMNS} FROM tools WHERE name = $1"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(ToolRow::from_row).transpose()
    }

    /// Every tool, by name.
    pub async fn tools(&self) -> Result<Vec<ToolRow>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TOOL_COLUMNS} FROM tools ORDER BY name"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ToolRow::from_row).collect()
    }

    /// One imported version of a tool.
    pub async fn version(&self, tool: &str, version: &str) -> Result<Option<VersionRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM tool_versions WHERE tool = $1 AND version = $2"
        )))
        .bind(tool)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(VersionRow::from_row).transpose()
    }

    /// Every imported version of a tool, oldest import first.
    pub async fn versions(&self, tool: &str) -> Result<Vec<VersionRow>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM tool_versions WHERE tool = $1 ORDER BY imported_at, version"
        )))
        .bind(tool)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(VersionRow::from_row).collect()
    }

    /// A grant by id.
    pub async fn grant(&self, id: i64) -> Result<Option<GrantRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(GrantRow::from_row).transpose()
    }

    /// A tool's state volume.
    pub async fn volume(&self, tool: &str) -> Result<Option<VolumeRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {VOLUME_COLUMNS} FROM volumes WHERE tool = $1"
        )))
        .bind(tool)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(VolumeRow::from_row).transpose()
    }
}

impl Tx {
    /// The tool called `name`, read inside this transaction.
    pub async fn tool(&mut self, name: &str) -> Result<Option<ToolRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TOOL_COLUMNS} FROM tools WHERE name = $1"
        )))
        .bind(name)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.as_ref().map(ToolRow::from_row).transpose()
    }

    /// A version, read inside this transaction.
    pub async fn version(&mut self, tool: &str, version: &str) -> Result<Option<VersionRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM tool_versions WHERE tool = $1 AND version = $2"
        )))
        .bind(tool)
        .bind(version)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.as_ref().map(VersionRow::from_row).transpose()
    }

    /// Writes a tool's lifecycle row: inserted when `expected_revision` is `None`, otherwise
    /// updated only if nobody changed it since it was read (else [`StoreError::Conflict`]).
    pub async fn save_tool(&mut self, tool: &ToolRow, expected_revision: Option<i64>) -> Result<()> {
        let affected = match expected_revision {
            None => sqlx::query(
                "INSERT INTO tools (name, status, active_version, pending_version, grant_id, revision, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&tool.name)
            .bind(tool.status.as_str())
            .bind(&tool.active_version)
            .bind(&tool.pending_version)
            .bind(tool.grant_id)
            .bind(tool.revision)
            .bind(tool.created_at)
            .bind(tool.updated_at)
            .execute(&mut *self.tx)
            .await?
            .rows_affected(),
            Some(rev) => sqlx::query(
                "UPDATE tools SET status = $1, active_version = $2, pending_version = $3, grant_id = $4, \
                 revision = $5, updated_at = $6 WHERE name = $7 AND revision = $8",
            )
            .bind(tool.status.as_str())
            .bind(&tool.active_version)
            .bind(&tool.pending_version)
            .bind(tool.grant_id)
            .bind(tool.revision)
            .bind(tool.updated_at)
            .bind(&tool.name)
            .bind(rev)
            .execute(&mut *self.tx)
            .await?
            .rows_affected(),
        };
        if affected != 1 {
            return Err(StoreError::Conflict(format!(
                "tool {} changed concurrently; try again",
                tool.name
            )));
        }
        Ok(())
    }

    /// Stores an imported version.
    pub async fn insert_version(&mut self, v: &VersionRow) -> Result<()> {
        let install_info = v.install_info.as_ref().map(install_record).transpose()?;
        sqlx::query(
            "INSERT INTO tool_versions (tool, version, manifest, digest, source_name, source_text, \
             bundle_digest, install_info, imported_at, analysis) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&v.tool)
        .bind(&v.version)
        .bind(v.manifest.to_string())
        .bind(&v.digest)
        .bind(&v.source_name)
        .bind(&v.source_text)
        .bind(&v.bundle_digest)
        .bind(install_info)
        .bind(v.imported_at)
        .bind(v.analysis.as_ref().map(|a| a.to_string()))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Records what a backend's install step reported for a version.
    pub async fn set_install_info(&mut self, tool: &str, version: &str, info: &InstallFacts) -> Result<()> {
        sqlx::query("UPDATE tool_versions SET install_info = $1 WHERE tool = $2 AND version = $3")
            .bind(install_record(info)?)
            .bind(tool)
            .bind(version)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Stores a grant and returns its id.
    pub async fn insert_grant(&mut self, g: &NewGrant) -> Result<i64> {
        let grant_json =
            serde_json::to_string(&g.grant).map_err(|e| StoreError::Corrupt(format!("grant: {e}")))?;
        let row = sqlx::query(
            "INSERT INTO grants (tool, version, grant_json, expires_at, granted_by, granted_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(&g.tool)
        .bind(&g.version)
        .bind(grant_json)
        .bind(g.grant.expires_at.map(|e| e.timestamp_millis()))
        .bind(&g.granted_by)
        .bind(g.granted_at)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(row.try_get("id")?)
    }

    /// Creates or updates a tool's volume row.
    pub async fn save_volume(&mut self, v: &VolumeRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO volumes (tool, path, quota_mb, created_at, purged_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tool) DO UPDATE SET path = excluded.path, quota_mb = excluded.quota_mb, \
             purged_at = excluded.purged_at",
        )
        .bind(&v.tool)
        .bind(&v.path)
        .bind(v.quota_mb)
        .bind(v.created_at)
        .bind(v.purged_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}

/// The text an install record is stored as.
fn install_record(info: &InstallFacts) -> Result<String> {
    serde_json::to_string(info).map_err(|e| StoreError::Corrupt(format!("tool_versions.install_info: {e}")))
}
