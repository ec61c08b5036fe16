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
