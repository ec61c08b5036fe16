//! Argument filling: what a request already says about a capability's parameters. Simple and
//! honest: each value comes from one visible rule (a quoted string, a number next to the
//! parameter's name, an ISO date, a capitalised place after "in", an enum value mentioned,
//! a URL or an e-mail address); anything else stays missing.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::text;

/// What could be filled from a request.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Filled {
    /// Arguments found, by parameter name.
    pub arguments: Map<String, Value>,
    /// How each argument was found, by parameter name (`quoted`, `place`, `enum`, …).
    pub how: Map<String, Value>,
    /// Required parameters still without a value.
    pub missing: Vec<String>,
}

/// Words in a parameter's name or description that mark it as a place.
const PLACE_WORDS: &[&str] = &[
    "city", "location", "place", "address", "region", "country", "town", "area", "locality", "where",
];
/// Words in a parameter's name that mark it as free text to search for or work on.
const TEXT_WORDS: &[&str] = &[
    "q", "query", "text", "term", "search", "keyword", "keywords", "name", "title", "s", "t", "word",
    "phrase", "content",
];
/// Prepositions that introduce a place.
const PLACE_PREPOSITIONS: &[&str] = &["in", "at", "near", "for", "around", "of"];

/// Fills the parameters of `schema` (a JSON Schema object) from `query`.
pub fn fill(query: &str, schema: &Value) -> Filled {
    let mut filled = Filled::default();
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return filled;
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let tokens: Vec<&str> = query.split_whitespace().collect();
    let clean = |t: &str| {
        t.trim_matches(|c: char| {
            !c.is_alphanumeric() && c != '-' && c != '.' && c != '/' && c != ':' && c != '@'
        })
        .to_string()
    };
    let quoted: Vec<String> = text::quoted_spans(query)
        .into_iter()
        .map(|(s, e)| query[s..e].to_string())
        .collect();
    let mut quoted_left = quoted.clone();
    let dates: Vec<String> = tokens
        .iter()
        .map(|t| clean(t))
        .filter(|t| is_iso_date(t))
        .collect();
    let urls: Vec<String> = tokens
        .iter()
        .map(|t| clean(t))
        .filter(|t| t.contains("://"))
        .collect();
    let emails: Vec<String> = tokens
        .iter()
        .map(|t| clean(t))
        .filter(|t| t.contains('@') && t.contains('.') && !t.contains("://"))
        .collect();
    let place = place_after_preposition(&tokens);
    let query_words = text::words(query);
    let mut used_enum: Vec<String> = Vec::new();
    let numbers: Vec<(usize, f64)> = tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| !is_iso_date(&clean(t)))
        .filter_map(|(i, t)| clean(t).parse::<f64>().ok().map(|n| (i, n)))
        .collect();
    let numeric_params = props.values().filter(|s| is_numeric(s)).count();

    for (name, s) in props {
        let ty = s.get("type").and_then(Value::as_str).unwrap_or("string");
        let desc = s
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_lowercase();
        let name_words = text::words(name);
        let mut put = |v: Value, how: &str| {
            filled.arguments.insert(name.clone(), v);
            filled.how.insert(name.clone(), Value::String(how.into()));
        };
        if let Some(values) = s.get("enum").and_then(Value::as_array) {
            // A value right after the parameter's name ("to km") wins; otherwise the first
            // value mentioned that no other parameter took.
            let values: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
            let after_name = query_words.windows(2).find_map(|w| {
                (w[0] == name.to_lowercase())
                    .then(|| values.iter().find(|v| v.to_lowercase() == w[1]))
                    .flatten()
            });
            let mentioned = values.iter().find(|v| {
                v.len() > 1
                    && !used_enum.contains(&v.to_string())
                    && query_words.iter().any(|w| w == &v.to_lowercase())
            });
            if let Some(v) = after_name.or(mentioned) {
                used_enum.push(v.to_string());
                put(Value::String(v.to_string()), "enum");
            }
            continue;
        }
        if is_numeric(s) {
            // A number right next to the parameter's name ("limit 5", "5 results"), or the
            // only number for the only numeric parameter.
            let near = numbers.iter().find(|(i, _)| {
                let around = [i.checked_sub(1), Some(i + 1)];
                around
                    .into_iter()
                    .flatten()
                    .filter_map(|j| tokens.get(j))
                    .any(|t| {
                        let w = text::stem(&clean(t).to_lowercase());
                        name_words.iter().any(|n| text::stem(n) == w)
                    })
            });
            let only = (numeric_params == 1 && numbers.len() == 1).then(|| &numbers[0]);
            if let Some((_, n)) = near.or(only) {
                let v = if ty == "integer" && n.fract() == 0.0 {
                    Value::from(*n as i64)
                } else {
                    Value::from(*n)
                };
                put(v, "number");
            }
            continue;
        }
        if ty != "string" {
            continue;
        }
        let format = s.get("format").and_then(Value::as_str).unwrap_or("");
        let mentions = |words: &[&str]| {
            name_words.iter().any(|w| words.contains(&w.as_str()))
                || text::words(&desc)
                    .iter()
                    .take(12)
                    .any(|w| words.contains(&w.as_str()))
        };
        if format.starts_with("date") || name_words.iter().any(|w| w == "date" || w == "day") {
            if let Some(d) = dates.first() {
                put(Value::String(d.clone()), "date");
            }
            continue;
        }
        if format == "uri"
            || format == "url"
            || name_words.iter().any(|w| w == "url" || w == "uri" || w == "link")
        {
            if let Some(u) = urls.first() {
                put(Value::String(u.clone()), "url");
            }
            continue;
        }
        if format == "email" || name_words.iter().any(|w| w == "email") {
            if let Some(e) = emails.first() {
                put(Value::String(e.clone()), "email");
            }
            continue;
        }
        if mentions(PLACE_WORDS)
            && let Some(p) = &place
        {
            put(Value::String(p.clone()), "place");
            continue;
        }
        if (mentions(TEXT_WORDS) || required.contains(&name.as_str())) && !quoted_left.is_empty() {
            let q = quoted_left.remove(0);
            put(Value::String(q), "quoted");
        }
    }
    filled.missing = required
        .iter()
        .filter(|r| !filled.arguments.contains_key(**r))
        .map(|r| r.to_string())
        .collect();
    filled
}

fn is_numeric(schema: &Value) -> bool {
    matches!(
        schema.get("type").and_then(Value::as_str),
        Some("integer" | "number")
    )
}

/// `YYYY-MM-DD`, optionally followed by a time.
fn is_iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit)
}

/// The capitalised words right after "in" / "at" / "near" …: "in New York" → "New York".
fn place_after_preposition(tokens: &[&str]) -> Option<String> {
    for (i, t) in tokens.iter().enumerate() {
        if !PLACE_PREPOSITIONS.contains(&t.to_lowercase().as_str()) {
            continue;
        }
        let mut parts = Vec::new();
        for next in &tokens[i + 1..] {
            let word = next.trim_matches(|c: char| !c.is_alphanumeric() && c != '-');
            if !word.chars().next().is_some_and(char::is_uppercase) {
                break;
            }
            parts.push(word);
            if next.ends_with([',', '.', '?', '!', ';']) {
                break;
            }
        }
        if !parts.is_empty() {
            return Some(parts.join(" "));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    #[test]
    fn fills_place_and_reports_missing() {
        let schema = json!({
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "units": {"type": "string", "enum": ["metric", "imperial"]},
                "api_key": {"type": "string"}
            },
            "required": ["city", "api_key"]
        });
        let f = fill("what's the air quality in Lyon, in metric please", &schema);
        assert_eq!(
            f.arguments,
            json!({"city": "Lyon", "units": "metric"})
                .as_object()
                .cloned()
                .unwrap_or_default()
        );
        assert_eq!(f.missing, vec!["api_key".to_string()]);
    }

    #[test]
    fn fills_numbers_dates_quotes_urls() {
        let schema = json!({
            "type": "object",
            "properties": {
                "q": {"type": "string"},
                "limit": {"type": "integer"},
                "since": {"type": "string", "format": "date"},
                "longUrl": {"type": "string"}
            },
            "required": ["q"]
        });
        let f = fill(
            "search \"rust sandbox\" since 2026-01-02 limit 5 for https://x.org/a",
            &schema,
        );
        assert_eq!(
            f.arguments,
            json!({"q": "rust sandbox", "limit": 5, "since": "2026-01-02", "longUrl": "https://x.org/a"})
                .as_object()
                .cloned()
                .unwrap_or_default()
        );
        assert!(f.missing.is_empty());
    }

    #[test]
    fn leaves_unsaid_things_missing() {
        let schema =
            json!({"type": "object", "properties": {"owner": {"type": "string"}}, "required": ["owner"]});
        let f = fill("list my repositories", &schema);
        assert!(f.arguments.is_empty());
        assert_eq!(f.missing, vec!["owner".to_string()]);
    }
}
