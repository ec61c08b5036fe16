//! A large API becomes several tools: one per tag (per first path segment for untagged
//! operations), each a proposal a person can review on its own.
//!
//! A document is split only when one tool would hold more than `max_operations` operations or
//! its manifest would come near the limit that protects hand-written manifests
//! ([`slovo_core::manifest::MAX_MANIFEST_BYTES`]); otherwise it stays one tool, as always. When
//! split:
//! - operations are grouped by their first tag, or by their first path segment when they
//!   have no tag (`/users/{id}` → `users`; segments every path shares, like `/api/v4`, are
//!   skipped), groups in document order;
//! - groups of fewer than [`MIN_GROUP`] operations are gathered into one group, `other`, so that
//!   an API with many small tags does not become a crowd of one-operation tools;
//! - each group is one tool named `{tool}-{group}` (slugged, at most 63 characters); a group
//!   still too large is cut, in document order, into `{tool}-{group}`, `{tool}-{group}-2`, …;
//! - every part keeps the document's version, permissions, execution and credentials, so each
//!   is approved, granted and called like any imported API.
//!
//! The names depend only on the tags (or paths) and the document order, so importing a newer
//! version of the document proposes upgrades of the same tools.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;
use slovo_core::{Capability, Manifest};

use crate::naming;

/// The byte budget of one part: a quarter below the manifest limit, so that a richer analysis
/// (an LLM's longer descriptions and examples) still fits when it is applied afterwards.
pub const PART_BUDGET_BYTES: usize = slovo_core::manifest::MAX_MANIFEST_BYTES / 4 * 3;

/// Groups smaller than this are gathered into `other`.
pub const MIN_GROUP: usize = 5;

/// What a manifest holds besides its capabilities (name, description, permissions, …), at
/// most: the description is cut at 500 characters, names and URLs are short.
const HEADER_ALLOWANCE: usize = 8 * 1024;

/// One tool of an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolPart {
    /// The tool's name.
    pub name: String,
    /// The tag or path segment its operations share; `None` when the document is one tool.
    pub group: Option<String>,
    /// How many capabilities it has.
    pub capabilities: usize,
}

/// How many leading segments every path shares (`/api/v4/users`, `/api/v4/groups` → 2).
pub(crate) fn shared_segments<'a>(mut paths: impl Iterator<Item = &'a str>) -> usize {
    let Some(first) = paths.next() else { return 0 };
    let first: Vec<&str> = first.split('/').filter(|s| !s.is_empty()).collect();
    let mut shared = first.len();
    for p in paths {
        shared = p
            .split('/')
            .filter(|s| !s.is_empty())
            .zip(&first[..shared])
            .take_while(|(a, b)| a == *b)
            .count();
    }
    shared
}

/// The group of an operation: its first tag, else the first literal segment of its path
/// after the `shared` segments every path has.
pub(crate) fn group_of(op: &Value, path: &str, shared: usize) -> String {
    if let Some(tag) = op
        .get("tags")
        .and_then(Value::as_array)
        .and_then(|t| t.iter().filter_map(Value::as_str).find(|t| !t.trim().is_empty()))
    {
        return tag.trim().to_string();
    }
    path.split('/')
        .filter(|s| !s.is_empty())
        .skip(shared)
        .find(|s| !s.starts_with('{'))
        .unwrap_or("root")
        .to_string()
}

/// An upper bound of the serialized size of a capability as the manifest stores it.
///
/// Counted over the values rather than by serializing them: the same bound for a fraction of
/// the time (serializing every capability was 5% of the import time). Strings count each byte
/// that JSON may escape as six (`\u00XX`), numbers as 24 bytes (the longest a JSON number
/// serializes to), so the bound is never below the real size.
pub(crate) fn capability_bytes(cap: &Capability) -> usize {
    // The field names and punctuation of a capability object, generously.
    const FIELDS: usize = 200;
    FIELDS
        + string_bytes(&cap.name)
        + string_bytes(&cap.description)
        + value_bytes(&cap.parameters)
        + cap.returns.as_ref().map_or(0, value_bytes)
        + cap.endpoint.as_deref().map_or(0, string_bytes)
        + cap.method.as_deref().map_or(0, string_bytes)
        + cap.examples.iter().map(|e| string_bytes(e) + 1).sum::<usize>()
}

fn string_bytes(s: &str) -> usize {
    let escaped = s
        .bytes()
        .filter(|b| *b < 0x20 || *b == b'"' || *b == b'\\')
        .count();
    s.len() + 2 + escaped * 5
}

fn value_bytes(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 24,
        Value::String(s) => string_bytes(s),
        Value::Array(a) => 2 + a.iter().map(|x| value_bytes(x) + 1).sum::<usize>(),
        Value::Object(o) => {
            2 + o
                .iter()
                .map(|(k, x)| string_bytes(k) + 2 + value_bytes(x))
                .sum::<usize>()
        }
    }
}

/// Splits `manifest` when it is too large for one tool (see the module documentation).
/// `groups` and `sizes` are parallel to `manifest.capabilities`.
pub(crate) fn split(
    manifest: Manifest,
    groups: Vec<String>,
    sizes: Vec<usize>,
    max_operations: usize,
) -> (Vec<Manifest>, Vec<ToolPart>) {
    let max_operations = max_operations.max(1);
    let budget = PART_BUDGET_BYTES - HEADER_ALLOWANCE;
    let total: usize = sizes.iter().map(|s| s + 1).sum();
    if manifest.capabilities.len() <= max_operations && total <= budget {
        let part = ToolPart {
            name: manifest.name.clone(),
            group: None,
            capabilities: manifest.capabilities.len(),
        };
        return (vec![manifest], vec![part]);
    }

    // Group in document order; small groups go to `other`.
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for g in &groups {
        *counts.entry(g.as_str()).or_default() += 1;
    }
    let groups: Vec<String> = groups
        .iter()
        .map(|g| {
            if counts[g.as_str()] < MIN_GROUP {
                "other".to_string()
            } else {
                g.clone()
            }
        })
        .collect();
    let mut order: Vec<String> = Vec::new();
    let mut members: HashMap<String, Vec<(Capability, usize)>> = HashMap::new();
    let mut template = manifest;
    let capabilities = std::mem::take(&mut template.capabilities);
    for ((cap, group), size) in capabilities.into_iter().zip(groups).zip(sizes) {
        let entry = members.entry(group.clone()).or_insert_with(|| {
            order.push(group.clone());
            Vec::new()
        });
        entry.push((cap, size));
    }

    let mut names = HashSet::new();
    let mut manifests = Vec::new();
    let mut parts = Vec::new();
    for group in order {
        let Some(caps) = members.remove(&group) else {
            continue;
        };
        let chunks = chunk(caps, max_operations, budget);
        for (i, chunk) in chunks.into_iter().enumerate() {
            let suffix = if i == 0 {
                String::new()
            } else {
                format!("-{}", i + 1)
            };
            let name = unique_name(&template.name, &group, &suffix, &mut names);
            let description = naming::clean_text(&format!("{group}: {}", template.description), 500);
            let part = Manifest {
                name: name.clone(),
                description,
                capabilities: chunk,
                ..template.clone()
            };
            parts.push(ToolPart {
                name,
                group: Some(group.clone()),
                capabilities: part.capabilities.len(),
            });
            manifests.push(part);
        }
    }
    (manifests, parts)
}

/// Consecutive runs of at most `max_operations` capabilities and `budget` bytes.
fn chunk(caps: Vec<(Capability, usize)>, max_operations: usize, budget: usize) -> Vec<Vec<Capability>> {
    let mut out: Vec<Vec<Capability>> = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for (cap, size) in caps {
        if !current.is_empty() && (current.len() >= max_operations || bytes + size + 1 > budget) {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size + 1;
        current.push(cap);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// `{tool}-{group}{suffix}` as a tool name, unique among the parts: the base is shortened so
/// that the group and the suffix always fit, and a clash (two groups with the same slug) is
/// numbered.
fn unique_name(tool: &str, group: &str, suffix: &str, taken: &mut HashSet<String>) -> String {
    let group_slug = naming::tool_name(group);
    let group_slug = group_slug.strip_prefix("api-").unwrap_or(&group_slug);
    let mut n = 1;
    loop {
        let numbered = if n == 1 {
            suffix.to_string()
        } else {
            format!("{suffix}-{n}")
        };
        // The group keeps at most 40 characters with its number; the number is never cut.
        let group_part: String = group_slug.chars().take(40 - numbered.len().min(20)).collect();
        let tail = format!("-{}{numbered}", group_part.trim_end_matches('-'));
        let head: String = tool.chars().take(63 - tail.len()).collect();
        let name = naming::tool_name(&format!("{}{tail}", head.trim_end_matches('-')));
        if taken.insert(name.clone()) {
            return name;
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_bound_is_never_below_the_real_size() {
        let cap = Capability {
            name: "a".into(),
            description: "quote \" backslash \\ tab \t é".into(),
            parameters: serde_json::json!({"type": "object", "properties": {"n": {"type": "number",
                "minimum": -1.2345678901234567e-300, "enum": [1, null, true, "x\u{1}"]}}}),
            returns: None,
            endpoint: Some("/x/{id}".into()),
            method: Some("GET".into()),
            examples: vec!["show \"x\"".into()],
            read_only: Some(true),
            destructive: Some(false),
        };
        let real = serde_json::to_vec(&cap).unwrap().len();
        let bound = capability_bytes(&cap);
        assert!(bound >= real && bound < real * 3, "{bound} vs {real}");
    }

    #[test]
    fn groups_and_names() {
        assert_eq!(
            group_of(&serde_json::json!({"tags": ["Issues"]}), "/x", 0),
            "Issues"
        );
        assert_eq!(group_of(&serde_json::json!({}), "/{org}/repos/{id}", 0), "repos");
        assert_eq!(group_of(&serde_json::json!({}), "/api/v4/users/{id}", 2), "users");
        assert_eq!(group_of(&serde_json::json!({"tags": []}), "/", 0), "root");
        assert_eq!(
            shared_segments(["/api/v4/users", "/api/v4/groups/{id}"].into_iter()),
            2
        );
        assert_eq!(shared_segments(["/a", "/b"].into_iter()), 0);
        let mut taken = HashSet::new();
        assert_eq!(
            unique_name("gitlab", "Merge Requests", "", &mut taken),
            "gitlab-merge-requests"
        );
        assert_eq!(
            unique_name("gitlab", "merge requests", "", &mut taken),
            "gitlab-merge-requests-2"
        );
        assert_eq!(
            unique_name("gitlab", "Merge Requests", "-2", &mut taken),
            "gitlab-merge-requests-2-2"
        );
        let long = unique_name(&"a".repeat(63), &"b".repeat(70), "-3", &mut taken);
        assert!(long.len() <= 63 && long.ends_with("-3"), "{long}");
        assert!(
            long.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        );
    }
}
