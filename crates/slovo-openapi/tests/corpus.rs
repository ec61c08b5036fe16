//! Ingests every document of `../shared/corpus/openapi` (see its README.md). The corpus is
//! not part of the repository, so these tests are ignored by default:
//! `scripts/openapi-corpus.sh` runs them (and the corpus summary) when the corpus is there.
//! The slips they found are reproduced by the fixtures of `tests/lenient.rs`, which always run.
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
/// 64 characters in `[a-z0-9_]` (unique over all the tools of the document), and every tool's
/// manifest fits the manifest limit and survives the canonical round trip.
fn check_manifest(path: &Path, imported: &Ingested) {
    let mut names = HashSet::new();
    let mut tools = HashSet::new();
    for m in &imported.manifests {
        assert!(
            tools.insert(m.name.clone()),
            "{}: tool {} twice",
            path.display(),
            m.name
        );
        check_tool(path, m, &mut names);
    }
}

fn check_tool(path: &Path, m: &slovo_core::Manifest, names: &mut HashSet<String>) {
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
    let back = slovo_core::parse_manifest("canonical.json", &canonical)
        .unwrap_or_else(|e| panic!("{}: round trip of {}: {e}", path.display(), m.name));
    assert_eq!(&back, m, "{}", path.display());
}

#[test]
#[ignore = "needs ../shared/corpus/openapi: scripts/openapi-corpus.sh"]
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
#[ignore = "needs ../shared/corpus/openapi: scripts/openapi-corpus.sh"]
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
#[ignore = "needs ../shared/corpus/openapi: scripts/openapi-corpus.sh"]
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
#[ignore = "needs ../shared/corpus/openapi: scripts/openapi-corpus.sh"]
fn every_real_document_imports_with_its_operations() {
    let (mut docs, mut ops, mut caps, mut repairs, mut failed, mut tools) = (0, 0, 0, 0, 0, 0);
    for dir in ["directory-sample/specs", "openapi3-twilio/spec/json"] {
        for path in files(&corpus().join(dir)) {
            // The defaults: nothing is refused for its size.
            let imported = run(&path, &IngestOptions::default()).unwrap_or_else(|e| panic!("{e}"));
            let r = &imported.report;
            assert!(
                !imported.manifests.is_empty() || r.operations_total == 0,
                "{}",
                path.display()
            );
            // Every operation is a capability or a failure with its pointer and reason.
            assert_eq!(
                r.capabilities + r.skipped.len(),
                r.operations_total - r.filtered_out,
                "{}",
                path.display()
            );
            assert_eq!(
                imported
                    .manifests
                    .iter()
                    .map(|m| m.capabilities.len())
                    .sum::<usize>(),
                r.capabilities
            );
            for s in &r.skipped {
                assert!(!s.reason.is_empty() && s.pointer.starts_with("/paths/"), "{s}");
            }
            for repair in &r.repairs {
                assert!(
                    repair.pointer.starts_with('/') && !repair.action.is_empty(),
                    "{repair}"
                );
            }
            check_manifest(&path, &imported);
            docs += 1;
            ops += r.operations_total;
            caps += r.capabilities;
            repairs += r.repairs.len();
            failed += r.skipped.len();
            tools += imported.manifests.len();
        }
    }
    assert_eq!(docs, 114 + 55);
    // At most 1 in 1,000 operations may fail (each with its reason, above).
    assert!(failed * 1_000 <= ops, "{failed} of {ops} operations failed");
    eprintln!(
        "documents {docs}, operations {ops}, capabilities {caps} in {tools} tools, repairs {repairs}, failed {failed}"
    );
}
