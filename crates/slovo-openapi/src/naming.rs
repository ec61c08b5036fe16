//! Names and versions: tool names, capability names, semantic versions, descriptions.

use std::collections::HashSet;

/// Longest capability name.
pub const MAX_CAPABILITY_NAME: usize = 64;
/// Longest capability description kept.
pub const MAX_DESCRIPTION: usize = 1_000;

/// A tool name (`^[a-z][a-z0-9-]{0,62}$`) from a title: lowercase ASCII letters and digits,
/// runs of anything else become one `-`; a leading digit gets `api-` in front; empty becomes
/// `openapi-tool`.
pub fn tool_name(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let mut out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        return "openapi-tool".into();
    }
    if !out.as_bytes()[0].is_ascii_lowercase() {
        out.insert_str(0, "api-");
    }
    out.truncate(63);
    out.trim_end_matches('-').to_string()
}

/// `info.version` as a semantic version:
/// 1. a valid semantic version is kept (`1.2.3`, `2.0.0-beta.1`);
/// 2. a leading `v` is dropped (`v2` → `2.0.0`);
/// 3. a date `YYYY-MM-DD` becomes `YYYY.M.D` (so later dates are higher versions);
/// 4. one to three leading numbers are padded to three (`2.0` → `2.0.0`), and any rest becomes
///    build metadata of `[0-9A-Za-z-]` (`1.0 beta` → `1.0.0+beta`);
/// 5. anything else is `0.0.0`, with the text as build metadata when there is some.
pub fn version(text: &str) -> semver::Version {
    let t = text.trim();
    if let Ok(v) = semver::Version::parse(t) {
        return v;
    }
    let t = t.strip_prefix(['v', 'V']).unwrap_or(t);
    if let Ok(v) = semver::Version::parse(t) {
        return v;
    }
    let parts: Vec<&str> = t.splitn(4, ['-', '.']).collect();
    if t.len() == 10
        && parts.len() == 3
        && parts[0].len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && t.as_bytes()[4] == b'-'
        && let (Ok(y), Ok(m), Ok(d)) = (parts[0].parse(), parts[1].parse(), parts[2].parse())
    {
        return semver::Version::new(y, m, d);
    }
    let mut numbers = Vec::new();
    let mut rest = t;
    while numbers.len() < 3 {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() || digits.len() > 18 {
            break;
        }
        let Ok(n) = digits.parse::<u64>() else { break };
        numbers.push(n);
        rest = &rest[digits.len()..];
        match rest.strip_prefix('.') {
            Some(r) if r.starts_with(|c: char| c.is_ascii_digit()) => rest = r,
            _ => break,
        }
    }
    numbers.resize(3, 0);
    let mut v = semver::Version::new(numbers[0], numbers[1], numbers[2]);
    let meta: String = rest
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(".");
    if !meta.is_empty()
        && let Ok(b) = semver::BuildMetadata::new(&meta)
    {
        v.build = b;
    }
    v
}

/// A capability name `[a-z0-9_]`, starting with a letter, at most 64 characters:
/// - from the `operationId` when there is one (`listPets` → `list_pets`), otherwise from the
///   method and path (`GET /pets/{id}` → `get_pets_by_id`);
/// - a name that would start with a digit gets `op_` in front;
/// - a name over 64 characters keeps its first 55 and ends with `_` and 8 hex digits of a
///   hash of the whole name, so two long names that share a prefix stay apart.
pub fn capability_name(operation_id: Option<&str>, method: &str, path: &str) -> String {
    let from_id = operation_id.map(snake).filter(|s| !s.is_empty());
    let mut name = from_id.unwrap_or_else(|| {
        let mut parts = vec![method.to_ascii_lowercase()];
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            if let Some(var) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                parts.push(format!("by_{}", snake(var)));
            } else {
                parts.push(snake(seg));
            }
        }
        let joined = parts
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("_");
        if joined == method.to_ascii_lowercase() {
            format!("{joined}_root")
        } else {
            joined
        }
    });
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name.insert_str(0, "op_");
    }
    shorten(&name, MAX_CAPABILITY_NAME)
}

/// Makes `name` unique within `taken` (adding `_2`, `_3`, … within the length limit) and
/// records it.
pub fn unique(name: String, taken: &mut HashSet<String>) -> String {
    if taken.insert(name.clone()) {
        return name;
    }
    for i in 2.. {
        let suffix = format!("_{i}");
        let base = shorten(&name, MAX_CAPABILITY_NAME - suffix.len());
        let candidate = format!("{base}{suffix}");
        if taken.insert(candidate.clone()) {
            return candidate;
        }
    }
    name
}

fn shorten(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let hash = format!("{:08x}", fnv1a(name.as_bytes()));
    let keep = max - hash.len() - 1;
    let head = name[..keep].trim_end_matches('_');
    format!("{head}_{hash}")
}

fn fnv1a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// `camelCase`, `kebab-case`, `dotted.names` and spaces → `snake_case` in `[a-z0-9_]`.
pub fn snake(s: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev = i.checked_sub(1).map(|j| chars[j]);
            let next = chars.get(i + 1);
            let boundary = prev.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit())
                || (prev.is_some_and(|p| p.is_ascii_uppercase())
                    && next.is_some_and(|n| n.is_ascii_lowercase()));
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_string()
}

/// Collapses white space, drops HTML tags, and cuts at `max` characters on a word boundary
/// (adding `…`).
pub fn clean_text(text: &str, max: usize) -> String {
    let mut plain = String::with_capacity(text.len().min(max * 2));
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                plain.push(' ');
            }
            _ if in_tag => {}
            _ => plain.push(c),
        }
        if plain.len() > max * 4 {
            break;
        }
    }
    let collapsed = plain.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() <= max {
        return collapsed;
    }
    let cut: String = collapsed.chars().take(max).collect();
    let cut = match cut.rfind(' ') {
        Some(i) if i > max / 2 => &cut[..i],
        _ => cut.as_str(),
    };
    format!("{}…", cut.trim_end_matches([',', ';', ':', ' ']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        for (t, v) in [
            ("1.2.3", "1.2.3"),
            ("2.0", "2.0.0"),
            ("v1", "1.0.0"),
            ("2016-03-30", "2016.3.30"),
            ("1.0 beta", "1.0.0+beta"),
            ("latest", "0.0.0+latest"),
            ("", "0.0.0"),
        ] {
            assert_eq!(version(t).to_string(), v, "{t}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(capability_name(Some("listPets"), "get", "/pets"), "list_pets");
        assert_eq!(
            capability_name(Some("getHTTPResponse"), "get", "/"),
            "get_http_response"
        );
        assert_eq!(
            capability_name(None, "GET", "/pets/{petId}"),
            "get_pets_by_pet_id"
        );
        assert_eq!(capability_name(None, "GET", "/"), "get_root");
        assert_eq!(capability_name(Some("123"), "get", "/"), "op_123");
        let long = "a".repeat(100);
        let n = capability_name(Some(&long), "get", "/");
        assert_eq!(n.len(), 64);
        assert_ne!(n, capability_name(Some(&format!("{long}b")), "get", "/"));
        assert_eq!(tool_name("Swagger Petstore (v2)"), "swagger-petstore-v2");
        assert_eq!(tool_name("1Password"), "api-1password");
    }
}
