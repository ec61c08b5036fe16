//! The known failures of common converters, and hostile input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use slovo_openapi::{Filter, IngestError, IngestOptions, Source, ingest};

fn doc(v: Value) -> Source {
    Source::from_bytes("test.json", serde_json::to_vec(&v).unwrap())
}

fn petstore(paths: Value) -> Value {
    json!({"openapi": "3.0.3", "info": {"title": "Pet Store", "version": "2.0"},
           "servers": [{"url": "https://api.example.com/v1"}], "paths": paths})
}

#[test]
fn swagger_2_with_header_params_body_and_security() {
    let v = json!({
        "swagger": "2.0", "info": {"title": "Old API", "version": "2016-03-30"},
        "host": "old.example.com", "basePath": "/api", "schemes": ["http", "https"],
        "securityDefinitions": {"key": {"type": "apiKey", "in": "header", "name": "X-Key"}},
        "security": [{"key": []}],
        "paths": {"/items/{id}": {"put": {
            "operationId": "replaceItem",
            "parameters": [
                {"name": "id", "in": "path", "required": true, "type": "integer"},
                {"name": "X-Trace", "in": "header", "type": "string"},
                {"name": "tags", "in": "query", "type": "array", "items": {"type": "string"}, "collectionFormat": "multi"},
                {"name": "item", "in": "body", "required": true, "schema": {"$ref": "#/definitions/Item"}}
            ]}}},
        "definitions": {"Item": {"type": "object", "required": ["id"], "properties": {
            "id": {"type": "string"}, "size": {"type": "integer", "x-nullable": true}}}}
    });
    let out = ingest(&doc(v), &IngestOptions::default()).unwrap();
    let m = out.manifests.into_iter().next().unwrap();
    assert_eq!(m.name, "old-api");
    assert_eq!(m.version.to_string(), "2016.3.30");
    assert_eq!(
        m.api_requirements.as_ref().unwrap().base_url,
        "https://old.example.com/api"
    );
    assert_eq!(
        m.api_requirements.as_ref().unwrap().auth_header.as_deref(),
        Some("X-Key")
    );
    assert_eq!(out.report.hosts, vec!["old.example.com"]);
    let c = &m.capabilities[0];
    assert_eq!(c.name, "replace_item");
    assert_eq!(c.destructive, Some(true));
    let p = &c.parameters["properties"];
    assert_eq!(
        p["X-Trace"]["x-slovo-in"],
        json!({"in": "header", "name": "X-Trace"})
    );
    assert_eq!(p["tags"]["x-slovo-in"]["explode"], json!(true));
    // `id` is both a path parameter and a body field: the body field is renamed.
    assert_eq!(p["id"]["x-slovo-in"]["in"], "path");
    assert_eq!(p["body_id"]["x-slovo-in"], json!({"in": "body", "name": "id"}));
    assert_eq!(p["size"]["type"], json!(["integer", "null"]));
    assert_eq!(c.parameters["required"], json!(["id", "body_id"]));
    assert_eq!(out.report.risks.len(), 1);
}

#[test]
fn circular_references_become_defs() {
    let mut v = petstore(json!({"/nodes": {"post": {"operationId": "addNode",
        "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/A"}}}}}}}));
    v["components"] = json!({"schemas": {
        "A": {"type": "object", "properties": {"b": {"$ref": "#/components/schemas/B"}}},
        "B": {"type": "object", "properties": {"c": {"$ref": "#/components/schemas/C"}}},
        "C": {"type": "object", "nullable": true, "properties": {"a": {"$ref": "#/components/schemas/A"}}}}});
    let out = ingest(&doc(v), &IngestOptions::default()).unwrap();
    let c = &out.manifests.into_iter().next().unwrap().capabilities[0];
    assert!(c.parameters["$defs"]["A"].is_object());
    jsonschema::validator_for(&c.parameters).unwrap();
}

#[test]
fn long_names_are_cut_and_unique() {
    let long = "a".repeat(80);
    let v = petstore(json!({
        "/x": {"get": {"operationId": format!("{long}X")}},
        "/y": {"get": {"operationId": format!("{long}Y")}},
        "/z": {"get": {"operationId": "z"}, "post": {"operationId": "Z"}}
    }));
    let out = ingest(&doc(v), &IngestOptions::default()).unwrap();
    let names: Vec<String> = out
        .manifests
        .into_iter()
        .next()
        .unwrap()
        .capabilities
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert!(names.iter().all(|n| n.len() <= 64));
    assert_eq!(names.len(), 4);
    let unique: std::collections::HashSet<_> = names.iter().collect();
    assert_eq!(unique.len(), 4, "{names:?}");
}

#[test]
fn one_bad_operation_is_skipped() {
    let v = petstore(json!({
        "/good": {"get": {"operationId": "good"}},
        "/bad": {"get": {"operationId": "bad", "parameters": [{"$ref": "#/components/parameters/Missing"}]}}
    }));
    let out = ingest(&doc(v), &IngestOptions::default()).unwrap();
    assert_eq!(out.report.capabilities, 1);
    assert_eq!(out.report.skipped.len(), 1);
    assert!(out.report.skipped[0].operation.contains("/bad"));
    assert!(
        out.report.skipped[0].reason.contains("Missing"),
        "{}",
        out.report.skipped[0].reason
    );
}

#[test]
fn not_openapi_is_refused() {
    for bad in [
        json!([1, 2]),
        json!({"hello": "world"}),
        json!({"openapi": "4.0.0"}),
    ] {
        let err = ingest(&doc(bad), &IngestOptions::default()).unwrap_err();
        assert!(
            matches!(
                err,
                IngestError::NotOpenApi { .. } | IngestError::UnsupportedVersion { .. }
            ),
            "{err}"
        );
    }
}

#[test]
fn yaml_alias_bomb_is_refused() {
    let mut y =
        String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for i in 1..10 {
        let prev = (b'a' + i - 1) as char;
        let cur = (b'a' + i) as char;
        y.push_str(&format!(
            "{cur}: &{cur} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
    }
    let err = ingest(&Source::from_bytes("bomb.yaml", y), &IngestOptions::default()).unwrap_err();
    assert!(matches!(err, IngestError::Syntax { .. }), "{err}");
}

#[test]
fn remote_refs_are_not_fetched_by_default_and_files_stay_inside_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let v = petstore(json!({
        "/remote": {"get": {"operationId": "remote", "parameters": [{"$ref": "http://127.0.0.1/evil.json#/p"}]}},
        "/passwd": {"get": {"operationId": "passwd", "parameters": [{"$ref": "../../../../etc/passwd#/p"}]}},
        "/fine": {"get": {"operationId": "fine"}}
    }));
    let path = dir.path().join("api.json");
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    let source = Source::from_path(&path, 1 << 20).unwrap();
    let out = ingest(&source, &IngestOptions::default()).unwrap();
    assert_eq!(out.report.capabilities, 1);
    let reasons: Vec<&str> = out.report.skipped.iter().map(|s| s.reason.as_str()).collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("remote references are not allowed")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("outside the document's root")),
        "{reasons:?}"
    );
}

#[test]
fn a_large_api_becomes_one_tool_per_tag_and_filters_still_apply() {
    let mut paths = serde_json::Map::new();
    for i in 0..400 {
        paths.insert(
            format!("/r{i}"),
            json!({"get": {"tags": [if i % 2 == 0 { "even" } else { "odd" }]}, "delete": {}}),
        );
    }
    let v = petstore(Value::Object(paths));
    let out = ingest(&doc(v.clone()), &IngestOptions::default()).unwrap();
    assert_eq!(out.report.capabilities, 800);
    let tools: Vec<(&str, Option<&str>, usize)> = out
        .report
        .tools
        .iter()
        .map(|t| (t.name.as_str(), t.group.as_deref(), t.capabilities))
        .collect();
    // The untagged DELETEs each have their own path segment: too small to be groups, they
    // are gathered into `other`, cut at 300 operations.
    assert_eq!(
        tools,
        [
            ("pet-store-even", Some("even"), 200),
            ("pet-store-other", Some("other"), 300),
            ("pet-store-other-2", Some("other"), 100),
            ("pet-store-odd", Some("odd"), 200),
        ]
    );
    assert_eq!(out.manifests.len(), 4);
    for (m, t) in out.manifests.iter().zip(&out.report.tools) {
        assert_eq!(m.name, t.name);
        assert_eq!(m.capabilities.len(), t.capabilities);
        let bytes = m.to_canonical().to_string().into_bytes();
        assert_eq!(&slovo_core::parse_manifest("part.json", &bytes).unwrap(), m);
    }
    let filtered = IngestOptions {
        filter: Filter {
            tags: vec!["even".into()],
            methods: vec!["get".into()],
            paths: vec!["/r1*".into()],
        },
        ..IngestOptions::default()
    };
    let out = ingest(&doc(v), &filtered).unwrap();
    // /r10, /r12, …, /r18, /r100, …, /r198 that are even.
    assert_eq!(out.report.capabilities, 55);
    assert_eq!(out.manifests.len(), 1);
    assert_eq!(out.report.tools[0].group, None);
}
