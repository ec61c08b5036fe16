//! MCP tool names: `<tool>__<capability>`, at most 64 characters of `[A-Za-z0-9_.-]`.
//!
//! The rule, in order (documented in `docs/mcp.md`):
//! 1. The name is `<tool>__<capability>`. Tool names are `[a-z0-9-]` (no `_`), so the first
//!    `__` always separates the two and distinct pairs give distinct names.
//! 2. Any character outside `[A-Za-z0-9_.-]` becomes `_` (manifest validation makes this a
//!    no-op today; it guards the wire format if the manifest rules ever widen).
//! 3. A name longer than 64 characters, or one that two pairs would share after step 2, is
//!    shortened to its first 55 characters, `_`, and the first 8 hex digits of the SHA-256 of
//!    `<tool>\0<capability>`: 64 characters, stable, and independent of the other tools.
//! 4. Should two pairs still share a name (a 32-bit hash collision on the same prefix), the
//!    pair that sorts first by (tool, capability) keeps it and the other is left out of the
//!    list, with a warning in the log.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

/// Longest tool name MCP clients accept.
pub const MAX_NAME_LEN: usize = 64;
/// Hex digits of the hash in a shortened name.
const HASH_LEN: usize = 8;

/// The tool and capability an MCP tool name stands for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    /// The Slovo tool.
    pub tool: String,
    /// The capability.
    pub capability: String,
}

/// `<tool>__<capability>` with characters outside `[A-Za-z0-9_.-]` replaced by `_`.
fn base_name(t: &Target) -> String {
    format!("{}__{}", t.tool, t.capability)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The shortened form: a 55-character prefix, `_`, 8 hex digits of the pair's hash.
fn hashed_name(t: &Target, base: &str) -> String {
    let digest = Sha256::digest(format!("{}\0{}", t.tool, t.capability).as_bytes());
    let hash = &hex::encode(digest)[..HASH_LEN];
    let keep = MAX_NAME_LEN - HASH_LEN - 1;
    // `base` is ASCII after `base_name`, so byte slicing is safe.
    let prefix = &base[..base.len().min(keep)];
    format!("{prefix}_{hash}")
}

/// Names every target by the rule in the module docs. Returns `(name, target)` pairs sorted by
/// target; targets left out by rule 4 are absent.
pub fn assign(mut targets: Vec<Target>) -> Vec<(String, Target)> {
    targets.sort();
    targets.dedup();
    let bases: Vec<String> = targets.iter().map(base_name).collect();
    let mut base_count: HashMap<&str, usize> = HashMap::new();
    for b in &bases {
        *base_count.entry(b.as_str()).or_default() += 1;
    }
    let mut out = Vec::with_capacity(targets.len());
    let mut taken: HashMap<String, usize> = HashMap::new();
    for (t, base) in targets.iter().zip(&bases) {
        let name = if base.len() > MAX_NAME_LEN || base_count.get(base.as_str()).copied().unwrap_or(0) > 1 {
            hashed_name(t, base)
        } else {
            base.clone()
        };
        if let Some(&i) = taken.get(&name) {
            let (_, kept): &(String, Target) = &out[i];
            tracing::warn!(
                name = %name,
                kept_tool = %kept.tool, kept_capability = %kept.capability,
                dropped_tool = %t.tool, dropped_capability = %t.capability,
                "two capabilities map to the same MCP tool name; the second is not listed"
            );
            continue;
        }
        taken.insert(name.clone(), out.len());
        out.push((name, t.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(tool: &str, capability: &str) -> Target {
        Target {
            tool: tool.into(),
            capability: capability.into(),
        }
    }

    fn valid(name: &str) -> bool {
        name.len() <= MAX_NAME_LEN
            && !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    }

    #[test]
    fn short_names_are_tool_double_underscore_capability() {
        let named = assign(vec![t("weather", "forecast"), t("echo", "say")]);
        assert_eq!(
            named,
            vec![
                ("echo__say".to_string(), t("echo", "say")),
                ("weather__forecast".to_string(), t("weather", "forecast")),
            ]
        );
    }

    #[test]
    fn long_names_are_shortened_deterministically_and_stay_distinct() {
        let tool = "a".repeat(63);
        let a = t(&tool, &"c".repeat(64));
        let b = t(&tool, &format!("{}d", "c".repeat(63)));
        let named = assign(vec![a.clone(), b.clone()]);
        assert_eq!(named.len(), 2);
        for (name, _) in &named {
            assert!(valid(name), "{name}");
            assert_eq!(name.len(), MAX_NAME_LEN);
            assert!(name.starts_with(&tool[..55]));
        }
        assert_ne!(named[0].0, named[1].0);
        // Stable: the same pair gets the same name whatever else is listed.
        let alone = assign(vec![a.clone()]);
        let with_a = named.iter().find(|(_, x)| *x == a).map(|(n, _)| n.clone());
        assert_eq!(Some(alone[0].0.clone()), with_a);
    }

    #[test]
    fn exactly_64_characters_is_kept() {
        let tool = "x".repeat(30);
        let cap = "y".repeat(64 - 32);
        let named = assign(vec![t(&tool, &cap)]);
        assert_eq!(named[0].0, format!("{tool}__{cap}"));
        assert_eq!(named[0].0.len(), 64);
    }

    #[test]
    fn characters_outside_the_set_are_replaced_and_collisions_hashed() {
        let named = assign(vec![t("a", "b c"), t("a", "b/c")]);
        assert_eq!(named.len(), 2);
        assert!(named.iter().all(|(n, _)| valid(n)));
        assert_ne!(named[0].0, named[1].0);
        assert!(named.iter().all(|(n, _)| n.starts_with("a__b_c_")));
    }

    #[test]
    fn no_capability_can_take_the_resolve_tools_name() {
        // Every assigned name contains `__` or is exactly 64 characters long; the built-in
        // resolve tool's name is neither, whatever the tool and capability are.
        let builtin = crate::mcp::RESOLVE_TOOL;
        assert!(!builtin.contains("__") && builtin.len() < MAX_NAME_LEN && valid(builtin));
        let long = "s".repeat(70);
        let named = assign(vec![
            t("slovo", "resolve"),
            t("slovo", "_resolve"),
            t("slovo_resolve", ""),
            t("slovo resolve", "x"),
            t(&long, "resolve"),
            t("a", "b c"),
            t("a", "b/c"),
        ]);
        for (name, _) in &named {
            assert!(name.contains("__") || name.len() == MAX_NAME_LEN, "{name}");
            assert_ne!(name, builtin);
        }
    }
}
