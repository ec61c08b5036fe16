//! The offline analysis: what an LLM provider would add to a proposal, derived
//! deterministically from the document alone — clearer capability descriptions, requests a
//! person might say for each capability, and risk notes. The same [`Analysis`] structure is
//! what an LLM provider fills; [`Analysis::apply`] writes either into the manifest.

use serde::Serialize;
use slovo_core::Manifest;

use crate::naming;

/// The analysis of a whole proposal.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Analysis {
    /// One entry per capability, in manifest order.
    pub capabilities: Vec<CapabilityAnalysis>,
}

/// The analysis of one capability.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapabilityAnalysis {
    /// The capability it describes.
    pub name: String,
    /// A description a person and a planner can act on.
    pub description: String,
    /// Requests a person might say that this capability serves.
    pub examples: Vec<String>,
    /// What could go wrong, for the reviewer; `None` for read-only capabilities.
    pub risk_note: Option<String>,
}

impl Analysis {
    /// Writes the descriptions and examples into the manifest's capabilities of the same name.
    pub fn apply(&self, manifest: &mut Manifest) {
        for a in &self.capabilities {
            if let Some(c) = manifest.capabilities.iter_mut().find(|c| c.name == a.name) {
                c.description = a.description.clone();
                c.examples = a.examples.clone();
            }
        }
    }
}

/// The deterministic analysis of a manifest produced by [`crate::ingest`].
pub fn offline_analysis(manifest: &Manifest) -> Analysis {
    let capabilities = manifest
        .capabilities
        .iter()
        .map(|c| {
            let method = c.method.as_deref().unwrap_or("GET");
            let path = c.endpoint.as_deref().unwrap_or("/");
            let shape = Shape::of(path);
            let action = shape.action(method);
            let mut description = c.description.clone();
            let generic = description == format!("{method} {path}");
            if generic {
                description = format!("{action} ({method} {path}).");
            }
            let required: Vec<&str> = c
                .parameters
                .get("required")
                .and_then(|r| r.as_array())
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            if !required.is_empty() && description.len() < 600 {
                let list = required.iter().take(6).copied().collect::<Vec<_>>().join(", ");
                let more = if required.len() > 6 { ", …" } else { "" };
                description = format!("{} Requires: {list}{more}.", description.trim_end_matches('.').to_string() + ".");
            }
            let mut examples = vec![shape.request(method, &required)];
            let summary = naming::clean_text(c.description.split(". ").next().unwrap_or(""), 120);
            if !generic && !summary.is_empty() {
                let lowered = lower_first(summary.trim_end_matches('.'));
                let phrase = format!("Please {lowered}");
                if !examples.contains(&phrase) {
                    examples.push(phrase);
                }
            }
            let risk_note = match method {
                "DELETE" => Some(format!(
                    "{action} deletes data on the remote service; it may not be reversible."
                )),
                "PUT" => Some(format!("{action} replaces data on the remote service.")),
                "PATCH" => Some(format!("{action} changes data on the remote service.")),
                "POST" => Some(format!(
                    "{action} creates data or starts an action on the remote service (it may send messages or cost money)."
                )),
                _ => None,
            };
            CapabilityAnalysis {
                name: c.name.clone(),
                description: naming::clean_text(&description, naming::MAX_DESCRIPTION),
                examples,
                risk_note,
            }
        })
        .collect();
    Analysis { capabilities }
}

/// What a path is about: its last literal segment and whether it ends at one item.
struct Shape {
    resource: String,
    item_var: Option<String>,
}

impl Shape {
    fn of(path: &str) -> Shape {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let item_var = segs
            .last()
            .and_then(|s| s.strip_prefix('{'))
            .and_then(|s| s.strip_suffix('}'))
            .map(|v| naming::snake(v).replace('_', " "));
        let resource = segs
            .iter()
            .rev()
            .find(|s| !s.starts_with('{'))
            .map(|s| naming::snake(s.split('.').next().unwrap_or(s)).replace('_', " "))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "resource".into());
        Shape { resource, item_var }
    }

    fn singular(&self) -> String {
        let r = &self.resource;
        if let Some(stem) = r.strip_suffix("ies") {
            format!("{stem}y")
        } else if r.ends_with("ss") {
            r.clone()
        } else {
            r.strip_suffix('s').unwrap_or(r).to_string()
        }
    }

    fn action(&self, method: &str) -> String {
        let one = self.singular();
        match (method, &self.item_var) {
            ("GET", Some(v)) => format!("Get one {one} by {v}"),
            ("GET", None) => format!("List or read {}", self.resource),
            ("POST", _) => format!("Create or run {}", self.resource),
            ("PUT", _) => format!("Replace a {one}"),
            ("PATCH", _) => format!("Update a {one}"),
            ("DELETE", _) => format!("Delete a {one}"),
            ("HEAD", _) => format!("Check {}", self.resource),
            _ => format!("{method} {}", self.resource),
        }
    }

    fn request(&self, method: &str, required: &[&str]) -> String {
        let one = self.singular();
        let by = self
            .item_var
            .clone()
            .or_else(|| required.first().map(|r| naming::snake(r).replace('_', " ")));
        match (method, by) {
            ("GET", Some(v)) if self.item_var.is_some() => format!("Show me the {one} with {v} 42"),
            ("GET", _) => format!("What {} are there?", self.resource),
            ("POST", _) => format!("Create a new {one}"),
            ("PUT", Some(v)) => format!("Replace the {one} with {v} 42"),
            ("PATCH", Some(v)) => format!("Update the {one} with {v} 42"),
            ("DELETE", Some(v)) => format!("Delete the {one} with {v} 42"),
            ("PUT" | "PATCH", None) => format!("Update the {one}"),
            ("DELETE", None) => format!("Delete the {one}"),
            _ => format!("Check the {}", self.resource),
        }
    }
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match (chars.next(), chars.clone().next()) {
        // Keep acronyms (`SMS`, `URL`) as written.
        (Some(a), Some(b)) if a.is_uppercase() && b.is_uppercase() => s.to_string(),
        (Some(a), _) => a.to_lowercase().chain(chars).collect(),
        (None, _) => String::new(),
    }
}
