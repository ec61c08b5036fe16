//! The two dialects as written, and the syntax layer that reads them.
//!
//! Both dialect structs deny unknown fields, so a typo (`internet_acess`) is an error with its
//! line instead of a silently dropped permission. The execution dialect is converted into the
//! capability dialect's shape ([`CapabilityDoc`]) before validation; [`Dialect`] remembers the
//! origin so that validation errors use the field names the author wrote.

use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::error::{ManifestError, ManifestErrorKind};
use super::{ApiRequirements, EXECUTION_DIALECT_CAPABILITY, Format};

/// Which dialect a manifest was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Capability,
    Execution,
}

/// The capability dialect, which is also the canonical form.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CapabilityDoc {
    pub name: String,
    pub version: String,
    pub description: String,
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub license: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub capabilities: Vec<CapabilityDef>,
    #[serde(default)]
    pub parameters_schema: Option<Value>,
    #[serde(default)]
    pub permissions: FlatPermissions,
    #[serde(default)]
    pub api_requirements: Option<ApiRequirements>,
    #[serde(default)]
    pub openapi_spec: Option<String>,
    #[serde(default)]
    pub execution: Option<ExecutionDef>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CapabilityDef {
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub parameters: Option<Value>,
    #[serde(default)]
    pub returns: Option<Value>,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub examples: Vec<String>,
    #[serde(default)]
    pub read_only: Option<bool>,
    #[serde(default)]
    pub destructive: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlatPermissions {
    #[serde(default)]
    pub internet_access: Option<bool>,
    #[serde(default)]
    pub network_allow: Option<Vec<String>>,
    #[serde(default)]
    pub storage_quota_mb: Option<u64>,
    #[serde(default)]
    pub cpu_limit_percent: Option<u64>,
    #[serde(default)]
    pub memory_limit_mb: Option<u64>,
    #[serde(default)]
    pub timeout_s: Option<u64>,
    #[serde(default)]
    pub pids_limit: Option<u64>,
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// `execution` in either dialect. Flat rather than an internally tagged enum so that serde
/// keeps line numbers for errors inside it; which fields go with which `type` is checked in
/// validation.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExecutionDef {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub system_paths: Option<bool>,
    #[serde(default)]
    pub module: Option<String>,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub entrypoint: Option<StringOrList>,
    #[serde(default)]
    pub transport: Option<String>,
    #[serde(default)]
    pub env: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    pub secret_env: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    pub tool_names: Option<std::collections::BTreeMap<String, String>>,
    /// A remote MCP server's endpoint (`transport: streamable-http`).
    #[serde(default)]
    pub url: Option<String>,
    /// Headers sent to a remote MCP server.
    #[serde(default)]
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    /// Headers sent to a remote MCP server whose values are secrets (header → secret name).
    #[serde(default)]
    pub secret_headers: Option<std::collections::BTreeMap<String, String>>,
    /// The execution dialect's timeout, in seconds.
    #[serde(default)]
    pub timeout: Option<u64>,
    /// A chain's steps.
    #[serde(default)]
    pub steps: Option<Vec<super::chain::ChainStep>>,
    /// A chain's result template.
    #[serde(default)]
    pub result: Option<Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub(crate) enum StringOrList {
    One(String),
    Many(Vec<String>),
}

/// The execution dialect as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecutionDoc {
    name: String,
    version: String,
    description: String,
    #[serde(default)]
    author: Option<String>,
    #[serde(default)]
    license: Option<String>,
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default)]
    execution: Option<ExecutionDef>,
    #[serde(default)]
    permissions: NestedPermissions,
    #[serde(default)]
    inputs: IndexMap<String, InputDef>,
    #[serde(default)]
    outputs: IndexMap<String, OutputDef>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NestedPermissions {
    #[serde(default)]
    network: Option<NetworkPermissions>,
    #[serde(default)]
    storage: Option<StoragePermissions>,
    #[serde(default)]
    resources: Option<ResourcePermissions>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkPermissions {
    #[serde(default)]
    outbound: bool,
    #[serde(default, rename = "allowedHosts")]
    allowed_hosts: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoragePermissions {
    #[serde(default)]
    persistent: bool,
    #[serde(default, rename = "maxSizeMB")]
    max_size_mb: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourcePermissions {
    #[serde(default, rename = "maxMemoryMB")]
    max_memory_mb: Option<u64>,
    #[serde(default, rename = "maxCpuPercent")]
    max_cpu_percent: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputDef {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default, rename = "enum")]
    allowed: Option<Vec<Value>>,
    #[serde(default)]
    default: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputDef {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    description: Option<String>,
}

/// A parsed document, converted to the capability dialect's shape.
pub(crate) struct ParsedDoc {
    pub dialect: Dialect,
    pub doc: CapabilityDoc,
}

pub(crate) fn parse_document(source: &str, text: &str, format: Format) -> Result<ParsedDoc, ManifestError> {
    // First pass: generic value, to report syntax errors and to tell the dialects apart.
    let value: Value = match format {
        Format::Json => serde_json::from_str(text).map_err(|e| json_syntax(source, &e))?,
        Format::Yaml => yaml_serde::from_str(text).map_err(|e| yaml_syntax(source, &e))?,
    };
    let Value::Object(root) = &value else {
        return Err(ManifestError::new(
            source,
            ManifestErrorKind::Invalid(format!(
                "the manifest must be a mapping, not {}",
                type_name(&value)
            )),
        ));
    };
    let dialect = detect_dialect(root);
    // Second pass: typed, from the text itself so that errors keep their line numbers.
    match dialect {
        Dialect::Capability => {
            let doc: CapabilityDoc = typed(source, text, format)?;
            Ok(ParsedDoc { dialect, doc })
        }
        Dialect::Execution => {
            let doc: ExecutionDoc = typed(source, text, format)?;
            Ok(ParsedDoc {
                dialect,
                doc: execution_to_capability(doc),
            })
        }
    }
}

/// The execution dialect is recognised by any of its own marks: capabilities as a list of
/// strings, `inputs` / `outputs`, or nested permissions. Everything else is the capability
/// dialect (which is the canonical form).
fn detect_dialect(root: &Map<String, Value>) -> Dialect {
    let tags = root
        .get("capabilities")
        .and_then(Value::as_array)
        .is_some_and(|caps| !caps.is_empty() && caps.iter().all(Value::is_string));
    let io = root.contains_key("inputs") || root.contains_key("outputs");
    let nested = root
        .get("permissions")
        .and_then(Value::as_object)
        .is_some_and(|p| {
            p.contains_key("network") || p.contains_key("storage") || p.contains_key("resources")
        });
    if tags || io || nested {
        Dialect::Execution
    } else {
        Dialect::Capability
    }
}

fn typed<T: DeserializeOwned>(source: &str, text: &str, format: Format) -> Result<T, ManifestError> {
    match format {
        Format::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(&mut de).map_err(|e| {
                let inner = e.inner();
                structural(
                    source,
                    &e.path().to_string(),
                    &strip_json_position(&inner.to_string()),
                )
                .at(Some(inner.line()), Some(inner.column()))
            })
        }
        Format::Yaml => {
            let de = yaml_serde::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let inner = e.inner();
                let loc = inner.location();
                structural(
                    source,
                    &e.path().to_string(),
                    &strip_yaml_position(&inner.to_string()),
                )
                .at(loc.as_ref().map(|l| l.line()), loc.as_ref().map(|l| l.column()))
            })
        }
    }
}

/// A serde error in a document that is valid YAML/JSON: an unknown field, a missing field, or a
/// value of the wrong type.
fn structural(source: &str, path: &str, message: &str) -> ManifestError {
    // yaml_serde prefixes its own notion of the path; the error carries the path as a field.
    // (the parent of the failing field, for unknown fields).
    let message = match message.split_once(": ") {
        Some((prefix, rest)) if path.starts_with(prefix) => rest,
        _ => message,
    };
    let kind = if message.starts_with("unknown field") {
        ManifestErrorKind::UnknownField(message.to_string())
    } else {
        ManifestErrorKind::Invalid(message.to_string())
    };
    let mut err = ManifestError::new(source, kind);
    // serde_path_to_error reports "." for the root (e.g. a missing top-level field).
    if path != "." && !path.is_empty() {
        err.field = Some(path.to_string());
    }
    err
}

fn json_syntax(source: &str, e: &serde_json::Error) -> ManifestError {
    ManifestError::new(
        source,
        ManifestErrorKind::Syntax(strip_json_position(&e.to_string())),
    )
    .at(Some(e.line()), Some(e.column()))
}

fn yaml_syntax(source: &str, e: &yaml_serde::Error) -> ManifestError {
    let loc = e.location();
    ManifestError::new(
        source,
        ManifestErrorKind::Syntax(strip_yaml_position(&e.to_string())),
    )
    .at(loc.as_ref().map(|l| l.line()), loc.as_ref().map(|l| l.column()))
}

/// serde_json appends " at line L column C"; the error carries those as fields instead.
fn strip_json_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// yaml_serde appends " at line L column C" (or "at position"); likewise.
fn strip_yaml_position(message: &str) -> String {
    match message
        .rfind(" at line ")
        .or_else(|| message.rfind(" at position "))
    {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn execution_to_capability(doc: ExecutionDoc) -> CapabilityDoc {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (name, input) in &doc.inputs {
        let mut prop = Map::new();
        prop.insert("type".into(), Value::String(input.kind.clone()));
        if let Some(d) = &input.description {
            prop.insert("description".into(), Value::String(d.clone()));
        }
        if let Some(e) = &input.allowed {
            prop.insert("enum".into(), Value::Array(e.clone()));
        }
        if let Some(d) = &input.default {
            prop.insert("default".into(), d.clone());
        }
        properties.insert(name.clone(), Value::Object(prop));
        if input.required {
            required.push(Value::String(name.clone()));
        }
    }
    let parameters = json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    });
    let returns = (!doc.outputs.is_empty()).then(|| {
        let props: Map<String, Value> = doc
            .outputs
            .iter()
            .map(|(name, o)| {
                let mut p = Map::new();
                p.insert("type".into(), Value::String(o.kind.clone()));
                if let Some(d) = &o.description {
                    p.insert("description".into(), Value::String(d.clone()));
                }
                (name.clone(), Value::Object(p))
            })
            .collect();
        json!({"type": "object", "properties": props})
    });
    let network = doc.permissions.network.as_ref();
    let outbound = network.is_some_and(|n| n.outbound);
    let hosts = network.map(|n| n.allowed_hosts.clone()).unwrap_or_default();
    let storage = doc.permissions.storage.as_ref().map(|s| {
        // Not persistent means the tool keeps no state between calls.
        if s.persistent { s.max_size_mb } else { Some(0) }
    });
    let resources = doc.permissions.resources.as_ref();
    CapabilityDoc {
        name: doc.name,
        version: doc.version,
        description: doc.description.clone(),
        author: doc.author,
        license: doc.license,
        tags: doc.capabilities,
        capabilities: vec![CapabilityDef {
            name: EXECUTION_DIALECT_CAPABILITY.to_string(),
            description: doc.description,
            parameters: Some(parameters),
            returns,
            endpoint: None,
            method: None,
            examples: Vec::new(),
            read_only: None,
            destructive: None,
        }],
        parameters_schema: None,
        permissions: FlatPermissions {
            // Outbound with no list is the old "internet" switch; with a list, only those hosts.
            internet_access: network.map(|_| outbound && hosts.is_empty()),
            network_allow: (outbound && !hosts.is_empty()).then_some(hosts),
            storage_quota_mb: storage.flatten(),
            cpu_limit_percent: resources.and_then(|r| r.max_cpu_percent),
            memory_limit_mb: resources.and_then(|r| r.max_memory_mb),
            timeout_s: None,
            pids_limit: None,
            expires_at: None,
        },
        api_requirements: None,
        openapi_spec: None,
        execution: doc.execution,
    }
}
