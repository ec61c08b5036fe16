//! What installing a tool version found: one shape per backend, recorded on the version
//! (`tool_versions.install_info`) and in `tool.installed` / `tool.reinstalled` events.
//!
//! The records are read back by the calls of the version (a Docker tool runs the image id its
//! install pinned; an MCP server must list the tools its install listed), so their JSON is
//! pinned exactly as it has always been written: field names, field order (the workspace keeps
//! JSON objects in insertion order), `null`s, and which field tells the shapes apart. The
//! shapes carry no common tag, so [`InstallFacts::from_value`] tells them apart by the fields
//! each one always has; a record of any other shape is an [`InstallFactsError`], never a
//! guess.

use std::path::PathBuf;

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// What one install found, by backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallFacts {
    /// `{"runtime": "none", "note": …}`: the manifest has no execution section, so nothing can
    /// be called.
    NotCallable {
        /// Why, for a person.
        note: String,
    },
    /// `{"runtime": "chain", "note": …}`: a chain runs its steps through their own tools and
    /// installs nothing of its own.
    Chain {
        /// What that means, for a person.
        note: String,
    },
    /// `{"runtime": <type>, "deferred": …}`: no backend served the tool's execution type on
    /// this host when it was installed; calls are refused with the backend's reason until one
    /// does and the tool is installed again.
    NoBackend {
        /// The execution type (`process`, `wasm`, `docker`, `http`, `mcp`).
        runtime: String,
        /// Why there was no backend.
        reason: String,
    },
    /// A program in the process sandbox.
    Process(ProcessFacts),
    /// A WebAssembly module, compiled ahead of its calls.
    Wasm(WasmFacts),
    /// A Docker image: its id pinned, or why none was.
    Docker(DockerFacts),
    /// A remote HTTP API: nothing to prepare.
    Http(HttpFacts),
    /// An MCP server and the tool list it answered at install.
    Mcp(McpFacts),
}

/// `{"program", "system_paths", "refusal"}`: the process backend checked the program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessFacts {
    /// The program's path inside the sandbox (`/tool/…`).
    pub program: String,
    /// Whether the system's directories are mounted read-only in the sandbox.
    pub system_paths: bool,
    /// Why this host refuses to run process tools (calls are refused with it), if it does.
    pub refusal: Option<String>,
}

/// `{"runtime": "wasm", "module", …}`: the module as read, checked and compiled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WasmFacts {
    /// The module's path in the bundle, as the manifest names it.
    pub module: String,
    /// SHA-256 of the module's bytes, hex.
    pub module_sha256: String,
    /// Its size.
    pub module_bytes: u64,
    /// The engine that compiled it, for a person.
    pub engine: String,
    /// The engine's configuration fingerprint (an artifact compiled under another is not used).
    pub engine_fingerprint: String,
    /// The compiled artifact in the cache.
    pub artifact: PathBuf,
    /// SHA-256 of the artifact, hex.
    pub artifact_sha256: String,
    /// Whether this install compiled it (`false`: the cached artifact was valid).
    pub compiled: bool,
    /// How long compiling took, when it did.
    pub compile_ms: Option<u64>,
    /// The module's imports (`module::name`).
    pub imports: Vec<String>,
}

/// What a Docker install found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerFacts {
    /// `{"image", "image_id", "repo_digests", "entrypoint", "user"}`: the image id is pinned;
    /// calls run exactly that image.
    Pinned(DockerPinned),
    /// `{"image", "image_id": null, "entrypoint", "deferred"}`: no daemon or no image; nothing
    /// is pinned, and every call is refused with the reason.
    Deferred(DockerDeferred),
}

/// A Docker image pinned at install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerPinned {
    /// The image reference of the manifest.
    pub image: String,
    /// The id of the image it named at install.
    pub image_id: String,
    /// The image's repository digests.
    pub repo_digests: Vec<String>,
    /// The manifest's entrypoint override.
    pub entrypoint: Option<Vec<String>>,
    /// The `uid:gid` the container runs as.
    pub user: String,
}

/// A Docker install that could not pin an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerDeferred {
    /// The image reference of the manifest.
    pub image: String,
    /// The manifest's entrypoint override.
    pub entrypoint: Option<Vec<String>>,
    /// Why no image id was pinned.
    pub reason: String,
}

/// The written form of [`DockerDeferred`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DockerDeferredRecord {
    image: String,
    /// Always `null`: `()` is written as `null` and reads only `null`.
    image_id: (),
    entrypoint: Option<Vec<String>>,
    deferred: String,
}

/// `{"runtime": "http", "tool"}`: an HTTP tool has nothing to prepare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFacts {
    /// The tool.
    pub tool: String,
}

/// What an MCP install found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpFacts {
    /// `{"transport": "stdio", "program", "refusal"}`: this host refuses to run process
    /// sandboxes, so the server was not started (calls are refused with the reason).
    Refused {
        /// The server's program.
        program: String,
        /// Why the process sandbox is refused here.
        refusal: String,
    },
    /// `{"transport": "stdio", "program", "system_paths", …the listed tools}`: the server
    /// started in its sandbox and listed its tools.
    Stdio {
        /// The server's program.
        program: String,
        /// Whether the system's directories are mounted in its sandbox.
        system_paths: bool,
        /// What it answered.
        listed: ListedTools,
    },
    /// `{"transport": "stdio", "image", "image_id", "repo_digests", "command", "user", …the
    /// listed tools}`: the server's OCI image, found here by its digest, started once in its
    /// container and listed its tools; calls run that image id.
    Image {
        /// The image as the manifest names it (with its digest).
        image: String,
        /// The id of the image found, which every call runs.
        image_id: String,
        /// The image's repository digests.
        repo_digests: Vec<String>,
        /// The container's command (`Cmd`), if the manifest gives one.
        command: Vec<String>,
        /// The `uid:gid` the container runs as.
        user: String,
        /// What it answered.
        listed: ListedTools,
    },
    /// `{"transport": "streamable-http", "url", …the listed tools}`: the remote server listed
    /// its tools.
    Remote {
        /// Its endpoint.
        url: String,
        /// What it answered.
        listed: ListedTools,
    },
}

/// An MCP server's answers at install: its `initialize` result and its tool list, which calls
/// hold it to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListedTools {
    /// The protocol revision it answered `initialize` with.
    pub protocol_version: Option<Value>,
    /// Its `serverInfo`.
    pub server_info: Option<Value>,
    /// SHA-256 of the tool list in canonical form, hex.
    pub tools_sha256: String,
    /// The tool list, each tool as the server described it.
    pub tools: Vec<Value>,
    /// A different list a call was refused for, until a new approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_list_changed: Option<ToolListChangedNote>,
}

/// A call found the server listing other tools than were pinned; the version went back to
/// approval with this difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolListChangedNote {
    /// The difference, for a person.
    pub difference: String,
    /// SHA-256 of the list served, hex: a new approval holds the server to it.
    pub served_sha256: String,
    /// When (Unix milliseconds).
    pub at: i64,
}

/// A stored install record that is not one of the shapes an install writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstallFactsError {
    /// Not a JSON object.
    #[error("an install record is a JSON object, not {found}")]
    NotAnObject {
        /// What it is instead.
        found: &'static str,
    },
    /// No field tells which install wrote it.
    #[error(
        "the install record has fields [{fields}], which no install writes (a process, wasm, docker, http or \
         MCP install, a chain, a tool without execution, or a missing backend)"
    )]
    UnknownShape {
        /// Its fields, in order.
        fields: String,
    },
    /// It looks like one install's record but a field is missing, extra or of the wrong type.
    #[error("the {shape} install record is not as that install writes it: {reason}")]
    BadRecord {
        /// Which install's record it looks like.
        shape: &'static str,
        /// What is wrong, naming the field.
        reason: String,
    },
}

impl InstallFacts {
    /// The image id a Docker install pinned.
    pub fn pinned_image(&self) -> Option<&str> {
        match self {
            InstallFacts::Docker(DockerFacts::Pinned(pinned)) => Some(&pinned.image_id),
            InstallFacts::Mcp(McpFacts::Image { image_id, .. }) => Some(image_id),
            InstallFacts::Docker(DockerFacts::Deferred(_))
            | InstallFacts::NotCallable { .. }
            | InstallFacts::Chain { .. }
            | InstallFacts::NoBackend { .. }
            | InstallFacts::Process(_)
            | InstallFacts::Wasm(_)
            | InstallFacts::Http(_)
            | InstallFacts::Mcp(
                McpFacts::Refused { .. } | McpFacts::Stdio { .. } | McpFacts::Remote { .. },
            ) => None,
        }
    }

    /// Why the install prepared nothing to run: no backend, or no Docker image pinned.
    pub fn deferred(&self) -> Option<&str> {
        match self {
            InstallFacts::NoBackend { reason, .. }
            | InstallFacts::Docker(DockerFacts::Deferred(DockerDeferred { reason, .. })) => Some(reason),
            InstallFacts::Docker(DockerFacts::Pinned(_))
            | InstallFacts::NotCallable { .. }
            | InstallFacts::Chain { .. }
            | InstallFacts::Process(_)
            | InstallFacts::Wasm(_)
            | InstallFacts::Http(_)
            | InstallFacts::Mcp(_) => None,
        }
    }

    /// The tools an MCP server listed at install.
    pub fn listed_tools(&self) -> Option<&ListedTools> {
        match self {
            InstallFacts::Mcp(
                McpFacts::Stdio { listed, .. }
                | McpFacts::Image { listed, .. }
                | McpFacts::Remote { listed, .. },
            ) => Some(listed),
            InstallFacts::Mcp(McpFacts::Refused { .. })
            | InstallFacts::NotCallable { .. }
            | InstallFacts::Chain { .. }
            | InstallFacts::NoBackend { .. }
            | InstallFacts::Process(_)
            | InstallFacts::Wasm(_)
            | InstallFacts::Docker(_)
            | InstallFacts::Http(_) => None,
        }
    }

    /// [`InstallFacts::listed_tools`], to note a change on.
    pub fn listed_tools_mut(&mut self) -> Option<&mut ListedTools> {
        match self {
            InstallFacts::Mcp(
                McpFacts::Stdio { listed, .. }
                | McpFacts::Image { listed, .. }
                | McpFacts::Remote { listed, .. },
            ) => Some(listed),
            InstallFacts::Mcp(McpFacts::Refused { .. })
            | InstallFacts::NotCallable { .. }
            | InstallFacts::Chain { .. }
            | InstallFacts::NoBackend { .. }
            | InstallFacts::Process(_)
            | InstallFacts::Wasm(_)
            | InstallFacts::Docker(_)
            | InstallFacts::Http(_) => None,
        }
    }

    /// Reads a record as an install wrote it.
    pub fn from_value(value: Value) -> Result<InstallFacts, InstallFactsError> {
        let Value::Object(mut record) = value else {
            return Err(InstallFactsError::NotAnObject {
                found: json_type(&value),
            });
        };
        if let Some(transport) = record.remove("transport") {
            return McpFacts::from_record(transport, record).map(InstallFacts::Mcp);
        }
        if record.contains_key("runtime") {
            return Self::from_runtime_record(record);
        }
        if record.contains_key("image") {
            return DockerFacts::from_record(record).map(InstallFacts::Docker);
        }
        if record.contains_key("program") {
            return parse("process", record).map(InstallFacts::Process);
        }
        Err(unknown_shape(&record))
    }

    /// The records that start with `"runtime"`: a missing backend, no execution, a chain, wasm
    /// and HTTP.
    fn from_runtime_record(mut record: Map<String, Value>) -> Result<InstallFacts, InstallFactsError> {
        if record.contains_key("deferred") {
            let NoBackendRecord { runtime, deferred } = parse("deferred", record)?;
            return Ok(InstallFacts::NoBackend {
                runtime,
                reason: deferred,
            });
        }
        match record.get("runtime").and_then(Value::as_str) {
            Some("none") => parse::<NotedRecord>("no-execution", record)
                .map(|r| InstallFacts::NotCallable { note: r.note }),
            Some("chain") => {
                parse::<NotedRecord>("chain", record).map(|r| InstallFacts::Chain { note: r.note })
            }
            Some("wasm") => {
                record.remove("runtime");
                parse("wasm", record).map(InstallFacts::Wasm)
            }
            Some("http") => {
                record.remove("runtime");
                parse("http", record).map(InstallFacts::Http)
            }
            _ => Err(unknown_shape(&record)),
        }
    }

    /// The record as it is written.
    fn to_record(&self) -> Result<Value, serde_json::Error> {
        match self {
            InstallFacts::NotCallable { note } => serde_json::to_value(NotedRecord {
                runtime: "none".to_string(),
                note: note.clone(),
            }),
            InstallFacts::Chain { note } => serde_json::to_value(NotedRecord {
                runtime: "chain".to_string(),
                note: note.clone(),
            }),
            InstallFacts::NoBackend { runtime, reason } => serde_json::to_value(NoBackendRecord {
                runtime: runtime.clone(),
                deferred: reason.clone(),
            }),
            InstallFacts::Process(facts) => serde_json::to_value(facts),
            InstallFacts::Wasm(facts) => tagged(("runtime", "wasm"), &[], facts),
            InstallFacts::Docker(facts) => facts.to_record(),
            InstallFacts::Http(facts) => tagged(("runtime", "http"), &[], facts),
            InstallFacts::Mcp(facts) => facts.to_record(),
        }
    }
}

impl DockerFacts {
    fn from_record(record: Map<String, Value>) -> Result<DockerFacts, InstallFactsError> {
        if record.get("image_id").is_some_and(Value::is_null) {
            let DockerDeferredRecord {
                image,
                image_id: (),
                entrypoint,
                deferred,
            } = parse("docker", record)?;
            return Ok(DockerFacts::Deferred(DockerDeferred {
                image,
                entrypoint,
                reason: deferred,
            }));
        }
        parse("docker", record).map(DockerFacts::Pinned)
    }

    fn to_record(&self) -> Result<Value, serde_json::Error> {
        match self {
            DockerFacts::Pinned(pinned) => serde_json::to_value(pinned),
            DockerFacts::Deferred(deferred) => serde_json::to_value(DockerDeferredRecord {
                image: deferred.image.clone(),
                image_id: (),
                entrypoint: deferred.entrypoint.clone(),
                deferred: deferred.reason.clone(),
            }),
        }
    }
}

impl McpFacts {
    fn from_record(transport: Value, mut record: Map<String, Value>) -> Result<McpFacts, InstallFactsError> {
        match transport.as_str() {
            Some("stdio") if record.contains_key("tools") && record.contains_key("image") => {
                let image = take(&mut record, "image")?;
                let image_id = take(&mut record, "image_id")?;
                let repo_digests = take(&mut record, "repo_digests")?;
                let command = take(&mut record, "command")?;
                let user = take(&mut record, "user")?;
                Ok(McpFacts::Image {
                    image,
                    image_id,
                    repo_digests,
                    command,
                    user,
                    listed: parse("MCP", record)?,
                })
            }
            Some("stdio") if record.contains_key("tools") => {
                let program = take(&mut record, "program")?;
                let system_paths = take(&mut record, "system_paths")?;
                Ok(McpFacts::Stdio {
                    program,
                    system_paths,
                    listed: parse("MCP", record)?,
                })
            }
            Some("stdio") => {
                let RefusedRecord { program, refusal } = parse("MCP", record)?;
                Ok(McpFacts::Refused { program, refusal })
            }
            Some("streamable-http") => {
                let url = take(&mut record, "url")?;
                Ok(McpFacts::Remote {
                    url,
                    listed: parse("MCP", record)?,
                })
            }
            _ => Err(InstallFactsError::BadRecord {
                shape: "MCP",
                reason: format!("unknown transport {transport}"),
            }),
        }
    }

    fn to_record(&self) -> Result<Value, serde_json::Error> {
        match self {
            McpFacts::Refused { program, refusal } => tagged(
                ("transport", "stdio"),
                &[],
                &RefusedRecord {
                    program: program.clone(),
                    refusal: refusal.clone(),
                },
            ),
            McpFacts::Stdio {
                program,
                system_paths,
                listed,
            } => tagged(
                ("transport", "stdio"),
                &[
                    ("program", Value::from(program.as_str())),
                    ("system_paths", Value::from(*system_paths)),
                ],
                listed,
            ),
            McpFacts::Image {
                image,
                image_id,
                repo_digests,
                command,
                user,
                listed,
            } => tagged(
                ("transport", "stdio"),
                &[
                    ("image", Value::from(image.as_str())),
                    ("image_id", Value::from(image_id.as_str())),
                    ("repo_digests", Value::from(repo_digests.clone())),
                    ("command", Value::from(command.clone())),
                    ("user", Value::from(user.as_str())),
                ],
                listed,
            ),
            McpFacts::Remote { url, listed } => tagged(
                ("transport", "streamable-http"),
                &[("url", Value::from(url.as_str()))],
                listed,
            ),
        }
    }
}

/// `{"runtime": "none" | "chain", "note"}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotedRecord {
    runtime: String,
    note: String,
}

/// `{"runtime", "deferred"}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoBackendRecord {
    runtime: String,
    deferred: String,
}

/// `{"transport": "stdio", "program", "refusal"}` without its tag.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefusedRecord {
    program: String,
    refusal: String,
}

/// `tag` first, then `fields`, then the fields of `rest`: the order the installs write.
fn tagged<T: Serialize>(
    tag: (&str, &str),
    fields: &[(&str, Value)],
    rest: &T,
) -> Result<Value, serde_json::Error> {
    let mut record = Map::new();
    record.insert(tag.0.to_string(), Value::from(tag.1));
    for (name, value) in fields {
        record.insert((*name).to_string(), value.clone());
    }
    match serde_json::to_value(rest)? {
        Value::Object(more) => record.extend(more),
        other => {
            return Err(<serde_json::Error as serde::ser::Error>::custom(format!(
                "not an object: {other}"
            )));
        }
    }
    Ok(Value::Object(record))
}

fn parse<T: for<'de> Deserialize<'de>>(
    shape: &'static str,
    record: Map<String, Value>,
) -> Result<T, InstallFactsError> {
    serde_json::from_value(Value::Object(record)).map_err(|e| InstallFactsError::BadRecord {
        shape,
        reason: e.to_string(),
    })
}

/// Takes `field` out of an MCP record.
fn take<T: for<'de> Deserialize<'de>>(
    record: &mut Map<String, Value>,
    field: &str,
) -> Result<T, InstallFactsError> {
    let value = record.remove(field).ok_or_else(|| InstallFactsError::BadRecord {
        shape: "MCP",
        reason: format!("missing field `{field}`"),
    })?;
    serde_json::from_value(value).map_err(|e| InstallFactsError::BadRecord {
        shape: "MCP",
        reason: format!("`{field}`: {e}"),
    })
}

fn unknown_shape(record: &Map<String, Value>) -> InstallFactsError {
    InstallFactsError::UnknownShape {
        fields: record.keys().map(String::as_str).collect::<Vec<_>>().join(", "),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Serialize for InstallFacts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_record().map_err(S::Error::custom)?.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for InstallFacts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<InstallFacts, D::Error> {
        InstallFacts::from_value(Value::deserialize(deserializer)?).map_err(D::Error::custom)
    }
}

#[cfg(test)]
#[path = "install_tests.rs"]
mod tests;
