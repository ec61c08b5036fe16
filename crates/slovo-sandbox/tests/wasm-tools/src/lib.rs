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
