//! The meaning of every field: names, versions, schemas, limits, execution.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::dialects::{CapabilityDoc, Dialect, ExecutionDef, ParsedDoc, StringOrList};
use super::error::ManifestError;
use super::{Capability, Execution, Manifest, chain};
use crate::permissions::{self, HostPattern, Permissions};

/// Maps a canonical field name to the one the author wrote, so errors speak their dialect.
fn written_name(dialect: Dialect, canonical: &str) -> String {
    if dialect == Dialect::Execution {
        let mapped = match canonical {
            "permissions.storage_quota_mb" => Some("permissions.storage.maxSizeMB"),
            "permissions.cpu_limit_percent" => Some("permissions.resources.maxCpuPercent"),
            "permissions.memory_limit_mb" => Some("permissions.resources.maxMemoryMB"),
            "permissions.network_allow" => Some("permissions.network.allowedHosts"),
            "tags" => Some("capabilities"),
            _ => None,
        };
        if let Some(m) = mapped {
            return m.to_string();
        }
        if let Some(rest) = canonical.strip_prefix("capabilities[0].parameters") {
            return format!("inputs{rest}");
        }
        if canonical.starts_with("capabilities[0].returns") {
            return "outputs".to_string();
        }
    }
    canonical.to_string()
}

pub(crate) fn normalize(source: &str, parsed: ParsedDoc) -> Result<Manifest, ManifestError> {
    let ParsedDoc { dialect, doc } = parsed;
    let err =
        |field: &str, reason: String| ManifestError::field(source, written_name(dialect, field), reason);

    if !valid_tool_name(&doc.name) {
        return Err(err(
            "name",
            format!(
                "{:?} is not a valid tool name (lowercase letter first, then up to 62 lowercase letters, digits or hyphens)",
                doc.name
            ),
        ));
    }
    let version = semver::Version::parse(&doc.version).map_err(|e| {
        err(
            "version",
            format!("{:?} is not a semantic version (e.g. 1.2.0): {e}", doc.version),
        )
    })?;
    for (i, tag) in doc.tags.iter().enumerate() {
        if tag.is_empty() || tag.len() > 64 || tag.chars().any(char::is_control) {
            return Err(err(
                &format!("tags[{i}]"),
                format!("{tag:?} is not a tag (1-64 printable characters)"),
            ));
        }
    }

    if doc.capabilities.is_empty() {
        return Err(err("capabilities", "a tool needs at least one capability".into()));
    }
    let mut seen = HashSet::new();
    let mut capabilities = Vec::with_capacity(doc.capabilities.len());
    for (i, def) in doc.capabilities.iter().enumerate() {
        let at = |f: &str| format!("capabilities[{i}].{f}");
        if !valid_capability_name(&def.name) {
            return Err(err(
                &at("name"),
                format!(
                    "{:?} is not a valid capability name (letter or _ first, then up to 63 of A-Z a-z 0-9 _ . -)",
                    def.name
                ),
            ));
        }
        if !seen.insert(def.name.as_str()) {
            return Err(err(
                &at("name"),
                format!("capability {:?} is defined more than once", def.name),
            ));
        }
        let parameters = def
            .parameters
            .clone()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        check_object_schema(&parameters).map_err(|reason| err(&at("parameters"), reason))?;
        if let Some(returns) = &def.returns {
            check_schema(returns).map_err(|reason| err(&at("returns"), reason))?;
        }
        let method = match &def.method {
            Some(m) => {
                let upper = m.to_ascii_uppercase();
                if !["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"].contains(&upper.as_str()) {
                    return Err(err(&at("method"), format!("{m:?} is not an HTTP method")));
                }
                Some(upper)
            }
            None => None,
        };
        if let Some(e) = &def.endpoint
            && !e.starts_with('/')
        {
            return Err(err(
                &at("endpoint"),
                format!("{e:?} must be a path starting with /"),
            ));
        }
        capabilities.push(Capability {
            name: def.name.clone(),
            description: def.description.trim().to_string(),
            parameters,
            returns: def.returns.clone(),
            endpoint: def.endpoint.clone(),
            method,
            examples: def.examples.clone(),
            read_only: def.read_only,
            destructive: def.destructive,
        });
    }
    if let Some(schema) = &doc.parameters_schema {
        check_schema(schema).map_err(|reason| err("parameters_schema", reason))?;
    }

    let permissions = permissions_of(&doc, dialect, &err)?;
    if doc.execution.as_ref().is_some_and(|e| e.kind == "chain") {
        check_chain_has_no_permissions(&permissions).map_err(|(field, reason)| err(&field, reason))?;
    }

    if let Some(api) = &doc.api_requirements {
        if !(api.base_url.starts_with("https://") || api.base_url.starts_with("http://"))
            || api.base_url.len() < "http://x".len()
        {
            return Err(err(
                "api_requirements.base_url",
                format!("{:?} is not an http(s) URL", api.base_url),
            ));
        }
        if let Some(t) = &api.auth_type
            && !["none", "api_key", "bearer", "basic"].contains(&t.as_str())
        {
            return Err(err(
                "api_requirements.auth_type",
                format!("{t:?} is not one of none, api_key, bearer, basic"),
            ));
        }
    }
    let execution = match &doc.execution {
        Some(def) => Some(execution_of(def, &doc, &err)?),
        // An API with no execution section is an HTTP tool.
        None if doc.api_requirements.is_some() => Some(Execution::Http),
        None => None,
    };

    Ok(Manifest {
        name: doc.name.clone(),
        version,
        description: doc.description.trim().to_string(),
        author: doc.author.clone(),
        license: doc.license.clone(),
        tags: doc.tags.clone(),
        capabilities,
        parameters_schema: doc.parameters_schema.clone(),
        permissions,
        api_requirements: doc.api_requirements.clone(),
        openapi_spec: doc.openapi_spec.clone(),
        execution,
    })
}

fn permissions_of(
    doc: &CapabilityDoc,
    dialect: Dialect,
    err: &dyn Fn(&str, String) -> ManifestError,
) -> Result<Permissions, ManifestError> {
    let p = &doc.permissions;
    let d = Permissions::default();
    let ranged = |field: &str, value: Option<u64>, default: u64, (lo, hi): (u64, u64)| match value {
        None => Ok(default),
        Some(v) if (lo..=hi).contains(&v) => Ok(v),
        Some(v) => Err(err(field, format!("{v} is out of range ({lo} to {hi})"))),
    };
    let exec_timeout = doc.execution.as_ref().and_then(|e| e.timeout);
    let (timeout_field, timeout) = match (p.timeout_s, exec_timeout) {
        (Some(_), Some(_)) => {
            return Err(err(
                "execution.timeout",
                "give the timeout once, as permissions.timeout_s or execution.timeout".into(),
            ));
        }
        (None, Some(t)) => ("execution.timeout", Some(t)),
        (t, None) => ("permissions.timeout_s", t),
    };
    let mut network_allow = Vec::new();
    for (i, host) in p.network_allow.iter().flatten().enumerate() {
        let field = format!("{}[{i}]", written_name(dialect, "permissions.network_allow"));
        network_allow.push(host.parse::<HostPattern>().map_err(|e| ManifestError {
            field: Some(field),
            ..err("", e.to_string())
        })?);
    }
    let expires_at = match &p.expires_at {
        Some(t) => Some(crate::time::parse_rfc3339(t).map_err(|e| {
            err(
                "permissions.expires_at",
                format!("{t:?} is not an RFC 3339 time: {e}"),
            )
        })?),
        None => None,
    };
    Ok(Permissions {
        internet_access: p.internet_access.unwrap_or(false),
        network_allow,
        storage_quota_mb: ranged(
            "permissions.storage_quota_mb",
            p.storage_quota_mb,
            d.storage_quota_mb,
            permissions::STORAGE_MB_RANGE,
        )?,
        cpu_limit_percent: ranged(
            "permissions.cpu_limit_percent",
            p.cpu_limit_percent,
            d.cpu_limit_percent.into(),
            permissions::CPU_PERCENT_RANGE,
        )? as u32,
        memory_limit_mb: ranged(
            "permissions.memory_limit_mb",
            p.memory_limit_mb,
            d.memory_limit_mb,
            permissions::MEMORY_MB_RANGE,
        )?,
        timeout_s: ranged(timeout_field, timeout, d.timeout_s, permissions::TIMEOUT_S_RANGE)?,
        pids_limit: ranged(
            "permissions.pids_limit",
            p.pids_limit,
            d.pids_limit.into(),
            permissions::PIDS_RANGE,
        )? as u32,
        expires_at,
    })
}

fn execution_of(
    def: &ExecutionDef,
    doc: &CapabilityDoc,
    err: &dyn Fn(&str, String) -> ManifestError,
) -> Result<Execution, ManifestError> {
    // Fields that belong to another execution type are an error, not ignored: an author who
    // writes `image` on a process tool has misunderstood something worth telling them.
    let stray = |allowed: &[&str]| -> Result<(), ManifestError> {
        let present = [
            ("command", def.command.is_some()),
            ("system_paths", def.system_paths.is_some()),
            ("module", def.module.is_some()),
            ("image", def.image.is_some()),
            ("entrypoint", def.entrypoint.is_some()),
            ("steps", def.steps.is_some()),
            ("result", def.result.is_some()),
            ("transport", def.transport.is_some()),
            ("env", def.env.is_some()),
            ("secret_env", def.secret_env.is_some()),
            ("tool_names", def.tool_names.is_some()),
            ("url", def.url.is_some()),
            ("headers", def.headers.is_some()),
            ("secret_headers", def.secret_headers.is_some()),
        ];
        for (field, is_set) in present {
            if is_set && !allowed.contains(&field) {
                return Err(err(
                    &format!("execution.{field}"),
                    format!("not allowed for execution type {:?}", def.kind),
                ));
            }
        }
        Ok(())
    };
    match def.kind.as_str() {
        "process" => {
            stray(&["command", "system_paths"])?;
            let command = def.command.clone().unwrap_or_default();
            let Some(program) = command.first() else {
                return Err(err("execution.command", "a process tool needs a command".into()));
            };
            check_bundle_path(program).map_err(|r| err("execution.command[0]", r))?;
            Ok(Execution::Process {
                command,
                system_paths: def.system_paths.unwrap_or(true),
            })
        }
        "wasm" => {
            stray(&["module"])?;
            let module = def
                .module
                .clone()
                .ok_or_else(|| err("execution.module", "a wasm tool needs a module".into()))?;
            check_bundle_path(&module).map_err(|r| err("execution.module", r))?;
            Ok(Execution::Wasm { module })
        }
        "docker" => {
            stray(&["image", "entrypoint"])?;
            let image = def.image.clone().unwrap_or_default();
            if image.is_empty() || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(err(
                    "execution.image",
                    format!("{image:?} is not an image reference"),
                ));
            }
            let entrypoint = def.entrypoint.clone().map(|e| match e {
                StringOrList::One(s) => vec![s],
                StringOrList::Many(v) => v,
            });
            if entrypoint.as_ref().is_some_and(|e| e.is_empty()) {
                return Err(err(
                    "execution.entrypoint",
                    "an entrypoint cannot be empty".into(),
                ));
            }
            Ok(Execution::Docker { image, entrypoint })
        }
        "http" => {
            stray(&[])?;
            if doc.api_requirements.is_none() {
                return Err(err(
                    "execution.type",
                    "an http tool needs api_requirements.base_url".into(),
                ));
            }
            Ok(Execution::Http)
        }
        "chain" => {
            stray(&["steps", "result"])?;
            chain_of(def, doc, err)
        }
        "mcp" => {
            stray(&[
                "transport",
                "command",
                "image",
                "system_paths",
                "env",
                "secret_env",
                "tool_names",
                "url",
                "headers",
                "secret_headers",
            ])?;
            super::mcp::mcp_execution(def, doc, err)
        }
        other => Err(err(
            "execution.type",
            format!("{other:?} is not one of process, wasm, docker, http, mcp, chain"),
        )),
    }
}

/// A chain: one capability, no API of its own, steps and a result that pass
/// [`chain::check_chain`].
fn chain_of(
    def: &ExecutionDef,
    doc: &CapabilityDoc,
    err: &dyn Fn(&str, String) -> ManifestError,
) -> Result<Execution, ManifestError> {
    if doc.capabilities.len() != 1 {
        return Err(err(
            "capabilities",
            format!(
                "a chain is one capability (its parameters are the chain's input); this manifest has {}",
                doc.capabilities.len()
            ),
        ));
    }
    if doc.api_requirements.is_some() {
        return Err(err(
            "api_requirements",
            "a chain calls other tools and has no API of its own".into(),
        ));
    }
    // What a chain may do is what its steps may do; an author's claim would only mislead.
    let cap = &doc.capabilities[0];
    for (field, claimed) in [("read_only", cap.read_only), ("destructive", cap.destructive)] {
        if claimed.is_some() {
            return Err(err(
                &format!("capabilities[0].{field}"),
                "a chain's hints are derived from its steps (tool show); it cannot claim them".into(),
            ));
        }
    }
    let steps = def.steps.clone().unwrap_or_default();
    let result = def.result.clone().unwrap_or(Value::Null);
    let parameters = doc.capabilities[0]
        .parameters
        .clone()
        .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
    chain::check_chain(&doc.name, &parameters, &steps, &result)
        .map_err(|(field, reason)| err(&format!("execution.{field}"), reason))?;
    Ok(Execution::Chain { steps, result })
}

/// A chain runs nothing itself, so it may ask for nothing but its time budget (`timeout_s`)
/// and an expiry: every step runs under its own tool's grant.
fn check_chain_has_no_permissions(p: &Permissions) -> Result<(), (String, String)> {
    let d = Permissions::default();
    let own = [
        (
            "permissions.internet_access",
            p.internet_access != d.internet_access,
        ),
        ("permissions.network_allow", p.network_allow != d.network_allow),
        (
            "permissions.storage_quota_mb",
            p.storage_quota_mb != d.storage_quota_mb,
        ),
        (
            "permissions.cpu_limit_percent",
            p.cpu_limit_percent != d.cpu_limit_percent,
        ),
        (
            "permissions.memory_limit_mb",
            p.memory_limit_mb != d.memory_limit_mb,
        ),
        ("permissions.pids_limit", p.pids_limit != d.pids_limit),
    ];
    match own.into_iter().find(|(_, differs)| *differs) {
        Some((field, _)) => Err((
            field.to_string(),
            "a chain has no permissions of its own (only timeout_s): each step runs under its tool's grant"
                .into(),
        )),
        None => Ok(()),
    }
}

/// A path inside the tool's bundle: relative, no `..`, no NUL.
pub(super) fn check_bundle_path(path: &str) -> Result<(), String> {
    if path.is_empty() || path.starts_with('/') || path.contains('\0') {
        return Err(format!(
            "{path:?} must be a non-empty path relative to the tool's bundle"
        ));
    }
    if path.split('/').any(|c| c == "..") {
        return Err(format!("{path:?} must not leave the tool's bundle (`..`)"));
    }
    Ok(())
}

fn valid_tool_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn valid_capability_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// A valid JSON Schema (draft from `$schema`, 2020-12 by default) that also compiles: bad
/// regular expressions and unresolvable references fail here, not at call time. Remote
/// references never resolve: the validator is built without network access.
pub(crate) fn check_schema(schema: &Value) -> Result<(), String> {
    if let Err(e) = jsonschema::meta::validate(schema) {
        return Err(format!(
            "not a valid JSON Schema: {e} (at {})",
            pointer_or_root(e.instance_path().as_str())
        ));
    }
    jsonschema::validator_for(schema)
        .map(|_| ())
        .map_err(|e| format!("not a usable JSON Schema: {e}"))
}

fn check_object_schema(schema: &Value) -> Result<(), String> {
    check_schema(schema)?;
    match schema.get("type") {
        Some(Value::String(t)) if t == "object" => Ok(()),
        _ => Err("the root of a parameters schema must have `type: object`".into()),
    }
}

fn pointer_or_root(p: &str) -> &str {
    if p.is_empty() { "the root" } else { p }
}

pub(crate) fn to_canonical(m: &Manifest) -> Value {
    let p = &m.permissions;
    let mut doc = json!({
        "name": m.name,
        "version": m.version.to_string(),
        "description": m.description,
    });
    let obj = doc.as_object_mut();
    let Some(obj) = obj else { return doc };
    if let Some(a) = &m.author {
        obj.insert("author".into(), json!(a));
    }
    if let Some(l) = &m.license {
        obj.insert("license".into(), json!(l));
    }
    obj.insert("tags".into(), json!(m.tags));
    obj.insert("capabilities".into(), json!(m.capabilities));
    if let Some(s) = &m.parameters_schema {
        obj.insert("parameters_schema".into(), s.clone());
    }
    let mut perms = json!({
        "internet_access": p.internet_access,
        "network_allow": p.network_allow,
        "storage_quota_mb": p.storage_quota_mb,
        "cpu_limit_percent": p.cpu_limit_percent,
        "memory_limit_mb": p.memory_limit_mb,
        "timeout_s": p.timeout_s,
        "pids_limit": p.pids_limit,
    });
    if let (Some(e), Some(o)) = (p.expires_at, perms.as_object_mut()) {
        o.insert(
            "expires_at".into(),
            json!(e.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        );
    }
    obj.insert("permissions".into(), perms);
    if let Some(a) = &m.api_requirements {
        obj.insert("api_requirements".into(), json!(a));
    }
    if let Some(s) = &m.openapi_spec {
        obj.insert("openapi_spec".into(), json!(s));
    }
    if let Some(e) = &m.execution {
        obj.insert("execution".into(), json!(e));
    }
    doc
}
