//! Permissions, capabilities and risks in plain language.
//!
//! These functions only describe: the decision what may be granted stays in the runtime.

use serde_json::Value;
use slovo_core::permissions::{HostPattern, Permissions};

/// One host pattern in words: exact host, or every name below a domain.
pub(crate) fn host_in_words(host: &HostPattern) -> String {
    let text = host.to_string();
    let (name, port) = match text.rsplit_once(':') {
        Some((name, port)) => (name.to_string(), Some(port.to_string())),
        None => (text.clone(), None),
    };
    let on_port = port.map(|p| format!(", port {p} only")).unwrap_or_default();
    match name.strip_prefix("*.") {
        Some(domain) => {
            format!("any subdomain of {domain}, not {domain} itself{on_port}")
        }
        None => format!("only {name} (exact host{on_port})"),
    }
}

/// Where a tool may connect, in words.
pub(crate) fn network_in_words(internet_access: bool, hosts: &[HostPattern]) -> Vec<String> {
    if internet_access {
        return vec!["any public host on the internet".into()];
    }
    if hosts.is_empty() {
        return vec!["no network at all".into()];
    }
    hosts.iter().map(host_in_words).collect()
}

/// How much a risk matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    High,
    Medium,
    Low,
}

impl Level {
    pub(crate) fn class(self) -> &'static str {
        match self {
            Level::High => "risk-high",
            Level::Medium => "risk-medium",
            Level::Low => "risk-low",
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Level::High => "High",
            Level::Medium => "Medium",
            Level::Low => "Low",
        }
    }
}

/// One risk of a proposal.
#[derive(Debug, Clone)]
pub(crate) struct Risk {
    pub level: Level,
    pub text: String,
}

/// The risks of what `requested` asks for, most important first: internet, secrets, storage,
/// CPU and memory, expiry.
pub(crate) fn risks(
    requested: &Permissions,
    secrets: &[String],
    credential_header: Option<&str>,
) -> Vec<Risk> {
    let mut out = Vec::new();
    let mut add = |level, text: String| out.push(Risk { level, text });
    if requested.internet_access {
        add(
            Level::High,
            "Internet access: it may connect to any public host and send what it receives there.".into(),
        );
    } else if !requested.network_allow.is_empty() {
        add(
            Level::Medium,
            format!(
                "Network: it may send data to {} host pattern(s): {}.",
                requested.network_allow.len(),
                network_in_words(false, &requested.network_allow).join("; ")
            ),
        );
    }
    if !secrets.is_empty() {
        add(
            Level::High,
            format!("Secrets: it will receive {}.", secrets.join(", ")),
        );
    }
    if let Some(header) = credential_header {
        add(
            Level::Medium,
            format!("Credentials: calls carry a credential in the {header} header."),
        );
    }
    if requested.storage_quota_mb > 0 {
        add(
            Level::Medium,
            format!(
                "Storage: it keeps up to {} MB between calls, which can hold what it has seen.",
                requested.storage_quota_mb
            ),
        );
    }
    add(
        Level::Low,
        format!(
            "CPU and memory: up to {} % of one CPU and {} MB of memory for {} s per call, at most {} processes.",
            requested.cpu_limit_percent, requested.memory_limit_mb, requested.timeout_s, requested.pids_limit
        ),
    );
    add(
        Level::Low,
        match requested.expires_at {
            Some(t) => format!(
                "Expiry: it asks for permission until {}.",
                t.format("%Y-%m-%d %H:%M UTC")
            ),
            None => "Expiry: it asks for permission without end; you may set an expiry below.".into(),
        },
    );
    out.sort_by_key(|r| r.level);
    out
}

/// One parameter of a capability, in words.
#[derive(Debug, Clone)]
pub(crate) struct Parameter {
    pub name: String,
    pub kind: String,
    pub required: bool,
    pub description: Option<String>,
}

/// The parameters of a capability's JSON Schema, in words.
pub(crate) fn parameters(schema: &Value) -> Vec<Parameter> {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = schema["properties"].as_object() else {
        return vec![];
    };
    properties
        .iter()
        .map(|(name, p)| Parameter {
            name: name.clone(),
            kind: kind_in_words(p),
            required: required.contains(&name.as_str()),
            description: p["description"].as_str().map(str::to_string),
        })
        .collect()
}

fn kind_in_words(p: &Value) -> String {
    if let Some(values) = p["enum"].as_array() {
        let names: Vec<String> = values
            .iter()
            .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
            .collect();
        return format!("one of {}", names.join(", "));
    }
    let base = match p["type"].as_str() {
        Some("string") => "text",
        Some("integer") => "whole number",
        Some("number") => "number",
        Some("boolean") => "yes or no",
        Some("array") => "list",
        Some("object") => "group of values",
        _ => "any value",
    };
    let mut words = base.to_string();
    if let Some(min) = p["minimum"].as_f64() {
        words.push_str(&format!(", at least {min}"));
    }
    if let Some(max) = p["maximum"].as_f64() {
        words.push_str(&format!(", at most {max}"));
    }
    if let Some(max) = p["maxLength"].as_u64() {
        words.push_str(&format!(", up to {max} characters"));
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_described_as_exact_or_below_a_domain() {
        let exact: HostPattern = "api.example.org".parse().unwrap_or_else(|e| panic!("{e}"));
        let below: HostPattern = "*.example.org:443".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(host_in_words(&exact), "only api.example.org (exact host)");
        assert_eq!(
            host_in_words(&below),
            "any subdomain of example.org, not example.org itself, port 443 only"
        );
        assert_eq!(
            network_in_words(true, &[]),
            vec!["any public host on the internet"]
        );
        assert_eq!(network_in_words(false, &[]), vec!["no network at all"]);
    }

    #[test]
    fn internet_access_is_the_first_risk() {
        let p = Permissions {
            internet_access: true,
            ..Permissions::default()
        };
        let r = risks(&p, &["api_key".into()], None);
        assert!(r[0].text.starts_with("Internet access"), "{r:?}");
        assert_eq!(r[0].level, Level::High);
        assert!(r.iter().any(|x| x.text.contains("api_key")));
    }
}
