use pretty_assertions::assert_eq;
use serde_json::json;

use super::*;

const CONVERTER: &str = r#"
name: unit-converter
version: "1.2.0"
description: Converts units.
capabilities:
  - name: convert_length
    description: Convert a length
    parameters:
      type: object
      required: [value]
      properties:
        value: {type: number}
permissions:
  internet_access: false
  storage_quota_mb: 5
  cpu_limit_percent: 20
  memory_limit_mb: 64
"#;

fn parse(name: &str, text: &str) -> Result<Manifest, ManifestError> {
    parse_manifest(name, text.as_bytes())
}

fn parse_err(name: &str, text: &str) -> ManifestError {
    match parse(name, text) {
        Ok(m) => panic!("expected an error, parsed {m:?}"),
        Err(e) => e,
    }
}

#[test]
fn capability_dialect_parses_with_defaults() {
    let m = parse("c.yaml", CONVERTER).unwrap();
    assert_eq!(m.name, "unit-converter");
    assert_eq!(m.version, semver::Version::new(1, 2, 0));
    assert_eq!(m.permissions.memory_limit_mb, 64);
    assert_eq!(m.permissions.timeout_s, crate::permissions::DEFAULT_TIMEOUT_S);
    assert_eq!(m.execution, None);
}

#[test]
fn execution_dialect_becomes_one_run_capability() {
    let text = r#"{
      "name": "dictionary", "version": "2.0.0", "description": "Looks up words",
      "capabilities": ["definitions"],
      "execution": {"type": "docker", "image": "example/dictionary:2.0.0", "entrypoint": "/app/d", "timeout": 20},
      "permissions": {"network": {"outbound": true, "allowedHosts": ["api.dictionary.example.org"]},
                      "storage": {"persistent": true, "maxSizeMB": 50},
                      "resources": {"maxMemoryMB": 128, "maxCpuPercent": 25}},
      "inputs": {"word": {"type": "string", "required": true}, "kind": {"type": "string"}},
      "outputs": {"entries": {"type": "array"}}
    }"#;
    let m = parse("d.json", text).unwrap();
    assert_eq!(m.tags, vec!["definitions".to_string()]);
    assert_eq!(m.capabilities.len(), 1);
    assert_eq!(m.capabilities[0].name, EXECUTION_DIALECT_CAPABILITY);
    assert_eq!(m.capabilities[0].parameters["required"], json!(["word"]));
    assert!(!m.permissions.internet_access);
    assert_eq!(
        m.permissions.network_allow[0].to_string(),
        "api.dictionary.example.org"
    );
    assert_eq!(m.permissions.storage_quota_mb, 50);
    assert_eq!(m.permissions.timeout_s, 20);
    assert_eq!(
        m.execution,
        Some(Execution::Docker {
            image: "example/dictionary:2.0.0".into(),
            entrypoint: Some(vec!["/app/d".into()])
        })
    );
}

#[test]
fn canonical_form_round_trips() {
    let with_process = format!("{CONVERTER}execution:\n  type: process\n  command: [bin/c]\n");
    let dictionary = r#"{"name": "d", "version": "2.0.0", "description": "x", "capabilities": ["t"],
        "execution": {"type": "docker", "image": "i:1"},
        "permissions": {"network": {"outbound": true}, "storage": {"persistent": false}},
        "inputs": {"word": {"type": "string", "required": true}}}"#;
    for (name, text) in [
        ("c.yaml", CONVERTER),
        ("p.yaml", with_process.as_str()),
        ("d.json", dictionary),
    ] {
        let m = parse(name, text).unwrap();
        let canonical = m.to_canonical().to_string();
        let again = parse("canonical.json", &canonical).unwrap();
        assert_eq!(again, m);
    }
}

#[test]
fn unknown_field_names_file_field_and_line() {
    let text = CONVERTER.replace("  storage_quota_mb: 5", "  storage_quota: 5");
    let e = parse_err("tools/c.yaml", &text);
    assert!(matches!(e.kind, ManifestErrorKind::UnknownField(_)), "{e}");
    assert_eq!(e.field.as_deref(), Some("permissions.storage_quota"));
    assert_eq!(e.line, Some(15));
    let shown = e.to_string();
    assert!(
        shown.starts_with("tools/c.yaml:15:3: permissions.storage_quota: unknown field"),
        "{shown}"
    );
    assert!(shown.contains("storage_quota"), "{shown}");

    let json_text = r#"{"name": "x", "version": "1.0.0", "description": "d",
  "capabilities": [{"name": "a", "description": "b", "paramters": {}}]}"#;
    let e = parse_err("x.json", json_text);
    assert_eq!(e.field.as_deref(), Some("capabilities[0].paramters"));
    assert_eq!(e.line, Some(2));
}

#[test]
fn semantic_errors_name_the_field() {
    let cases = [
        (
            CONVERTER.replace("name: unit-converter", "name: Unit_Converter"),
            "name",
        ),
        (
            CONVERTER.replace("version: \"1.2.0\"", "version: \"1.2\""),
            "version",
        ),
        (
            CONVERTER.replace("memory_limit_mb: 64", "memory_limit_mb: 1"),
            "permissions.memory_limit_mb",
        ),
        (
            CONVERTER.replace("cpu_limit_percent: 20", "cpu_limit_percent: 0"),
            "permissions.cpu_limit_percent",
        ),
        (
            CONVERTER.replace("type: object\n      required", "type: array\n      required"),
            "capabilities[0].parameters",
        ),
        (
            CONVERTER.replace("value: {type: number}", "value: {type: numbr}"),
            "capabilities[0].parameters",
        ),
        (
            CONVERTER.replace("value: {type: number}", "value: {type: string, pattern: \"(\"}"),
            "capabilities[0].parameters",
        ),
    ];
    for (text, field) in cases {
        let e = parse_err("c.yaml", &text);
        assert_eq!(e.field.as_deref(), Some(field), "{e}");
    }
}

#[test]
fn duplicate_capabilities_are_rejected() {
    let text = format!("{CONVERTER}\n").replace(
        "permissions:",
        "  - name: convert_length\n    description: again\npermissions:",
    );
    let e = parse_err("c.yaml", &text);
    assert_eq!(e.field.as_deref(), Some("capabilities[1].name"));
    assert!(e.to_string().contains("more than once"), "{e}");
}

#[test]
fn hostile_inputs_get_clear_errors() {
    assert!(matches!(parse_err("e.yaml", "").kind, ManifestErrorKind::Empty));
    assert!(matches!(
        parse_err("e.yaml", "  \n\t").kind,
        ManifestErrorKind::Empty
    ));
    let e = parse_manifest("b.yaml", b"name: \xff\xfe").unwrap_err();
    assert!(matches!(e.kind, ManifestErrorKind::NotUtf8 { offset: 6 }), "{e}");
    let big = vec![b'#'; MAX_MANIFEST_BYTES + 1];
    assert!(matches!(
        parse_manifest("big.yaml", &big).unwrap_err().kind,
        ManifestErrorKind::TooLarge { .. }
    ));
    let e = parse_err("bad.yaml", "name: [unclosed\n");
    assert!(matches!(e.kind, ManifestErrorKind::Syntax(_)), "{e}");
    assert!(e.line.is_some());
    let e = parse_err("bad.json", "{\"name\": }");
    assert!(matches!(e.kind, ManifestErrorKind::Syntax(_)), "{e}");
    assert!(matches!(
        parse_err("list.yaml", "- a\n- b\n").kind,
        ManifestErrorKind::Invalid(_)
    ));

    // The "billion laughs": nine levels of nine aliases expand to 9^9 nodes.
    let mut bomb =
        String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for w in names.windows(2) {
        let refs = vec![format!("*{}", w[0]); 9].join(",");
        bomb.push_str(&format!("{}: &{} [{}]\n", w[1], w[1], refs));
    }
    let started = std::time::Instant::now();
    let e = parse_err("bomb.yaml", &bomb);
    assert!(matches!(e.kind, ManifestErrorKind::Syntax(_)), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    // Deep nesting must not overflow the stack.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(
        parse_err("deep.json", &deep).kind,
        ManifestErrorKind::Syntax(_)
    ));
    assert!(matches!(
        parse_err("deep.yaml", &deep).kind,
        ManifestErrorKind::Syntax(_)
    ));
}

#[test]
fn remote_schema_refs_never_resolve() {
    let text = CONVERTER.replace(
        "value: {type: number}",
        "value: {$ref: \"http://127.0.0.1:9/schema.json\"}",
    );
    let e = parse_err("c.yaml", &text);
    assert_eq!(e.field.as_deref(), Some("capabilities[0].parameters"), "{e}");
}

#[test]
fn execution_fields_must_match_the_type() {
    let with = |exec: &str| format!("{CONVERTER}execution:\n{exec}");
    let ok = parse(
        "c.yaml",
        &with("  type: process\n  command: [bin/convert, --json]\n"),
    )
    .unwrap();
    assert_eq!(
        ok.execution,
        Some(Execution::Process {
            command: vec!["bin/convert".into(), "--json".into()],
            system_paths: true
        })
    );
    for (exec, field) in [
        ("  type: process\n  command: [/bin/sh]\n", "execution.command[0]"),
        (
            "  type: process\n  command: [../../bin/sh]\n",
            "execution.command[0]",
        ),
        ("  type: process\n  command: [x]\n  image: y\n", "execution.image"),
        ("  type: wasm\n", "execution.module"),
        ("  type: vm\n", "execution.type"),
        ("  type: http\n", "execution.type"),
    ] {
        let e = parse_err("c.yaml", &with(exec));
        assert_eq!(e.field.as_deref(), Some(field), "{exec}: {e}");
    }
}

const CHAIN: &str = r#"
name: outfit
version: "1.0.0"
description: What to wear.
capabilities:
  - name: run
    description: Suggest
    parameters:
      type: object
      properties:
        city: {type: string}
permissions:
  timeout_s: 20
execution:
  type: chain
  steps:
    - id: weather
      call: weather.forecast
      with: {city: $.input.city, units: "$$C"}
    - id: pick
      call: wardrobe.suggest
      with: {temp: $.steps.weather.output.body.temp}
      when: $.steps.weather.output.body
      on_error: continue
  result: {suggestion: $.steps.pick.output}
"#;

#[test]
fn a_chain_parses_and_its_canonical_form_round_trips() {
    let m = parse("outfit.yaml", CHAIN).unwrap();
    let Some(Execution::Chain { steps, result }) = &m.execution else {
        panic!("not a chain: {:?}", m.execution);
    };
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[1].on_error, chain::OnError::Continue);
    assert_eq!(steps[0].target(), Some(("weather", "forecast")));
    assert_eq!(result, &json!({"suggestion": "$.steps.pick.output"}));
    assert_eq!(m.permissions.timeout_s, 20);
    let again = parse("canonical.json", &m.to_canonical().to_string()).unwrap();
    assert_eq!(again, m);
}

#[test]
fn a_chain_may_ask_for_no_permission_nor_claim_hints() {
    let networked = CHAIN.replace("  timeout_s: 20", "  timeout_s: 20\n  internet_access: true");
    let e = parse_err("outfit.yaml", &networked);
    assert_eq!(e.field.as_deref(), Some("permissions.internet_access"), "{e}");
    let claimed = CHAIN.replace(
        "    description: Suggest",
        "    description: Suggest\n    read_only: true",
    );
    let e = parse_err("outfit.yaml", &claimed);
    assert_eq!(e.field.as_deref(), Some("capabilities[0].read_only"), "{e}");
    let stray = CHAIN.replace("  type: chain", "  type: chain\n  module: x.wasm");
    let e = parse_err("outfit.yaml", &stray);
    assert_eq!(e.field.as_deref(), Some("execution.module"), "{e}");
    let misplaced = CHAIN.replace("type: chain", "type: process\n  command: [x]");
    let e = parse_err("outfit.yaml", &misplaced);
    assert_eq!(e.field.as_deref(), Some("execution.steps"), "{e}");
}
