//! Bundle archives shared by the instances of one database (see the migration
//! `bundle_archives`). Content-addressed and written once: a digest's archive never changes.

use sqlx::Row;

use crate::{Result, Store};

impl Store {
    /// Keeps the archive of the bundle `digest`, unless one is already kept.
    pub async fn save_bundle_archive(&self, digest: &str, archive: &[u8], at: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO bundle_archives (digest, archive, size, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (digest) DO NOTHING",
        )
        .bind(digest)
        .bind(archive)
        .bind(i64::try_from(archive.len()).unwrap_or(i64::MAX))
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The archive of the bundle `digest`, if one is kept.
    pub async fn bundle_archive(&self, digest: &str) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT archive FROM bundle_archives WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok(r.try_get::<Vec<u8>, _>("archive")?)).transpose()
    }
}
