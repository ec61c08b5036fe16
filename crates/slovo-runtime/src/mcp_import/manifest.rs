//! The proposal of an imported MCP server: how to start it (from its package's own entry
//! point), and one capability per tool it listed in its sandbox.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde_json::{Value, json};

use super::source::{Launch, Package, Registry};

/// Longest capability description kept (characters).
const MAX_DESCRIPTION: usize = 1_000;

/// The program and arguments that start the server, and the environment it needs, from the
/// package installed in `dir`.
pub(crate) fn command(
    package: &Package,
    dir: &Path,
    launch: &Launch,
) -> Result<(Vec<String>, BTreeMap<String, String>), String> {
    let mut env = launch.env.clone();
    let mut command = match package.registry {
        Registry::Npm => vec!["/usr/bin/node".to_string(), npm_entry(package, dir)?],
        Registry::Pypi => {
            env.insert("PYTHONPATH".into(), "/tool/site-packages".into());
            env.insert("PYTHONDONTWRITEBYTECODE".into(), "1".into());
            let mut c = vec!["/usr/bin/python3".to_string()];
            c.extend(python_entry(package, &dir.join("site-packages"))?);
            c
        }
    };
    command.extend(launch.args.iter().cloned());
    Ok((command, env))
}

/// `node_modules/PACKAGE/<bin>`: the package's program (its `bin` of its own name, or its only
/// one).
fn npm_entry(package: &Package, dir: &Path) -> Result<String, String> {
    let root = format!("node_modules/{}", package.name);
    let path = dir.join(&root).join("package.json");
    let manifest: Value = std::fs::read(&path)
        .map_err(|e| format!("{}: {e}", path.display()))
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", path.display())))?;
    let short = package.name.rsplit('/').next().unwrap_or(&package.name);
    let bin = match manifest.get("bin") {
        Some(Value::String(b)) => b.clone(),
        Some(Value::Object(bins)) => match bins
            .get(short)
            .or_else(|| (bins.len() == 1).then(|| bins.values().next()).flatten())
        {
            Some(Value::String(b)) => b.clone(),
            _ => {
                return Err(format!(
                    "{}: several programs in \"bin\" ({}) and none named {short:?}",
                    path.display(),
                    bins.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        },
        _ => {
            return Err(format!(
                "{}: no \"bin\": the package names no program to start",
                path.display()
            ));
        }
    };
    let bin = bin.trim_start_matches("./");
    if bin.split('/').any(|c| c == "..") || bin.starts_with('/') {
        return Err(format!("{}: \"bin\" {bin:?} leaves the package", path.display()));
    }
    Ok(format!("{root}/{bin}"))
}

/// `-m MODULE` (or `-c` calling the function) from the project's `console_scripts` entry point.
fn python_entry(package: &Package, site: &Path) -> Result<Vec<String>, String> {
    let normal = |n: &str| n.to_ascii_lowercase().replace(['-', '.'], "_");
    let want = format!("{}-{}.dist-info", normal(&package.name), package.version);
    let dist_info = std::fs::read_dir(site)
        .map_err(|e| format!("{}: {e}", site.display()))?
        .filter_map(std::result::Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.to_ascii_lowercase() == want)
        .ok_or_else(|| format!("{}: no {want}", site.display()))?;
    let path = site.join(&dist_info).join("entry_points.txt");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e}: the project names no program", path.display()))?;
    let mut in_scripts = false;
    let mut scripts = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_scripts = line == "[console_scripts]";
        } else if in_scripts && let Some((name, target)) = line.split_once('=') {
            scripts.push((name.trim().to_string(), target.trim().to_string()));
        }
    }
    let target = match scripts.iter().find(|(n, _)| normal(n) == normal(&package.name)) {
        Some((_, t)) => t.clone(),
        None if scripts.len() == 1 => scripts[0].1.clone(),
        None => {
            return Err(format!(
                "{}: no console script named {:?}",
                path.display(),
                package.name
            ));
        }
    };
    let (module, function) = target
        .split_once(':')
        .map(|(m, f)| (m.trim(), f.trim()))
        .ok_or_else(|| {
            format!(
                "{}: entry point {target:?} is not module:function",
                path.display()
            )
        })?;
    let identifier = |s: &str| {
        !s.is_empty()
            && s.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    };
    if !identifier(module) || !identifier(function) {
        return Err(format!(
            "{}: entry point {target:?} is not module:function",
            path.display()
        ));
    }
    let main = site.join(module.replace('.', "/")).join("__main__.py");
    if function == "main" && main.is_file() {
        return Ok(vec!["-m".into(), module.into()]);
    }
    Ok(vec![
        "-c".into(),
        format!("import sys; from {module} import {function}; sys.exit({function}())"),
    ])
}

/// The capabilities of the listed `tools`, and the server's own names of those whose name had
/// to change (too long for a capability, not a capability name, or clashing).
pub(crate) fn capabilities(tools: &[Value]) -> Result<(Vec<Value>, BTreeMap<String, String>), String> {
    let mut taken = HashSet::new();
    let mut caps = Vec::new();
    let mut renamed = BTreeMap::new();
    for (i, tool) in tools.iter().enumerate() {
        let name = tool
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| format!("tools/list: tool {i} has no name"))?;
        let fitting = if is_capability_name(name) {
            name.to_string()
        } else {
            slovo_openapi::capability_name(Some(name), "post", "/")
        };
        let unique = slovo_openapi::unique_capability_name(fitting, &mut taken);
        if unique != name {
            renamed.insert(unique.clone(), name.to_string());
        }
        let parameters = match tool.get("inputSchema") {
            Some(s @ Value::Object(_)) if s.get("type").and_then(Value::as_str) == Some("object") => {
                s.clone()
            }
            Some(Value::Object(_)) | None => json!({"type": "object"}),
            Some(_) => return Err(format!("tools/list: {name}: inputSchema is not a schema")),
        };
        let mut cap = json!({
            "name": unique,
            "description": description(tool, name),
            "parameters": parameters,
        });
        if let Some(returns @ Value::Object(_)) = tool.get("outputSchema") {
            cap["returns"] = returns.clone();
        }
        // The server's own claims, shown as such; they grant nothing.
        let hints = tool.get("annotations");
        for (field, hint) in [("read_only", "readOnlyHint"), ("destructive", "destructiveHint")] {
            if let Some(b) = hints.and_then(|a| a.get(hint)).and_then(Value::as_bool) {
                cap[field] = json!(b);
            }
        }
        caps.push(cap);
    }
    if caps.is_empty() {
        return Err("the server lists no tools".into());
    }
    Ok((caps, renamed))
}

/// `^[A-Za-z_][A-Za-z0-9_.-]{0,63}$`, the manifest's rule for a capability name.
fn is_capability_name(name: &str) -> bool {
    name.len() <= slovo_openapi::MAX_CAPABILITY_NAME
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// The tool's title and description, as one text; never empty.
fn description(tool: &Value, name: &str) -> String {
    let title = tool
        .get("title")
        .or_else(|| tool.get("annotations").and_then(|a| a.get("title")))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let text = tool
        .get("description")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|d| !d.is_empty());
    let joined = match (title, text) {
        (Some(t), Some(d)) => format!("{t}: {d}"),
        (Some(t), None) => t.to_string(),
        (None, Some(d)) => d.to_string(),
        (None, None) => format!("The MCP tool {name}"),
    };
    slovo_openapi::clean_text(&joined, MAX_DESCRIPTION)
}

/// What the package says it is: npm's `description`, PyPI's `Summary`.
pub(crate) fn package_description(package: &Package, dir: &Path) -> Option<String> {
    let text = match package.registry {
        Registry::Npm => {
            let path = dir.join("node_modules").join(&package.name).join("package.json");
            let manifest: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
            manifest.get("description")?.as_str()?.to_string()
        }
        Registry::Pypi => {
            let normal = package.name.to_ascii_lowercase().replace(['-', '.'], "_");
            let want = format!("{normal}-{}.dist-info", package.version);
            let site = dir.join("site-packages");
            let dist_info = std::fs::read_dir(&site)
                .ok()?
                .filter_map(std::result::Result::ok)
                .find(|e| e.file_name().to_string_lossy().to_ascii_lowercase() == want)?;
            let metadata = std::fs::read_to_string(dist_info.path().join("METADATA")).ok()?;
            metadata
                .lines()
                .take_while(|l| !l.is_empty())
                .find_map(|l| l.strip_prefix("Summary:"))?
                .trim()
                .to_string()
        }
    };
    let text = slovo_openapi::clean_text(&text, MAX_DESCRIPTION);
    (!text.is_empty()).then_some(text)
}

/// A tool name from the package's: its last part (`@scope/server-memory` → `server-memory`).
pub(crate) fn tool_name(package: &Package) -> String {
    let short = package.name.rsplit('/').next().unwrap_or(&package.name);
    slovo_openapi::tool_name(short)
}

/// The package's version as a semantic version (`2026.8.31`; PyPI's `1.0` → `1.0.0`).
pub(crate) fn tool_version(package: &Package) -> String {
    slovo_openapi::version(&package.version).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_odd_and_clashing_names_are_made_unique_and_mapped_back() {
        let long = "a".repeat(70);
        let tools = vec![
            json!({"name": "echo", "description": "Echoes", "inputSchema": {"type": "object", "properties": {"m": {"type": "string"}}},
                   "outputSchema": {"type": "object"}, "annotations": {"readOnlyHint": true, "destructiveHint": false}}),
            json!({"name": long, "title": "Long"}),
            json!({"name": "echo!", "description": "Another echo"}),
            json!({"name": "get data", "description": "x"}),
        ];
        let (caps, renamed) = capabilities(&tools).unwrap();
        let names: Vec<&str> = caps.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names[0], "echo");
        assert!(names[1].len() <= 64 && names[1].starts_with("aaaa"), "{names:?}");
        assert_eq!(
            names[2], "echo_2",
            "clashes with echo once made a capability name"
        );
        assert_eq!(names[3], "get_data");
        assert_eq!(renamed[names[1]], long);
        assert_eq!(renamed["echo_2"], "echo!");
        assert_eq!(renamed["get_data"], "get data");
        assert!(!renamed.contains_key("echo"));
        assert_eq!(caps[0]["read_only"], true);
        assert_eq!(caps[0]["destructive"], false);
        assert_eq!(caps[0]["returns"], json!({"type": "object"}));
        assert_eq!(caps[0]["parameters"]["properties"]["m"]["type"], "string");
        assert_eq!(caps[1]["description"], "Long");
        assert!(capabilities(&[]).is_err());
    }
}
