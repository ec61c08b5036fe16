//! Import, approve, install, disable, enable, revoke: each a transaction with one audit event.

mod approve;
mod import;
mod install;
mod transitions;

use slovo_core::manifest::Manifest;
use slovo_core::permissions::Grant;
use slovo_store::ToolRow;

pub use import::{ImportOutcome, ImportReport, ImportSource, OpenApiImport};

use crate::{Result, Runtime, RuntimeError};

impl Runtime {
    /// The manifest of a stored version.
    pub(crate) async fn manifest(&self, name: &str, version: &str) -> Result<Manifest> {
        Ok(self.compiled(name, version).await?.manifest.clone())
    }

    pub(crate) async fn grant_of(&self, tool: &ToolRow) -> Result<Grant> {
        let id = tool.grant_id.ok_or_else(|| RuntimeError::NotCallable {
            tool: tool.name.clone(),
            status: tool.status.to_string(),
            hint: "it has no grant; approve it first".into(),
        })?;
        Ok(self
            .store
            .grant(id)
            .await?
            .ok_or_else(|| RuntimeError::NotFound {
                what: "grant",
                name: id.to_string(),
            })?
            .grant)
    }
}
