//! Structural validation against the official OpenAPI JSON Schemas (Swagger 2.0, OpenAPI 3.0,
//! OpenAPI 3.1, as published by the OpenAPI Initiative under Apache-2.0 and bundled here).
//!
//! An error inside one operation (`/paths/{path}/{method}/…`) makes only that operation
//! invalid; any other error makes the document invalid. Swagger 2.0 documents of the real
//! world are full of small mistakes, so for them document-level errors are warnings.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::Value;

use crate::schema::Flavor;

const SWAGGER_20: &str = include_str!("../schemas/swagger-2.0.json");
const OPENAPI_30: &str = include_str!("../schemas/openapi-3.0.json");
const OPENAPI_31: &str = include_str!("../schemas/openapi-3.1.json");

/// Most errors reported per document.
const MAX_ERRORS: usize = 200;

/// What validation found.
#[derive(Default)]
pub(crate) struct Findings {
    /// Errors outside any operation.
    pub document: Vec<String>,
    /// Errors per operation: (path, lower-case method) → messages.
    pub operations: BTreeMap<(String, String), Vec<String>>,
}

/// The compiled schema of a version; `formats` also checks `format` (URLs, e-mails), which
/// only strict mode does.
fn validator(flavor: Flavor, formats: bool) -> Option<&'static jsonschema::Validator> {
    type Cell = OnceLock<Option<jsonschema::Validator>>;
    static CELLS: [Cell; 6] = [const { OnceLock::new() }; 6];
    let (i, text) = match flavor {
        Flavor::Swagger2 => (0, SWAGGER_20),
        Flavor::Oas30 => (1, OPENAPI_30),
        Flavor::Oas31 => (2, OPENAPI_31),
    };
    let cell = &CELLS[i + if formats { 3 } else { 0 }];
    cell.get_or_init(|| {
        let schema: Value = serde_json::from_str(text).ok()?;
        jsonschema::options()
            .should_validate_formats(formats)
            .build(&schema)
            .ok()
    })
    .as_ref()
}

pub(crate) fn check(doc: &Value, flavor: Flavor, strict: bool) -> Findings {
    let mut findings = Findings::default();
    let Some(v) = validator(flavor, strict) else {
        findings
            .document
            .push("internal: the bundled OpenAPI schema did not compile".into());
        return findings;
    };
    // Most documents are valid; `is_valid` stops at nothing to report and skips the error
    // collection that `iter_errors` sets up for every keyword.
    if v.is_valid(doc) {
        return findings;
    }
    for e in v.iter_errors(doc).take(MAX_ERRORS) {
        let at = e.instance_path().as_str().to_string();
        let message = format!(
            "{} (at {})",
            short(&e.to_string()),
            if at.is_empty() { "/" } else { &at }
        );
        let segs: Vec<String> = at
            .split('/')
            .skip(1)
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect();
        if segs.len() >= 3 && segs[0] == "paths" && crate::operations::METHODS.contains(&segs[2].as_str()) {
            findings
                .operations
                .entry((segs[1].clone(), segs[2].clone()))
                .or_default()
                .push(message);
        } else {
            findings.document.push(message);
        }
    }
    findings
}

/// Validation messages quote the offending value; keep them readable.
fn short(m: &str) -> String {
    if m.chars().count() <= 300 {
        return m.to_string();
    }
    let cut: String = m.chars().take(300).collect();
    format!("{cut}…")
}
