//! The request headers the stateless 2026-07-28 revision adds to streamable HTTP (its
//! "standard headers"): every POST names its JSON-RPC method in `Mcp-Method`; a `tools/call`
//! names its tool in `Mcp-Name`; and each argument the tool's `inputSchema` marks with
//! `x-mcp-header: NAME` is repeated in `Mcp-Param-NAME`. They let an intermediary route a
//! request without reading its body, and a server refuses a request whose headers are missing
//! or disagree with the body (`-32020`, HTTP 400) — as the `rmcp` SDK's server does.
//!
//! A value that cannot travel as a plain header value (space or tab at either end, a control
//! or non-ASCII character, or a value that already looks wrapped) is sent wrapped:
//! `=?base64?<Base64 of its UTF-8>?=`.

use base64::Engine;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::Value;

/// The method of the message.
const METHOD: &str = "mcp-method";
/// The tool a `tools/call` names.
const NAME: &str = "mcp-name";
/// The prefix of a header repeating an annotated argument.
const PARAM_PREFIX: &str = "mcp-param-";
/// The keyword of `inputSchema` that promotes a property to a header.
const ANNOTATION: &str = "x-mcp-header";

const WRAP_START: &str = "=?base64?";
const WRAP_END: &str = "?=";

/// The standard headers of `message` (a request or notification this client sends);
/// `input_schema` is the called tool's, for the `Mcp-Param-*` headers of a `tools/call`.
pub(crate) fn of(message: &Value, input_schema: Option<&Value>) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = Vec::new();
    let Some(method) = message.get("method").and_then(Value::as_str) else {
        return headers;
    };
    push(&mut headers, METHOD, method);
    if method != "tools/call" {
        return headers;
    }
    let params = message.get("params");
    if let Some(name) = params.and_then(|p| p.get("name")).and_then(Value::as_str) {
        push(&mut headers, NAME, name);
    }
    let arguments = params.and_then(|p| p.get("arguments"));
    if let (Some(schema), Some(arguments)) = (input_schema, arguments) {
        let mut annotated = Vec::new();
        annotations(schema, &mut Vec::new(), &mut annotated);
        for (path, header) in annotated {
            let value = path.iter().try_fold(arguments, |v, key| v.get(key));
            if let Some(value) = value.and_then(primitive) {
                push(&mut headers, &format!("{PARAM_PREFIX}{header}"), &value);
            }
        }
    }
    headers
}

/// Adds `name: value` (wrapped when needed). A name that is not a header name (a server's
/// annotation can be anything) is left out: the server then refuses the call naming the
/// header it expected.
fn push(headers: &mut Vec<(HeaderName, HeaderValue)>, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (
        HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()),
        HeaderValue::from_str(&encode(value)),
    ) {
        headers.push((name, value));
    }
}

/// The properties reached from the schema's root through `properties` alone that carry an
/// `x-mcp-header` string: each property's path and the header's name.
fn annotations<'s>(schema: &'s Value, path: &mut Vec<&'s str>, found: &mut Vec<(Vec<&'s str>, &'s str)>) {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, property) in properties {
        path.push(name);
        if let Some(header) = property.get(ANNOTATION).and_then(Value::as_str)
            && !header.is_empty()
        {
            found.push((path.clone(), header));
        }
        annotations(property, path, found);
        path.pop();
    }
}

/// A string, number or boolean as its header text; anything else travels in the body alone.
fn primitive(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `value` as it can travel in a header.
fn encode(value: &str) -> String {
    let padded = value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']);
    let unsafe_char = value.chars().any(|c| !(' '..='~').contains(&c));
    let looks_wrapped = value.starts_with(WRAP_START) && value.ends_with(WRAP_END);
    if padded || unsafe_char || looks_wrapped {
        let encoded = base64::engine::general_purpose::STANDARD.encode(value.as_bytes());
        format!("{WRAP_START}{encoded}{WRAP_END}")
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::{encode, of};

    fn headers(message: serde_json::Value, schema: Option<serde_json::Value>) -> Vec<(String, String)> {
        of(&message, schema.as_ref())
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect()
    }

    #[test]
    fn values_that_cannot_travel_plain_are_wrapped() {
        assert_eq!(encode("us-west1"), "us-west1");
        assert_eq!(encode("a b"), "a b");
        assert_eq!(encode("Zürich"), "=?base64?WsO8cmljaA==?=");
        assert_eq!(encode(" x"), "=?base64?IHg=?=");
        assert_eq!(encode("a\nb"), "=?base64?YQpi?=");
        assert_eq!(encode("=?base64?eA==?="), "=?base64?PT9iYXNlNjQ/ZUE9PT89?=");
    }

    #[test]
    fn a_call_names_its_method_tool_and_annotated_arguments() {
        let schema = json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "options": {"type": "object", "properties": {
                "priority": {"type": "integer", "x-mcp-header": "Priority"},
                "tags": {"type": "array", "x-mcp-header": "Tags"}
            }},
            "missing": {"type": "boolean", "x-mcp-header": "Missing"}
        }});
        let call = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
            "name": "greet", "arguments": {"region": "Zürich", "options": {"priority": 3, "tags": ["a"]}}
        }});
        assert_eq!(
            headers(call, Some(schema)),
            [
                ("mcp-method".into(), "tools/call".into()),
                ("mcp-name".into(), "greet".into()),
                ("mcp-param-region".into(), "=?base64?WsO8cmljaA==?=".into()),
                ("mcp-param-priority".into(), "3".into()),
            ]
        );
        let list = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {}});
        assert_eq!(headers(list, None), [("mcp-method".into(), "tools/list".into())]);
        let reply = json!({"jsonrpc": "2.0", "id": 9, "result": {}});
        assert!(headers(reply, None).is_empty());
    }
}
