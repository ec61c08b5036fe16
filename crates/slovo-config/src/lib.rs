//! The one configuration of Slovo Tools.
//!
//! # Brief overview
//! [`Config`] is every setting, typed, in sections (`database`, `sandbox`, `docker`, `egress`,
//! `http`, `discovery`, `server`, `llm`, `mcp`). [`load`] builds it once, at start, in layers:
//!
//! 1. the defaults ([`Config::default`]);
//! 2. a TOML file: `--config FILE`, or else `slovo.toml` in the data directory if it exists;
//! 3. the environment: every key has one variable, `SLOVO_` + the key in capitals with dots
//!    as underscores (`egress.also_public` → `SLOVO_EGRESS_ALSO_PUBLIC`); lists are
//!    comma-separated, booleans `1`/`0`/`true`/`false`. `DOCKER_HOST` is honoured for
//!    `docker.host`, as Docker's own tools do;
//! 4. command-line flags ([`Overrides`]).
//!
//! [`Loaded`] keeps where each value came from, for `slovo config show`, which prints secrets
//! (`secret_key`, the password in `database.url`) only as `<redacted>`.
//!
//! The file is read as strictly as a manifest: an unknown key or a value of the wrong type is
//! an error naming the file, the line and the key. Nothing here reads the environment on its
//! own: the caller hands [`load`] the variables, so that tests give their own.
#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use slovo_core::net::IpRange;

mod mcp;

pub use mcp::McpConfig;

/// Every setting of Slovo Tools.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The data directory: the SQLite database, bundles, tool state, the secret key. Settable
    /// by `--data-dir`, `SLOVO_DATA_DIR` or a file named by `--config` (not by the data
    /// directory's own `slovo.toml`). By default, the platform data directory
    /// (`~/.local/share/slovo`).
    pub data_dir: PathBuf,
    /// The key that seals secrets, as 64 hex characters, instead of the key file in the data
    /// directory (for instances that share one database). By default, none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<String>,
    /// The database.
    pub database: DatabaseConfig,
    /// The process sandbox (and what the Docker backend shares with it).
    pub sandbox: SandboxConfig,
    /// The Docker backend.
    pub docker: DockerConfig,
    /// Network grants: the egress check every backend applies.
    pub egress: EgressConfig,
    /// The HTTP backend (remote APIs) and fetching OpenAPI documents by URL.
    pub http: HttpConfig,
    /// Where the discovery worker looks for tools.
    pub discovery: DiscoveryConfig,
    /// `slovo serve`.
    pub server: ServerConfig,
    /// An OpenAI-compatible LLM that enriches OpenAPI proposals.
    pub llm: LlmConfig,
    /// Where MCP servers imported by name are fetched from.
    pub mcp: McpConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("slovo"),
            secret_key: None,
            database: DatabaseConfig::default(),
            sandbox: SandboxConfig::default(),
            docker: DockerConfig::default(),
            egress: EgressConfig::default(),
            http: HttpConfig::default(),
            discovery: DiscoveryConfig::default(),
            server: ServerConfig::default(),
            llm: LlmConfig::default(),
            mcp: McpConfig::default(),
        }
    }
}

/// The database.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// A PostgreSQL URL (`postgres://…`) to use instead of the embedded SQLite database in the
    /// data directory. By default, none (SQLite).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The process sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// Run tools even where this host lacks an isolation feature (Landlock, cgroup
    /// controllers, storage quotas), with exactly those features off; `slovo doctor` names
    /// them. By default, `false`: such a host refuses every call.
    pub allow_weaker: bool,
    /// Size of each call's `/tmp`, in MiB. By default, 16.
    pub tmp_mb: u64,
    /// Bytes of a call's stdout kept; a tool writing more is stopped. By default, 4 MiB.
    pub stdout_limit_bytes: u64,
    /// Bytes of a call's stderr kept; the rest is dropped. By default, 256 KiB.
    pub stderr_limit_bytes: u64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            allow_weaker: false,
            tmp_mb: 16,
            stdout_limit_bytes: 4 * 1024 * 1024,
            stderr_limit_bytes: 256 * 1024,
        }
    }
}

/// The Docker backend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DockerConfig {
    /// The daemon (`unix:///var/run/docker.sock`, `tcp://…`). By default, `DOCKER_HOST` or the
    /// local socket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Registries images may be pulled from at install. By default, none: images must already
    /// be on the host.
    pub registries: Vec<String>,
}

/// Network grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EgressConfig {
    /// Address ranges a granted tool may reach besides the public internet (one LAN device,
    /// a test network), in CIDR notation: `["192.168.1.20/32"]`. Every backend honours them.
    /// By default, none.
    pub also_public: Vec<IpRange>,
    /// Time to open one upstream connection, in milliseconds. By default, 10,000.
    pub connect_timeout_ms: u64,
    /// Connections one call may hold open at once. By default, 64.
    pub max_connections: u64,
}

impl Default for EgressConfig {
    fn default() -> Self {
        EgressConfig {
            also_public: Vec::new(),
            connect_timeout_ms: 10_000,
            max_connections: 64,
        }
    }
}

/// The HTTP backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Let HTTP tools and OpenAPI fetches reach private and loopback addresses (development
    /// against a local API). By default, `false`: public addresses and `egress.also_public`
    /// only.
    pub allow_private: bool,
    /// Bytes of a response kept; a larger one fails the call. By default, 4 MiB.
    pub max_response_bytes: u64,
    /// Redirects followed within the grant. By default, 5.
    pub max_redirects: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            allow_private: false,
            max_response_bytes: 4 * 1024 * 1024,
            max_redirects: 5,
        }
    }
}

/// Where the discovery worker looks for candidate tools.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// Directories of Slovo manifests. By default, none.
    pub source_dirs: Vec<PathBuf>,
    /// OpenAPI catalogue directories (APIs.guru layout). By default, none.
    pub catalogues: Vec<PathBuf>,
    /// URLs of OpenAPI documents. By default, none.
    pub openapi_urls: Vec<String>,
    /// MCP registry `server.json` files, or directories of them. By default, none.
    pub mcp_registries: Vec<PathBuf>,
    /// Seconds between passes of the worker in `slovo serve` (it runs only when a source is
    /// configured). By default, 30.
    pub interval_s: u64,
    /// A sentence-transformers model directory (`model.safetensors`, `tokenizer.json`,
    /// `config.json`) for ranking by meaning, run in process. By default, none: lexical
    /// ranking only. Nothing is ever downloaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_dir: Option<PathBuf>,
    /// The base URL (`…/v1`) of an OpenAI-compatible `/embeddings` endpoint, used instead of
    /// `model_dir`. By default, none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embeddings_url: Option<String>,
    /// The model the embeddings endpoint is asked for. Required with `embeddings_url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embeddings_model: Option<String>,
    /// Ask the configured LLM (`llm.base_url`, `llm.model`) to confirm or overturn the gap
    /// decisions of a ranking by meaning that lie near the gap model's boundary. By default,
    /// false.
    pub judge: bool,
    /// How long `resolve` waits for the judge, in milliseconds (every attempt included); when
    /// it has not answered by then, the offline decision stands. By default, 3000.
    pub judge_timeout_ms: u64,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            source_dirs: Vec::new(),
            catalogues: Vec::new(),
            openapi_urls: Vec::new(),
            mcp_registries: Vec::new(),
            interval_s: 30,
            model_dir: None,
            embeddings_url: None,
            embeddings_model: None,
            judge: false,
            judge_timeout_ms: 3000,
        }
    }
}

impl DiscoveryConfig {
    /// True when at least one source is configured.
    pub fn has_sources(&self) -> bool {
        !(self.source_dirs.is_empty()
            && self.catalogues.is_empty()
            && self.openapi_urls.is_empty()
            && self.mcp_registries.is_empty())
    }
}

/// `slovo serve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// The address to listen on. By default, `127.0.0.1:8741`.
    pub listen: SocketAddr,
    /// Allow listening on an address other than loopback. By default, `false`.
    pub allow_remote: bool,
    /// Calls that may run at once. By default, 64.
    pub max_concurrent_calls: u64,
    /// Calls that may wait for a slot before the server answers 503. By default, 256.
    pub max_queued_calls: u64,
    /// The largest request body accepted, in bytes. By default, 2 MiB.
    pub max_body_bytes: u64,
    /// Seconds shutdown waits for calls in flight before recording them as cancelled. By
    /// default, 10.
    pub shutdown_grace_s: u64,
    /// Milliseconds this instance counts as alive after each heartbeat; another instance
    /// sharing the database records the calls of one whose lease lapsed as interrupted. By
    /// default, 15000.
    pub instance_lease_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8741)),
            allow_remote: false,
            max_concurrent_calls: 64,
            max_queued_calls: 256,
            max_body_bytes: 2 * 1024 * 1024,
            shutdown_grace_s: 10,
            instance_lease_ms: 15_000,
        }
    }
}

/// The LLM that enriches OpenAPI proposals. Its key, if it needs one, is a secret
/// (`slovo secret set _llm api_key`), never configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// The base URL of an OpenAI-compatible API (`…/v1`). By default, none: no analysis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The model's name. By default, `gpt-4o-mini` when `base_url` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// The kind of a key's value, which says how its environment variable is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Int,
    Str,
    List,
}

/// Every key that can be set, and the kind of its value.
const KEYS: &[(&str, Kind)] = &[
    ("data_dir", Kind::Str),
    ("secret_key", Kind::Str),
    ("database.url", Kind::Str),
    ("sandbox.allow_weaker", Kind::Bool),
    ("sandbox.tmp_mb", Kind::Int),
    ("sandbox.stdout_limit_bytes", Kind::Int),
    ("sandbox.stderr_limit_bytes", Kind::Int),
    ("docker.host", Kind::Str),
    ("docker.registries", Kind::List),
    ("egress.also_public", Kind::List),
    ("egress.connect_timeout_ms", Kind::Int),
    ("egress.max_connections", Kind::Int),
    ("http.allow_private", Kind::Bool),
    ("http.max_response_bytes", Kind::Int),
    ("http.max_redirects", Kind::Int),
    ("discovery.source_dirs", Kind::List),
    ("discovery.catalogues", Kind::List),
    ("discovery.openapi_urls", Kind::List),
    ("discovery.mcp_registries", Kind::List),
    ("discovery.interval_s", Kind::Int),
    ("discovery.model_dir", Kind::Str),
    ("discovery.embeddings_url", Kind::Str),
    ("discovery.embeddings_model", Kind::Str),
    ("discovery.judge", Kind::Bool),
    ("discovery.judge_timeout_ms", Kind::Int),
    ("server.listen", Kind::Str),
    ("server.allow_remote", Kind::Bool),
    ("server.max_concurrent_calls", Kind::Int),
    ("server.max_queued_calls", Kind::Int),
    ("server.max_body_bytes", Kind::Int),
    ("server.shutdown_grace_s", Kind::Int),
    ("server.instance_lease_ms", Kind::Int),
    ("llm.base_url", Kind::Str),
    ("llm.model", Kind::Str),
    ("mcp.npm", Kind::Str),
    ("mcp.npm_cache", Kind::Str),
    ("mcp.npm_registry", Kind::Str),
    ("mcp.python", Kind::Str),
    ("mcp.pip_find_links", Kind::Str),
    ("mcp.pypi_index", Kind::Str),
    ("mcp.fetch_hosts", Kind::List),
    ("mcp.fetch_memory_mb", Kind::Int),
    ("mcp.fetch_storage_mb", Kind::Int),
    ("mcp.fetch_timeout_s", Kind::Int),
    ("mcp.fetch_pids", Kind::Int),
    ("mcp.pool_size", Kind::Int),
    ("mcp.pool_idle_s", Kind::Int),
];

/// Keys whose values are never printed.
const SECRET_KEYS: &[&str] = &["secret_key"];

/// The environment variable of `key`: `SLOVO_` + the key in capitals, dots as underscores.
pub fn env_name(key: &str) -> String {
    format!("SLOVO_{}", key.replace('.', "_").to_ascii_uppercase())
}

/// Every key, with its environment variable, in the order of the documentation.
pub fn keys() -> impl Iterator<Item = (&'static str, String)> {
    KEYS.iter().map(|(k, _)| (*k, env_name(k)))
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "from", rename_all = "lowercase")]
pub enum Source {
    /// The built-in default.
    Default,
    /// A configuration file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
    /// A command-line flag.
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Env(v) => write!(f, "environment {v}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// Values given on the command line: `(key, value, flag)`, applied last.
#[derive(Debug, Clone, Default)]
pub struct Overrides(Vec<(String, toml::Value, String)>);

impl Overrides {
    /// No overrides.
    pub fn new() -> Overrides {
        Overrides::default()
    }

    /// Sets `key` to `value` because of `flag` (e.g. `--listen`).
    pub fn set(&mut self, key: &str, value: impl Into<toml::Value>, flag: &str) -> &mut Self {
        self.0.push((key.to_string(), value.into(), flag.to_string()));
        self
    }

    /// Sets `key` to a list of strings (paths, URLs) because of `flag`, if `values` is not
    /// empty.
    pub fn set_list<S: ToString>(&mut self, key: &str, values: &[S], flag: &str) -> &mut Self {
        if !values.is_empty() {
            let list = values
                .iter()
                .map(|v| toml::Value::String(v.to_string()))
                .collect();
            self.0
                .push((key.to_string(), toml::Value::Array(list), flag.to_string()));
        }
        self
    }
}

/// What [`load`] starts from besides the environment.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--config FILE`: this file must exist and is read instead of the data directory's.
    pub config_file: Option<PathBuf>,
    /// The data directory when nothing else names one (the platform's data directory).
    pub default_data_dir: Option<PathBuf>,
    /// Command-line values (`data_dir` among them, from `--data-dir`).
    pub overrides: Overrides,
}

/// The configuration and where each value came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// The file read, if any.
    pub file: Option<PathBuf>,
    sources: BTreeMap<String, Source>,
    merged: toml::Table,
}

/// One line of `slovo config show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shown {
    /// The key (`egress.also_public`).
    pub key: String,
    /// Its value as TOML, or `<redacted>` for a secret, or `(not set)`.
    pub value: String,
    /// Where it came from.
    pub source: Source,
    /// Its environment variable.
    pub env: String,
}

impl Loaded {
    /// Every key with its effective value and source, secrets redacted.
    pub fn show(&self) -> Vec<Shown> {
        KEYS.iter()
            .map(|(key, _)| {
                let value = match lookup(&self.merged, key) {
                    None => "(not set)".to_string(),
                    Some(_) if SECRET_KEYS.contains(key) => "<redacted>".to_string(),
                    Some(toml::Value::String(s)) if *key == "database.url" => {
                        toml::Value::String(redact_url(s)).to_string()
                    }
                    Some(v) => v.to_string(),
                };
                Shown {
                    key: key.to_string(),
                    value,
                    source: self.sources.get(*key).cloned().unwrap_or(Source::Default),
                    env: env_name(key),
                }
            })
            .collect()
    }

    /// Where `key` came from.
    pub fn source_of(&self, key: &str) -> Source {
        self.sources.get(key).cloned().unwrap_or(Source::Default)
    }
}

/// A configuration that cannot be used; says which file, line, key or variable, and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("failed to read the configuration file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid (syntax, unknown key, wrong type); the message names line and key.
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line, column and key.
        message: String,
    },
    /// An environment variable holds a value its key cannot take.
    #[error("environment variable {var}: {reason}")]
    Env {
        /// The variable.
        var: String,
        /// Why.
        reason: String,
    },
    /// A flag holds a value its key cannot take.
    #[error("{flag}: {reason}")]
    Flag {
        /// The flag.
        flag: String,
        /// Why.
        reason: String,
    },
    /// `data_dir` set where it cannot apply.
    #[error("{}: `data_dir` cannot be set in the data directory's own slovo.toml (use --data-dir, SLOVO_DATA_DIR or --config)", path.display())]
    DataDirInDataDir {
        /// The file.
        path: PathBuf,
    },
    /// No data directory could be determined.
    #[error("no data directory: set SLOVO_DATA_DIR or pass --data-dir")]
    NoDataDir,
}

/// Builds the configuration: defaults < file < `env` < `options.overrides`.
pub fn load(env: &BTreeMap<String, String>, options: LoadOptions) -> Result<Loaded, ConfigError> {
    let mut merged = to_table(&Config::default());
    let mut sources = BTreeMap::new();

    // Where the data directory is decides where the default file is, so it comes first.
    let flag_data_dir = options
        .overrides
        .0
        .iter()
        .rev()
        .find(|(k, _, _)| k == "data_dir")
        .and_then(|(_, v, _)| v.as_str().map(PathBuf::from));
    let env_data_dir = env
        .get(&env_name("data_dir"))
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);

    let file = match &options.config_file {
        Some(path) => Some(read_file(path)?),
        None => {
            let data_dir = flag_data_dir
                .clone()
                .or_else(|| env_data_dir.clone())
                .or_else(|| options.default_data_dir.clone())
                .ok_or(ConfigError::NoDataDir)?;
            let path = data_dir.join("slovo.toml");
            if path.is_file() {
                let (path, table) = read_file(&path)?;
                if table.contains_key("data_dir") {
                    return Err(ConfigError::DataDirInDataDir { path });
                }
                Some((path, table))
            } else {
                None
            }
        }
    };
    if let Some(default) = &options.default_data_dir {
        set(&mut merged, "data_dir", toml::Value::String(path_text(default)));
    }
    if let Some((path, table)) = &file {
        for key in leaves(table) {
            sources.insert(key, Source::File(path.clone()));
        }
        merge(&mut merged, table.clone());
    }

    for (key, kind) in KEYS {
        let var = env_name(key);
        let raw = match env.get(&var) {
            Some(v) => v,
            None if *key == "docker.host" => match env.get("DOCKER_HOST") {
                Some(v) => v,
                None => continue,
            },
            None => continue,
        };
        let value = env_value(*kind, raw).map_err(|reason| ConfigError::Env {
            var: var.clone(),
            reason,
        })?;
        set(&mut merged, key, value);
        let var = if env.contains_key(&var) {
            var
        } else {
            "DOCKER_HOST".to_string()
        };
        sources.insert(key.to_string(), Source::Env(var));
    }

    for (key, value, flag) in options.overrides.0 {
        set(&mut merged, &key, value);
        sources.insert(key, Source::Flag(flag));
    }

    let config = Config::deserialize(toml::Value::Table(merged.clone())).map_err(|e| {
        // The file was checked on its own; what fails here came from a variable or a flag.
        let message = e.to_string();
        match sources
            .iter()
            .find(|(k, s)| !matches!(s, Source::File(_)) && message.contains(k.as_str()))
        {
            Some((_, Source::Env(var))) => ConfigError::Env {
                var: var.clone(),
                reason: message,
            },
            Some((_, Source::Flag(flag))) => ConfigError::Flag {
                flag: flag.clone(),
                reason: message,
            },
            _ => ConfigError::Env {
                var: "SLOVO_*".to_string(),
                reason: message,
            },
        }
    })?;
    Ok(Loaded {
        config,
        file: file.map(|(p, _)| p),
        sources,
        merged,
    })
}

/// Reads and checks a configuration file as strictly as a manifest.
fn read_file(path: &Path) -> Result<(PathBuf, toml::Table), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |message: String| ConfigError::File {
        path: path.to_path_buf(),
        message: message.trim_end().replace('\n', "\n  "),
    };
    // Typed first: unknown keys and wrong types are named with their line.
    toml::from_str::<Config>(&text).map_err(|e| bad(e.to_string()))?;
    let table = text.parse::<toml::Table>().map_err(|e| bad(e.to_string()))?;
    Ok((path.to_path_buf(), table))
}

fn env_value(kind: Kind, raw: &str) -> Result<toml::Value, String> {
    let raw = raw.trim();
    match kind {
        Kind::Bool => match raw.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(toml::Value::Boolean(true)),
            "0" | "false" | "no" | "off" | "" => Ok(toml::Value::Boolean(false)),
            other => Err(format!("{other:?} is not a boolean (use 1 or 0)")),
        },
        Kind::Int => raw
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(toml::Value::Integer)
            .ok_or_else(|| format!("{raw:?} is not a whole number")),
        Kind::Str => Ok(toml::Value::String(raw.to_string())),
        Kind::List => Ok(toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        )),
    }
}

fn to_table(config: &Config) -> toml::Table {
    match toml::Value::try_from(config) {
        Ok(toml::Value::Table(t)) => t,
        // Every field of Config serialises to TOML; an empty table would only lose defaults
        // that deserialising fills in again.
        _ => toml::Table::new(),
    }
}

fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Sets a dotted key, creating sections on the way.
fn set(table: &mut toml::Table, key: &str, value: toml::Value) {
    match key.split_once('.') {
        None => {
            table.insert(key.to_string(), value);
        }
        Some((section, rest)) => {
            let entry = table
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let toml::Value::Table(t) = entry {
                set(t, rest, value);
            }
        }
    }
}

fn lookup<'a>(table: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
    match key.split_once('.') {
        None => table.get(key),
        Some((section, rest)) => lookup(table.get(section)?.as_table()?, rest),
    }
}

/// Merges `from` into `into`: sections merge, other values replace.
fn merge(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// The dotted keys of every value in `table`.
fn leaves(table: &toml::Table) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in table {
        match v {
            toml::Value::Table(t) => out.extend(leaves(t).into_iter().map(|sub| format!("{k}.{sub}"))),
            _ => out.push(k.clone()),
        }
    }
    out
}

/// `scheme://user:password@host/…` with the password replaced.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            if userinfo.contains(':') {
                format!("{scheme}://{user}:<redacted>@{host}{path}")
            } else {
                format!("{scheme}://{user}@{host}{path}")
            }
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
