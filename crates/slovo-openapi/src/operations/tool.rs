//! The tool around the capabilities: the credentials it needs, its host on the network allow
//! list, its name, version and description from `info`, and how it is reached.

use serde_json::Value;
use slovo_core::manifest::ApiRequirements;
use slovo_core::{Capability, Execution, HostPattern, Manifest, Permissions};
use url::Url;

use super::Op;
use crate::IngestOptions;
use crate::naming;
use crate::report::{IngestReport, RequiredSecret, SecretScheme, Skipped};
use crate::source::Source;

/// The tool's manifest (one part, before splitting) from the converted capabilities.
pub(super) fn assemble(
    source: &Source,
    root: &Value,
    options: &IngestOptions,
    base_url: Option<String>,
    capabilities: Vec<Capability>,
    secrets: Vec<RequiredSecret>,
    report: &mut IngestReport,
) -> Manifest {
    report.secrets.extend(secrets);
    let network_allow = api_host(base_url.as_deref(), report);
    report.base_url = base_url.clone();
    let api_requirements = api_requirements(base_url, report);
    let info = root.get("info");
    let text = |object: Option<&Value>, key: &str| {
        object
            .and_then(|o| o.get(key))
            .and_then(Value::as_str)
            .map(|s| naming::clean_text(s, 200))
            .filter(|s| !s.is_empty())
    };
    let title = info
        .and_then(|i| i.get("title"))
        .and_then(Value::as_str)
        .unwrap_or("");
    Manifest {
        name: match &options.tool_name {
            Some(n) => n.clone(),
            None => naming::tool_name(title),
        },
        version: naming::version(
            &info
                .and_then(|i| i.get("version"))
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .unwrap_or_default(),
        ),
        description: description(title, info, source),
        author: text(info.and_then(|i| i.get("contact")), "name"),
        license: text(info.and_then(|i| i.get("license")), "name"),
        tags: vec!["openapi".into()],
        capabilities,
        parameters_schema: None,
        permissions: Permissions {
            network_allow,
            storage_quota_mb: 0,
            ..Permissions::default()
        },
        execution: api_requirements.as_ref().map(|_| Execution::Http),
        api_requirements,
        openapi_spec: Some(source.name.clone()),
    }
}

/// The base URL's host (with its port, if any) is the tool's whole network allow list.
fn api_host(base_url: Option<&str>, report: &mut IngestReport) -> Vec<HostPattern> {
    let Some(url) = base_url.and_then(|b| Url::parse(b).ok()) else {
        return Vec::new();
    };
    let Some(host) = url.host_str() else {
        return Vec::new();
    };
    let host = host.to_ascii_lowercase();
    let pattern = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    };
    match pattern.parse::<HostPattern>() {
        Ok(h) => {
            report.hosts.push(pattern);
            vec![h]
        }
        Err(e) => {
            report.warnings.push(format!(
                "the API host cannot be put on the network allow list: {e}"
            ));
            Vec::new()
        }
    }
}

/// The title and the description of `info`, or where the document came from.
fn description(title: &str, info: Option<&Value>, source: &Source) -> String {
    let info_description = info
        .and_then(|i| i.get("description"))
        .and_then(Value::as_str)
        .unwrap_or("");
    naming::clean_text(
        &match (title.trim().is_empty(), info_description.trim().is_empty()) {
            (false, false) => format!("{title}: {info_description}"),
            (false, true) => title.to_string(),
            (true, false) => info_description.to_string(),
            (true, true) => format!("API imported from {}", source.name),
        },
        500,
    )
}

/// How the tool is reached: the base URL and the scheme of the credential most capabilities
/// use. Without an absolute base URL the tool can be reviewed but not called.
fn api_requirements(base_url: Option<String>, report: &mut IngestReport) -> Option<ApiRequirements> {
    let Some(base_url) = base_url else {
        report.warnings.push(
            "no absolute base URL (servers / host): the tool can be proposed but not called \
             until one is given"
                .into(),
        );
        return None;
    };
    let primary = report.secrets.iter().max_by_key(|s| s.used_by);
    let (auth_type, auth_header) = match primary.map(|s| &s.scheme) {
        None => ("none", None),
        Some(SecretScheme::ApiKey { location, parameter }) => {
            ("api_key", (location == "header").then(|| parameter.clone()))
        }
        Some(SecretScheme::Basic) => ("basic", None),
        Some(
            SecretScheme::Bearer { .. }
            | SecretScheme::OAuth2ClientCredentials { .. }
            | SecretScheme::OAuth2Token { .. },
        ) => ("bearer", None),
        Some(SecretScheme::Unsupported { .. }) => ("none", None),
    };
    Some(ApiRequirements {
        base_url,
        auth_type: Some(auth_type.to_string()),
        auth_header,
    })
}

/// A capability larger than a whole tool may be cannot be stored: it is skipped (with its
/// risk), the others stay. Returns the sizes of the capabilities kept.
pub(super) fn drop_oversized(
    manifest: &mut Manifest,
    groups: &mut Vec<String>,
    origins: &[usize],
    ops: &[Op],
    report: &mut IngestReport,
) -> Vec<usize> {
    let budget = crate::split::PART_BUDGET_BYTES / 2;
    let sizes: Vec<usize> = manifest
        .capabilities
        .iter()
        .map(crate::split::capability_bytes)
        .collect();
    if sizes.iter().all(|s| *s <= budget) {
        return sizes;
    }
    let capabilities = std::mem::take(&mut manifest.capabilities);
    let all_groups = std::mem::take(groups);
    let mut kept_sizes = Vec::new();
    for (((cap, group), size), origin) in capabilities.into_iter().zip(all_groups).zip(sizes).zip(origins) {
        if size > budget {
            report.risks.retain(|r| r.capability != cap.name);
            report.skipped.push(Skipped {
                operation: ops[*origin].label(),
                pointer: ops[*origin].pointer(),
                reason: format!(
                    "its converted input schema is too large to store: up to {size} bytes, more \
                     than the {budget} bytes one capability may take"
                ),
            });
            continue;
        }
        manifest.capabilities.push(cap);
        groups.push(group);
        kept_sizes.push(size);
    }
    kept_sizes
}
