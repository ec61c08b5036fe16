//! Operations → capabilities: the walk over `paths`, one operation at a time, each in its own
//! `Result` so that one bad operation is skipped and never sinks the document.
//!
//! [`build`] reads as its steps: repair and validate, walk `paths`, check operation ids,
//! filter, convert each operation ([`capability`]), then assemble the tool ([`tool`]) and split
//! it into parts of a storable size.

mod body;
mod capability;
mod servers;
mod tool;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;

use serde_json::{Value, json};

use crate::error::IngestError;
use crate::refs::{DocId, RefStore};
use crate::repair::escape;
use crate::report::{IngestReport, Skipped};
use crate::schema::{Flavor, Patterns};
use crate::source::Source;
use crate::validate::Findings;
use crate::{IngestOptions, Ingested, validate};
use capability::{Builder, risk_of};

/// The HTTP methods an operation can have, as written in a path item.
pub(crate) const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// One operation found in `paths`.
struct Op<'r> {
    path: String,
    method: &'static str,
    /// Document the path item lives in (the base for its references).
    doc: DocId,
    /// Shared by the operations of one path item, and borrowed from the document unless the
    /// path item is a `$ref`: a copy per operation was a large share of the import time.
    item: Rc<Cow<'r, Value>>,
}

impl Op<'_> {
    /// The operation object (present: an `Op` is only made for a method its item has).
    fn op(&self) -> &Value {
        &self.item[self.method]
    }

    /// The operation's JSON pointer in its document.
    fn pointer(&self) -> String {
        format!("/paths/{}/{}", escape(&self.path), self.method)
    }

    fn label(&self) -> String {
        let mut s = format!("{} {}", self.method.to_ascii_uppercase(), self.path);
        if let Some(id) = self.op().get("operationId").and_then(Value::as_str) {
            s.push_str(&format!(" ({id})"));
        }
        s
    }
}

/// The capabilities converted, each with its split group and the index of its operation.
#[derive(Default)]
struct Converted {
    capabilities: Vec<slovo_core::Capability>,
    groups: Vec<String>,
    origins: Vec<usize>,
}

pub(crate) fn build(
    source: &Source,
    root: Value,
    flavor: Flavor,
    spec_version: String,
    options: &IngestOptions,
) -> Result<Ingested, IngestError> {
    let source_name = source.name.clone();
    let mut report = IngestReport {
        source: source_name.clone(),
        spec_version,
        ..IngestReport::default()
    };
    let invalid = |errors: Vec<String>| IngestError::Invalid {
        source_name: source_name.clone(),
        errors,
    };

    let (root, findings) = repair_and_validate(root, flavor, options, &mut report);
    let mut strict_errors = Vec::new();
    if options.strict {
        strict_errors.extend(findings.document.iter().cloned());
        strict_errors.extend(findings.operations.values().flatten().cloned());
    }

    // The store owns the document from here on (a copy of it was pure overhead).
    let mut store = RefStore::new(
        root,
        source.location.clone(),
        options.file_root.clone(),
        &options.remote,
        options.max_document_bytes,
    );
    let root = store.root(0);

    let mut ops = walk_paths(&mut store, &root, options.strict, &mut report).map_err(invalid)?;
    report.operations_total = ops.len();
    check_operation_ids(&ops, options.strict, &mut report).map_err(invalid)?;
    let before = ops.len();
    ops.retain(|op| options.filter.matches(&op.path, op.method, op.op()));
    report.filtered_out = before - ops.len();

    let (base_url, base_warnings) = servers::base_url(&mut store, flavor, options, &root);
    report.warnings.extend(base_warnings);
    let schemes = servers::security_schemes(&mut store, flavor, &root);
    let mut builder = Builder {
        lenient: !options.strict,
        store,
        flavor,
        patterns: Patterns::default(),
        base_url: base_url.clone(),
        names: HashSet::new(),
        root: root.clone(),
        schemes,
        secret_use: BTreeMap::new(),
    };
    let converted = convert_operations(&mut builder, &ops, &findings, &mut report);

    if options.strict {
        strict_errors.extend(report.skipped.iter().map(ToString::to_string));
        if !strict_errors.is_empty() {
            return Err(invalid(strict_errors));
        }
    }
    report.warnings.sort();
    report.warnings.dedup();
    report.capabilities = converted.capabilities.len();
    if converted.capabilities.is_empty() {
        return nothing_usable(source_name, report);
    }

    let Converted {
        capabilities,
        mut groups,
        origins,
    } = converted;
    let mut manifest = tool::assemble(
        source,
        &root,
        options,
        base_url,
        capabilities,
        builder.required_secrets(),
        &mut report,
    );
    let analysis = crate::analysis::offline_analysis(&manifest);
    analysis.apply(&mut manifest);
    let sizes = tool::drop_oversized(&mut manifest, &mut groups, &origins, &ops, &mut report);
    if manifest.capabilities.is_empty() {
        return Err(IngestError::NoUsableOperations {
            source_name,
            skipped: report.skipped,
        });
    }
    report.capabilities = manifest.capabilities.len();
    let (manifests, parts) = crate::split::split(manifest, groups, sizes, options.max_operations);
    report.tools = parts;
    Ok(Ingested {
        manifests,
        report,
        analysis,
    })
}

/// Lenient mode repairs the slips whose meaning is clear (each listed in the report) and
/// accepts a 3.x document without `paths`; then the document is validated against its
/// version's schema. Lenient mode reports what is still invalid as warnings; each operation is
/// then judged by whether it converts (an operation that needs the broken part is skipped).
fn repair_and_validate(
    mut root: Value,
    flavor: Flavor,
    options: &IngestOptions,
    report: &mut IngestReport,
) -> (Value, Findings) {
    if !options.strict {
        report.repairs = crate::repair::repair(&mut root, flavor);
    }
    if flavor != Flavor::Swagger2
        && !options.strict
        && let Value::Object(o) = &mut root
        && !o.contains_key("paths")
    {
        o.insert("paths".into(), json!({}));
        report.warnings.push("the document has no `paths`".into());
    }
    let findings = validate::check(&root, flavor, options.strict);
    if !options.strict {
        let what = if flavor == Flavor::Swagger2 {
            "Swagger 2.0"
        } else {
            "OpenAPI"
        };
        report
            .warnings
            .extend(findings.document.iter().map(|e| format!("not valid {what}: {e}")));
    }
    (root, findings)
}

/// Every operation of every readable path item. A path item that cannot be read skips its
/// operations (lenient) or refuses the document (strict, with every such item named).
fn walk_paths<'r>(
    store: &mut RefStore<'r>,
    root: &'r Value,
    strict: bool,
    report: &mut IngestReport,
) -> Result<Vec<Op<'r>>, Vec<String>> {
    let mut ops = Vec::new();
    let mut invalid_items = Vec::new();
    let mut unreadable_items = Vec::new();
    let Some(paths) = root.get("paths").and_then(Value::as_object) else {
        return Ok(ops);
    };
    for (path, item) in paths {
        if path.starts_with("x-") {
            continue;
        }
        let (doc, item) = match store.deref(0, item) {
            Ok(found) => found,
            Err(e) => {
                invalid_items.push(format!("path {path}: {e}"));
                unreadable_items.push(Skipped {
                    operation: format!("every operation of {path}"),
                    pointer: format!("/paths/{}", escape(path)),
                    reason: format!("the path item cannot be read: {e}"),
                });
                continue;
            }
        };
        let item = Rc::new(item);
        for method in METHODS {
            if item.get(method).is_some() {
                ops.push(Op {
                    path: path.clone(),
                    method,
                    doc,
                    item: Rc::clone(&item),
                });
            }
        }
    }
    if strict && !invalid_items.is_empty() {
        return Err(invalid_items);
    }
    report.skipped.extend(unreadable_items);
    Ok(ops)
}

/// Operation ids must be unique within a document. Lenient mode renamed the duplicates of
/// this document already (see `repair`); what is left comes through path items in other
/// files, is a warning, and gets numbered capability names.
fn check_operation_ids(ops: &[Op], strict: bool, report: &mut IngestReport) -> Result<(), Vec<String>> {
    let mut by_id: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for op in ops {
        if let Some(id) = op.op().get("operationId").and_then(Value::as_str) {
            by_id.entry(id).or_default().push(op.label());
        }
    }
    let duplicates: Vec<String> = by_id
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(id, v)| format!("operationId {id:?} is used by {}", v.join(", ")))
        .collect();
    if duplicates.is_empty() {
        return Ok(());
    }
    if strict {
        return Err(duplicates);
    }
    report.warnings.extend(duplicates);
    Ok(())
}

/// Each operation on its own: a capability, or a [`Skipped`] entry with the reason.
fn convert_operations(
    builder: &mut Builder,
    ops: &[Op],
    findings: &Findings,
    report: &mut IngestReport,
) -> Converted {
    let mut converted = Converted::default();
    let shared = crate::split::shared_segments(ops.iter().map(|o| o.path.as_str()));
    for (i, op) in ops.iter().enumerate() {
        if let Some(errors) = findings.operations.get(&(op.path.clone(), op.method.to_string())) {
            // Lenient: a specification mistake that still converts is a warning.
            report.warnings.push(format!(
                "{}: not valid OpenAPI: {}",
                op.label(),
                errors.join("; ")
            ));
        }
        match builder.capability(op) {
            Ok((cap, notes)) => {
                report
                    .warnings
                    .extend(notes.into_iter().map(|n| format!("{}: {n}", op.label())));
                if let Some(risk) = risk_of(&cap, op) {
                    report.risks.push(risk);
                }
                converted.capabilities.push(cap);
                converted
                    .groups
                    .push(crate::split::group_of(op.op(), &op.path, shared));
                converted.origins.push(i);
            }
            Err(reason) => report.skipped.push(Skipped {
                operation: op.label(),
                pointer: op.pointer(),
                reason: reason.to_string(),
            }),
        }
    }
    converted
}

/// No capability converted: an empty document (or one the filters emptied) is a success with a
/// warning; a document whose every operation failed is an error listing why.
fn nothing_usable(source_name: String, mut report: IngestReport) -> Result<Ingested, IngestError> {
    if !report.skipped.is_empty() {
        return Err(IngestError::NoUsableOperations {
            source_name,
            skipped: report.skipped,
        });
    }
    report.warnings.push(if report.operations_total == 0 {
        "the document has no operations".into()
    } else {
        "the filters left no operations".into()
    });
    Ok(Ingested {
        manifests: Vec::new(),
        report,
        analysis: crate::Analysis::default(),
    })
}
