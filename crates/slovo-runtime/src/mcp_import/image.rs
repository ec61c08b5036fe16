//! Importing an MCP server that comes as an OCI image: `oci:NAME@sha256:HEX`, or a registry
//! `server.json` package with `registryType: oci`. Versions are exact, so the image is named by
//! its digest (a tag alone is refused: it can be moved to other code later). Nothing is pulled:
//! the image must already be on this host, where the MCP backend's install run finds it by its
//! digest, starts it once in its container (no network, no state) and lists its tools. The
//! image's id and repository digests are the integrity record.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use slovo_core::install::{InstallFacts, McpFacts};
use slovo_core::manifest::{Execution, McpTransport, check_pinned_image};
use tracing::info;

use super::source::Launch;
use super::{McpImport, McpImportReport, McpToolView, manifest, write_json};
use crate::mcp_pin::{MCP_IMPORT_RECORD, digest_of};
use crate::{Actor, ImportSource, Result, Runtime, RuntimeError};

/// An image named by its digest: `NAME[:TAG]@sha256:HEX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Image {
    pub reference: String,
}

impl Image {
    /// The image of `oci:REFERENCE` (`rest` is what follows `oci:`).
    pub(crate) fn parse(rest: &str) -> std::result::Result<Image, String> {
        let rest = rest.trim();
        if rest.is_empty() {
            return Err("oci: name the image and its digest (oci:NAME@sha256:…)".into());
        }
        if !rest.contains('@') {
            return Err(format!(
                "oci:{rest} names no digest: name the image by its digest (oci:NAME@sha256:…), since a tag \
                 can be moved to other code later. The digest of the image on this host: \
                 `docker image inspect --format '{{{{.Id}}}}' {rest}` (or, for an image pulled from a \
                 registry, `--format '{{{{index .RepoDigests 0}}}}'`)"
            ));
        }
        check_pinned_image(rest).map_err(|e| format!("oci:{rest}: {e}"))?;
        Ok(Image {
            reference: rest.to_string(),
        })
    }

    /// `oci:REFERENCE`, as a person would write it.
    pub(crate) fn spec(&self) -> String {
        format!("oci:{}", self.reference)
    }

    /// `sha256:HEX`.
    fn digest(&self) -> &str {
        self.reference.split_once('@').map_or("", |(_, d)| d)
    }

    /// The repository and the tag, if one is written before the digest.
    fn repository_and_tag(&self) -> (&str, Option<&str>) {
        let name = self.reference.split_once('@').map_or("", |(n, _)| n);
        match name.rsplit_once(':') {
            // A colon after the last slash is a tag; before it, a registry's port.
            Some((repository, tag)) if !tag.contains('/') => (repository, Some(tag)),
            _ => (name, None),
        }
    }

    /// A tool name from the repository's last part (`ghcr.io/acme/weather-mcp` → `weather-mcp`).
    fn tool_name(&self) -> String {
        let (repository, _) = self.repository_and_tag();
        slovo_openapi::tool_name(repository.rsplit('/').next().unwrap_or(repository))
    }

    /// The tool's version: the tag (or the `server.json` version) as a semantic version, with
    /// the digest as build metadata, so that another image is another version.
    fn tool_version(&self, declared: Option<&str>) -> String {
        let (_, tag) = self.repository_and_tag();
        let mut version = slovo_openapi::version(tag.or(declared).unwrap_or("0.0.0"));
        let hex = self.digest().trim_start_matches("sha256:");
        let short = hex.get(..12).unwrap_or(hex);
        version.build = semver::BuildMetadata::new(&format!("sha256.{short}")).unwrap_or_default();
        version.to_string()
    }
}

/// The image of a `server.json` OCI package: its `identifier` with a digest
/// (`NAME@sha256:…`), or an `identifier` and a `version` that is a digest. Errors name the
/// field.
pub(crate) fn from_package(package: &Value) -> std::result::Result<Image, String> {
    let text = |k: &str| package.get(k).and_then(Value::as_str);
    let identifier = text("identifier").ok_or("identifier: missing")?;
    let reference = match text("version") {
        _ if identifier.contains('@') => identifier.to_string(),
        Some(v) if v.starts_with("sha256:") => format!("{identifier}@{v}"),
        version => {
            let named = match version {
                Some(v) => format!("{identifier} version {v}"),
                None => identifier.to_string(),
            };
            return Err(format!(
                "identifier: {named} names a tag, not a digest: versions are exact, and a tag can be \
                 moved to other code later; import it as oci:NAME@sha256:… with the digest of the image \
                 on this host"
            ));
        }
    };
    check_pinned_image(&reference).map_err(|e| format!("identifier: {e}"))?;
    if let Some(hint) = text("runtimeHint")
        && hint != "docker"
    {
        return Err(format!("runtimeHint: {hint:?} does not run OCI images"));
    }
    Ok(Image { reference })
}

impl Runtime {
    /// Imports the server in `image` as a proposal: its tools listed in its container, its
    /// image pinned by digest.
    pub(super) async fn import_mcp_image(
        &self,
        image: Image,
        launch: Launch,
        request: &McpImport,
        actor: &Actor,
    ) -> Result<McpImportReport> {
        let spec = image.spec();
        let failed = |reason: String| RuntimeError::McpImport {
            source_name: spec.clone(),
            reason,
        };
        let work = self.work_dir()?;
        let bundle = work.0.join("bundle");
        std::fs::create_dir_all(&bundle).map_err(|e| RuntimeError::io("create", &bundle, e))?;
        let name = request.name.clone().unwrap_or_else(|| image.tool_name());
        let version = image.tool_version(launch.version.as_deref());
        let secret_env = launch.secret_env_by_name();
        let sealed = self.seal_given_secrets(&name, &request.secrets)?;
        let execution = Execution::Mcp {
            transport: McpTransport::Stdio,
            command: launch.args.clone(),
            image: Some(image.reference.clone()),
            system_paths: false,
            env: launch.env.clone(),
            secret_env: secret_env.clone(),
            tool_names: BTreeMap::new(),
            url: None,
            headers: BTreeMap::new(),
            secret_headers: BTreeMap::new(),
        };
        let listed = self
            .list_server_tools(&name, &version, execution, &bundle, &request.secrets)
            .await
            .map_err(failed)?;
        let (capabilities, renamed) = manifest::capabilities(&listed.tools).map_err(failed)?;
        let (image_id, repo_digests) = match &listed.install {
            InstallFacts::Mcp(McpFacts::Image {
                image_id,
                repo_digests,
                ..
            }) => (Some(image_id), Some(repo_digests)),
            _ => (None, None),
        };
        let integrity = json!({
            "image": image.reference,
            "digest": image.digest(),
            "image_id": image_id,
            "repo_digests": repo_digests,
        });
        let description = launch
            .description
            .clone()
            .unwrap_or_else(|| format!("The MCP server in the image {}", image.reference));
        let doc = json!({
            "name": name,
            "version": version,
            "description": description,
            "capabilities": capabilities,
            "execution": {
                "type": "mcp", "transport": "stdio", "image": image.reference,
                "command": launch.args, "env": launch.env, "secret_env": secret_env,
                "tool_names": renamed,
            },
        });
        let record = json!({
            "source": spec,
            "integrity": integrity,
            "server": listed.server,
            "tools_sha256": digest_of(&listed.tools),
            "tools": listed.tools,
            "notes": launch.notes,
        });
        write_json(&bundle.join("slovo.json"), &doc)?;
        write_json(&bundle.join(MCP_IMPORT_RECORD), &record)?;
        let import = self
            .import_with_secrets(ImportSource::Bundle(bundle), &sealed, actor)
            .await?;
        info!(tool = %import.tool, image = %image.reference, secrets = sealed.len(), "MCP server in an image imported");
        let tools = McpToolView::of(&capabilities, &listed.tools);
        Ok(McpImportReport {
            import,
            package: Some(spec),
            integrity,
            server: listed.server,
            tools,
            secrets: secret_env.into_values().collect(),
            secrets_stored: super::stored_names(&sealed),
            notes: launch.notes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_digest_is_required_and_names_the_version() {
        let image = Image::parse(&format!("ghcr.io/acme/weather-mcp:1.2.0@sha256:{HEX}")).unwrap();
        assert_eq!(image.tool_name(), "weather-mcp");
        assert_eq!(image.tool_version(None), "1.2.0+sha256.0123456789ab");
        let image = Image::parse(&format!("localhost:5000/echo@sha256:{HEX}")).unwrap();
        assert_eq!(image.tool_name(), "echo");
        assert_eq!(image.tool_version(Some("2.0.1")), "2.0.1+sha256.0123456789ab");
        assert_eq!(image.tool_version(None), "0.0.0+sha256.0123456789ab");

        let e = Image::parse("acme/weather:1.2.0").unwrap_err();
        assert!(
            e.contains("names no digest") && e.contains("tag") && e.contains("docker image inspect"),
            "{e}"
        );
        for bad in [
            "acme/weather@sha256:abc",
            "acme/weather@md5:0123",
            &format!("-acme@sha256:{HEX}"),
            &format!("Acme/Weather@sha256:{HEX}"),
        ] {
            assert!(Image::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_server_json_package_gives_its_digest() {
        let with_digest =
            json!({"registryType": "oci", "identifier": format!("docker.io/acme/w@sha256:{HEX}")});
        assert_eq!(
            from_package(&with_digest).unwrap().reference,
            format!("docker.io/acme/w@sha256:{HEX}")
        );
        let digest_as_version = json!({"registryType": "oci", "identifier": "docker.io/acme/w", "version": format!("sha256:{HEX}")});
        assert!(from_package(&digest_as_version).is_ok());
        let tagged = json!({"registryType": "oci", "identifier": "docker.io/acme/w:1.0.0"});
        let e = from_package(&tagged).unwrap_err();
        assert!(e.starts_with("identifier: ") && e.contains("names a tag"), "{e}");
        let tag_as_version = json!({"registryType": "oci", "identifier": "acme/w", "version": "1.0.0"});
        assert!(
            from_package(&tag_as_version)
                .unwrap_err()
                .contains("version 1.0.0")
        );
        let hint = json!({"registryType": "oci", "identifier": format!("acme/w@sha256:{HEX}"), "runtimeHint": "npx"});
        assert!(from_package(&hint).unwrap_err().starts_with("runtimeHint"));
    }
}
