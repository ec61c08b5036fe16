//! Validation of `execution.type: mcp`: the stdio transport (a command) and the
//! streamable-http transport (a remote endpoint), and what both share (tool names).

use std::collections::BTreeMap;

use super::dialects::{CapabilityDoc, ExecutionDef};
use super::error::ManifestError;
use super::validate::check_bundle_path;
use super::{Execution, McpTransport};

/// `type: mcp`: a transport Slovo speaks; for stdio a command that names a bundle file or (with
/// the system directories mounted) a system program and an environment that cannot
/// impersonate Slovo's own variables; for streamable-http an http(s) URL and headers; tool
/// names for existing capabilities only.
pub(super) fn mcp_execution(
    def: &ExecutionDef,
    doc: &CapabilityDoc,
    err: &dyn Fn(&str, String) -> ManifestError,
) -> Result<Execution, ManifestError> {
    let transport = match def.transport.as_deref() {
        Some("stdio") => McpTransport::Stdio,
        Some("streamable-http") => McpTransport::StreamableHttp,
        Some(other) => {
            return Err(err(
                "execution.transport",
                format!("{other:?} is not a supported MCP transport (stdio, streamable-http)"),
            ));
        }
        None => {
            return Err(err(
                "execution.transport",
                "an mcp tool needs a transport (stdio or streamable-http)".into(),
            ));
        }
    };
    let tool_names = tool_names(def, doc, err)?;
    match transport {
        McpTransport::Stdio => stdio(def, tool_names, err),
        McpTransport::StreamableHttp => streamable_http(def, tool_names, err),
    }
}

fn stdio(
    def: &ExecutionDef,
    tool_names: BTreeMap<String, String>,
    err: &dyn Fn(&str, String) -> ManifestError,
) -> Result<Execution, ManifestError> {
    for (field, is_set) in [
        ("url", def.url.is_some()),
        ("headers", def.headers.is_some()),
        ("secret_headers", def.secret_headers.is_some()),
    ] {
        if is_set {
            return Err(err(
                &format!("execution.{field}"),
                "belongs to transport streamable-http, not stdio".into(),
            ));
        }
    }
    let image = match &def.image {
        Some(reference) => {
            check_pinned_image(reference).map_err(|r| err("execution.image", r.to_string()))?;
            Some(reference.clone())
        }
        None => None,
    };
    let command = def.command.clone().unwrap_or_default();
    // In an image the program is the image's (or `command`, its `CMD`): no system
    // directories of the host, no bundle path to check.
    if image.is_some() && def.system_paths == Some(true) {
        return Err(err(
            "execution.system_paths",
            "a server in an image runs on the image's own files, not the host's".into(),
        ));
    }
    let system_paths = image.is_none() && def.system_paths.unwrap_or(true);
    match (&image, command.first()) {
        (None, None) => {
            return Err(err(
                "execution.command",
                "an mcp tool needs a command (or an image)".into(),
            ));
        }
        (None, Some(program)) => check_program(program, system_paths, err)?,
        (Some(_), _) => {}
    }
    if let Some(i) = command.iter().position(|a| a.contains('\0')) {
        return Err(err(&format!("execution.command[{i}]"), "holds a NUL byte".into()));
    }
    let env = def.env.clone().unwrap_or_default();
    for (name, value) in &env {
        let field = format!("execution.env.{name}");
        if !is_variable_name(name) {
            return Err(err(&field, "a variable name is letters, digits and `_`".into()));
        }
        if name.starts_with("SLOVO_") {
            return Err(err(&field, "SLOVO_* variables are set by Slovo itself".into()));
        }
        if value.contains('\0') {
            return Err(err(&field, "holds a NUL byte".into()));
        }
    }
    let secret_env = def.secret_env.clone().unwrap_or_default();
    for (name, secret) in &secret_env {
        let field = format!("execution.secret_env.{name}");
        if env.contains_key(name) {
            return Err(err(
                &field,
                "is also in execution.env: a variable has one source".into(),
            ));
        }
        if !is_variable_name(name) || name.starts_with("SLOVO_") {
            return Err(err(
                &field,
                "a variable name is letters, digits and `_`, not SLOVO_*".into(),
            ));
        }
        check_secret_name(secret).map_err(|r| err(&field, r))?;
    }
    Ok(Execution::Mcp {
        transport: McpTransport::Stdio,
        command,
        image,
        system_paths,
        env,
        secret_env,
        tool_names,
        url: None,
        headers: BTreeMap::new(),
        secret_headers: BTreeMap::new(),
    })
}

/// The program of a server run from its bundle: a bundle file, or a system program when the
/// system directories are mounted.
fn check_program(
    program: &str,
    system_paths: bool,
    err: &dyn Fn(&str, String) -> ManifestError,
) -> Result<(), ManifestError> {
    if !program.starts_with('/') {
        return check_bundle_path(program).map_err(|r| err("execution.command[0]", r));
    }
    if !system_paths {
        return Err(err(
            "execution.command[0]",
            format!("{program:?} is a system program: it needs system_paths: true"),
        ));
    }
    if program.contains('\0') || program.split('/').any(|c| c == "..") {
        return Err(err(
            "execution.command[0]",
            format!("{program:?} is not a plain path"),
        ));
    }
    Ok(())
}

/// Why an image reference is not pinned by its digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageReferenceError {
    /// No `@` digest at all (a tag alone, or a bare name).
    #[error(
        "{reference:?} has no digest: name the image by its digest (NAME@sha256:…), since a tag \
         can be moved to other code later"
    )]
    NoDigest {
        /// The reference as given.
        reference: String,
    },
    /// A digest that is not `sha256:` and 64 lowercase hex digits.
    #[error("{reference:?}: the digest must be sha256: and 64 lowercase hex digits")]
    BadDigest {
        /// The reference as given.
        reference: String,
    },
    /// A name with characters an image name cannot have.
    #[error("{reference:?}: {name:?} is not an image name")]
    BadName {
        /// The reference as given.
        reference: String,
        /// The part before the digest.
        name: String,
    },
}

/// An image reference pinned by its digest, `NAME@sha256:HEX` (a tag before the digest is
/// allowed and means nothing): a tag alone could name other code tomorrow.
pub fn check_pinned_image(reference: &str) -> Result<(), ImageReferenceError> {
    let Some((name, digest)) = reference.split_once('@') else {
        return Err(ImageReferenceError::NoDigest {
            reference: reference.to_string(),
        });
    };
    let hex = digest.strip_prefix("sha256:").unwrap_or("");
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return Err(ImageReferenceError::BadDigest {
            reference: reference.to_string(),
        });
    }
    let name_ok = !name.is_empty()
        && !name.starts_with(['-', '/', '.', ':'])
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/:".contains(&b));
    if !name_ok {
        return Err(ImageReferenceError::BadName {
            reference: reference.to_string(),
            name: name.to_string(),
        });
    }
    Ok(())
}

/// A remote server: an http(s) URL with a host and no credentials in it (a credential belongs
/// in the secret store, not in the manifest), and headers with valid names and values. The
/// headers Slovo sets itself for the protocol cannot be overridden.
fn streamable_http(
    def: &ExecutionDef,
    tool_names: BTreeMap<String, String>,
    err: &dyn Fn(&str, String) -> ManifestError,
) -> Result<Execution, ManifestError> {
    for (field, is_set) in [
        ("command", def.command.is_some()),
        ("image", def.image.is_some()),
        // `false` is what a stored manifest says (the field is always written).
        ("system_paths", def.system_paths == Some(true)),
        ("env", def.env.is_some()),
        ("secret_env", def.secret_env.is_some()),
    ] {
        if is_set {
            return Err(err(
                &format!("execution.{field}"),
                "belongs to transport stdio, not streamable-http".into(),
            ));
        }
    }
    let url = def
        .url
        .clone()
        .ok_or_else(|| err("execution.url", "a streamable-http MCP tool needs a url".into()))?;
    check_remote_url(&url).map_err(|r| err("execution.url", r))?;
    let headers = def.headers.clone().unwrap_or_default();
    for (name, value) in &headers {
        let field = format!("execution.headers.{name}");
        check_header_name(name).map_err(|r| err(&field, r))?;
        if value.chars().any(|c| c.is_ascii_control() && c != '\t') {
            return Err(err(&field, "holds a control character".into()));
        }
    }
    let secret_headers = def.secret_headers.clone().unwrap_or_default();
    for (name, secret) in &secret_headers {
        let field = format!("execution.secret_headers.{name}");
        check_header_name(name).map_err(|r| err(&field, r))?;
        if headers.keys().any(|h| h.eq_ignore_ascii_case(name)) {
            return Err(err(
                &field,
                "is also in execution.headers: a header has one source".into(),
            ));
        }
        check_secret_name(secret).map_err(|r| err(&field, r))?;
    }
    Ok(Execution::Mcp {
        transport: McpTransport::StreamableHttp,
        command: Vec::new(),
        image: None,
        system_paths: false,
        env: BTreeMap::new(),
        secret_env: BTreeMap::new(),
        tool_names,
        url: Some(url),
        headers,
        secret_headers,
    })
}

/// Headers the streamable-http transport sets itself.
const PROTOCOL_HEADERS: [&str; 5] = [
    "mcp-session-id",
    "mcp-protocol-version",
    "accept",
    "content-type",
    "host",
];

fn check_header_name(name: &str) -> Result<(), String> {
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Err(format!("{name:?} is not an HTTP header name"));
    }
    if PROTOCOL_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!("{name} is set by the transport itself"));
    }
    Ok(())
}

fn check_remote_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} is not an http(s) URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    if authority.contains('@') {
        return Err(format!(
            "{url:?} carries credentials: put them in a secret header instead"
        ));
    }
    if url.contains('#') {
        return Err(format!("{url:?} has a fragment, which is never sent"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{url:?} holds white space or a control character"));
    }
    Ok(())
}

fn tool_names(
    def: &ExecutionDef,
    doc: &CapabilityDoc,
    err: &dyn Fn(&str, String) -> ManifestError,
) -> Result<BTreeMap<String, String>, ManifestError> {
    let tool_names = def.tool_names.clone().unwrap_or_default();
    for (capability, tool) in &tool_names {
        if !doc.capabilities.iter().any(|c| &c.name == capability) {
            return Err(err(
                &format!("execution.tool_names.{capability}"),
                "names no capability of this manifest".into(),
            ));
        }
        if tool.is_empty() || tool.contains('\0') {
            return Err(err(
                &format!("execution.tool_names.{capability}"),
                "an MCP tool name cannot be empty".into(),
            ));
        }
    }
    Ok(tool_names)
}

fn is_variable_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .enumerate()
            .all(|(i, c)| c == b'_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()))
}

fn check_secret_name(secret: &str) -> Result<(), String> {
    let ok = !secret.is_empty()
        && secret.len() <= 64
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{secret:?} is not a secret name (letters, digits, `_-.`)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_must_be_pinned_by_a_sha256_digest_under_a_valid_name() {
        let digest = "a".repeat(64);
        assert_eq!(
            check_pinned_image(&format!("example/tool:1.0@sha256:{digest}")),
            Ok(())
        );
        let tag_only = check_pinned_image("example/tool:1.0").unwrap_err();
        assert_eq!(
            tag_only,
            ImageReferenceError::NoDigest {
                reference: "example/tool:1.0".into()
            }
        );
        assert!(tag_only.to_string().contains("has no digest"), "{tag_only}");
        assert_eq!(
            check_pinned_image(&format!("example/tool@sha256:{}", "A".repeat(64))),
            Err(ImageReferenceError::BadDigest {
                reference: format!("example/tool@sha256:{}", "A".repeat(64))
            })
        );
        let bad_name = check_pinned_image(&format!("Example/Tool@sha256:{digest}")).unwrap_err();
        assert_eq!(
            bad_name,
            ImageReferenceError::BadName {
                reference: format!("Example/Tool@sha256:{digest}"),
                name: "Example/Tool".into()
            }
        );
        assert_eq!(
            bad_name.to_string(),
            format!("\"Example/Tool@sha256:{digest}\": \"Example/Tool\" is not an image name")
        );
    }
}
