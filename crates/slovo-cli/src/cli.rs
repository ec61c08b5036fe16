//! The command line, as data.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Slovo Tools: find tools, approve what each may do, run every call sandboxed and audited.
#[derive(Debug, Parser)]
#[command(name = "slovo", version, about, long_about = None)]
pub struct Cli {
    /// Data directory (SQLite database, bundles, tool state; also SLOVO_DATA_DIR). By default
    /// the platform data directory, e.g. ~/.local/share/slovo.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// The configuration file (TOML). By default `slovo.toml` in the data directory, if it
    /// exists. Environment variables (SLOVO_*) and flags override it; `slovo config show`
    /// explains every value.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// PostgreSQL URL (postgres://…) to use instead of the embedded SQLite database (also
    /// SLOVO_DATABASE_URL).
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,

    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,

    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import, inspect, approve and revoke tools.
    #[command(subcommand)]
    Tool(ToolCommand),
    /// Call a capability of an active tool.
    Call(CallArgs),
    /// List executions, newest first.
    Executions(ExecutionsArgs),
    /// Inspect one execution.
    #[command(subcommand)]
    Execution(ExecutionCommand),
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// API access tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Turn OpenAPI documents into tool proposals.
    #[command(subcommand)]
    Openapi(OpenapiCommand),
    /// Turn MCP servers (npm, PyPI, a registry server.json) into tool proposals.
    #[command(subcommand, name = "mcp-server")]
    McpServer(McpServerCommand),
    /// Credentials of tools, encrypted at rest.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Which capability serves a request (ranked, with the arguments it gives), or a gap, which
    /// opens a discovery request.
    Resolve(ResolveArgs),
    /// Discovery requests: list them, run the worker once, reject one, evaluate the ranking.
    #[command(subcommand)]
    Discover(DiscoverCommand),
    /// What this host provides for sandboxing, and what each backend will therefore do.
    Doctor,
    /// The instances sharing this database (several `slovo serve` over one PostgreSQL): alive,
    /// lapsed or stopped.
    Instances,
    /// Serve the REST API (and MCP over streamable HTTP at /mcp).
    Serve(ServeArgs),
    /// Serve MCP on stdin and stdout for one local client (calls are recorded as mcp:stdio).
    Mcp,
    /// Print a one-time link that signs a browser in to the approval dashboard of `slovo serve`
    /// (and open it where there is a graphical browser).
    Dashboard(DashboardArgs),
    /// The configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration: every key, its value and where it came from
    /// (default, file, environment, flag). Secrets are never printed.
    Show,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; it is printed once and only its hash is stored.
    Create {
        /// admin (lifecycle, grants, secrets, tokens), agent (list, resolve, call) or reader
        /// (executions, audit).
        #[arg(long)]
        role: String,
        /// What the token is for.
        #[arg(long)]
        label: Option<String>,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id.
    Revoke {
        /// The token's id (the part after `slv_`).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum OpenapiCommand {
    /// Import an OpenAPI document (Swagger 2.0, OpenAPI 3.0 or 3.1; JSON or YAML) from a file or
    /// an http(s) URL as a proposal waiting for approval.
    Import(OpenapiImportArgs),
}

#[derive(Debug, Subcommand)]
pub enum McpServerCommand {
    /// Fetch an MCP server (install scripts off, wheels only, integrity checked) or find its
    /// image here by digest, read its tools in its sandbox, and propose it as a tool waiting
    /// for approval.
    Import(McpServerImportArgs),
}

#[derive(Debug, Args)]
pub struct McpServerImportArgs {
    /// `npm:PACKAGE@VERSION`, `pypi:PACKAGE==VERSION` (exact versions),
    /// `oci:IMAGE@sha256:DIGEST` (an image already on this host), a registry `server.json` (or
    /// a directory holding one), or a bundle directory.
    pub source: String,
    /// The tool's name (default: from the package's).
    #[arg(long)]
    pub name: Option<String>,
    /// An environment variable for the server, `NAME=VALUE` (repeatable), e.g.
    /// `MEMORY_FILE_PATH=/data/memory.jsonl`.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// An argument after the server's program (repeatable), e.g. `/data`; for an image, the
    /// container's command instead of the image's.
    #[arg(long = "arg", value_name = "ARG", allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// One of the server's secrets (a remote server's secret header, a package or image
    /// server's secret environment variable, by its secret name), `NAME=VALUE`, or `NAME` to
    /// be asked for the value (read from stdin when it is not a terminal); repeatable. Its
    /// tools are listed with it, and it is stored encrypted with the proposal.
    #[arg(long = "secret", value_name = "NAME[=VALUE]")]
    pub secrets: Vec<String>,
}

#[derive(Debug, Args)]
pub struct OpenapiImportArgs {
    /// The document: a path or an http(s) URL.
    pub source: String,
    /// The tool's name (default: from the document's title).
    #[arg(long)]
    pub name: Option<String>,
    /// The API's base URL (default: from `servers`, or `host` + `basePath`).
    #[arg(long)]
    pub base_url: Option<String>,
    /// Only operations with this tag (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Only operations whose path starts with this or matches this `*` glob (repeatable).
    #[arg(long = "path")]
    pub paths: Vec<String>,
    /// Only operations with this method (repeatable).
    #[arg(long = "method")]
    pub methods: Vec<String>,
    /// Most operations in one tool: a larger API becomes several tools, one per tag.
    #[arg(long, default_value_t = 300)]
    pub max_operations: usize,
    /// Refuse the document on any specification violation or skipped operation.
    #[arg(long)]
    pub strict: bool,
    /// Enrich the proposal with an LLM: the base URL of an OpenAI-compatible API (…/v1; also
    /// `llm.base_url`). Its key, if it needs one, comes from `slovo secret set _llm api_key`.
    #[arg(long, value_name = "URL")]
    pub llm_base_url: Option<String>,
    /// The LLM's model name (also `llm.model`).
    #[arg(long, value_name = "MODEL")]
    pub llm_model: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Store a tool's secret. The value is read from stdin (or prompted for on a terminal),
    /// never from the command line, where other users could see it.
    Set {
        /// The tool.
        tool: String,
        /// The secret's name (e.g. api_key).
        name: String,
    },
    /// List a tool's secret names (never values).
    List {
        /// The tool.
        tool: String,
    },
    /// Delete a tool's secret.
    Delete {
        /// The tool.
        tool: String,
        /// The secret's name.
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (`server.listen`; by default 127.0.0.1:8741).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Allow listening on an address other than loopback (the API would be reachable from the
    /// network; `server.allow_remote`).
    #[arg(long)]
    pub allow_remote: bool,
    /// Calls that may run at once (`server.max_concurrent_calls`; by default 64).
    #[arg(long, value_name = "N")]
    pub max_concurrent_calls: Option<u64>,
    /// Calls that may wait for a slot before the server answers 503
    /// (`server.max_queued_calls`; by default 256).
    #[arg(long, value_name = "N")]
    pub max_queued_calls: Option<u64>,
    /// Seconds shutdown waits for calls in flight before recording them as cancelled
    /// (`server.shutdown_grace_s`; by default 10).
    #[arg(long, value_name = "SECONDS")]
    pub shutdown_grace: Option<u64>,
    /// Where the discovery worker looks for candidates (it runs only if one is given).
    #[command(flatten)]
    pub discovery: DiscoverySourceArgs,
    /// Seconds between passes of the discovery worker (`discovery.interval_s`; by default 30).
    #[arg(long, value_name = "SECONDS")]
    pub discovery_interval: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum ToolCommand {
    /// Import a manifest (YAML or JSON), a bundle directory or tarball, or `-` for stdin.
    Import {
        /// Path to a manifest, bundle directory or .tar/.tar.gz bundle; `-` reads a manifest from stdin.
        path: String,
    },
    /// List tools.
    List,
    /// Show a tool: requested versus granted permissions, status, versions.
    Show {
        /// The tool.
        name: String,
    },
    /// Approve a tool's pending version, optionally granting less than it requested, and
    /// install it.
    Approve(ApproveArgs),
    /// Stop a tool from serving calls, keeping it installed.
    Disable {
        /// The tool.
        name: String,
    },
    /// Let a disabled tool serve calls again.
    Enable {
        /// The tool.
        name: String,
    },
    /// Prepare an active or disabled tool's version again (e.g. after loading its Docker
    /// image); its grant and state stay as approved.
    Reinstall {
        /// The tool.
        name: String,
    },
    /// Withdraw a tool for good, keeping its state unless --purge-state.
    Revoke {
        /// The tool.
        name: String,
        /// Destroy the tool's persistent state too.
        #[arg(long)]
        purge_state: bool,
    },
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The tool.
    pub name: String,
    /// Grant no network access at all.
    #[arg(long, conflicts_with = "allow_host")]
    pub no_network: bool,
    /// Grant only this host (repeatable; each must be covered by the request).
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_host: Vec<String>,
    /// Memory limit, e.g. 64M or 1G.
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// CPU share in percent of one CPU.
    #[arg(long, value_name = "PERCENT")]
    pub cpu: Option<u32>,
    /// Storage quota, e.g. 10M.
    #[arg(long, value_name = "SIZE")]
    pub storage: Option<String>,
    /// Timeout of one call, in seconds.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Maximum processes and threads.
    #[arg(long, value_name = "N")]
    pub pids: Option<u32>,
    /// When the grant lapses (RFC 3339, e.g. 2027-01-01T00:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub expires: Option<String>,
}

#[derive(Debug, Args)]
pub struct CallArgs {
    /// The tool.
    pub tool: String,
    /// The capability.
    pub capability: String,
    /// Arguments as a JSON object; `-` reads them from stdin.
    #[arg(long, default_value = "{}", value_name = "JSON")]
    pub args: String,
    /// The assistant's conversation id, for the record.
    #[arg(long, value_name = "ID")]
    pub conversation: Option<String>,
    /// The turn id within the conversation.
    #[arg(long, value_name = "ID")]
    pub turn: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExecutionsArgs {
    /// Only this tool.
    #[arg(long)]
    pub tool: Option<String>,
    /// Only this status (running, success, failure, timeout, killed, cancelled, interrupted).
    #[arg(long)]
    pub status: Option<String>,
    /// At most this many (1 to 1000).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=1000))]
    pub limit: i64,
    /// Only executions older than this execution id (the next page).
    #[arg(long, value_name = "ID")]
    pub before: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ExecutionCommand {
    /// Show one execution in full.
    Show {
        /// The execution id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain, compare it with the signed checkpoints outside the database, and
    /// report the first thing that does not fit.
    Verify,
    /// Sign a checkpoint of the chain's head now (checked to extend the newest checkpoint).
    Checkpoint,
}

#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// The request, in words ("what's the air quality in Lyon").
    pub text: String,
    /// At most this many candidates.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub limit: u16,
}

/// Where discovery looks for candidate tools, besides the configured `discovery.*` sources
/// (flags replace the configured list of the same kind). Each flag repeats.
#[derive(Debug, Clone, Args)]
pub struct DiscoverySourceArgs {
    /// A directory of Slovo manifests (`discovery.source_dirs`).
    #[arg(long = "source-dir", value_name = "DIR")]
    pub source_dirs: Vec<PathBuf>,
    /// An OpenAPI catalogue directory in the APIs.guru layout (`discovery.catalogues`).
    #[arg(long = "catalogue", value_name = "DIR")]
    pub catalogues: Vec<PathBuf>,
    /// The URL of an OpenAPI document, http or https (`discovery.openapi_urls`); public
    /// addresses only unless `http.allow_private` or `egress.also_public` say otherwise.
    #[arg(long = "openapi-url", value_name = "URL")]
    pub openapi_urls: Vec<String>,
    /// An MCP registry server.json file, or a directory of them (`discovery.mcp_registries`).
    #[arg(long = "mcp-registry", value_name = "PATH")]
    pub mcp_registry: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum DiscoverCommand {
    /// List discovery requests.
    List,
    /// Run the discovery worker once over the pending requests.
    Run(DiscoverySourceArgs),
    /// Reject a request (and withdraw its proposal if it still waits for approval).
    Reject {
        /// The request's id.
        id: String,
    },
    /// Measure the ranking on a catalogue: recall@1, recall@5, MRR, gap precision and recall;
    /// or, with --bfcl, on BFCL's live sets (each request with its own functions), lexical and,
    /// with --model-dir, by meaning and fused, on the development and the held-out part.
    Eval {
        /// The catalogue (APIs.guru layout, or a directory of Slovo manifests).
        #[arg(
            long,
            value_name = "DIR",
            requires = "queries",
            required_unless_present = "bfcl"
        )]
        catalogue: Option<PathBuf>,
        /// JSON lines of {"query": "...", "expected": {"tool": "...", "capability": "..."} | null}.
        #[arg(long, value_name = "FILE", requires = "catalogue")]
        queries: Option<PathBuf>,
        /// A BFCL data directory with BFCL_v4_live_{multiple,irrelevance,relevance}.json and
        /// possible_answer/.
        #[arg(long, value_name = "DIR", conflicts_with = "catalogue")]
        bfcl: Option<PathBuf>,
        /// A sentence-transformers model directory to rank by meaning too (default:
        /// discovery.model_dir).
        #[arg(long, value_name = "DIR", requires = "bfcl")]
        model_dir: Option<PathBuf>,
        /// Fit the gap model on the development part first (prints the weights to commit).
        #[arg(long, requires = "bfcl")]
        fit_gap: bool,
    },
}

#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Only print the link; do not try to open a browser.
    #[arg(long)]
    pub no_open: bool,
    /// Minutes the link stays usable (it signs in once).
    #[arg(long, value_name = "MINUTES", default_value_t = 10)]
    pub valid_for: u64,
}
