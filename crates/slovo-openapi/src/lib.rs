//! OpenAPI documents (Swagger 2.0, OpenAPI 3.0 and 3.1; JSON or YAML) turned into Slovo tool
//! proposals: one [`slovo_core::Manifest`] with an HTTP execution, one capability per
//! operation, the API host as the network allow list, the credentials the API needs and a
//! risk summary.
//!
//! ```no_run
//! use slovo_openapi::{IngestOptions, Source, ingest};
//! let source = Source::from_path("petstore.yaml", slovo_openapi::DEFAULT_MAX_DOCUMENT_BYTES)?;
//! let imported = ingest(&source, &IngestOptions::default())?;
//! for s in &imported.report.skipped {
//!     eprintln!("skipped {s}");
//! }
//! # Ok::<(), slovo_openapi::IngestError>(())
//! ```
//!
//! # How a document is read
//! 1. Size cap, UTF-8, then JSON or YAML (YAML alias bombs and deep nesting are refused by the
//!    parser) into a `serde_json::Value`.
//! 2. The version field picks the flavour: `swagger: "2.0"`, `openapi: 3.0.x` or `3.1.x`.
//!    Anything else is not OpenAPI and is refused.
//! 3. The document is validated against the official schema of its version. Errors inside
//!    one operation are warnings (the operation is imported if it converts); other errors
//!    are warnings too (an operation that needs the broken part fails to convert and is
//!    skipped). [`IngestOptions::strict`] refuses on any error.
//!    Before that, in lenient mode, slips whose meaning is clear (`required: "true"`, numbers
//!    written as strings, a missing `type` beside `properties`, a reused `operationId`, …)
//!    are repaired, each listed in [`IngestReport::repairs`] with its JSON pointer.
//! 4. Each operation becomes a capability on its own (see `docs/openapi.md` for the rules:
//!    names, flattened inputs and their `x-slovo-in` bindings, hints, security); a failure is
//!    a [`Skipped`] entry in the report, never an error for the document.
//!
//! Swagger 2.0 is read directly rather than converted to 3.x first: the walker reads
//! parameters and bodies through one small normalisation (`in: body` / `formData` become the
//! request body, parameter keywords become a schema), and references resolve by JSON pointer
//! in either version, so no reference needs rewriting.
#![deny(missing_docs)]

mod analysis;
mod error;
mod naming;
mod operations;
mod refs;
mod repair;
mod report;
mod schema;
mod source;
mod split;
mod validate;

use std::path::PathBuf;

use serde_json::Value;
use slovo_core::Manifest;

pub use analysis::{Analysis, CapabilityAnalysis, offline_analysis};
pub use error::IngestError;
pub use naming::{
    MAX_CAPABILITY_NAME, capability_name, clean_text, tool_name, unique as unique_capability_name, version,
};
pub use report::{IngestReport, Repair, RequiredSecret, Risk, RiskLevel, SecretScheme, Skipped, ToolPart};
pub use source::{
    DEFAULT_MAX_DOCUMENT_BYTES, Location, RemoteFetchError, RemoteFetcher, RemotePolicy, Source,
    is_private_ip,
};
pub use split::PART_BUDGET_BYTES;

/// Default number of operations one tool holds at most; a larger document becomes several
/// tools (one per tag, or per first path segment for untagged operations).
pub const DEFAULT_MAX_OPERATIONS: usize = 300;

/// How to import.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// The tool name; by default derived from `info.title`.
    pub tool_name: Option<String>,
    /// The base URL; by default from `servers` (3.x) or `schemes` + `host` + `basePath` (2.0).
    pub base_url: Option<String>,
    /// Which operations to import.
    pub filter: Filter,
    /// Most operations in one tool: a document with more (after filters), or whose manifest
    /// would be too large to store, becomes several tools, one per tag (see `docs/openapi.md`).
    pub max_operations: usize,
    /// Local `$ref` files must be inside this directory; by default the document's own.
    pub file_root: Option<PathBuf>,
    /// Remote `$ref`s: refused by default.
    pub remote: RemotePolicy,
    /// Largest document (and largest referenced document), in bytes.
    pub max_document_bytes: usize,
    /// Refuse the document on any violation of the OpenAPI specification and on any
    /// operation that cannot be imported, listing them all. The default (lenient) imports what
    /// it can: slips whose meaning is clear are repaired (and listed in
    /// [`IngestReport::repairs`]), a specification mistake that still converts is a warning,
    /// an operation that cannot be converted is skipped.
    pub strict: bool,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            tool_name: None,
            base_url: None,
            filter: Filter::default(),
            max_operations: DEFAULT_MAX_OPERATIONS,
            file_root: None,
            remote: RemotePolicy::default(),
            max_document_bytes: DEFAULT_MAX_DOCUMENT_BYTES,
            strict: false,
        }
    }
}

/// Which operations to import. Empty lists do not filter; an operation must pass every
/// non-empty list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// At least one of the operation's tags (case-insensitive).
    pub tags: Vec<String>,
    /// The path starts with one of these, or matches it as a glob where `*` is any run of
    /// characters (`/pets/*`, `*/admin/*`).
    pub paths: Vec<String>,
    /// One of these methods (case-insensitive).
    pub methods: Vec<String>,
}

impl Filter {
    /// Whether the operation at `path` with `method` (and the operation object `op`) passes.
    pub fn matches(&self, path: &str, method: &str, op: &Value) -> bool {
        let tags_ok = self.tags.is_empty()
            || op.get("tags").and_then(Value::as_array).is_some_and(|t| {
                t.iter()
                    .filter_map(Value::as_str)
                    .any(|t| self.tags.iter().any(|w| w.eq_ignore_ascii_case(t)))
            });
        let methods_ok =
            self.methods.is_empty() || self.methods.iter().any(|m| m.eq_ignore_ascii_case(method));
        let paths_ok = self.paths.is_empty()
            || self.paths.iter().any(|p| {
                if p.contains('*') {
                    glob(p, path)
                } else {
                    path.starts_with(p.as_str())
                }
            });
        tags_ok && methods_ok && paths_ok
    }
}

/// `*` matches any run of characters; everything else literally.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// The result of an import: the proposals (each to be stored as `pending_approval`) and the
/// report.
#[derive(Debug, Clone)]
pub struct Ingested {
    /// The proposed tools: one, or one per tag for a large API ([`IngestReport::tools`] says
    /// which); empty when the document (after filters) has no operation at all.
    pub manifests: Vec<Manifest>,
    /// What happened.
    pub report: IngestReport,
    /// The offline analysis already applied to the manifest (descriptions, examples) plus
    /// its risk notes.
    pub analysis: Analysis,
}

/// Imports one document.
pub fn ingest(source: &Source, options: &IngestOptions) -> Result<Ingested, IngestError> {
    let source_name = source.name.clone();
    if source.bytes.len() > options.max_document_bytes {
        return Err(IngestError::TooLarge {
            source_name,
            size: source.bytes.len(),
            max: options.max_document_bytes,
        });
    }
    if let Some(name) = &options.tool_name
        && name != &tool_name(name)
    {
        return Err(IngestError::Options {
            source_name,
            reason: format!(
                "{name:?} is not a valid tool name (lowercase letter first, then up to 62 \
                 lowercase letters, digits or hyphens)"
            ),
        });
    }
    if let Some(base) = &options.base_url
        && !url::Url::parse(base).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
    {
        return Err(IngestError::Options {
            source_name,
            reason: format!("base URL {base:?} is not an absolute http(s) URL"),
        });
    }
    let value = source::parse_value(&source.bytes).map_err(|e| IngestError::Syntax {
        source_name: source_name.clone(),
        reason: e.to_string(),
    })?;
    let Value::Object(root) = &value else {
        return Err(IngestError::NotOpenApi {
            source_name,
            reason: format!("the document is {}, not a mapping", kind(&value)),
        });
    };
    let (flavor, version) = match (root.get("swagger"), root.get("openapi")) {
        (Some(v), None) => {
            let v = version_text(v);
            if v != "2.0" {
                return Err(IngestError::UnsupportedVersion {
                    source_name,
                    version: v,
                });
            }
            (schema::Flavor::Swagger2, v)
        }
        (None, Some(v)) => {
            let v = version_text(v);
            let flavor = if v.starts_with("3.0.") {
                schema::Flavor::Oas30
            } else if v.starts_with("3.1.") {
                schema::Flavor::Oas31
            } else {
                return Err(IngestError::UnsupportedVersion {
                    source_name,
                    version: v,
                });
            };
            (flavor, v)
        }
        (Some(_), Some(_)) => {
            return Err(IngestError::NotOpenApi {
                source_name,
                reason: "it has both `swagger` and `openapi` fields".into(),
            });
        }
        (None, None) => {
            return Err(IngestError::NotOpenApi {
                source_name,
                reason: "no `openapi` (3.x) or `swagger` (2.0) field".into(),
            });
        }
    };
    operations::build(source, value, flavor, version, options)
}

fn version_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("/pets/*", "/pets/1"));
        assert!(glob("*/admin/*", "/v1/admin/users"));
        assert!(!glob("/pets/*", "/users/1"));
        assert!(glob("/a*b*c", "/aXbYc"));
        assert!(!glob("/a*a", "/a"));
    }
}
