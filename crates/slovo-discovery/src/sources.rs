//! Discovery sources: where candidate tools come from. This module does the I/O (reading
//! directories and files, fetching URLs through a caller-supplied fetcher); ranking stays in
//! [`crate::index`].
//!
//! - **Manifest directories**: every `*.json` / `*.yaml` / `*.yml` Slovo manifest below them.
//! - **OpenAPI catalogues** in the APIs.guru layout (`APIs/<provider>[/<service>]/<version>/
//!   {openapi,swagger}.{json,yaml}` or `specs/<provider>[/<service>]/<version>.json`): every
//!   OpenAPI or Swagger document below them, ingested by `slovo-openapi` (with its offline
//!   analysis, which adds example requests to each capability).
//! - **OpenAPI URLs**, fetched by the caller's [`slovo_openapi::RemoteFetcher`].
//! - **MCP registry `server.json` files**: a server becomes a candidate with one capability
//!   describing it and no execution section, for ranking; the runtime imports the chosen one
//!   from its package or remote so that its proposal is callable, and proposes this
//!   description alone only when that import cannot be made.
//!
//! A file that cannot be read or ingested is a [`Catalogue::problems`] line, never an error
//! for the whole catalogue.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};
use slovo_core::manifest::{Manifest, parse_manifest};
use slovo_openapi::{IngestOptions, RemoteFetcher, Source};

use crate::index::{Document, Index};

/// Where to look for candidates.
#[derive(Clone, Default)]
pub struct SourceConfig {
    /// Directories of Slovo manifests.
    pub manifest_dirs: Vec<PathBuf>,
    /// OpenAPI catalogue directories (APIs.guru layout; any OpenAPI file below counts).
    pub catalogue_dirs: Vec<PathBuf>,
    /// URLs of OpenAPI documents.
    pub openapi_urls: Vec<String>,
    /// MCP registry `server.json` files, or directories holding them.
    pub mcp_registry: Vec<PathBuf>,
    /// Fetches `openapi_urls`; without one, URLs are reported as problems.
    pub fetcher: Option<Arc<dyn RemoteFetcher>>,
}

impl std::fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceConfig")
            .field("manifest_dirs", &self.manifest_dirs)
            .field("catalogue_dirs", &self.catalogue_dirs)
            .field("openapi_urls", &self.openapi_urls)
            .field("mcp_registry", &self.mcp_registry)
            .field("fetcher", &self.fetcher.as_ref().map(|_| "…"))
            .finish()
    }
}

impl SourceConfig {
    /// Whether no source is configured.
    pub fn is_empty(&self) -> bool {
        self.manifest_dirs.is_empty()
            && self.catalogue_dirs.is_empty()
            && self.openapi_urls.is_empty()
            && self.mcp_registry.is_empty()
    }
}

/// What kind of source a candidate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A Slovo manifest file.
    Manifest,
    /// An OpenAPI (or Swagger) document.
    Openapi,
    /// An MCP registry `server.json`.
    McpServer,
}

/// One candidate tool.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The file or URL it came from.
    pub origin: String,
    /// What that was.
    pub kind: SourceKind,
    /// The proposed tool.
    pub manifest: Manifest,
}

/// Every candidate found in the configured sources.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    /// The candidates, in a stable order (sorted paths).
    pub candidates: Vec<Candidate>,
    /// Files or URLs that could not be used, and why.
    pub problems: Vec<String>,
}

/// Files of a catalogue larger than this are skipped (the ingester caps them anyway).
const MAX_FILE_BYTES: usize = slovo_openapi::DEFAULT_MAX_DOCUMENT_BYTES;

impl Catalogue {
    /// Reads every configured source.
    pub fn load(config: &SourceConfig) -> Catalogue {
        let mut cat = Catalogue::default();
        for dir in &config.manifest_dirs {
            for path in files_below(dir, &mut cat.problems) {
                cat.add_manifest_file(&path);
            }
        }
        for dir in &config.catalogue_dirs {
            for path in files_below(dir, &mut cat.problems) {
                // A catalogue may mix in Slovo manifests; OpenAPI documents say so early.
                if looks_like_openapi(&path) {
                    cat.add_openapi(
                        Source::from_path(&path, MAX_FILE_BYTES),
                        &path.display().to_string(),
                    );
                } else {
                    cat.add_manifest_file(&path);
                }
            }
        }
        for link in &config.openapi_urls {
            let source = match (&config.fetcher, url::Url::parse(link)) {
                (None, _) => {
                    cat.problems
                        .push(format!("{link}: no fetcher configured for OpenAPI URLs"));
                    continue;
                }
                (_, Err(e)) => {
                    cat.problems.push(format!("{link}: {e}"));
                    continue;
                }
                (Some(f), Ok(u)) => f.fetch(&u).map(|bytes| Source::from_url(u, bytes)).map_err(|e| {
                    slovo_openapi::IngestError::Read {
                        source_name: link.clone(),
                        reason: e.to_string(),
                    }
                }),
            };
            cat.add_openapi(source, link);
        }
        for p in &config.mcp_registry {
            let files = if p.is_dir() {
                files_below(p, &mut cat.problems)
            } else {
                vec![p.clone()]
            };
            for path in files {
                cat.add_mcp_server(&path);
            }
        }
        cat
    }

    fn add_manifest_file(&mut self, path: &Path) {
        let origin = path.display().to_string();
        match std::fs::read(path) {
            Err(e) => self.problems.push(format!("{origin}: {e}")),
            Ok(bytes) => match parse_manifest(&origin, &bytes) {
                Ok(manifest) => self.candidates.push(Candidate {
                    origin,
                    kind: SourceKind::Manifest,
                    manifest,
                }),
                Err(e) => self.problems.push(e.to_string()),
            },
        }
    }

    fn add_openapi(&mut self, source: Result<Source, slovo_openapi::IngestError>, origin: &str) {
        let ingested = source.and_then(|s| slovo_openapi::ingest(&s, &IngestOptions::default()));
        match ingested {
            // A large API is several tools (one per tag): each is a candidate, so the tool
            // proposed for a matched operation is the one that holds it.
            Ok(i) if i.manifests.is_empty() => self
                .problems
                .push(format!("{origin}: no operation could be imported")),
            Ok(i) => self
                .candidates
                .extend(i.manifests.into_iter().map(|manifest| Candidate {
                    origin: origin.to_string(),
                    kind: SourceKind::Openapi,
                    manifest,
                })),
            Err(e) => self.problems.push(e.to_string()),
        }
    }

    fn add_mcp_server(&mut self, path: &Path) {
        let origin = path.display().to_string();
        let parsed = std::fs::read(path)
            .map_err(McpServerError::from)
            .and_then(|b| Ok(serde_json::from_slice::<Value>(&b)?))
            .and_then(|v| mcp_server_manifest(&v, &origin));
        match parsed {
            Ok(manifest) => self.candidates.push(Candidate {
                origin,
                kind: SourceKind::McpServer,
                manifest,
            }),
            Err(e) => self.problems.push(format!("{origin}: {e}")),
        }
    }

    /// The capability index over every candidate (status `catalogue`), and for each document
    /// the index of its candidate.
    pub fn index(&self) -> (Index, Vec<usize>) {
        let mut docs = Vec::new();
        let mut owner = Vec::new();
        for (i, c) in self.candidates.iter().enumerate() {
            for d in Document::from_manifest(&c.manifest, "catalogue") {
                docs.push(d);
                owner.push(i);
            }
        }
        (Index::build(docs), owner)
    }
}

/// Whether the file's first 4 KiB name an OpenAPI or Swagger version (`"openapi"`,
/// `swagger:` …): cheaper than parsing it twice.
fn looks_like_openapi(path: &Path) -> bool {
    use std::io::Read;
    let mut head = Vec::with_capacity(4096);
    let read = std::fs::File::open(path).and_then(|f| f.take(4096).read_to_end(&mut head));
    if read.is_err() {
        return true; // let the ingester report the error
    }
    let head = String::from_utf8_lossy(&head);
    [
        "\"swagger\"",
        "\"openapi\"",
        "swagger:",
        "openapi:",
        "'swagger'",
        "'openapi'",
    ]
    .iter()
    .any(|k| head.contains(k))
}

/// Every `.json`, `.yaml` and `.yml` file below `dir`, sorted; hidden entries skipped.
fn files_below(dir: &Path, problems: &mut Vec<String>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) => {
                problems.push(format!("{}: {e}", d.display()));
                continue;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if hidden {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "json" | "yaml" | "yml"))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Why an MCP registry `server.json` cannot become a proposal.
#[derive(Debug, thiserror::Error)]
pub enum McpServerError {
    /// The file cannot be read.
    #[error("cannot read it: {0}")]
    Read(#[from] std::io::Error),
    /// It is not JSON.
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// It names no server.
    #[error("server.json has no \"name\"")]
    NoName,
    /// The manifest made of it is not valid.
    #[error(transparent)]
    Manifest(#[from] slovo_core::manifest::ManifestError),
}

/// A proposal for an MCP registry server (`server.json`): its name, version and description,
/// one capability describing it, no execution section.
pub fn mcp_server_manifest(server: &Value, origin: &str) -> Result<Manifest, McpServerError> {
    let name = server
        .get("name")
        .and_then(Value::as_str)
        .ok_or(McpServerError::NoName)?;
    let short = name.rsplit(['/', '.']).next().unwrap_or(name);
    let tool = slovo_openapi::tool_name(short);
    let description = server
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("An MCP server")
        .to_string();
    let version = server
        .get("version")
        .and_then(Value::as_str)
        .and_then(|v| semver::Version::parse(v).ok())
        .map(|v| v.to_string())
        .unwrap_or_else(|| "0.1.0".into());
    let doc = json!({
        "name": tool,
        "version": version,
        "description": format!("{description} (MCP server {name}; how to reach it is not configured yet)"),
        "capabilities": [{
            "name": "server",
            "description": description,
            "parameters": {"type": "object"},
        }],
    });
    Ok(parse_manifest(
        &format!("{origin}.json"),
        doc.to_string().as_bytes(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    const MANIFEST: &str = "name: unit-converter\nversion: 1.0.0\ndescription: Converts units\n\
        capabilities:\n  - name: convert_length\n    description: Convert a length\n    parameters: {type: object}\n";

    #[test]
    fn reads_manifests_openapi_and_mcp_servers_and_reports_problems() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("manifests")).unwrap();
        std::fs::write(root.join("manifests/unit.yaml"), MANIFEST).unwrap();
        std::fs::write(root.join("manifests/broken.yaml"), "name: [").unwrap();
        std::fs::create_dir_all(root.join("catalogue/specs/googleapis.com/urlshortener")).unwrap();
        let spec = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(
            "../../../shared/corpus/openapi/directory-sample/specs/googleapis.com/urlshortener/v1.json",
        );
        std::fs::copy(
            spec,
            root.join("catalogue/specs/googleapis.com/urlshortener/v1.json"),
        )
        .unwrap();
        std::fs::write(
            root.join("server.json"),
            r#"{"name": "io.github.example/weather", "description": "Weather forecasts for any city", "version": "1.2.0"}"#,
        )
        .unwrap();
        let cat = Catalogue::load(&SourceConfig {
            manifest_dirs: vec![root.join("manifests")],
            catalogue_dirs: vec![root.join("catalogue")],
            mcp_registry: vec![root.join("server.json")],
            openapi_urls: vec!["https://example.org/openapi.json".into()],
            fetcher: None,
        });
        let got: Vec<(&str, SourceKind)> = cat
            .candidates
            .iter()
            .map(|c| (c.manifest.name.as_str(), c.kind))
            .collect();
        assert_eq!(
            got,
            vec![
                ("unit-converter", SourceKind::Manifest),
                ("url-shortener", SourceKind::Openapi),
                ("weather", SourceKind::McpServer),
            ]
        );
        assert_eq!(cat.problems.len(), 2, "{:?}", cat.problems);
        let (index, owner) = cat.index();
        assert_eq!(index.len(), owner.len());
        let r = index.search("weather forecast for Paris", 3, &crate::GapRule::default());
        assert_eq!(cat.candidates[owner[r.hits[0].doc]].manifest.name, "weather");
        // The URL shortener's operations carry the analysis step's example requests.
        assert!(
            index
                .docs()
                .iter()
                .any(|d| d.tool == "url-shortener" && !d.examples.is_empty())
        );
    }
}
