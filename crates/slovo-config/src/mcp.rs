//! The `[mcp]` section: where MCP servers imported by name are fetched from, the limits of
//! the sandbox that fetches them online, and the warm pool.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where `slovo mcp-server import` fetches packages from. Nothing is fetched from anywhere
/// not configured here: by default, importing `npm:` or `pypi:` fails, saying which key to set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpConfig {
    /// The `npm` program. By default, `npm` on the path.
    pub npm: PathBuf,
    /// An npm cache to install from, offline (`npm --offline --cache`). By default, none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub npm_cache: Option<PathBuf>,
    /// An npm registry to fetch from when no cache is set (`npm --registry`). By default, none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub npm_registry: Option<String>,
    /// The Python whose pip installs PyPI servers (and which runs them in the sandbox). By
    /// default, `/usr/bin/python3`.
    pub python: PathBuf,
    /// A directory of wheels to install from, offline (`pip --no-index --find-links`). By
    /// default, none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pip_find_links: Option<PathBuf>,
    /// A package index to fetch from when no wheel directory is set (`pip --index-url`). By
    /// default, none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pypi_index: Option<String>,
    /// More `host[:port]`s a fetch from `npm_registry` or `pypi_index` may reach besides the
    /// registry's own host and port (the fetch runs in a sandbox whose only network they are),
    /// for a registry that serves its files elsewhere: `files.pythonhosted.org:443` for
    /// `https://pypi.org/simple`. By default, none.
    pub fetch_hosts: Vec<String>,
    /// Memory of the sandbox that fetches a package online, in MB: npm resolving a tree of
    /// packages needs more than a server. By default, 1024.
    pub fetch_memory_mb: u64,
    /// Size of that sandbox's `/data`, in MB: everything the package manager writes, its cache
    /// included. By default, 2048.
    pub fetch_storage_mb: u64,
    /// Seconds a fetch may take in that sandbox, from start to exit. By default, 300.
    pub fetch_timeout_s: u64,
    /// Processes and threads in that sandbox (node's own threads count). By default, 128.
    pub fetch_pids: u64,
    /// Warm sandboxes kept per recently called MCP server tool, each started and initialised
    /// ahead of its call and used for that one call only; 0 starts every server cold. Each
    /// counts against the host like a running call (the grant's memory limit). By default, 1.
    pub pool_size: u64,
    /// Seconds after its last call that a tool's warm sandboxes are destroyed. By default, 300.
    pub pool_idle_s: u64,
}

impl Default for McpConfig {
    fn default() -> Self {
        McpConfig {
            npm: PathBuf::from("npm"),
            npm_cache: None,
            npm_registry: None,
            python: PathBuf::from("/usr/bin/python3"),
            pip_find_links: None,
            pypi_index: None,
            fetch_hosts: Vec::new(),
            fetch_memory_mb: 1024,
            fetch_storage_mb: 2048,
            fetch_timeout_s: 300,
            fetch_pids: 128,
            pool_size: 1,
            pool_idle_s: 300,
        }
    }
}
