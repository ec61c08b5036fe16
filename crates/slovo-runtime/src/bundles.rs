//! Bundles across instances sharing PostgreSQL: the instance that imports a bundle keeps its
//! archive in the database; an instance that must run or install a version whose bundle it does
//! not have fetches the archive, stages it like an imported tarball, and accepts it only if the
//! digest it computes itself is the one the version names (`docs/deployment.md`).

use slovo_core::manifest::Manifest;
use slovo_core::time::now_ms;
use slovo_store::DbKind;
use tracing::info;

use crate::{Result, Runtime, RuntimeError};

impl Runtime {
    /// After an import committed the bundle `digest` locally: keeps its archive for the other
    /// instances. Only PostgreSQL is shared; a SQLite database has one instance.
    pub(crate) async fn share_bundle(&self, digest: &str) -> Result<()> {
        if self.store.kind() != DbKind::Postgres {
            return Ok(());
        }
        let dir = self.bundles_dir().join(digest);
        let archive = tokio::task::spawn_blocking(move || slovo_bundle::pack(&dir))
            .await
            .map_err(|e| RuntimeError::Conflict {
                tool: String::new(),
                reason: format!("packing bundle {digest} panicked: {e}"),
            })??;
        self.store.save_bundle_archive(digest, &archive, now_ms()).await?;
        Ok(())
    }

    /// Makes sure the bundle `digest` of `manifest`'s tool is on this instance, fetching it
    /// from the database when another instance imported it. Returns whether it was fetched
    /// (then the tool's runtime must be prepared here too: a WebAssembly module is compiled
    /// per instance).
    pub(crate) async fn fetch_bundle(&self, manifest: &Manifest, digest: &str) -> Result<bool> {
        let dir = self.bundles_dir().join(digest);
        if dir.is_dir() {
            return Ok(false);
        }
        let not_here = |reason: String| RuntimeError::NotRunnable {
            tool: manifest.name.clone(),
            reason,
        };
        let archive = self.store.bundle_archive(digest).await?.ok_or_else(|| {
            not_here(format!(
                "its bundle {digest} is not on this instance, and the database keeps no archive of it \
                 (import the bundle again through any instance)"
            ))
        })?;
        let bundles_dir = self.bundles_dir();
        let want = digest.to_string();
        let staged: std::result::Result<String, String> = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&bundles_dir).map_err(|e| e.to_string())?;
            // A name of its own beside the bundles (same file system, private directory);
            // removed whatever happens.
            let tarball = bundles_dir.join(format!(".fetch-{}.tar", uuid::Uuid::now_v7()));
            std::fs::write(&tarball, &archive).map_err(|e| e.to_string())?;
            let staged = slovo_bundle::stage(&tarball, &bundles_dir);
            let _ = std::fs::remove_file(&tarball);
            let staged = staged.map_err(|e| e.to_string())?;
            // Compare before installing: a bundle whose bytes are not the approved ones never
            // lands under `bundles/`.
            if staged.digest() != want {
                return Err(format!(
                    "the database's archive of bundle {want} has digest {}: refused",
                    staged.digest()
                ));
            }
            staged.commit().map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| not_here(format!("fetching its bundle panicked: {e}")))?;
        let committed = staged.map_err(not_here)?;
        info!(tool = %manifest.name, bundle = %committed, "fetched a bundle another instance imported");
        Ok(true)
    }
}
