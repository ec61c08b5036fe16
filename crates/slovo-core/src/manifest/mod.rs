//! Tool manifests: both of Slovo's dialects, YAML or JSON, parsed strictly into one model.
//!
//! - The **capability dialect** (`capabilities` as objects with JSON-Schema `parameters`, flat
//!   `permissions`, `api_requirements`) is also the canonical form: [`Manifest::to_canonical`]
//!   writes it with every field explicit, and it parses back to the same [`Manifest`].
//! - The **execution dialect** (`execution`, nested `permissions`, `inputs` / `outputs`,
//!   `capabilities` as tags) becomes one capability named [`EXECUTION_DIALECT_CAPABILITY`]
//!   whose parameters are built from `inputs`.
//!
//! Parsing never trusts its input: a size cap comes first, then UTF-8, then the syntax, then
//! unknown fields (with their line), then the meaning of every field. See `docs/manifest.md`.

pub mod chain;
mod dialects;
mod error;
mod mcp;
mod validate;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::permissions::Permissions;
pub use error::{ManifestError, ManifestErrorKind};
pub use mcp::{ImageReferenceError, check_pinned_image};

/// Largest manifest accepted, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 1024 * 1024;

/// The capability an execution-dialect manifest's single entry point is called.
pub const EXECUTION_DIALECT_CAPABILITY: &str = "run";

/// A tool manifest in its normalised form.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// `^[a-z][a-z0-9-]{0,62}$`.
    pub name: String,
    /// Semantic version.
    pub version: semver::Version,
    /// What the tool does, for a person and for the planner.
    pub description: String,
    /// Who made it.
    pub author: Option<String>,
    /// Its licence (SPDX expression, not checked).
    pub license: Option<String>,
    /// Free tags (the execution dialect's `capabilities` list lands here).
    pub tags: Vec<String>,
    /// What the tool can do; at least one.
    pub capabilities: Vec<Capability>,
    /// The legacy combined schema of the capability dialect, kept as written.
    pub parameters_schema: Option<Value>,
    /// What the tool requests.
    pub permissions: Permissions,
    /// A remote API the tool talks to.
    pub api_requirements: Option<ApiRequirements>,
    /// Where the tool's OpenAPI document came from, if it did.
    pub openapi_spec: Option<String>,
    /// How to run it; `None` means importable and approvable, not callable.
    pub execution: Option<Execution>,
}

/// One thing a tool can do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capability {
    /// Unique within the tool: `^[A-Za-z_][A-Za-z0-9_.-]{0,63}$`.
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its arguments; the root is `type: object`.
    pub parameters: Value,
    /// JSON Schema of its result, if declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returns: Option<Value>,
    /// HTTP tools: the path below the base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// HTTP tools: the method (upper case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Requests a person might say that this capability serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
    /// The capability only reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// The capability may destroy or overwrite things.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destructive: Option<bool>,
}

/// A remote API the tool calls (the capability dialect's `api_requirements`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiRequirements {
    /// `http://` or `https://` URL every endpoint is relative to.
    pub base_url: String,
    /// `none`, `api_key`, `bearer` or `basic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_type: Option<String>,
    /// Header that carries the credential (`api_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_header: Option<String>,
}

/// How a tool runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Execution {
    /// A native program from the tool's bundle, in the process sandbox.
    Process {
        /// Program and arguments; the program is relative to the bundle root.
        command: Vec<String>,
        /// Mount the host's system directories (`/usr`, `/lib`, …) read-only.
        system_paths: bool,
    },
    /// A WASI command module from the tool's bundle.
    Wasm {
        /// Path of the `.wasm` file, relative to the bundle root.
        module: String,
    },
    /// A Docker image that must already be present locally.
    Docker {
        /// Image reference.
        image: String,
        /// Entrypoint override.
        entrypoint: Option<Vec<String>>,
    },
    /// A remote HTTP API described by `api_requirements` and the capabilities' endpoints.
    Http,
    /// Calls of other tools' capabilities, each under its own tool's grant (`docs/chains.md`).
    Chain {
        /// The calls, in the order written (they run as their references allow).
        steps: Vec<chain::ChainStep>,
        /// The chain's result, a template over the steps' outputs.
        result: Value,
    },
    /// An MCP server: each call starts it in a fresh sandbox, initialises it, calls one tool
    /// and shuts it down (`docs/mcp-servers.md`).
    Mcp {
        /// How Slovo talks to the server: `stdio` or `streamable-http`.
        transport: McpTransport,
        /// `stdio`: program and arguments. The program is a path in the bundle, or an absolute
        /// path to a system program (`/usr/bin/node`, `/usr/bin/python3`) when `system_paths`
        /// is set. With `image`, the container's command (Docker's `CMD`, after the image's
        /// entrypoint), and empty for the image's own. Empty for `streamable-http`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        command: Vec<String>,
        /// `stdio`: the OCI image the server runs in (Docker backend), pinned by digest
        /// (`NAME@sha256:HEX`); `None` for a server run from its bundle in the process sandbox.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image: Option<String>,
        /// Mount the host's system directories (`/usr`, `/lib`, …) read-only.
        system_paths: bool,
        /// Environment variables the server needs (`MEMORY_FILE_PATH=/data/memory.jsonl`).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, String>,
        /// Environment variables whose values are the tool's secrets (`slovo secret set TOOL
        /// NAME`): variable → secret name. A call whose secret is not set fails before the
        /// server starts.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        secret_env: BTreeMap<String, String>,
        /// The server's own name of a tool, for capabilities whose name had to differ (too
        /// long, clashing); any other capability is called by its own name.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        tool_names: BTreeMap<String, String>,
        /// `streamable-http`: the server's endpoint, an `http(s)://` URL reached under the
        /// grant's network rules like an HTTP tool's API.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        /// `streamable-http`: headers sent with every request.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
        /// `streamable-http`: headers whose values are the tool's secrets (header → secret
        /// name), sent only to the endpoint's origin. A call whose secret is not set fails
        /// before anything is sent.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        secret_headers: BTreeMap<String, String>,
    },
}

/// How Slovo reaches an MCP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum McpTransport {
    /// JSON-RPC messages, one per line, on the server's stdin and stdout.
    Stdio,
    /// JSON-RPC messages POSTed to a remote endpoint, answered as JSON or as a stream of
    /// server-sent events.
    StreamableHttp,
}

impl Execution {
    /// The MCP tool that serves `capability` (MCP tools only).
    pub fn mcp_tool_name<'a>(&'a self, capability: &'a str) -> Option<&'a str> {
        match self {
            Execution::Mcp { tool_names, .. } => Some(
                tool_names
                    .get(capability)
                    .map(String::as_str)
                    .unwrap_or(capability),
            ),
            _ => None,
        }
    }
}

impl Execution {
    /// `process`, `wasm`, `docker`, `http`, `mcp` or `chain`.
    pub fn kind(&self) -> &'static str {
        match self {
            Execution::Process { .. } => "process",
            Execution::Wasm { .. } => "wasm",
            Execution::Docker { .. } => "docker",
            Execution::Http => "http",
            Execution::Chain { .. } => "chain",
            Execution::Mcp { .. } => "mcp",
        }
    }
}

/// The syntax a manifest is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON.
    Json,
    /// YAML (1.2).
    Yaml,
}

/// Parses a manifest from raw bytes. `source_name` (a path, `-` or `request body`) names the
/// input in errors; its extension (`.json`, `.yaml`, `.yml`) picks the syntax, otherwise a
/// leading `{` means JSON.
pub fn parse_manifest(source_name: &str, bytes: &[u8]) -> Result<Manifest, ManifestError> {
    let fail = |kind| ManifestError::new(source_name, kind);
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(fail(ManifestErrorKind::TooLarge {
            size: bytes.len(),
            max: MAX_MANIFEST_BYTES,
        }));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        fail(ManifestErrorKind::NotUtf8 {
            offset: e.valid_up_to(),
        })
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(fail(ManifestErrorKind::Empty));
    }
    let format = detect_format(source_name, text);
    let doc = dialects::parse_document(source_name, text, format)?;
    validate::normalize(source_name, doc)
}

fn detect_format(source_name: &str, text: &str) -> Format {
    let lower = source_name.to_ascii_lowercase();
    if lower.ends_with(".json") {
        Format::Json
    } else if lower.ends_with(".yaml") || lower.ends_with(".yml") {
        Format::Yaml
    } else if text.trim_start().starts_with('{') {
        Format::Json
    } else {
        Format::Yaml
    }
}

impl Manifest {
    /// The canonical form (capability dialect, every field explicit) as JSON.
    pub fn to_canonical(&self) -> Value {
        validate::to_canonical(self)
    }

    /// The capability called `name`.
    pub fn capability(&self, name: &str) -> Option<&Capability> {
        self.capabilities.iter().find(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests;
