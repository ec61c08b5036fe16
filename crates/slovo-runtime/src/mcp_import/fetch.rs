//! Fetching a package once into a directory that becomes the tool's bundle: npm with its
//! install scripts disabled, pip with wheels only, each from the configured cache (offline, on
//! the host) or the configured registry (online, in a sandbox of its own whose only network is
//! that registry: `fetch_sandbox`), never from anywhere that is not configured. The registry's
//! integrity data is checked and returned for the record.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::fetch_sandbox::FetchLimits;
use super::source::{Package, Registry};

/// Where MCP server packages come from (the `mcp.*` configuration). Nothing is fetched from a
/// place that is not configured here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpPackages {
    /// The `npm` program. By default, `npm` on the path (online, the sandbox's path).
    pub npm: PathBuf,
    /// An npm cache to install from offline (`npm --offline --cache DIR`).
    pub npm_cache: Option<PathBuf>,
    /// An npm registry to fetch from (`npm --registry URL`), when no cache is configured.
    pub npm_registry: Option<String>,
    /// The Python whose pip installs PyPI servers; the same one runs them in the sandbox. By
    /// default, `/usr/bin/python3`.
    pub python: PathBuf,
    /// A directory of wheels to install from offline (`pip --no-index --find-links DIR`).
    pub pip_find_links: Option<PathBuf>,
    /// A package index to fetch from (`pip --index-url URL`), when no wheel directory is
    /// configured.
    pub pypi_index: Option<String>,
    /// More `host[:port]`s an online fetch may reach besides its registry's own, for a
    /// registry that serves its files elsewhere (`files.pythonhosted.org:443` for `pypi.org`).
    pub fetch_hosts: Vec<String>,
    /// The limits of the sandbox an online fetch runs in.
    pub fetch_limits: FetchLimits,
}

impl Default for McpPackages {
    fn default() -> McpPackages {
        McpPackages {
            npm: PathBuf::from("npm"),
            npm_cache: None,
            npm_registry: None,
            python: PathBuf::from("/usr/bin/python3"),
            pip_find_links: None,
            pypi_index: None,
            fetch_hosts: Vec::new(),
            fetch_limits: FetchLimits::default(),
        }
    }
}

/// Why fetching a package failed; each message reads as a sentence for a person.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    /// Neither a cache nor a registry is configured for the package's registry.
    #[error("{packages} packages are not configured: set {settings}")]
    NotConfigured {
        /// `npm` or `PyPI`.
        packages: &'static str,
        /// The settings that would configure it.
        settings: &'static str,
    },
    /// The package manager's command is empty.
    #[error("{what}: no program")]
    NoProgram {
        /// The command, for a person (`npm install … from …`).
        what: String,
    },
    /// The package manager could not be started.
    #[error("{what}: could not start: {source}")]
    Start {
        /// The command, for a person.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// The package manager ran on the host and failed.
    #[error("{what} failed ({status}): {said}")]
    Failed {
        /// The command, for a person.
        what: String,
        /// How it ended.
        status: std::process::ExitStatus,
        /// The start of what it wrote (stderr, then stdout).
        said: String,
    },
    /// The package manager failed in its fetch sandbox (boxed: it carries what the package
    /// manager said and every refused connection).
    #[error(transparent)]
    InSandbox(#[from] Box<super::fetch_sandbox::SandboxFailure>),
    /// A directory of the import's work directory cannot be made, or the fetch sandbox cannot
    /// be run here.
    #[error("{what}: {reason}")]
    Setup {
        /// What was being prepared.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// The configured registry or fetch host cannot be granted to the fetch sandbox.
    #[error("{setting}: {reason}")]
    Grant {
        /// The registry URL, or `mcp.fetch_hosts[i]`.
        setting: String,
        /// Why.
        reason: String,
    },
    /// A file the package manager should have written cannot be read.
    #[error("{what}: {source}")]
    Unread {
        /// The file, for a person (`npm wrote no …/package-lock.json`, `pip wrote no report`).
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// The package manager's record is not JSON.
    #[error("{document}: {source}")]
    NotJson {
        /// `package-lock.json` or `pip's report`.
        document: &'static str,
        /// Why.
        source: serde_json::Error,
    },
    /// The lockfile has no `packages` table.
    #[error("package-lock.json has no \"packages\" (npm 7 or later is needed)")]
    OldLockfile,
    /// The lockfile does not list the package asked for.
    #[error("package-lock.json: {key} is not installed")]
    NotInstalled {
        /// The lockfile key (`node_modules/<name>`).
        key: String,
    },
    /// Another version than the one asked for was installed.
    #[error("{manager} installed {package} {installed}, not the version asked for ({asked})")]
    OtherVersion {
        /// `npm` or `pip`.
        manager: &'static str,
        /// The package.
        package: String,
        /// The version installed.
        installed: String,
        /// The version asked for.
        asked: String,
    },
    /// A package of the lockfile has no integrity hash.
    #[error("package-lock.json: {path} has no integrity hash: refused")]
    NoIntegrity {
        /// Its lockfile key.
        path: String,
    },
    /// pip installed something that is not a wheel.
    #[error("{name} {version} is not a wheel ({url}): refused")]
    NotAWheel {
        /// The project.
        name: String,
        /// Its version.
        version: String,
        /// Where it came from.
        url: String,
    },
    /// pip reported no SHA-256 for a wheel.
    #[error("{name} {version}: pip reported no sha256: refused")]
    NoSha256 {
        /// The project.
        name: String,
        /// Its version.
        version: String,
    },
    /// A local wheel cannot be read to check its hash.
    #[error("{path}: {source}")]
    WheelUnread {
        /// The wheel file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A local wheel's bytes are not the ones pip reported installing.
    #[error("{path}: sha256 {actual}, but pip installed {reported}: refused")]
    WheelDiffers {
        /// The wheel file.
        path: String,
        /// The SHA-256 of its bytes.
        actual: String,
        /// The SHA-256 pip reported.
        reported: String,
    },
    /// pip's report does not list the package asked for.
    #[error("pip's report does not list {package}")]
    NotListed {
        /// The package.
        package: String,
    },
}

/// Where a package is fetched from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A local cache (an npm cache or a wheel directory): offline, on the host.
    Cache(PathBuf),
    /// A registry or package index URL: online, in a sandbox of its own.
    Registry(String),
}

/// The configured place for `package`'s registry; a cache is preferred to a registry.
pub(crate) fn origin(package: &Package, config: &McpPackages) -> Result<Origin, FetchError> {
    let (cache, registry, packages, settings) = match package.registry {
        Registry::Npm => (
            &config.npm_cache,
            &config.npm_registry,
            "npm",
            "mcp.npm_cache (offline) or mcp.npm_registry",
        ),
        Registry::Pypi => (
            &config.pip_find_links,
            &config.pypi_index,
            "PyPI",
            "mcp.pip_find_links (offline) or mcp.pypi_index",
        ),
    };
    match (cache, registry) {
        (Some(cache), _) => Ok(Origin::Cache(cache.clone())),
        (None, Some(registry)) => Ok(Origin::Registry(registry.clone())),
        (None, None) => Err(FetchError::NotConfigured { packages, settings }),
    }
}

/// Where a package manager run writes, as the package manager sees the paths (host paths on
/// the host, `/data/…` in the fetch sandbox).
#[derive(Debug, Clone)]
pub(crate) struct Places {
    /// The directory that becomes the bundle (npm's `--prefix`; pip's target is its
    /// `site-packages`).
    pub bundle: PathBuf,
    /// npm's cache when fetching online (offline, the configured cache is used).
    pub npm_cache: PathBuf,
    /// pip's installation report.
    pub pip_report: PathBuf,
}

/// One package manager run.
#[derive(Debug, Clone)]
pub(crate) struct FetchCommand {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// What it does, for a person: `npm install npm:x@1.0.0 from the npm registry URL`.
    pub what: String,
}

/// The package manager run that installs `package` from `origin` into `places`. `program`
/// turns the configured program into the command's first words (as is on the host; an
/// absolute path or `/usr/bin/env NAME` in the sandbox).
pub(crate) fn command(
    package: &Package,
    config: &McpPackages,
    origin: &Origin,
    places: &Places,
    program: impl Fn(&Path) -> Vec<String>,
) -> FetchCommand {
    let path = |p: &Path| p.display().to_string();
    let words = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match package.registry {
        Registry::Npm => {
            let mut command = program(&config.npm);
            command.extend(words(&[
                "install",
                "--ignore-scripts",
                "--no-bin-links",
                "--no-audit",
                "--no-fund",
                "--no-update-notifier",
                "--loglevel=error",
                "--prefix",
            ]));
            command.push(path(&places.bundle));
            let source = match origin {
                Origin::Cache(cache) => {
                    command.extend(["--offline".to_string(), "--cache".into(), path(cache)]);
                    format!("the npm cache {}", cache.display())
                }
                Origin::Registry(registry) => {
                    command.extend(["--registry".to_string(), registry.clone()]);
                    // One retry, soon: an import is waited for, and by default npm spends
                    // minutes retrying a tarball the registry serves wrong.
                    command.extend(words(&[
                        "--fetch-retries=1",
                        "--fetch-retry-mintimeout=1000",
                        "--fetch-retry-maxtimeout=5000",
                    ]));
                    command.extend(["--cache".to_string(), path(&places.npm_cache)]);
                    format!("the npm registry {registry}")
                }
            };
            command.push(format!("{}@{}", package.name, package.version));
            FetchCommand {
                command,
                what: format!("npm install {} from {source}", package.spec()),
            }
        }
        Registry::Pypi => {
            let mut command = program(&config.python);
            command.extend(words(&[
                "-m",
                "pip",
                "install",
                "--only-binary=:all:",
                "--no-compile",
                "--no-cache-dir",
                "--no-input",
                "--disable-pip-version-check",
                "--no-warn-conflicts",
                "--quiet",
                "--target",
            ]));
            command.push(path(&places.bundle.join("site-packages")));
            command.extend(["--report".to_string(), path(&places.pip_report)]);
            let source = match origin {
                Origin::Cache(wheels) => {
                    command.extend(["--no-index".to_string(), "--find-links".into(), path(wheels)]);
                    format!("the wheel directory {}", wheels.display())
                }
                Origin::Registry(index) => {
                    command.extend(["--index-url".to_string(), index.clone()]);
                    // pip ignores a plain-http index unless its host is named trusted; one
                    // configured as plain http is (the wheels' hashes are still checked).
                    if let Some(host) = plain_http_host(index) {
                        command.extend(["--trusted-host".to_string(), host]);
                    }
                    format!("the package index {index}")
                }
            };
            command.push(format!("{}=={}", package.name, package.version));
            FetchCommand {
                command,
                what: format!("pip install {} from {source}", package.spec()),
            }
        }
    }
}

/// The `host[:port]` of a plain-http URL; `None` for any other.
fn plain_http_host(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    if parsed.scheme() != "http" {
        return None;
    }
    let host = parsed.host_str()?;
    Some(match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    })
}

/// Installs `package` from the local cache `cache` into `dir` (which becomes the bundle), on
/// the host: nothing is reached but the cache. Returns its integrity record.
pub(crate) async fn fetch_offline(
    package: &Package,
    config: &McpPackages,
    cache: &Path,
    dir: &Path,
) -> Result<Value, FetchError> {
    let places = Places {
        bundle: dir.to_path_buf(),
        npm_cache: cache.to_path_buf(),
        pip_report: dir.join(".pip-report.json"),
    };
    let run_on_host = |p: &Path| vec![p.display().to_string()];
    let fetch = command(
        package,
        config,
        &Origin::Cache(cache.to_path_buf()),
        &places,
        run_on_host,
    );
    run(&fetch).await?;
    let integrity = integrity(package, &places.bundle, &places.pip_report);
    let _ = std::fs::remove_file(&places.pip_report);
    integrity
}

/// The integrity record of a package installed into `bundle` (host paths; `report` is pip's
/// installation report): checked as [`npm_integrity`] and [`pip_integrity`] say.
pub(crate) fn integrity(package: &Package, bundle: &Path, report: &Path) -> Result<Value, FetchError> {
    match package.registry {
        Registry::Npm => npm_integrity(package, bundle),
        Registry::Pypi => {
            let bytes = std::fs::read(report).map_err(|source| FetchError::Unread {
                what: "pip wrote no report".into(),
                source,
            })?;
            pip_integrity(package, &bytes)
        }
    }
}

/// The lockfile npm wrote: the package at the version asked for, and an integrity hash for
/// every package installed (npm checked each tarball against it).
fn npm_integrity(package: &Package, dir: &Path) -> Result<Value, FetchError> {
    let lock_path = dir.join("package-lock.json");
    let bytes = std::fs::read(&lock_path).map_err(|source| FetchError::Unread {
        what: format!("npm wrote no {}", lock_path.display()),
        source,
    })?;
    let lock: Value = serde_json::from_slice(&bytes).map_err(|source| FetchError::NotJson {
        document: "package-lock.json",
        source,
    })?;
    let packages = lock
        .get("packages")
        .and_then(Value::as_object)
        .ok_or(FetchError::OldLockfile)?;
    let key = format!("node_modules/{}", package.name);
    let top = packages
        .get(&key)
        .ok_or_else(|| FetchError::NotInstalled { key: key.clone() })?;
    let version = top.get("version").and_then(Value::as_str).unwrap_or("");
    if version != package.version {
        return Err(FetchError::OtherVersion {
            manager: "npm",
            package: package.name.clone(),
            installed: version.to_string(),
            asked: package.version.clone(),
        });
    }
    let mut integrity = serde_json::Map::new();
    for (path, entry) in packages {
        if path.is_empty() || entry.get("link").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        let hash = entry
            .get("integrity")
            .and_then(Value::as_str)
            .ok_or_else(|| FetchError::NoIntegrity { path: path.clone() })?;
        integrity.insert(path.clone(), json!(hash));
    }
    Ok(json!({
        "registry": "npm",
        "package": package.name,
        "version": package.version,
        "integrity": top.get("integrity"),
        "lockfile_sha256": hex::encode(Sha256::digest(&bytes)),
        "packages": integrity,
    }))
}

/// pip's installation report: the project at the version asked for, and each wheel with its
/// SHA-256 (checked by pip against the index's hashes online; offline, checked here against
/// the wheel file itself).
fn pip_integrity(package: &Package, report: &[u8]) -> Result<Value, FetchError> {
    let report: Value = serde_json::from_slice(report).map_err(|source| FetchError::NotJson {
        document: "pip's report",
        source,
    })?;
    let normal = |n: &str| n.to_ascii_lowercase().replace(['_', '.'], "-");
    let mut wheels = serde_json::Map::new();
    let mut found = None;
    for item in report
        .get("install")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let meta = item.get("metadata");
        let name = meta
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let version = meta
            .and_then(|m| m.get("version"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let download = item.get("download_info");
        let url = download
            .and_then(|d| d.get("url"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if !url.ends_with(".whl") {
            return Err(FetchError::NotAWheel {
                name: name.to_string(),
                version: version.to_string(),
                url: url.to_string(),
            });
        }
        let sha256 = download
            .and_then(|d| d.get("archive_info"))
            .and_then(|a| {
                a.get("hashes")
                    .and_then(|h| h.get("sha256"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .or_else(|| {
                        a.get("hash")
                            .and_then(Value::as_str)
                            .and_then(|h| h.strip_prefix("sha256="))
                            .map(str::to_string)
                    })
            })
            .ok_or_else(|| FetchError::NoSha256 {
                name: name.to_string(),
                version: version.to_string(),
            })?;
        if let Some(file) = url.strip_prefix("file://") {
            let path = percent_decoded(file);
            let bytes = std::fs::read(&path).map_err(|source| FetchError::WheelUnread {
                path: path.clone(),
                source,
            })?;
            let actual = hex::encode(Sha256::digest(&bytes));
            if actual != sha256 {
                return Err(FetchError::WheelDiffers {
                    path,
                    actual,
                    reported: sha256,
                });
            }
        }
        if normal(name) == normal(&package.name) {
            found = Some(version.to_string());
        }
        wheels.insert(
            normal(name),
            json!({"version": version, "sha256": sha256, "file": url.rsplit('/').next()}),
        );
    }
    match found {
        Some(v) if v == package.version => {}
        Some(v) => {
            return Err(FetchError::OtherVersion {
                manager: "pip",
                package: package.name.clone(),
                installed: v,
                asked: package.version.clone(),
            });
        }
        None => {
            return Err(FetchError::NotListed {
                package: package.name.clone(),
            });
        }
    }
    Ok(json!({
        "registry": "pypi",
        "package": package.name,
        "version": package.version,
        "sha256": wheels.get(&normal(&package.name)).and_then(|w| w.get("sha256")),
        "wheels": wheels,
    }))
}

/// A `file://` URL's path with `%XX` escapes decoded (pip writes `+` in local versions as
/// `%2B`).
fn percent_decoded(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = path.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs a package manager on the host to its end; its output is kept only to explain a
/// failure.
async fn run(fetch: &FetchCommand) -> Result<(), FetchError> {
    let what = &fetch.what;
    let Some((program, args)) = fetch.command.split_first() else {
        return Err(FetchError::NoProgram { what: what.clone() });
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = cmd.output().await.map_err(|source| FetchError::Start {
        what: what.clone(),
        source,
    })?;
    if out.status.success() {
        return Ok(());
    }
    let said = said(
        &String::from_utf8_lossy(&out.stderr),
        &String::from_utf8_lossy(&out.stdout),
    );
    Err(FetchError::Failed {
        what: what.clone(),
        status: out.status,
        said,
    })
}

/// What a package manager said on stderr and stdout, shortened for an error message.
pub(crate) fn said(stderr: &str, stdout: &str) -> String {
    format!("{}\n{}", stderr.trim(), stdout.trim())
        .trim()
        .chars()
        .take(1200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lockfile_without_integrity_or_at_another_version_is_refused() {
        let dir = std::env::temp_dir().join(format!("slovo-npm-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let package = Package {
            registry: Registry::Npm,
            name: "@s/p".into(),
            version: "1.0.0".into(),
        };
        let write = |lock: Value| std::fs::write(dir.join("package-lock.json"), lock.to_string()).unwrap();
        write(
            json!({"packages": {"": {}, "node_modules/@s/p": {"version": "1.0.0", "integrity": "sha512-a"},
                                  "node_modules/dep": {"version": "2.0.0"}}}),
        );
        let e = npm_integrity(&package, &dir).unwrap_err().to_string();
        assert!(e.contains("node_modules/dep has no integrity hash"), "{e}");
        write(json!({"packages": {"node_modules/@s/p": {"version": "1.0.1", "integrity": "sha512-a"}}}));
        let e = npm_integrity(&package, &dir).unwrap_err().to_string();
        assert!(e.contains("not the version asked for"), "{e}");
        write(json!({"packages": {"node_modules/@s/p": {"version": "1.0.0", "integrity": "sha512-a"}}}));
        let record = npm_integrity(&package, &dir).unwrap();
        assert_eq!(record["integrity"], "sha512-a");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_wheel_whose_bytes_differ_from_the_reported_hash_is_refused() {
        let dir = std::env::temp_dir().join(format!("slovo-pip-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let wheel = dir.join("x-1.0-py3-none-any.whl");
        std::fs::write(&wheel, b"wheel bytes").unwrap();
        let package = Package {
            registry: Registry::Pypi,
            name: "x".into(),
            version: "1.0".into(),
        };
        let report = |sha: &str| {
            json!({"install": [{"metadata": {"name": "x", "version": "1.0"},
                "download_info": {"url": format!("file://{}", wheel.display()),
                                  "archive_info": {"hashes": {"sha256": sha}}}}]})
            .to_string()
        };
        let right = hex::encode(Sha256::digest(b"wheel bytes"));
        assert_eq!(
            pip_integrity(&package, report(&right).as_bytes()).unwrap()["sha256"],
            right
        );
        let e = pip_integrity(&package, report(&"0".repeat(64)).as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("refused"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
