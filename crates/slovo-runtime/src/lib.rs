//! The one path every operation of Slovo Tools takes.
//!
//! # Brief overview
//! [`Runtime`] owns the store, the backends and the data directory. The CLI, the REST API and
//! the MCP server are thin doors into its methods:
//! - lifecycle: [`Runtime::import`], [`Runtime::approve`], [`Runtime::disable`],
//!   [`Runtime::enable`], [`Runtime::revoke`];
//! - reading: [`Runtime::list`], [`Runtime::show`], [`Runtime::executions`],
//!   [`Runtime::execution`];
//! - the call path: [`Runtime::call`] (lookup → grant check → argument validation → record as
//!   running → sandbox spec from the grant → backend → record the result → audit);
//! - MCP servers by name: [`Runtime::import_mcp`] (fetch, list the tools in the sandbox,
//!   propose);
//! - capability gaps and discovery: [`Runtime::resolve`], [`Runtime::discovery_requests`],
//!   [`Runtime::run_discovery_once`], [`Runtime::reject_request`];
//! - changes made through other instances: [`Runtime::spawn_change_feed`],
//!   [`Runtime::tool_list_changes`];
//! - the audit trail: [`Runtime::verify_audit`], and its signed checkpoints outside the
//!   database: [`Runtime::checkpoint_audit`], [`Runtime::flush_audit_checkpoints`].
//!
//! Architecture invariant: no front end re-implements validation, permission checks or
//! logging; each transition is one store transaction with exactly one audit event.
#![deny(missing_docs)]

mod abandon;
mod access;
mod audit_chains;
mod audit_read;
mod audit_record;
mod bundles;
mod call;
mod chain;
mod changes;
mod checkpoint;
mod discovery;
mod error;
mod executions;
mod instances;
mod judge;
mod lifecycle;
mod mcp_import;
mod mcp_pin;
mod proposals;
mod secrets;
mod semantic;
mod signin_links;
mod views;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use slovo_sandbox::Backends;
use slovo_store::Store;

pub use access::NewToken;
pub use call::{CallRequest, CompiledTool};
pub use chain::{ChainHints, ChainView, StepToolView, StepView};
pub use changes::{CHANGE_SAFETY_INTERVAL, DEFAULT_CHANGE_POLL_INTERVAL};
pub use checkpoint::{
    CHECKPOINT_EVERY_EVENTS, CHECKPOINT_INTERVAL, CHECKPOINT_KEY_FILE, CHECKPOINT_LOG_FILE,
};
pub use discovery::{
    DEFAULT_RESOLVE_LIMIT, DiscoveryRef, DiscoveryRun, ResolveOutcome, STALE_SEARCH_MS, UrlFetcher,
};
pub use error::{ErrorKind, RuntimeError};
pub use executions::{ExecutionCursor, ExecutionFilter, ExecutionView};
pub use instances::{DEFAULT_INSTANCE_LEASE, Heartbeat, Heartbeats, InstanceView};
pub use judge::{BORDERLINE_BAND, DecidedBy, GapDecision, JUDGED_CANDIDATES, JudgeSettings, is_borderline};
pub use lifecycle::{ImportOutcome, ImportReport, ImportSource, OpenApiImport};
pub use mcp_import::{FetchLimits, McpImport, McpImportReport, McpPackages, McpSource, McpToolView};
pub use mcp_pin::MCP_IMPORT_RECORD;
pub use proposals::MAX_REJECT_REASON_CHARS;
pub use secrets::LLM_SECRETS;
pub use semantic::{EmbedFailure, Embedder, FUSED_RANKER, RankingReport, probe as probe_ranking};
pub use signin_links::{DEFAULT_SIGNIN_LINK_TTL, SigninLink};
pub use slovo_bundle::{BUNDLE_MANIFEST_NAMES, BundleRefusal};
pub use slovo_discovery::sources::SourceConfig;
pub use views::{
    AuditReport, DiscoveryRequestView, TokenView, ToolStateView, ToolSummary, ToolView, VersionView,
};
// What the front ends name of the layers below, so that they depend on the runtime alone: the
// ingester's options, the dashboard's session row and the status of a discovery request
// (executions, tools, tokens and discovery requests have views of their own).
pub use slovo_openapi as openapi;
pub use slovo_store::{
    AuditChainHead, AuditCursor, AuditQuery, BadAuditCursor, DiscoveryStatus, MAIN_AUDIT_CHAIN, SessionRow,
};

/// Result of a runtime operation.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// Who asked for an operation: recorded on every audit event and execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

impl Actor {
    /// The local command line (the person at the machine), named by the account this process
    /// runs as. The account comes from the system's user database by the real uid, not from
    /// `$USER`: the audit trail should name who ran the command, not what the environment claims.
    pub fn cli() -> Actor {
        Actor(format!("cli:{}", account_name()))
    }
}

/// The name of the account of this process's real uid, or `uid:N` when the user database has no
/// entry for it (a container started with an arbitrary uid).
fn account_name() -> String {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let mut buffer = vec![0 as libc::c_char; 4096];
    // SAFETY: every pointer is valid for the call: `entry` and `found` are ours, and `buffer`
    // is passed with its length; getpwuid_r writes the strings of `entry` into `buffer` only.
    let status = unsafe { libc::getpwuid_r(uid, &mut entry, buffer.as_mut_ptr(), buffer.len(), &mut found) };
    if status != 0 || found.is_null() || entry.pw_name.is_null() {
        return format!("uid:{uid}");
    }
    // SAFETY: on success pw_name points at a NUL-terminated string inside `buffer`, alive here.
    unsafe { std::ffi::CStr::from_ptr(entry.pw_name) }
        .to_string_lossy()
        .into_owned()
}

/// Creates the data directory `dir` if it does not exist, private to the account running Slovo
/// (0700): it holds the database, the secret key and every call's input and output. An existing
/// directory keeps its mode; one that others can read is reported (`slovo doctor` says so too).
pub fn create_data_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| RuntimeError::io("create", dir, e))?;
    let mode = std::fs::metadata(dir)
        .map_err(|e| RuntimeError::io("stat", dir, e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            "the data directory {} is open to other accounts (mode {:o}); `chmod 700` it",
            dir.display(),
            mode & 0o777
        );
    }
    Ok(())
}

/// What the runtime takes from the configuration (`slovo-config`), beyond its store, backends
/// and data directory.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// The key that seals secrets, as 64 hex characters, instead of the key file in the data
    /// directory. By default, none (the key file, created on first use).
    pub secret_key: Option<zeroize::Zeroizing<String>>,
    /// Let OpenAPI documents be fetched from private and loopback addresses. By default,
    /// `false`.
    pub http_allow_private: bool,
    /// Which addresses count as public for fetches (the same policy the backends apply to
    /// tools). By default, globally routable addresses only.
    pub public: slovo_core::net::PublicPolicy,
    /// How long this instance counts as alive after each heartbeat (several instances on one
    /// PostgreSQL; see [`Runtime::heartbeat`]). By default, [`DEFAULT_INSTANCE_LEASE`].
    pub instance_lease: std::time::Duration,
    /// Sentence embeddings for ranking by meaning (`discovery.model_dir` or
    /// `discovery.embeddings_url`). By default, none: `resolve` ranks lexically.
    pub embedder: Option<Arc<semantic::Embedder>>,
    /// The LLM that may overturn borderline gap decisions (`discovery.judge` with `llm.*`).
    /// By default, none: the offline decision is final.
    pub gap_judge: Option<judge::JudgeSettings>,
    /// Where MCP server packages are fetched from (`mcp.*`). By default, nowhere: importing
    /// `npm:` or `pypi:` fails until a cache or registry is configured.
    pub mcp_packages: McpPackages,
    /// How often the change feed polls the database when no notification can reach it (SQLite,
    /// or the PostgreSQL listener down). By default, [`DEFAULT_CHANGE_POLL_INTERVAL`].
    pub change_poll_interval: std::time::Duration,
}

impl Default for RuntimeSettings {
    fn default() -> RuntimeSettings {
        RuntimeSettings {
            secret_key: None,
            http_allow_private: false,
            public: slovo_core::net::PublicPolicy::default(),
            instance_lease: DEFAULT_INSTANCE_LEASE,
            embedder: None,
            gap_judge: None,
            mcp_packages: McpPackages::default(),
            change_poll_interval: DEFAULT_CHANGE_POLL_INTERVAL,
        }
    }
}

/// The runtime: store + backends + data directory.
pub struct Runtime {
    store: Store,
    backends: Backends,
    data_dir: PathBuf,
    settings: RuntimeSettings,
    /// Parsed manifests and compiled argument validators, by (tool, version). A version's
    /// manifest never changes once imported, so entries never go stale.
    compiled: RwLock<HashMap<(String, String), Arc<CompiledTool>>>,
    /// What the call path last read of each active tool, checked against the tool's revision by
    /// the statement that records each call (see `call.rs`).
    serving: RwLock<HashMap<String, Arc<call::Serving>>>,
    /// Executions this runtime started and has not finished recording.
    inflight: Mutex<HashSet<String>>,
    /// Executions whose result could not be written (the database failed at that moment):
    /// still `running` in the store until [`Runtime::heartbeat`] records them as interrupted.
    unrecorded: Mutex<HashSet<String>>,
    /// Identifies this installation's runtime on execution records (see [`Runtime::instance_id`]).
    instance_id: String,
    /// The capability index for `resolve`, rebuilt when a tool changes.
    discovery: discovery::DiscoveryCache,
    /// Signs the audit chain's head into the checkpoint log outside the database.
    checkpoints: Arc<checkpoint::Checkpoints>,
    /// How this runtime hears of changes made through others (see `changes`).
    changes: changes::ChangeFeed,
}

impl Runtime {
    /// A runtime over `store`, running tools with `backends`, keeping bundles and state under
    /// `data_dir`.
    pub fn new(store: Store, backends: Backends, data_dir: impl Into<PathBuf>) -> Runtime {
        let data_dir = data_dir.into();
        let checkpoints = checkpoint::Checkpoints::new(store.clone(), data_dir.clone());
        Runtime {
            store,
            backends,
            data_dir,
            settings: RuntimeSettings::default(),
            checkpoints,
            compiled: RwLock::default(),
            serving: RwLock::default(),
            inflight: Mutex::default(),
            unrecorded: Mutex::default(),
            instance_id: String::new(),
            discovery: discovery::DiscoveryCache::default(),
            changes: changes::ChangeFeed::default(),
        }
        .with_instance_id()
    }

    /// The same runtime with `settings`.
    pub fn with_settings(mut self, settings: RuntimeSettings) -> Runtime {
        self.settings = settings;
        self
    }

    /// The settings.
    pub fn settings(&self) -> &RuntimeSettings {
        &self.settings
    }

    /// Fetches an OpenAPI document from an http(s) URL under the configured address policy
    /// (public addresses and `egress.also_public`, or any with `http.allow_private`), checked
    /// on every resolution and redirect. Every front end fetches through this one operation.
    pub async fn fetch_openapi(&self, url: &str) -> Result<slovo_openapi::Source> {
        let config = slovo_sandbox::http::HttpConfig {
            max_response_bytes: slovo_openapi::DEFAULT_MAX_DOCUMENT_BYTES,
            allow_private_addresses: self.settings.http_allow_private,
            public: self.settings.public.clone(),
            ..slovo_sandbox::http::HttpConfig::default()
        };
        let (final_url, bytes) = slovo_sandbox::http::fetch_document_with(url, &config).await?;
        Ok(slovo_openapi::Source::from_url(final_url, bytes))
    }

    /// The fetcher the discovery worker uses for `discovery.openapi_urls`, under the same
    /// policy as [`Runtime::fetch_openapi`].
    pub fn url_fetcher(&self) -> UrlFetcher {
        UrlFetcher {
            allow_private_addresses: self.settings.http_allow_private,
            public: self.settings.public.clone(),
            ..UrlFetcher::default()
        }
    }

    /// The identity this runtime records on executions: kept in `instance-id` in the data
    /// directory, so it survives restarts (a restarted server recognises the calls it was
    /// running when it crashed) and differs between installations sharing one PostgreSQL.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    fn with_instance_id(mut self) -> Self {
        let path = self.data_dir.join("instance-id");
        self.instance_id = match std::fs::read_to_string(&path) {
            Ok(id) if !id.trim().is_empty() => id.trim().to_string(),
            _ => {
                let id = uuid::Uuid::now_v7().to_string();
                // If the file cannot be written the id lives for this process only; recovery
                // then falls back to the age rule.
                if std::fs::create_dir_all(&self.data_dir)
                    .and_then(|()| std::fs::write(&path, &id))
                    .is_err()
                {
                    tracing::warn!(path = %path.display(), "failed to persist the instance id");
                }
                id
            }
        };
        self
    }

    /// Ends this runtime's use of the host and the database, once no call runs any more: the
    /// backends let go of what they hold (state volumes no other process uses are unmounted)
    /// and the store's connections close.
    pub async fn shutdown(&self) {
        self.changes.stop();
        self.backends.shutdown().await;
        self.store.close().await;
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The backends.
    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    fn volume_dir(&self, tool: &str) -> PathBuf {
        self.data_dir.join("volumes").join(tool)
    }

    fn bundles_dir(&self) -> PathBuf {
        self.data_dir.join("bundles")
    }
}

#[cfg(test)]
mod actor_tests {
    use super::Actor;

    #[test]
    fn the_cli_actor_is_the_account_of_the_real_uid() {
        let account = std::process::Command::new("id").arg("-un").output().unwrap();
        let account = String::from_utf8(account.stdout).unwrap().trim().to_string();
        assert!(!account.is_empty());
        assert_eq!(Actor::cli(), Actor(format!("cli:{account}")));
    }
}
