//! Real-world slips: repaired with a listed repair where the meaning is clear, one operation
//! skipped (with its pointer) where it is not, never the whole document refused. The fixtures
//! in `tests/fixtures/` are small hand-made excerpts in the shape of the real documents.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use serde_json::{Value, json};
use slovo_openapi::{IngestError, IngestOptions, Ingested, Source, ingest};

fn fixture(name: &str) -> Source {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    Source::from_path(&path, slovo_openapi::DEFAULT_MAX_DOCUMENT_BYTES).unwrap()
}

fn repairs(out: &Ingested) -> Vec<(String, String)> {
    out.report
        .repairs
        .iter()
        .map(|r| (r.pointer.clone(), r.action.clone()))
        .collect()
}

fn has_repair(out: &Ingested, pointer: &str, action_part: &str) -> bool {
    repairs(out)
        .iter()
        .any(|(p, a)| p == pointer && a.contains(action_part))
}

fn capability<'a>(out: &'a Ingested, name: &str) -> &'a slovo_core::Capability {
    out.manifests
        .iter()
        .flat_map(|m| &m.capabilities)
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no capability {name}"))
}

#[test]
fn spotify_required_string_is_repaired_and_listed() {
    let out = ingest(
        &fixture("spotify-required-string.yaml"),
        &IngestOptions::default(),
    )
    .unwrap();
    assert_eq!(out.report.operations_total, 2);
    assert_eq!(out.report.capabilities, 2);
    assert!(out.report.skipped.is_empty(), "{:?}", out.report.skipped);
    assert!(
        has_repair(
            &out,
            "/components/parameters/QueryMarket/required",
            "\"true\" read as the boolean true"
        ),
        "{:#?}",
        repairs(&out)
    );
    assert!(has_repair(
        &out,
        "/paths/~1me~1player~1play/put/parameters/0/required",
        "boolean false"
    ));
    assert!(has_repair(
        &out,
        "/paths/~1me~1player~1play/put/requestBody/content/application~1json/schema/properties/position_ms/minimum",
        "number 0"
    ));
    // The repaired meaning reaches the capability: `market` is required, `minimum` a number.
    let album = capability(&out, "get_an_album");
    assert_eq!(album.parameters["required"], json!(["id", "market"]));
    let play = capability(&out, "start_a_users_playback");
    assert_eq!(play.parameters["properties"]["position_ms"]["minimum"], json!(0));
    assert!(play.parameters["required"].is_null(), "{}", play.parameters);
}

#[test]
fn strict_mode_still_refuses_the_slip() {
    let strict = IngestOptions {
        strict: true,
        ..IngestOptions::default()
    };
    let err = ingest(&fixture("spotify-required-string.yaml"), &strict).unwrap_err();
    assert!(matches!(err, IngestError::Invalid { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("(at /components/parameters/QueryMarket)"),
        "{err}"
    );
}

#[test]
fn swagger_slips_are_repaired_and_a_broken_operation_alone_is_skipped() {
    let out = ingest(&fixture("swagger-slips.json"), &IngestOptions::default()).unwrap();
    let r = repairs(&out);
    for (pointer, action) in [
        (
            "/paths/~1items/post/operationId",
            "already used by GET /items; this operation is imported as \"listItems_2\"",
        ),
        (
            "/paths/~1items/get/parameters/0/in",
            "`in: Query` read as `query`",
        ),
        ("/paths/~1items/get/parameters/0/minimum", "number 1"),
        ("/paths/~1items/get/parameters/0/maximum", "number 100"),
        ("/paths/~1items/get/parameters/0/required", "boolean false"),
        (
            "/paths/~1items/get/parameters/1/type",
            "`type: String` read as `string`",
        ),
        ("/paths/~1items/post/parameters/0/required", "boolean true"),
        (
            "/definitions/Item/type",
            "no `type` but `properties`: typed as object",
        ),
        (
            "/definitions/Item/properties/name/required",
            "listed in the parent's `required`",
        ),
        ("/definitions/Item/properties/name/maxLength", "number 80"),
        ("/definitions/Item/properties/price/minimum", "number 0.5"),
        (
            "/definitions/Item/properties/price/exclusiveMinimum",
            "boolean false",
        ),
        ("/definitions/Item/properties/tags/type", "typed as array"),
        ("/definitions/Item/properties/tags/uniqueItems", "boolean true"),
        ("/definitions/Item/properties/note/required", "dropped"),
    ] {
        assert!(has_repair(&out, pointer, action), "{pointer}: {action}\n{r:#?}");
    }
    assert_eq!(r.len(), 15, "{r:#?}");

    // The path parameter does not match the template: only that operation fails, named by
    // its pointer, and the other three import.
    assert_eq!(out.report.operations_total, 4);
    assert_eq!(out.report.capabilities, 3);
    assert_eq!(out.report.skipped.len(), 1);
    let skipped = &out.report.skipped[0];
    assert_eq!(skipped.pointer, "/paths/~1items~1{id}/delete");
    assert!(skipped.reason.contains("{id}"), "{}", skipped.reason);

    let list = capability(&out, "list_items");
    assert_eq!(
        list.parameters["properties"]["limit"],
        json!({"type": "integer", "minimum": 1, "maximum": 100,
               "x-slovo-in": {"in": "query", "name": "limit"}})
    );
    let create = capability(&out, "list_items_2");
    assert_eq!(create.parameters["required"], json!(["name"]));
    assert_eq!(create.parameters["properties"]["tags"]["type"], "array");
    assert_eq!(create.parameters["properties"]["tags"]["uniqueItems"], true);
}

fn openapi(extra: Value) -> Source {
    let mut v = json!({"openapi": "3.0.3", "info": {"title": "Broken Parts", "version": "1"},
        "servers": [{"url": "https://api.example.com"}],
        "paths": {
            "/good": {"get": {"operationId": "good", "responses": {"200": {"description": "ok"}}}},
            "/bad": {"get": {"operationId": "bad",
                "parameters": [{"$ref": "#/components/parameters/Broken"}],
                "responses": {"200": {"description": "ok"}}}}
        },
        "components": {"parameters": {"Broken": {"name": "x", "in": "nowhere", "schema": {"type": "string"}}}}});
    if let (Value::Object(v), Value::Object(extra)) = (&mut v, extra) {
        v.extend(extra);
    }
    Source::from_bytes("broken.json", serde_json::to_vec(&v).unwrap())
}

#[test]
fn a_broken_component_fails_only_the_operation_that_uses_it() {
    let out = ingest(&openapi(json!({})), &IngestOptions::default()).unwrap();
    assert_eq!(out.report.capabilities, 1);
    assert_eq!(out.manifests[0].capabilities[0].name, "good");
    assert_eq!(out.report.skipped.len(), 1);
    assert_eq!(out.report.skipped[0].pointer, "/paths/~1bad/get");
    assert!(
        out.report.skipped[0].reason.contains("nowhere"),
        "{:?}",
        out.report.skipped
    );
    assert!(
        out.report
            .warnings
            .iter()
            .any(|w| w.starts_with("not valid OpenAPI") && w.contains("/components/parameters/Broken")),
        "{:#?}",
        out.report.warnings
    );
    // Strict mode refuses the document, as before.
    let strict = IngestOptions {
        strict: true,
        ..IngestOptions::default()
    };
    assert!(matches!(
        ingest(&openapi(json!({})), &strict),
        Err(IngestError::Invalid { .. })
    ));
}

#[test]
fn duplicate_operation_ids_in_3x_no_longer_refuse_the_document() {
    let src = Source::from_bytes(
        "dup.json",
        serde_json::to_vec(
            &json!({"openapi": "3.1.0", "info": {"title": "Dup", "version": "1"},
            "servers": [{"url": "https://api.example.com"}],
            "paths": {
                "/a": {"get": {"operationId": "fetch"}},
                "/b": {"get": {"operationId": "fetch"}},
                "/c": {"get": {"operationId": "fetch_2"}}
            }}),
        )
        .unwrap(),
    );
    let out = ingest(&src, &IngestOptions::default()).unwrap();
    let names: Vec<&str> = out.manifests[0]
        .capabilities
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    // `fetch_2` is taken by /c, so /b becomes `fetch_3`.
    assert_eq!(names, ["fetch", "fetch_3", "fetch_2"]);
    assert_eq!(
        repairs(&out),
        [(
            "/paths/~1b/get/operationId".to_string(),
            "operationId \"fetch\" is already used by GET /a; this operation is imported as \"fetch_3\""
                .to_string()
        )]
    );
    let strict = IngestOptions {
        strict: true,
        ..IngestOptions::default()
    };
    assert!(ingest(&src, &strict).is_err());
}

/// A document whose single tool would be larger than a manifest may be (the 1 MiB limit that
/// protects hand-written manifests) is split into parts that each fit.
#[test]
fn an_api_too_large_for_one_manifest_is_split_into_parts_that_fit() {
    let mut paths = serde_json::Map::new();
    let big_enum: Vec<String> = (0..400).map(|i| format!("value-number-{i:05}")).collect();
    for i in 0..120 {
        paths.insert(
            format!("/things{}/{{id}}", i % 3),
            json!({"parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]}),
        );
        paths.insert(
            format!("/things{}/op{i}", i % 3),
            json!({"post": {"operationId": format!("op{i}"),
                "requestBody": {"content": {"application/json": {"schema": {"type": "object",
                    "properties": {"kind": {"type": "string", "enum": big_enum}}}}}}}}),
        );
    }
    let src = Source::from_bytes(
        "big.json",
        serde_json::to_vec(
            &json!({"openapi": "3.0.3", "info": {"title": "Big", "version": "1"},
            "servers": [{"url": "https://api.example.com"}], "paths": paths}),
        )
        .unwrap(),
    );
    let out = ingest(&src, &IngestOptions::default()).unwrap();
    assert_eq!(out.report.capabilities, 120);
    assert!(out.manifests.len() > 1, "{:?}", out.report.tools);
    let mut total = 0;
    for m in &out.manifests {
        let bytes = m.to_canonical().to_string().into_bytes();
        assert!(
            bytes.len() <= slovo_openapi::PART_BUDGET_BYTES,
            "{} is {} bytes",
            m.name,
            bytes.len()
        );
        slovo_core::parse_manifest("part.json", &bytes).unwrap();
        total += m.capabilities.len();
    }
    assert_eq!(total, 120);
    assert!(
        out.report.tools.iter().all(|t| t.name.starts_with("big-things")),
        "{:?}",
        out.report.tools
    );
}

/// One operation whose input schema alone is larger than a tool may be is skipped with its
/// pointer; the rest of the document imports.
#[test]
fn an_operation_too_large_to_store_fails_alone() {
    let huge: Vec<String> = (0..30_000)
        .map(|i| format!("a-rather-long-value-{i:06}"))
        .collect();
    let src = Source::from_bytes(
        "huge.json",
        serde_json::to_vec(
            &json!({"openapi": "3.0.3", "info": {"title": "Huge", "version": "1"},
            "servers": [{"url": "https://api.example.com"}],
            "paths": {
                "/small": {"get": {"operationId": "small"}},
                "/huge": {"post": {"operationId": "huge", "requestBody": {"content": {"application/json":
                    {"schema": {"type": "object", "properties": {"v": {"type": "string", "enum": huge}}}}}}}}
            }}),
        )
        .unwrap(),
    );
    let out = ingest(&src, &IngestOptions::default()).unwrap();
    assert_eq!(out.report.capabilities, 1);
    assert_eq!(out.manifests[0].capabilities[0].name, "small");
    assert_eq!(out.report.skipped.len(), 1);
    assert_eq!(out.report.skipped[0].pointer, "/paths/~1huge/post");
    assert!(
        out.report.skipped[0].reason.contains("bytes"),
        "{}",
        out.report.skipped[0]
    );
    assert!(out.report.risks.is_empty(), "{:?}", out.report.risks);
}
