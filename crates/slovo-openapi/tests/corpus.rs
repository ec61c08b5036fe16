//! Ingests every document of `../shared/corpus/openapi` (see its README.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use slovo_openapi::{IngestOptions, Ingested, Source, ingest};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/openapi")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "json" | "yaml" | "yml" | "oas3"))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn options() -> IngestOptions {
    IngestOptions {
        // `externalPathItemRef.yaml` refers to `../resources/include.yaml`.
        file_root: Some(corpus().join("conformance")),
        max_operations: 1_000,
        ..IngestOptions::default()
    }
}

fn run(path: &Path, options: &IngestOptions) -> Result<Ingested, slovo_openapi::IngestError> {
    ingest(
        &Source::from_path(path, slovo_openapi::DEFAULT_MAX_DOCUMENT_BYTES)?,
        options,
    )
}

/// Every capability: a valid 2020-12 schema with a root object type, a unique name of at most
/// 64 characters in `[a-z0-9_]`, and the manifest survives the canonical round trip.
fn check_manifest(path: &Path, imported: &Ingested) -> usize {
    let Some(m) = &imported.manifest else { return 0 };
    let mut names = HashSet::new();
    for c in &m.capabilities {
        assert!(c.name.len() <= 64, "{}: {}", path.display(), c.name);
        assert!(
            c.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{}",
            c.name
        );
        assert!(
            names.insert(c.name.clone()),
            "{}: duplicate {}",
            path.display(),
            c.name
        );
        jsonschema::meta::validate(&c.parameters).unwrap();
        assert_eq!(c.parameters["type"], "object");
    }
    let canonical = serde_json::to_vec(&m.to_canonical()).unwrap();
    if canonical.len() > slovo_core::manifest::MAX_MANIFEST_BYTES {
        return canonical.len();
    }
    let back = slovo_core::parse_manifest("canonical.json", &canonical)
        .unwrap_or_else(|e| panic!("{}: round trip: {e}", path.display()));
    assert_eq!(&back, m, "{}", path.display());
    0
}

#[test]
fn conformance_pass_documents_ingest() {
    let root = corpus().join("conformance");
    for path in files(&root) {
        let p = path.to_string_lossy();
        if !p.contains("/pass/") || std::fs::metadata(&path).unwrap().len() == 0 {
            continue; // 0-byte placeholders of the upstream suite are not documents.
        }
        if p.contains("resolution/twolevel/subdir1") {
            continue; // fragments referenced by `resolution/twolevel/index.yaml`.
        }
        let imported = run(&path, &options()).unwrap_or_else(|e| panic!("{e}"));
        check_manifest(&path, &imported);
    }
}

/// Fail documents whose only fault is one this ingester does not check, with the reason.
const KNOWN_ACCEPTED: [(&str, &str); 9] = [
    (
        "fuzz1/39a5dbd7-b0c2-42f6-8b80-c9a9faec9260.yaml",
        "`format: uri-reference` checks are lenient",
    ),
    (
        "fuzz1/6b245d6c-716f-47bc-b347-c26ab9c92d0b.yaml",
        "`format: uri-reference` checks are lenient",
    ),
    (
        "fuzz1/7665f29f-7502-4846-840c-7205870447fd.yaml",
        "`format: uri-reference` checks are lenient",
    ),
    (
        "fuzz1/8eed4b36-fe95-48d5-9968-5af531a2dcb3.yaml",
        "`format: uri-reference` checks are lenient",
    ),
    (
        "fuzz1/a2c3cd63-857e-4f62-a256-968878f2787b.yaml",
        "`format: uri-reference` checks are lenient",
    ),
    (
        "gluecon/example1_from_._Different_components.md.yaml",
        "an unused component refers to a remote URL; only references in use are resolved",
    ),
    (
        "fail/schemaProperties.yaml",
        "an unused component refers to an external schema with a stray keyword",
    ),
    (
        "fail/OAI/api-with-examples.yaml",
        "a YAML flow mapping whose closing `}` is less indented than its key; libyaml accepts it",
    ),
    (
        "fail/fuzz1/0e5805a8-5699-4428-9449-423c281d88c6.yaml",
        "expects `P)Zun!ngse1(f7` to fail `uri-reference`, but it is a valid relative reference",
    ),
];

#[test]
fn conformance_fail_documents_are_refused_in_strict_mode() {
    let strict = IngestOptions {
        strict: true,
        ..options()
    };
    let mut accepted = Vec::new();
    for path in files(&corpus().join("conformance")) {
        if !path.to_string_lossy().contains("/fail/") {
            continue;
        }
        match run(&path, &strict) {
            Err(e) => assert!(e.to_string().len() > 20, "{e}"),
            Ok(_) if KNOWN_ACCEPTED.iter().any(|(p, _)| path.ends_with(p)) => {}
            Ok(_) => accepted.push(path.display().to_string()),
        }
    }
    assert!(accepted.is_empty(), "accepted: {accepted:#?}");
}

#[test]
fn malicious_and_partial_documents_never_panic() {
    for path in files(&corpus().join("conformance")) {
        let p = path.to_string_lossy();
        if (p.contains("/malicious/") || p.contains("/partial/"))
            && let Ok(imported) = run(&path, &options())
        {
            check_manifest(&path, &imported);
        }
    }
}

#[test]
fn real_documents_ingest_with_few_skips() {
    let mut oversize = Vec::new();
    let mut docs = 0;
    for dir in ["directory-sample/specs", "openapi3-twilio/spec/json"] {
        for path in files(&corpus().join(dir)) {
            let imported = run(&path, &options()).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                imported.manifest.is_some() || imported.report.operations_total == 0,
                "{}",
                path.display()
            );
            assert!(
                imported.report.skipped.len() <= 5,
                "{}: {:#?}",
                path.display(),
                imported.report.skipped
            );
            for s in &imported.report.skipped {
                assert!(!s.reason.is_empty() && !s.operation.is_empty());
            }
            let size = check_manifest(&path, &imported);
            if size > 0 {
                oversize.push(format!("{} ({size} bytes)", path.display()));
            }
            docs += 1;
        }
    }
    assert_eq!(docs, 114 + 55);
    eprintln!("manifests over the 1 MiB manifest limit: {oversize:#?}");
}
