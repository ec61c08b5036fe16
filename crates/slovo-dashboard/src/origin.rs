//! Where a proposal came from, in words: a file, a URL, a discovery catalogue, an MCP registry
//! entry, or the discovery request (and the person's words) that led to it.
//!
//! Only a description of what the runtime recorded: the version's source name, the manifest's
//! `openapi_spec`, and the discovery request whose proposal it is.

use serde_json::Value;

/// The discovery request behind a proposal, as the runtime recorded it.
pub(crate) struct Request<'a> {
    /// What the person asked for, in their words.
    pub words: &'a str,
    /// What discovery found (`chosen.kind`, `chosen.source`), if it has finished.
    pub result: Option<&'a Value>,
}

/// A proposal's origin, for the inbox and the proposal page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    /// What kind of place it came from ("a file", "a URL", "the MCP registry", …).
    pub kind: &'static str,
    /// The file, URL or registry entry itself (untrusted text: shown inert).
    pub place: String,
    /// The person's words that started the discovery that found it.
    pub asked_for: Option<String>,
}

fn is_url(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// Where the version recorded as coming from `source`, with canonical `manifest`, came from.
pub(crate) fn origin(source: &str, manifest: &Value, request: Option<Request<'_>>) -> Origin {
    if let Some(request) = request {
        let chosen = request.result.map(|r| &r["chosen"]);
        let place = chosen
            .and_then(|c| c["source"].as_str())
            .unwrap_or(source)
            .to_string();
        let kind = match chosen.and_then(|c| c["kind"].as_str()) {
            Some("mcp_server") => "an MCP registry entry found by discovery",
            Some("openapi") if is_url(&place) => "an OpenAPI document at a URL, found by discovery",
            Some("openapi") => "an OpenAPI document in the discovery catalogue",
            _ => "a manifest in the discovery catalogue",
        };
        return Origin {
            kind,
            place,
            asked_for: Some(request.words.to_string()),
        };
    }
    let spec = manifest["openapi_spec"].as_str();
    let kind = match spec {
        Some(spec) if is_url(spec) => "an OpenAPI document at a URL",
        Some(_) => "an OpenAPI document (a file)",
        None if source == "-" => "a manifest read from standard input",
        None if source.starts_with("request body") => "a manifest posted to the REST API",
        None if is_url(source) => "a URL",
        None if matches!(
            manifest["execution"]["type"].as_str(),
            Some("process" | "wasm" | "mcp")
        ) =>
        {
            "a bundle (directory or tarball)"
        }
        None => "a file",
    };
    Origin {
        kind,
        place: spec.unwrap_or(source).to_string(),
        asked_for: None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_discovery_request_names_the_words_and_the_kind_of_source() {
        let result = json!({"chosen": {"kind": "mcp_server", "source": "/registry/notes/server.json"}});
        let o = origin(
            "/registry/notes/server.json.json",
            &json!({}),
            Some(Request {
                words: "remember my shopping list",
                result: Some(&result),
            }),
        );
        assert_eq!(o.kind, "an MCP registry entry found by discovery");
        assert_eq!(o.place, "/registry/notes/server.json");
        assert_eq!(o.asked_for.as_deref(), Some("remember my shopping list"));
    }

    #[test]
    fn files_urls_and_openapi_documents_are_told_apart() {
        let docker = json!({"execution": {"type": "docker"}});
        assert_eq!(origin("tools/weather.json", &docker, None).kind, "a file");
        assert_eq!(
            origin("-", &docker, None).kind,
            "a manifest read from standard input"
        );
        let openapi = json!({"openapi_spec": "https://api.example.org/openapi.json"});
        let o = origin("https://api.example.org/openapi.json.json", &openapi, None);
        assert_eq!(o.kind, "an OpenAPI document at a URL");
        assert_eq!(o.place, "https://api.example.org/openapi.json");
        let process = json!({"execution": {"type": "process"}});
        assert_eq!(
            origin("bundles/echo/slovo.json", &process, None).kind,
            "a bundle (directory or tarball)"
        );
    }
}
