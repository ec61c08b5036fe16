//! Operations → capabilities: the walk over `paths`, one operation at a time, each in its own
//! `Result` so that one bad operation is skipped and never sinks the document.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use slovo_core::manifest::ApiRequirements;
use slovo_core::{Capability, Execution, HostPattern, Manifest, Permissions};
use url::Url;

use crate::error::IngestError;
use crate::naming::{self, MAX_DESCRIPTION};
use crate::refs::{DocId, RefStore};
use crate::repair::escape;
use crate::report::{IngestReport, RequiredSecret, Risk, RiskLevel, SecretScheme, Skipped};
use crate::schema::{Converter, Flavor, Patterns};
use crate::source::{Location, Source};
use crate::{IngestOptions, Ingested, validate};

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

/// A parameter after `$ref` resolution, with the document it was found in.
struct Param<'a> {
    name: String,
    location: String,
    doc: DocId,
    /// Borrowed from the operation unless the parameter is a `$ref`.
    def: Cow<'a, Value>,
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

    // A 3.0 document without `paths` is accepted (it has no operations), with a warning.
    let mut root = root;
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
    let mut strict_errors = Vec::new();
    if options.strict {
        strict_errors.extend(findings.document.iter().cloned());
        strict_errors.extend(findings.operations.values().flatten().cloned());
    } else {
        // Lenient: what is still invalid after the repairs is reported; each operation is then
        // judged by whether it converts (an operation that needs the broken part is skipped).
        let what = if flavor == Flavor::Swagger2 {
            "Swagger 2.0"
        } else {
            "OpenAPI"
        };
        report
            .warnings
            .extend(findings.document.iter().map(|e| format!("not valid {what}: {e}")));
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

    // Walk `paths`.
    let mut ops = Vec::new();
    let mut invalid_items = Vec::new();
    let mut unreadable_items = Vec::new();
    if let Some(paths) = root.get("paths").and_then(Value::as_object) {
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
    }
    if !invalid_items.is_empty() && options.strict {
        return Err(IngestError::Invalid {
            source_name,
            errors: invalid_items,
        });
    }
    report.skipped.extend(unreadable_items);
    report.operations_total = ops.len();

    // Operation ids must be unique within a document.
    let mut by_id: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for op in &ops {
        if let Some(id) = op.op().get("operationId").and_then(Value::as_str) {
            by_id.entry(id).or_default().push(op.label());
        }
    }
    let duplicates: Vec<String> = by_id
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(id, v)| format!("operationId {id:?} is used by {}", v.join(", ")))
        .collect();
    if !duplicates.is_empty() {
        // Lenient mode renamed the duplicates of this document already (see `repair`); what is
        // left comes through path items in other files, and gets numbered capability names.
        if options.strict {
            return Err(IngestError::Invalid {
                source_name,
                errors: duplicates,
            });
        }
        report.warnings.extend(duplicates);
    }

    let before = ops.len();
    ops.retain(|op| options.filter.matches(&op.path, op.method, op.op()));
    report.filtered_out = before - ops.len();

    let (base_url, base_warnings) = base_url(&mut store, flavor, options, &root);
    report.warnings.extend(base_warnings);
    let schemes = security_schemes(&mut store, flavor, &root);

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
    let mut capabilities = Vec::new();
    let mut groups = Vec::new();
    let mut origins = Vec::new();
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
                capabilities.push(cap);
                groups.push(crate::split::group_of(op.op(), &op.path, shared));
                origins.push(i);
            }
            Err(reason) => report.skipped.push(Skipped {
                operation: op.label(),
                pointer: op.pointer(),
                reason,
            }),
        }
    }
    if options.strict {
        strict_errors.extend(report.skipped.iter().map(ToString::to_string));
        if !strict_errors.is_empty() {
            return Err(IngestError::Invalid {
                source_name,
                errors: strict_errors,
            });
        }
    }
    report.warnings.sort();
    report.warnings.dedup();
    report.capabilities = capabilities.len();
    if capabilities.is_empty() {
        if report.skipped.is_empty() {
            report.warnings.push(if report.operations_total == 0 {
                "the document has no operations".into()
            } else {
                "the filters left no operations".into()
            });
            return Ok(Ingested {
                manifests: Vec::new(),
                report,
                analysis: crate::Analysis::default(),
            });
        }
        return Err(IngestError::NoUsableOperations {
            source_name,
            skipped: report.skipped,
        });
    }

    // Secrets, hosts, the manifest.
    let used = std::mem::take(&mut builder.secret_use);
    for (name, count) in used {
        if let Some(scheme) = builder.schemes.get(&name) {
            report.secrets.push(RequiredSecret {
                name: name.clone(),
                scheme: scheme.0.clone(),
                description: scheme.1.clone(),
                used_by: count,
            });
        }
    }
    let mut network_allow = Vec::new();
    if let Some(base) = &base_url
        && let Ok(url) = Url::parse(base)
        && let Some(host) = url.host_str()
    {
        let host = host.to_ascii_lowercase();
        let pattern = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host,
        };
        match pattern.parse::<HostPattern>() {
            Ok(h) => {
                report.hosts.push(pattern);
                network_allow.push(h);
            }
            Err(e) => report.warnings.push(format!(
                "the API host cannot be put on the network allow list: {e}"
            )),
        }
    }
    report.base_url = base_url.clone();

    let info = root.get("info");
    let title = info
        .and_then(|i| i.get("title"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let name = match &options.tool_name {
        Some(n) => n.clone(),
        None => naming::tool_name(title),
    };
    let version = naming::version(
        &info
            .and_then(|i| i.get("version"))
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_default(),
    );
    let info_description = info
        .and_then(|i| i.get("description"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let description = naming::clean_text(
        &match (title.trim().is_empty(), info_description.trim().is_empty()) {
            (false, false) => format!("{title}: {info_description}"),
            (false, true) => title.to_string(),
            (true, false) => info_description.to_string(),
            (true, true) => format!("API imported from {}", source.name),
        },
        500,
    );
    let primary = report.secrets.iter().max_by_key(|s| s.used_by);
    let api_requirements = base_url.as_ref().map(|base| {
        let (auth_type, auth_header) = match primary.map(|s| &s.scheme) {
            None => ("none", None),
            Some(SecretScheme::ApiKey { location, parameter }) => {
                ("api_key", (location == "header").then(|| parameter.clone()))
            }
            Some(SecretScheme::Basic) => ("basic", None),
            Some(
                SecretScheme::Bearer { .. }
                | SecretScheme::OAuth2ClientCredentials { .. }
                | SecretScheme::OAuth2Token { .. },
            ) => ("bearer", None),
            Some(SecretScheme::Unsupported { .. }) => ("none", None),
        };
        ApiRequirements {
            base_url: base.clone(),
            auth_type: Some(auth_type.to_string()),
            auth_header,
        }
    });
    if base_url.is_none() {
        report.warnings.push(
            "no absolute base URL (servers / host): the tool can be proposed but not called \
             until one is given"
                .into(),
        );
    }
    let mut manifest = Manifest {
        name,
        version,
        description,
        author: info
            .and_then(|i| i.get("contact"))
            .and_then(|c| c.get("name"))
            .and_then(Value::as_str)
            .map(|s| naming::clean_text(s, 200))
            .filter(|s| !s.is_empty()),
        license: info
            .and_then(|i| i.get("license"))
            .and_then(|c| c.get("name"))
            .and_then(Value::as_str)
            .map(|s| naming::clean_text(s, 200))
            .filter(|s| !s.is_empty()),
        tags: vec!["openapi".into()],
        capabilities,
        parameters_schema: None,
        permissions: Permissions {
            network_allow,
            storage_quota_mb: 0,
            ..Permissions::default()
        },
        execution: api_requirements.as_ref().map(|_| Execution::Http),
        api_requirements,
        openapi_spec: Some(source.name.clone()),
    };
    let analysis = crate::analysis::offline_analysis(&manifest);
    analysis.apply(&mut manifest);
    let sizes = drop_oversized(&mut manifest, &mut groups, &origins, &ops, &mut report);
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

/// A capability larger than a whole tool may be cannot be stored: it is skipped (with its
/// risk), the others stay. Returns the sizes of the capabilities kept.
fn drop_oversized(
    manifest: &mut Manifest,
    groups: &mut Vec<String>,
    origins: &[usize],
    ops: &[Op],
    report: &mut IngestReport,
) -> Vec<usize> {
    let budget = crate::split::PART_BUDGET_BYTES / 2;
    let sizes: Vec<usize> = manifest
        .capabilities
        .iter()
        .map(crate::split::capability_bytes)
        .collect();
    if sizes.iter().all(|s| *s <= budget) {
        return sizes;
    }
    let capabilities = std::mem::take(&mut manifest.capabilities);
    let all_groups = std::mem::take(groups);
    let mut kept_sizes = Vec::new();
    for (((cap, group), size), origin) in capabilities.into_iter().zip(all_groups).zip(sizes).zip(origins) {
        if size > budget {
            report.risks.retain(|r| r.capability != cap.name);
            report.skipped.push(Skipped {
                operation: ops[*origin].label(),
                pointer: ops[*origin].pointer(),
                reason: format!(
                    "its converted input schema is too large to store: up to {size} bytes, more \
                     than the {budget} bytes one capability may take"
                ),
            });
            continue;
        }
        manifest.capabilities.push(cap);
        groups.push(group);
        kept_sizes.push(size);
    }
    kept_sizes
}

struct Builder<'a> {
    /// Accept 2.0-style `body` / `formData` parameters in 3.x documents.
    lenient: bool,
    store: RefStore<'a>,
    flavor: Flavor,
    patterns: Patterns,
    base_url: Option<String>,
    names: HashSet<String>,
    root: Arc<Value>,
    /// Scheme name → (how, description).
    schemes: BTreeMap<String, (SecretScheme, Option<String>)>,
    /// Scheme name → number of capabilities that need it.
    secret_use: BTreeMap<String, usize>,
}

impl Builder<'_> {
    fn capability(&mut self, op: &Op) -> Result<(Capability, Vec<String>), String> {
        if op.method == "trace" {
            return Err("TRACE operations are not supported".into());
        }
        if !op.path.starts_with('/') {
            return Err("the path does not start with /".into());
        }
        if !op.op().is_object() {
            return Err("the operation is not an object".into());
        }
        let endpoint = self.endpoint(op)?;
        let params = self.parameters(op)?;
        check_path_template(&op.path, &params)?;

        let flavor = self.flavor;
        let mut conv = Converter::new(&mut self.store, flavor, &mut self.patterns);
        let mut properties = Map::new();
        let mut required = Vec::new();
        let mut taken = HashSet::new();
        let mut form = Vec::new();
        let mut body_param = None;
        for p in &params {
            match p.location.as_str() {
                "body" => {
                    body_param = Some(p);
                    continue;
                }
                "formData" => {
                    form.push(p);
                    continue;
                }
                _ => {}
            }
            let (schema, binding) = param_schema(&mut conv, p, flavor)?;
            let prop = claim(&p.name, &p.location, &mut taken);
            let is_required =
                p.location == "path" || p.def.get("required").and_then(Value::as_bool) == Some(true);
            if is_required {
                required.push(json!(prop));
            }
            properties.insert(prop, with_binding(schema, binding));
        }

        let body = if flavor == Flavor::Swagger2 || body_param.is_some() || !form.is_empty() {
            swagger_body(&mut conv, op, &self.root, body_param, &form)?
        } else {
            openapi_body(&mut conv, op)?
        };
        let mut body_binding = None;
        if let Some(mut body) = body {
            let s = &body.schema;
            let flat = body.flattenable
                && s.get("properties").is_some_and(Value::is_object)
                && ["allOf", "anyOf", "oneOf", "$ref", "not", "if"]
                    .iter()
                    .all(|k| s.get(*k).is_none())
                && s.get("type").is_none_or(|t| t == "object");
            // The body schema is ours (just converted): its parts are moved into the inputs,
            // not copied.
            let mut fields = None;
            let mut body_required = Vec::new();
            if flat && let Value::Object(s) = &mut body.schema {
                if let Some(Value::Array(a)) = s.get("required") {
                    body_required = a.iter().filter_map(Value::as_str).map(str::to_string).collect();
                }
                if let Some(Value::Object(f)) = s.remove("properties") {
                    fields = Some(f);
                }
            }
            if let Some(fields) = fields {
                for (field, schema) in fields {
                    let prop = claim(&field, "body", &mut taken);
                    if body.required && body_required.contains(&field) {
                        required.push(json!(prop));
                    }
                    properties.insert(prop, with_binding(schema, json!({"in": "body", "name": field})));
                }
            } else {
                let prop = claim("body", "request", &mut taken);
                if body.required {
                    required.push(json!(prop));
                }
                let mut schema = std::mem::take(&mut body.schema);
                if let (Some(d), Value::Object(s)) = (&body.description, &mut schema)
                    && !s.contains_key("description")
                {
                    s.insert("description".into(), json!(d));
                }
                properties.insert(prop, with_binding(schema, json!({"in": "body"})));
            }
            body_binding = Some(json!({ "content_type": body.content_type }));
        }
        conv.finish()?;
        let defs = std::mem::take(&mut conv.defs);
        let notes = std::mem::take(&mut conv.notes);
        drop(conv);

        let mut parameters = Map::new();
        parameters.insert("type".into(), json!("object"));
        parameters.insert("properties".into(), Value::Object(properties));
        if !required.is_empty() {
            parameters.insert("required".into(), Value::Array(required));
        }
        parameters.insert("additionalProperties".into(), json!(false));
        if !defs.is_empty() {
            parameters.insert("$defs".into(), Value::Object(defs));
        }
        if let Some(b) = body_binding {
            parameters.insert("x-slovo-body".into(), b);
        }
        let idempotent = matches!(op.method, "get" | "head" | "options" | "put" | "delete");
        parameters.insert("x-slovo-idempotent".into(), json!(idempotent));
        if let Some(security) = self.security(op) {
            parameters.insert("x-slovo-security".into(), security);
        }
        let parameters = Value::Object(parameters);
        check_schema(&parameters, &self.patterns)?;

        let op_id = op.op().get("operationId").and_then(Value::as_str);
        let name = naming::unique(
            naming::capability_name(op_id, op.method, &op.path),
            &mut self.names,
        );
        let summary = op
            .op()
            .get("summary")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim();
        let long = op
            .op()
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim();
        let text = match (summary.is_empty(), long.is_empty()) {
            (false, false) if long.starts_with(summary) => long.to_string(),
            (false, false) => format!("{summary}. {long}"),
            (false, true) => summary.to_string(),
            (true, false) => long.to_string(),
            (true, true) => String::new(),
        };
        let mut description = naming::clean_text(&text, MAX_DESCRIPTION);
        if description.is_empty() {
            description = format!("{} {}", op.method.to_ascii_uppercase(), op.path);
        }
        let (read_only, destructive) = match op.method {
            "get" | "head" | "options" => (true, false),
            "post" => (false, false),
            _ => (false, true),
        };
        Ok((
            Capability {
                name,
                description,
                parameters,
                returns: None,
                endpoint: Some(endpoint),
                method: Some(op.method.to_ascii_uppercase()),
                examples: Vec::new(),
                read_only: Some(read_only),
                destructive: Some(destructive),
            },
            notes,
        ))
    }

    /// The path below the base URL: the operation's own server, if it has one, must be the
    /// base URL or below it.
    fn endpoint(&mut self, op: &Op) -> Result<String, String> {
        let own = op
            .op()
            .get("servers")
            .or_else(|| op.item.get("servers"))
            .and_then(Value::as_array)
            .and_then(|s| s.first());
        let Some(server) = own else {
            return Ok(op.path.clone());
        };
        let Some(url) = server_url(server, self.store.location(op.doc)) else {
            return Ok(op.path.clone());
        };
        let Some(base) = &self.base_url else {
            return Err(format!(
                "the operation's server {url} differs from the document's"
            ));
        };
        match url.strip_prefix(base.as_str()) {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => Ok(format!("{rest}{}", op.path)),
            _ => Err(format!(
                "the operation's server {url} is not below the base URL {base}"
            )),
        }
    }

    fn parameters<'o>(&mut self, op: &'o Op) -> Result<Vec<Param<'o>>, String> {
        let mut out: Vec<Param> = Vec::new();
        for (level, list) in [
            ("path item", op.item.get("parameters")),
            ("operation", op.op().get("parameters")),
        ] {
            let Some(list) = list else { continue };
            let Some(list) = list.as_array() else {
                return Err(format!("{level} parameters are not a list"));
            };
            let mut seen = HashSet::new();
            for raw in list {
                let (doc, def) = self.store.deref(op.doc, raw)?;
                let name = def.get("name").and_then(Value::as_str);
                let location = def.get("in").and_then(Value::as_str);
                let (Some(name), Some(location)) = (name, location) else {
                    return Err("a parameter has no `name` or no `in`".into());
                };
                let valid = if self.flavor == Flavor::Swagger2 || self.lenient {
                    ["query", "header", "path", "formData", "body"].contains(&location)
                } else {
                    ["query", "header", "path", "cookie"].contains(&location)
                };
                if !valid {
                    return Err(format!(
                        "parameter {name:?} is in {location:?}, which is not a parameter location"
                    ));
                }
                if !seen.insert((name.to_string(), location.to_string())) {
                    return Err(format!("parameter {name:?} in {location} is declared twice"));
                }
                // OpenAPI 3: these headers are described elsewhere and must be ignored.
                if location == "header"
                    && self.flavor != Flavor::Swagger2
                    && ["accept", "content-type", "authorization"]
                        .contains(&name.to_ascii_lowercase().as_str())
                {
                    continue;
                }
                // An operation parameter overrides the path item's one of the same name and place.
                out.retain(|p| !(p.name == name && p.location == location));
                out.push(Param {
                    name: name.to_string(),
                    location: location.to_string(),
                    doc,
                    def,
                });
            }
        }
        if out.iter().filter(|p| p.location == "body").count() > 1 {
            return Err("more than one body parameter".into());
        }
        Ok(out)
    }

    fn security(&mut self, op: &Op) -> Option<Value> {
        let reqs = op
            .op()
            .get("security")
            .or_else(|| self.root.get("security"))
            .and_then(Value::as_array)?;
        let mut alternatives = Vec::new();
        let mut names = HashSet::new();
        for req in reqs {
            let Some(req) = req.as_object() else { continue };
            let set: Vec<&String> = req.keys().collect();
            if set.iter().all(|n| self.schemes.contains_key(*n)) {
                names.extend(set.iter().map(|s| s.to_string()));
                alternatives.push(json!(set));
            }
        }
        if alternatives.is_empty() {
            return None;
        }
        for n in names {
            *self.secret_use.entry(n).or_default() += 1;
        }
        Some(Value::Array(alternatives))
    }
}

/// A property name for a parameter: its own name if free, then `{in}_{name}`, then numbered.
fn claim(name: &str, location: &str, taken: &mut HashSet<String>) -> String {
    if taken.insert(name.to_string()) {
        return name.to_string();
    }
    let prefixed = format!("{}_{name}", location.to_ascii_lowercase());
    if taken.insert(prefixed.clone()) {
        return prefixed;
    }
    for i in 2.. {
        let candidate = format!("{prefixed}_{i}");
        if taken.insert(candidate.clone()) {
            return candidate;
        }
    }
    prefixed
}

fn with_binding(schema: Value, binding: Value) -> Value {
    let mut obj = match schema {
        Value::Object(o) => o,
        Value::Bool(false) => {
            let mut m = Map::new();
            m.insert("not".into(), json!({}));
            m
        }
        _ => Map::new(),
    };
    obj.insert("x-slovo-in".into(), binding);
    Value::Object(obj)
}

fn param_schema(conv: &mut Converter, p: &Param, flavor: Flavor) -> Result<(Value, Value), String> {
    let mut binding = Map::new();
    binding.insert("in".into(), json!(p.location));
    binding.insert("name".into(), json!(p.name));
    let mut schema = if flavor == Flavor::Swagger2 {
        // A 2.0 parameter carries its schema keywords itself.
        let mut s = p.def.as_ref().clone();
        if let Value::Object(o) = &mut s {
            for k in [
                "name",
                "in",
                "required",
                "description",
                "collectionFormat",
                "allowEmptyValue",
            ] {
                o.remove(k);
            }
        }
        let is_array = p.def.get("type").and_then(Value::as_str) == Some("array");
        if is_array {
            let format = p
                .def
                .get("collectionFormat")
                .and_then(Value::as_str)
                .unwrap_or("csv");
            let (style, explode) = match (format, p.location.as_str()) {
                ("multi", _) => ("form", true),
                ("ssv", _) => ("spaceDelimited", false),
                ("pipes", _) => ("pipeDelimited", false),
                ("tsv", _) => ("tabDelimited", false),
                (_, "query") => ("form", false),
                _ => ("simple", false),
            };
            binding.insert("style".into(), json!(style));
            binding.insert("explode".into(), json!(explode));
        }
        conv.convert(&s, p.doc)?
    } else if let Some(s) = p.def.get("schema") {
        let style = p
            .def
            .get("style")
            .and_then(Value::as_str)
            .unwrap_or(match p.location.as_str() {
                "query" | "cookie" => "form",
                _ => "simple",
            });
        let explode = p
            .def
            .get("explode")
            .and_then(Value::as_bool)
            .unwrap_or(style == "form");
        binding.insert("style".into(), json!(style));
        binding.insert("explode".into(), json!(explode));
        if p.def.get("allowReserved").and_then(Value::as_bool) == Some(true) {
            binding.insert("allow_reserved".into(), json!(true));
        }
        conv.convert(s, p.doc)?
    } else if let Some((media, m)) = p
        .def
        .get("content")
        .and_then(Value::as_object)
        .and_then(|c| c.iter().next())
    {
        binding.insert("content_type".into(), json!(media));
        match m.get("schema") {
            Some(s) => conv.convert(s, p.doc)?,
            None => json!({}),
        }
    } else {
        json!({})
    };
    if let (Some(Value::String(d)), Value::Object(s)) = (p.def.get("description"), &mut schema)
        && !s.contains_key("description")
    {
        s.insert(
            "description".into(),
            json!(naming::clean_text(d, MAX_DESCRIPTION)),
        );
    }
    if let (Some(Value::Bool(true)), Value::Object(s)) = (p.def.get("deprecated"), &mut schema) {
        s.insert("deprecated".into(), json!(true));
    }
    Ok((schema, Value::Object(binding)))
}

struct Body {
    schema: Value,
    content_type: String,
    required: bool,
    description: Option<String>,
    /// The body's properties may become top-level inputs.
    flattenable: bool,
}

/// Preferred request media types, best first.
fn media_rank(media: &str) -> usize {
    let m = media.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if m == "application/json" {
        0
    } else if m.ends_with("+json") || m.ends_with("/json") {
        1
    } else if m == "application/x-www-form-urlencoded" {
        2
    } else if m == "multipart/form-data" {
        3
    } else if m.starts_with("text/") {
        4
    } else {
        5
    }
}

fn openapi_body(conv: &mut Converter, op: &Op) -> Result<Option<Body>, String> {
    let Some(raw) = op.op().get("requestBody") else {
        return Ok(None);
    };
    let (doc, body) = conv.refs().deref(op.doc, raw)?;
    let Some(content) = body.get("content").and_then(Value::as_object) else {
        return Err("requestBody has no content".into());
    };
    let Some((media, m)) = content.iter().min_by_key(|(k, _)| media_rank(k)) else {
        return Ok(None);
    };
    let schema = match m.get("schema") {
        Some(s) => conv.convert(s, doc)?,
        None => json!({}),
    };
    let rank = media_rank(media);
    Ok(Some(Body {
        schema,
        content_type: media.clone(),
        required: body.get("required").and_then(Value::as_bool) == Some(true),
        description: body
            .get("description")
            .and_then(Value::as_str)
            .map(|d| naming::clean_text(d, MAX_DESCRIPTION)),
        flattenable: rank <= 3,
    }))
}

fn swagger_body(
    conv: &mut Converter,
    op: &Op,
    root: &Value,
    body: Option<&Param>,
    form: &[&Param],
) -> Result<Option<Body>, String> {
    let consumes: Vec<&str> = op
        .op()
        .get("consumes")
        .or_else(|| root.get("consumes"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(p) = body {
        let schema = match p.def.get("schema") {
            Some(s) => conv.convert(s, p.doc)?,
            None => json!({}),
        };
        let content_type = consumes
            .iter()
            .min_by_key(|m| media_rank(m))
            .map(|m| m.to_string())
            .unwrap_or_else(|| "application/json".into());
        let rank = media_rank(&content_type);
        return Ok(Some(Body {
            schema,
            content_type,
            required: p.def.get("required").and_then(Value::as_bool) == Some(true),
            description: p
                .def
                .get("description")
                .and_then(Value::as_str)
                .map(|d| naming::clean_text(d, MAX_DESCRIPTION)),
            flattenable: rank <= 3,
        }));
    }
    if form.is_empty() {
        return Ok(None);
    }
    let multipart = consumes.contains(&"multipart/form-data")
        || form
            .iter()
            .any(|p| p.def.get("type").and_then(Value::as_str) == Some("file"));
    let mut properties = Map::new();
    let mut required = Vec::new();
    for p in form {
        let (schema, _) = param_schema(conv, p, Flavor::Swagger2)?;
        if p.def.get("required").and_then(Value::as_bool) == Some(true) {
            required.push(json!(p.name));
        }
        properties.insert(p.name.clone(), schema);
    }
    Ok(Some(Body {
        schema: json!({"type": "object", "properties": properties, "required": required}),
        content_type: if multipart {
            "multipart/form-data".into()
        } else {
            "application/x-www-form-urlencoded".into()
        },
        required: true,
        description: None,
        flattenable: true,
    }))
}

/// Every `{name}` in the path template has a path parameter and every path parameter appears
/// in the template.
fn check_path_template(path: &str, params: &[Param]) -> Result<(), String> {
    let mut vars = Vec::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            return Err("unbalanced `{` in the path".into());
        };
        vars.push(&rest[start + 1..start + len]);
        rest = &rest[start + len + 1..];
    }
    for v in &vars {
        if !params.iter().any(|p| p.location == "path" && p.name == *v) {
            return Err(format!("path variable {{{v}}} has no path parameter"));
        }
    }
    for p in params.iter().filter(|p| p.location == "path") {
        if !vars.contains(&p.name.as_str()) {
            return Err(format!("path parameter {:?} does not appear in the path", p.name));
        }
    }
    Ok(())
}

/// The produced schema must be a valid 2020-12 schema that compiles, with a root object type.
///
/// Building the validator checks the schema against the 2020-12 meta-schema first (the same
/// meta-validator `jsonschema::meta::validate` uses; our schemas declare no `$schema` and embed
/// no resources), so the meta-schema check runs once, inside the build; `meta::validate` is
/// only asked again when the build fails, to report which of the two checks failed.
fn check_schema(schema: &Value, patterns: &Patterns) -> Result<(), String> {
    let Err(compile_error) = patterns.compile(schema) else {
        return Ok(());
    };
    if let Err(e) = jsonschema::meta::validate(schema) {
        return Err(format!(
            "the converted input schema is not valid JSON Schema: {e}"
        ));
    }
    Err(format!(
        "the converted input schema does not compile: {compile_error}"
    ))
}

fn risk_of(cap: &Capability, op: &Op) -> Option<Risk> {
    let operation = format!("{} {}", op.method.to_ascii_uppercase(), op.path);
    let (level, note) = match op.method {
        "delete" => (RiskLevel::Deletes, "deletes data on the remote service"),
        "put" => (RiskLevel::Overwrites, "replaces data on the remote service"),
        "post" => (
            RiskLevel::Changes,
            "creates data or triggers an action on the remote service",
        ),
        "patch" => (RiskLevel::Changes, "changes data on the remote service"),
        _ => return None,
    };
    Some(Risk {
        capability: cap.name.clone(),
        operation,
        level,
        note: note.into(),
    })
}

/// A server object's URL with its variables replaced by their defaults, made absolute against
/// the document's own URL when it is relative.
fn server_url(server: &Value, location: &Location) -> Option<String> {
    let mut url = server.get("url")?.as_str()?.to_string();
    if let Some(vars) = server.get("variables").and_then(Value::as_object) {
        for (k, v) in vars {
            let default = match v.get("default") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => continue,
            };
            url = url.replace(&format!("{{{k}}}"), &default);
        }
    }
    absolute(&url, location)
}

fn absolute(url: &str, location: &Location) -> Option<String> {
    let parsed = match Url::parse(url) {
        Ok(u) => u,
        Err(url::ParseError::RelativeUrlWithoutBase) => match location {
            Location::Url(base) => base.join(url).ok()?,
            _ => return None,
        },
        Err(_) => return None,
    };
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return None;
    }
    Some(parsed.as_str().trim_end_matches('/').to_string())
}

fn base_url(
    store: &mut RefStore,
    flavor: Flavor,
    options: &IngestOptions,
    root: &Value,
) -> (Option<String>, Vec<String>) {
    let mut warnings = Vec::new();
    if let Some(b) = &options.base_url {
        return (Some(b.trim_end_matches('/').to_string()), warnings);
    }
    let location = store.location(0).clone();
    if flavor == Flavor::Swagger2 {
        let schemes: Vec<&str> = root
            .get("schemes")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let scheme = if schemes.contains(&"https") || schemes.is_empty() {
            "https"
        } else if schemes.contains(&"http") {
            "http"
        } else {
            warnings.push(format!("no http(s) scheme among {schemes:?}; assuming https"));
            "https"
        };
        let base_path = root.get("basePath").and_then(Value::as_str).unwrap_or("");
        let base_path = if base_path.starts_with('/') || base_path.is_empty() {
            base_path.to_string()
        } else {
            format!("/{base_path}")
        };
        let url = match root.get("host").and_then(Value::as_str) {
            Some(host) => absolute(&format!("{scheme}://{host}{base_path}"), &location),
            None => absolute(&base_path, &location),
        };
        return (url, warnings);
    }
    let first = root
        .get("servers")
        .and_then(Value::as_array)
        .and_then(|s| s.first())
        .cloned()
        .or_else(|| {
            // No top-level server: take the first path's or operation's own.
            let paths = root.get("paths")?.as_object()?;
            paths.values().find_map(|item| {
                item.get("servers")
                    .and_then(Value::as_array)
                    .and_then(|s| s.first())
                    .cloned()
                    .or_else(|| {
                        METHODS
                            .iter()
                            .find_map(|m| item.get(*m)?.get("servers")?.as_array()?.first().cloned())
                    })
            })
        });
    match first {
        Some(server) => {
            let url = server_url(&server, &location);
            if url.is_none() {
                warnings.push(format!(
                    "server URL {} is not an absolute http(s) URL",
                    server.get("url").unwrap_or(&Value::Null)
                ));
            }
            (url, warnings)
        }
        None => (None, warnings),
    }
}

/// Security schemes by name.
fn security_schemes(
    store: &mut RefStore,
    flavor: Flavor,
    root: &Value,
) -> BTreeMap<String, (SecretScheme, Option<String>)> {
    let defs = if flavor == Flavor::Swagger2 {
        root.get("securityDefinitions")
    } else {
        root.get("components").and_then(|c| c.get("securitySchemes"))
    };
    let mut out = BTreeMap::new();
    let Some(defs) = defs.and_then(Value::as_object) else {
        return out;
    };
    for (name, raw) in defs {
        let Ok((_, def)) = store.deref(0, raw) else {
            continue;
        };
        let s = |k: &str| def.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let scheme = match s("type").as_str() {
            "apiKey" => SecretScheme::ApiKey {
                location: s("in"),
                parameter: s("name"),
            },
            "basic" => SecretScheme::Basic,
            "http" => match s("scheme").to_ascii_lowercase().as_str() {
                "bearer" => SecretScheme::Bearer {
                    format: def
                        .get("bearerFormat")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                },
                "basic" => SecretScheme::Basic,
                other => SecretScheme::Unsupported {
                    kind: format!("http {other}"),
                },
            },
            "oauth2" => {
                let client = if flavor == Flavor::Swagger2 {
                    (s("flow") == "application").then(|| (s("tokenUrl"), def.get("scopes")))
                } else {
                    def.get("flows")
                        .and_then(|f| f.get("clientCredentials"))
                        .map(|c| {
                            (
                                c.get("tokenUrl")
                                    .and_then(Value::as_str)
                                    .unwrap_or("")
                                    .to_string(),
                                c.get("scopes"),
                            )
                        })
                };
                match client {
                    Some((token_url, scopes)) => SecretScheme::OAuth2ClientCredentials {
                        token_url,
                        scopes: scopes
                            .and_then(Value::as_object)
                            .map(|m| m.keys().cloned().collect())
                            .unwrap_or_default(),
                    },
                    None => SecretScheme::OAuth2Token {
                        flows: if flavor == Flavor::Swagger2 {
                            vec![s("flow")]
                        } else {
                            def.get("flows")
                                .and_then(Value::as_object)
                                .map(|m| m.keys().cloned().collect())
                                .unwrap_or_default()
                        },
                    },
                }
            }
            "openIdConnect" => SecretScheme::OAuth2Token {
                flows: vec!["openIdConnect".into()],
            },
            other => SecretScheme::Unsupported { kind: other.into() },
        };
        let description = def
            .get("description")
            .and_then(Value::as_str)
            .map(|d| naming::clean_text(d, 300));
        out.insert(name.clone(), (scheme, description));
    }
    out
}
