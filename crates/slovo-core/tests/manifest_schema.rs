//! The published JSON Schema of the canonical manifest (docs/manifest.schema.json) agrees with
//! the parser: every canonical form the parser writes validates against it, and what the
//! schema rejects the parser rejects too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("docs/manifest.schema.json")).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::meta::validate(&schema).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

#[test]
fn canonical_forms_validate_against_the_published_schema() {
    let validator = schema();
    let dir = root().join("../shared/manifests");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !(name.ends_with(".yaml") || name.ends_with(".json")) {
            continue;
        }
        let m = slovo_core::parse_manifest(&name, &std::fs::read(&path).unwrap()).unwrap();
        let canonical = m.to_canonical();
        let errors: Vec<String> = validator.iter_errors(&canonical).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{name}: {errors:?}\n{canonical:#}");
        seen += 1;
    }
    assert_eq!(seen, 3);
}

#[test]
fn the_schema_rejects_what_the_parser_rejects() {
    let validator = schema();
    let good: Value = serde_json::json!({
        "name": "t", "version": "1.0.0", "description": "d",
        "capabilities": [{"name": "c", "description": "d", "parameters": {"type": "object"}}],
        "permissions": {},
        "execution": {"type": "process", "command": ["bin/t"]}
    });
    assert!(validator.is_valid(&good));
    assert!(slovo_core::parse_manifest("g.json", good.to_string().as_bytes()).is_ok());
    let mutations: Vec<(&str, Value)> = vec![
        ("/name", Value::String("Bad_Name".into())),
        ("/version", Value::String("1.0".into())),
        ("/capabilities", serde_json::json!([])),
        ("/permissions", serde_json::json!({"memory_limit_mb": 1})),
        ("/permissions", serde_json::json!({"internet_acess": true})),
        ("/execution", serde_json::json!({"type": "vm"})),
        ("/capabilities/0/parameters", serde_json::json!({"type": "array"})),
    ];
    for (pointer, value) in mutations {
        let mut bad = good.clone();
        *bad.pointer_mut(pointer).unwrap() = value.clone();
        assert!(!validator.is_valid(&bad), "schema accepted {pointer} = {value}");
        assert!(
            slovo_core::parse_manifest("b.json", bad.to_string().as_bytes()).is_err(),
            "parser accepted {pointer} = {value}"
        );
    }
}

#[test]
fn mcp_manifests_agree_with_the_schema() {
    let validator = schema();
    let good: Value = serde_json::json!({
        "name": "memory", "version": "1.0.0", "description": "d",
        "capabilities": [{"name": "read_graph", "description": "d", "parameters": {"type": "object"}}],
        "execution": {
            "type": "mcp", "transport": "stdio",
            "command": ["/usr/bin/node", "node_modules/server/dist/index.js"],
            "env": {"MEMORY_FILE_PATH": "/data/memory.jsonl"},
            "tool_names": {"read_graph": "read-graph"}
        }
    });
    assert!(validator.is_valid(&good));
    let m = slovo_core::parse_manifest("g.json", good.to_string().as_bytes()).unwrap();
    assert_eq!(
        m.execution.as_ref().unwrap().mcp_tool_name("read_graph"),
        Some("read-graph")
    );
    // The canonical form validates and parses back to the same manifest.
    let canonical = m.to_canonical();
    let errors: Vec<String> = validator.iter_errors(&canonical).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}\n{canonical:#}");
    let again = slovo_core::parse_manifest("c.json", canonical.to_string().as_bytes()).unwrap();
    assert_eq!(again, m);

    let mutations: Vec<(&str, Value)> = vec![
        ("/execution/transport", serde_json::json!("sse")),
        ("/execution/command", serde_json::json!([])),
        ("/execution/env", serde_json::json!({"SLOVO_EXECUTION_ID": "x"})),
        ("/execution/env", serde_json::json!({"BAD-NAME": "x"})),
        ("/execution/tool_names", serde_json::json!({"read_graph": ""})),
    ];
    for (pointer, value) in mutations {
        let mut bad = good.clone();
        *bad.pointer_mut(pointer).unwrap() = value.clone();
        assert!(!validator.is_valid(&bad), "schema accepted {pointer} = {value}");
        let err = slovo_core::parse_manifest("b.json", bad.to_string().as_bytes())
            .err()
            .unwrap_or_else(|| panic!("parser accepted {pointer} = {value}"));
        assert!(err.to_string().contains("execution."), "{err}");
    }
    // What only the parser can see: a system program without the system directories, a
    // capability name the manifest does not have, a path leaving the bundle.
    for (pointer, value) in [
        ("/execution/system_paths", serde_json::json!(false)),
        ("/execution/tool_names", serde_json::json!({"nope": "x"})),
        ("/execution/command", serde_json::json!(["../node"])),
    ] {
        let mut bad = good.clone();
        bad["execution"][pointer.trim_start_matches("/execution/")] = value.clone();
        assert!(
            slovo_core::parse_manifest("b.json", bad.to_string().as_bytes()).is_err(),
            "parser accepted {pointer} = {value}"
        );
    }
}

#[test]
fn remote_mcp_manifests_agree_with_the_schema() {
    let validator = schema();
    let good: Value = serde_json::json!({
        "name": "weather", "version": "1.0.0", "description": "d",
        "capabilities": [{"name": "forecast", "description": "d", "parameters": {"type": "object"}}],
        "permissions": {"network_allow": ["weather.example:443"]},
        "execution": {
            "type": "mcp", "transport": "streamable-http",
            "url": "https://weather.example/mcp",
            "headers": {"X-Region": "eu"},
            "secret_headers": {"Authorization": "token"}
        }
    });
    assert!(validator.is_valid(&good));
    let m = slovo_core::parse_manifest("g.json", good.to_string().as_bytes()).unwrap();
    // The canonical form validates and parses back to the same manifest.
    let canonical = m.to_canonical();
    let errors: Vec<String> = validator.iter_errors(&canonical).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}\n{canonical:#}");
    let again = slovo_core::parse_manifest("c.json", canonical.to_string().as_bytes()).unwrap();
    assert_eq!(again, m);

    let mutations: Vec<(&str, Value)> = vec![
        ("/execution/url", serde_json::json!("ftp://weather.example/mcp")),
        (
            "/execution/url",
            serde_json::json!("https://user:pw@weather.example/mcp"),
        ),
        ("/execution/headers", serde_json::json!({"Bad Header": "x"})),
        (
            "/execution/secret_headers",
            serde_json::json!({"Authorization": "not a name"}),
        ),
    ];
    for (pointer, value) in mutations {
        let mut bad = good.clone();
        *bad.pointer_mut(pointer).unwrap() = value.clone();
        assert!(!validator.is_valid(&bad), "schema accepted {pointer} = {value}");
        let err = slovo_core::parse_manifest("b.json", bad.to_string().as_bytes())
            .err()
            .unwrap_or_else(|| panic!("parser accepted {pointer} = {value}"));
        assert!(err.to_string().contains("execution."), "{err}");
    }
    // What only the parser can see: a header the transport sets itself, a header with two
    // sources, a stdio field on a remote server.
    for (field, value) in [
        ("headers", serde_json::json!({"Mcp-Session-Id": "x"})),
        ("headers", serde_json::json!({"authorization": "x"})),
        ("command", serde_json::json!(["/usr/bin/node"])),
    ] {
        let mut bad = good.clone();
        bad["execution"][field] = value.clone();
        let err = slovo_core::parse_manifest("b.json", bad.to_string().as_bytes())
            .err()
            .unwrap_or_else(|| panic!("parser accepted {field} = {value}"));
        assert!(err.to_string().contains(&format!("execution.{field}")), "{err}");
    }
}

#[test]
fn mcp_servers_in_images_agree_with_the_schema() {
    let validator = schema();
    let digest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let good: Value = serde_json::json!({
        "name": "weather", "version": "1.2.0+sha256.0123456789ab", "description": "d",
        "capabilities": [{"name": "forecast", "description": "d", "parameters": {"type": "object"}}],
        "execution": {
            "type": "mcp", "transport": "stdio",
            "image": format!("ghcr.io/acme/weather-mcp:1.2.0@sha256:{digest}"),
            "command": ["--stdio"],
            "env": {"UNITS": "metric"},
            "secret_env": {"API_KEY": "API_KEY"}
        }
    });
    assert!(validator.is_valid(&good));
    let m = slovo_core::parse_manifest("g.json", good.to_string().as_bytes()).unwrap();
    // The canonical form validates and parses back to the same manifest.
    let canonical = m.to_canonical();
    let errors: Vec<String> = validator.iter_errors(&canonical).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}\n{canonical:#}");
    let again = slovo_core::parse_manifest("c.json", canonical.to_string().as_bytes()).unwrap();
    assert_eq!(again, m);
    // The image's own command: no `command` at all.
    let mut own = good.clone();
    own["execution"].as_object_mut().unwrap().remove("command");
    assert!(validator.is_valid(&own));
    assert!(slovo_core::parse_manifest("o.json", own.to_string().as_bytes()).is_ok());

    let mutations: Vec<(&str, Value)> = vec![
        (
            "/execution/image",
            serde_json::json!("ghcr.io/acme/weather-mcp:1.2.0"),
        ),
        (
            "/execution/image",
            serde_json::json!("ghcr.io/acme/weather-mcp@sha256:abc"),
        ),
        (
            "/execution/image",
            serde_json::json!(format!(
                "ghcr.io/acme/weather-mcp@sha256:{}",
                digest.to_uppercase()
            )),
        ),
        ("/execution/system_paths", serde_json::json!(true)),
        ("/execution/env", serde_json::json!({"SLOVO_CAPABILITY": "x"})),
    ];
    for (pointer, value) in mutations {
        let mut bad = good.clone();
        bad["execution"][pointer.trim_start_matches("/execution/")] = value.clone();
        assert!(!validator.is_valid(&bad), "schema accepted {pointer} = {value}");
        let err = slovo_core::parse_manifest("b.json", bad.to_string().as_bytes())
            .err()
            .unwrap_or_else(|| panic!("parser accepted {pointer} = {value}"));
        assert!(err.to_string().contains("execution."), "{err}");
    }
    let tagged = {
        let mut bad = good.clone();
        bad["execution"]["image"] = serde_json::json!("acme/weather:latest");
        slovo_core::parse_manifest("t.json", bad.to_string().as_bytes()).unwrap_err()
    };
    assert!(
        tagged.to_string().contains("execution.image") && tagged.to_string().contains("no digest"),
        "{tagged}"
    );
}
