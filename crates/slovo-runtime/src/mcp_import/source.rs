//! What an MCP server import names: `npm:PACKAGE@VERSION`, `pypi:PACKAGE==VERSION`, or a
//! registry `server.json` whose `packages` say the same with their arguments and environment.
//! Versions are exact: a range would let the registry decide later what runs.

use std::collections::BTreeMap;

use serde_json::Value;

use super::image::{self, Image};

/// The package registry a server comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Registry {
    /// npm: run with the system's `node`.
    Npm,
    /// PyPI: wheels only, run with the system's `python3`.
    Pypi,
}

impl Registry {
    pub(crate) fn prefix(self) -> &'static str {
        match self {
            Registry::Npm => "npm",
            Registry::Pypi => "pypi",
        }
    }
}

/// One package at one exact version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Package {
    pub registry: Registry,
    pub name: String,
    pub version: String,
}

impl Package {
    /// `npm:NAME@VERSION` or `pypi:NAME==VERSION`, as a person would write it.
    pub(crate) fn spec(&self) -> String {
        match self.registry {
            Registry::Npm => format!("npm:{}@{}", self.name, self.version),
            Registry::Pypi => format!("pypi:{}=={}", self.name, self.version),
        }
    }
}

/// What a server is started with, beyond its package: from `server.json` or the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Launch {
    /// Arguments after the program (`packageArguments`).
    pub args: Vec<String>,
    /// Environment variables with their values.
    pub env: BTreeMap<String, String>,
    /// Environment variables whose values are secrets the person sets (`isSecret`): variable
    /// name → description.
    pub secret_env: BTreeMap<String, String>,
    /// Notes for the person: what of the source was not used, and why.
    pub notes: Vec<String>,
    /// The server's description, when the source has one.
    pub description: Option<String>,
    /// The server's version, when the source has one (`server.json`'s `version`).
    pub version: Option<String>,
}

impl Launch {
    /// The manifest's `execution.secret_env`: each secret variable read from the tool's secret
    /// of the same name, which the person sets after import.
    pub fn secret_env_by_name(&self) -> BTreeMap<String, String> {
        self.secret_env
            .keys()
            .map(|variable| (variable.clone(), variable.clone()))
            .collect()
    }
}

/// What a `server.json` package names: a package to fetch, or an image to find here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Runnable {
    Package(Package),
    Image(Image),
}

/// `npm:PACKAGE@VERSION` or `pypi:PACKAGE==VERSION`; `None` if `text` is neither prefix.
pub(crate) fn parse_spec(text: &str) -> Option<Result<Package, String>> {
    if let Some(rest) = text.strip_prefix("npm:") {
        return Some(npm_spec(rest));
    }
    if let Some(rest) = text.strip_prefix("pypi:") {
        return Some(pypi_spec(rest));
    }
    None
}

fn npm_spec(rest: &str) -> Result<Package, String> {
    // A scoped name starts with `@`: the version follows the last `@`.
    let (name, version) = match rest.rfind('@') {
        Some(i) if i > 0 => (&rest[..i], &rest[i + 1..]),
        _ => {
            return Err(format!(
                "npm:{rest}: name the exact version (npm:{rest}@1.2.3); a missing version would be whatever is latest"
            ));
        }
    };
    npm_package(name, version)
}

fn npm_package(name: &str, version: &str) -> Result<Package, String> {
    check_npm_name(name)?;
    if semver::Version::parse(version).is_err() {
        return Err(format!(
            "npm:{name}@{version}: the version must be exact (like 1.2.3), not a range or a tag"
        ));
    }
    Ok(Package {
        registry: Registry::Npm,
        name: name.to_string(),
        version: version.to_string(),
    })
}

/// npm's rules for a package name, and never an option (`-…`) or a path.
fn check_npm_name(name: &str) -> Result<(), String> {
    let part_ok = |p: &str| {
        !p.is_empty()
            && !p.starts_with(['.', '_', '-'])
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._~".contains(&b))
    };
    let ok = match name.strip_prefix('@') {
        Some(scoped) => scoped
            .split_once('/')
            .is_some_and(|(scope, pkg)| part_ok(scope) && part_ok(pkg)),
        None => part_ok(name),
    };
    if ok && name.len() <= 214 {
        Ok(())
    } else {
        Err(format!("npm:{name}: not an npm package name"))
    }
}

fn pypi_spec(rest: &str) -> Result<Package, String> {
    let Some((name, version)) = rest.split_once("==") else {
        return Err(format!(
            "pypi:{rest}: name the exact version (pypi:{rest}==1.2.3); ranges (>=, ~=, !=) are refused"
        ));
    };
    pypi_package(name, version)
}

fn pypi_package(name: &str, version: &str) -> Result<Package, String> {
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.len() <= 200;
    if !name_ok {
        return Err(format!("pypi:{name}: not a PyPI project name"));
    }
    // A PEP 440 version written out: no wildcard, no further specifier, no `===`.
    let version_ok = !version.is_empty()
        && version.as_bytes()[0].is_ascii_digit()
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+!".contains(&b));
    if !version_ok {
        return Err(format!(
            "pypi:{name}=={version}: the version must be exact (like 1.2.3), not a range or a wildcard"
        ));
    }
    Ok(Package {
        registry: Registry::Pypi,
        name: name.to_string(),
        version: version.to_string(),
    })
}

/// The package of a registry `server.json` that Slovo can run, with its launch settings: the
/// first npm or PyPI package (it runs in the process sandbox), otherwise the first OCI image.
/// Errors name the field (`packages[0].version: …`); the caller names the file.
pub(crate) fn from_server_json(server: &Value) -> Result<(Runnable, Launch), String> {
    let packages = server.get("packages").and_then(Value::as_array);
    let text = |k: &str| server.get(k).and_then(Value::as_str).map(str::to_string);
    let mut launch = Launch {
        description: text("description"),
        version: text("version"),
        ..Launch::default()
    };
    if let Some(remotes) = server.get("remotes").and_then(Value::as_array)
        && !remotes.is_empty()
    {
        launch.notes.push(format!(
            "{} remote endpoint(s) not used: the package is preferred, since it runs in the sandbox",
            remotes.len()
        ));
    }
    let mut refused = Vec::new();
    let mut first_image: Option<(usize, &Value)> = None;
    for (i, p) in packages.into_iter().flatten().enumerate() {
        let at = |f: &str| format!("packages[{i}].{f}");
        let kind = str_of(p, &["registryType", "registry_type", "registry_name"]).unwrap_or("");
        let registry = match kind {
            "npm" => Registry::Npm,
            "pypi" => Registry::Pypi,
            "oci" => {
                if stdio_transport(p, i, &mut refused) && first_image.is_none() {
                    first_image = Some((i, p));
                }
                continue;
            }
            other => {
                refused.push(format!(
                    "packages[{i}]: registry {other:?} is not supported (npm, pypi and oci are)"
                ));
                continue;
            }
        };
        if !stdio_transport(p, i, &mut refused) {
            continue;
        }
        let name = str_of(p, &["identifier", "name"]).ok_or_else(|| at("identifier: missing"))?;
        let version = str_of(p, &["version"]).ok_or_else(|| at("version: missing (versions are exact)"))?;
        let package = match registry {
            Registry::Npm => npm_package(name, version),
            Registry::Pypi => pypi_package(name, version),
        }
        .map_err(|e| at(&format!("version: {e}")))?;
        if let Some(hint) = str_of(p, &["runtimeHint", "runtime_hint"]) {
            let fits = match registry {
                Registry::Npm => ["npx", "node", "npm"].contains(&hint),
                Registry::Pypi => ["uvx", "python", "python3", "pip", "pipx", "uv"].contains(&hint),
            };
            if !fits {
                return Err(at(&format!(
                    "runtimeHint: {hint:?} does not run {} packages",
                    registry.prefix()
                )));
            }
        }
        if let Some((j, _)) = first_image {
            launch.notes.push(format!(
                "packages[{j}] (an OCI image) not used: packages[{i}] is preferred, since it runs without Docker"
            ));
        }
        launch_of(
            p,
            i,
            &mut launch,
            "the server runs with the system's node or python3",
        )?;
        return Ok((Runnable::Package(package), launch));
    }
    if let Some((i, p)) = first_image {
        let image = image::from_package(p).map_err(|e| format!("packages[{i}].{e}"))?;
        launch_of(p, i, &mut launch, "Slovo's Docker backend makes the container")?;
        return Ok((Runnable::Image(image), launch));
    }
    refused.insert(0, "no package Slovo can run".into());
    Err(refused.join("; "))
}

/// Whether package `i` is spoken to over stdio (the only transport a package runs with);
/// if not, why goes into `refused`.
fn stdio_transport(p: &Value, i: usize, refused: &mut Vec<String>) -> bool {
    match p
        .get("transport")
        .and_then(|t| t.get("type"))
        .and_then(Value::as_str)
    {
        Some(t) if t != "stdio" => {
            refused.push(format!(
                "packages[{i}]: transport {t:?} is not supported (stdio is)"
            ));
            false
        }
        _ => true,
    }
}

/// The arguments and environment of package `i`; its `runtimeArguments` are not used
/// (`why_not_runtime` says why).
fn launch_of(p: &Value, i: usize, launch: &mut Launch, why_not_runtime: &str) -> Result<(), String> {
    let at = |f: &str| format!("packages[{i}].{f}");
    if p.get("runtimeArguments")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        launch
            .notes
            .push(format!("runtimeArguments not used: {why_not_runtime}"));
    }
    for (j, arg) in p
        .get("packageArguments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        package_argument(arg, &mut launch.args).map_err(|e| at(&format!("packageArguments[{j}]: {e}")))?;
    }
    for (j, var) in p
        .get("environmentVariables")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        environment_variable(var, launch).map_err(|e| at(&format!("environmentVariables[{j}]: {e}")))?;
    }
    Ok(())
}

/// Whether `server.json` lists a package of a registry Slovo runs (over stdio): npm, PyPI or
/// an OCI image.
pub(crate) fn has_runnable_package(server: &Value) -> bool {
    server
        .get("packages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|p| {
            let kind = str_of(p, &["registryType", "registry_type", "registry_name"]);
            let transport = p
                .get("transport")
                .and_then(|t| t.get("type"))
                .and_then(Value::as_str);
            matches!(kind, Some("npm" | "pypi" | "oci")) && transport.is_none_or(|t| t == "stdio")
        })
}

fn str_of<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|k| v.get(*k).and_then(Value::as_str))
}

/// A positional argument is its value; a named one is its name, then its value if it has one.
fn package_argument(arg: &Value, args: &mut Vec<String>) -> Result<(), String> {
    let value = str_of(arg, &["value", "default"]);
    match str_of(arg, &["type"]).unwrap_or("positional") {
        "positional" => match value {
            Some(v) => args.push(v.to_string()),
            None if arg.get("isRequired").and_then(Value::as_bool) == Some(true) => {
                return Err("a required argument without a value: give it with --arg".into());
            }
            None => {}
        },
        "named" => {
            let name = str_of(arg, &["name"]).ok_or("a named argument without a name")?;
            args.push(name.to_string());
            if let Some(v) = value {
                args.push(v.to_string());
            }
        }
        other => return Err(format!("type {other:?} is neither positional nor named")),
    }
    Ok(())
}

/// A secret variable becomes a secret the person sets; any other is set to its value.
fn environment_variable(var: &Value, launch: &mut Launch) -> Result<(), String> {
    let name = str_of(var, &["name"]).ok_or("a variable without a name")?;
    let description = str_of(var, &["description"]).unwrap_or("").to_string();
    if var.get("isSecret").and_then(Value::as_bool) == Some(true) {
        launch.secret_env.insert(name.to_string(), description);
        return Ok(());
    }
    match str_of(var, &["value", "default"]) {
        Some(v) => {
            launch.env.insert(name.to_string(), v.to_string());
        }
        None if var.get("isRequired").and_then(Value::as_bool) == Some(true) => {
            return Err(format!(
                "{name} is required and has no value: give it with --env {name}=VALUE"
            ));
        }
        None => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exact_versions_are_taken_and_ranges_refused() {
        let p = parse_spec("npm:@modelcontextprotocol/server-memory@2026.8.31")
            .unwrap()
            .unwrap();
        assert_eq!(
            (p.name.as_str(), p.version.as_str()),
            ("@modelcontextprotocol/server-memory", "2026.8.31")
        );
        let p = parse_spec("pypi:mcp-server-time==2026.10.19").unwrap().unwrap();
        assert_eq!(p.spec(), "pypi:mcp-server-time==2026.10.19");
        for (spec, says) in [
            ("npm:left-pad@^1.2.0", "must be exact"),
            ("npm:left-pad@latest", "must be exact"),
            ("npm:left-pad@1.x", "must be exact"),
            ("npm:left-pad", "name the exact version"),
            ("npm:@scope/pkg", "name the exact version"),
            ("npm:--registry=http://x@1.0.0", "not an npm package name"),
            ("pypi:mcp-server-time>=1.0", "name the exact version"),
            ("pypi:mcp-server-time==1.*", "must be exact"),
            ("pypi:mcp-server-time==1.0,<2", "must be exact"),
            ("pypi:mcp-server-time===1.0", "must be exact"),
            ("pypi:-r==1.0", "not a PyPI project name"),
        ] {
            let e = parse_spec(spec).unwrap().unwrap_err();
            assert!(e.contains(says), "{spec}: {e}");
        }
        assert!(parse_spec("./server.json").is_none());
    }

    #[test]
    fn server_json_gives_the_package_its_arguments_and_secrets() {
        let server = json!({
            "name": "io.example/weather",
            "description": "Weather",
            "remotes": [{"type": "streamable-http", "url": "https://weather.example/mcp"}],
            "packages": [
                {"registryType": "oci", "identifier": "example/weather", "version": "1.0.0"},
                {"registryType": "npm", "identifier": "@example/weather", "version": "1.2.3",
                 "runtimeHint": "npx", "transport": {"type": "stdio"},
                 "packageArguments": [
                     {"type": "positional", "value": "/data"},
                     {"type": "named", "name": "--units", "value": "metric"}],
                 "environmentVariables": [
                     {"name": "WEATHER_API_KEY", "isSecret": true, "description": "The API key"},
                     {"name": "CACHE_FILE", "default": "/data/cache.json"}]}
            ]
        });
        let (package, launch) = from_server_json(&server).unwrap();
        assert_eq!(
            package,
            Runnable::Package(parse_spec("npm:@example/weather@1.2.3").unwrap().unwrap())
        );
        assert_eq!(launch.args, ["/data", "--units", "metric"]);
        assert_eq!(launch.env["CACHE_FILE"], "/data/cache.json");
        assert_eq!(launch.secret_env["WEATHER_API_KEY"], "The API key");
        assert!(
            launch.notes[0].contains("package is preferred"),
            "{:?}",
            launch.notes
        );

        let ranged =
            json!({"name": "x", "packages": [{"registryType": "pypi", "identifier": "x", "version": ">=1"}]});
        let e = from_server_json(&ranged).unwrap_err();
        assert!(e.starts_with("packages[0].version: "), "{e}");
        assert!(
            launch.notes[1].contains("packages[0] (an OCI image) not used"),
            "{:?}",
            launch.notes
        );
        let only_oci =
            json!({"name": "x", "packages": [{"registryType": "oci", "identifier": "x", "version": "1"}]});
        let e = from_server_json(&only_oci).unwrap_err();
        assert!(
            e.starts_with("packages[0].identifier: ") && e.contains("names a tag"),
            "{e}"
        );
        let digest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let oci = json!({"name": "x", "version": "1.4.0", "packages": [{
            "registryType": "oci", "identifier": format!("ghcr.io/acme/x@sha256:{digest}"),
            "runtimeArguments": [{"type": "named", "name": "-v", "value": "/:/host"}],
            "packageArguments": [{"type": "positional", "value": "--stdio"}],
            "environmentVariables": [{"name": "TOKEN", "isSecret": true}]}]});
        let (image, launch) = from_server_json(&oci).unwrap();
        assert!(matches!(image, Runnable::Image(_)), "{image:?}");
        assert_eq!(launch.args, ["--stdio"]);
        assert!(launch.secret_env.contains_key("TOKEN"));
        assert_eq!(launch.version.as_deref(), Some("1.4.0"));
        assert!(
            launch.notes[0].contains("runtimeArguments not used"),
            "{:?}",
            launch.notes
        );
    }
}
