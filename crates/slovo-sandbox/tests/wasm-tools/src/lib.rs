//! Helpers shared by the test tools.

use std::io::Read;

/// The request on stdin, as text.
pub fn request() -> String {
    let mut s = String::new();
    let _ = std::io::stdin().read_to_string(&mut s);
    s
}

/// Crude extraction of `"key": "value"` or `"key": number` from the request (no JSON crate,
/// so the tools build offline with no dependencies).
pub fn arg(request: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\":");
    let at = request.find(&pat)? + pat.len();
    let rest = request[at..].trim_start();
    if let Some(s) = rest.strip_prefix('"') {
        return s.find('"').map(|end| s[..end].to_string());
    }
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

/// JSON string literal.
pub fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The raw JSON text of each element of the array under `"key":` in the request (strings and
/// nesting respected), so a tool can hand documents on without parsing them.
pub fn raw_array(request: &str, key: &str) -> Vec<String> {
    let pat = format!("\"{key}\":");
    let Some(at) = request.find(&pat) else {
        return Vec::new();
    };
    let rest = request[at + pat.len()..].trim_start();
    let Some(rest) = rest.strip_prefix('[') else {
        return Vec::new();
    };
    let (mut items, mut current) = (Vec::new(), String::new());
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for c in rest.chars() {
        if in_string {
            current.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                current.push(c);
            }
            '[' | '{' => {
                depth += 1;
                current.push(c);
            }
            ']' if depth == 0 => break,
            ']' | '}' => {
                depth -= 1;
                current.push(c);
            }
            ',' if depth == 0 => items.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    if !current.trim().is_empty() {
        items.push(current);
    }
    items.into_iter().map(|i| i.trim().to_string()).collect()
}
