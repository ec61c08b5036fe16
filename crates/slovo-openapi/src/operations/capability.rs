//! One operation → one capability: its inputs (parameters and body flattened into one object
//! schema with `x-slovo-in` bindings), its endpoint, its security and its hints. Every failure
//! is a [`SkipReason`] that becomes a [`Skipped`](crate::Skipped) entry for that operation only.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use slovo_core::Capability;

use super::Op;
use super::body::{openapi_body, swagger_body};
use super::servers::server_url;
use crate::naming::{self, MAX_DESCRIPTION};
use crate::refs::{DocId, RefError, RefStore};
use crate::report::{RequiredSecret, Risk, RiskLevel, SecretScheme};
use crate::schema::{Converter, Flavor, Patterns, SchemaError};
use std::borrow::Cow;

/// A parameter after `$ref` resolution, with the document it was found in.
pub(super) struct Param<'a> {
    pub(super) name: String,
    pub(super) location: String,
    pub(super) doc: DocId,
    /// Borrowed from the operation unless the parameter is a `$ref`.
    pub(super) def: Cow<'a, Value>,
}

pub(super) struct Builder<'a> {
    /// Accept 2.0-style `body` / `formData` parameters in 3.x documents.
    pub(super) lenient: bool,
    pub(super) store: RefStore<'a>,
    pub(super) flavor: Flavor,
    pub(super) patterns: Patterns,
    pub(super) base_url: Option<String>,
    pub(super) names: HashSet<String>,
    pub(super) root: Arc<Value>,
    /// Scheme name → (how, description).
    pub(super) schemes: BTreeMap<String, (SecretScheme, Option<String>)>,
    /// Scheme name → number of capabilities that need it.
    pub(super) secret_use: BTreeMap<String, usize>,
}

/// The inputs of one operation, before they become its schema.
struct Inputs {
    properties: Map<String, Value>,
    required: Vec<Value>,
    defs: Map<String, Value>,
    body_binding: Option<Value>,
}

/// Why one operation cannot become a capability; the message is its
/// [`Skipped`](crate::Skipped) reason.
#[derive(Debug, thiserror::Error)]
pub(super) enum SkipReason {
    /// A `$ref` of the operation (a parameter, the request body) cannot be followed.
    #[error(transparent)]
    Ref(#[from] RefError),
    /// A schema of the operation cannot be converted.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// The operation itself: a method, path, parameter, body or schema that breaks the
    /// specification or that a capability cannot carry.
    #[error("{0}")]
    Operation(String),
}

/// Skips the operation for `reason` ([`SkipReason::Operation`]).
pub(super) fn skip(reason: impl Into<String>) -> SkipReason {
    SkipReason::Operation(reason.into())
}

/// What cannot become a capability whatever its parameters say.
fn check_supported(op: &Op) -> Result<(), SkipReason> {
    if op.method == "trace" {
        return Err(skip("TRACE operations are not supported"));
    }
    if !op.path.starts_with('/') {
        return Err(skip("the path does not start with /"));
    }
    if !op.op().is_object() {
        return Err(skip("the operation is not an object"));
    }
    Ok(())
}

/// The summary and description (once, when one begins with the other), or the method and path.
fn description(op: &Op) -> String {
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
    let description = naming::clean_text(&text, MAX_DESCRIPTION);
    if description.is_empty() {
        return format!("{} {}", op.method.to_ascii_uppercase(), op.path);
    }
    description
}

impl Builder<'_> {
    pub(super) fn capability(&mut self, op: &Op) -> Result<(Capability, Vec<String>), SkipReason> {
        check_supported(op)?;
        let endpoint = self.endpoint(op)?;
        let params = self.parameters(op)?;
        check_path_template(&op.path, &params)?;
        let (inputs, notes) = self.inputs(op, &params)?;
        let parameters = self.input_schema(op, inputs);
        check_schema(&parameters, &self.patterns)?;
        let op_id = op.op().get("operationId").and_then(Value::as_str);
        let name = naming::unique(
            naming::capability_name(op_id, op.method, &op.path),
            &mut self.names,
        );
        let (read_only, destructive) = match op.method {
            "get" | "head" | "options" => (true, false),
            "post" => (false, false),
            _ => (false, true),
        };
        Ok((
            Capability {
                name,
                description: description(op),
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

    /// Parameters and body as one set of named inputs, each with its `x-slovo-in` binding;
    /// an object body's fields become inputs of their own. Returns the converter's notes too.
    fn inputs(&mut self, op: &Op, params: &[Param]) -> Result<(Inputs, Vec<String>), SkipReason> {
        let flavor = self.flavor;
        let mut conv = Converter::new(&mut self.store, flavor, &mut self.patterns);
        let mut properties = Map::new();
        let mut required = Vec::new();
        let mut taken = HashSet::new();
        let mut form = Vec::new();
        let mut body_param = None;
        for p in params {
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
        let inputs = Inputs {
            properties,
            required,
            defs: std::mem::take(&mut conv.defs),
            body_binding,
        };
        Ok((inputs, std::mem::take(&mut conv.notes)))
    }

    /// The capability's input schema: a closed object with the inputs, their `$defs`, and the
    /// `x-slovo-*` facts the HTTP backend needs (body media type, idempotence, security).
    fn input_schema(&mut self, op: &Op, inputs: Inputs) -> Value {
        let Inputs {
            properties,
            required,
            defs,
            body_binding,
        } = inputs;
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
        Value::Object(parameters)
    }

    /// The path below the base URL: the operation's own server, if it has one, must be the
    /// base URL or below it.
    fn endpoint(&mut self, op: &Op) -> Result<String, SkipReason> {
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
            return Err(skip(format!(
                "the operation's server {url} differs from the document's"
            )));
        };
        match url.strip_prefix(base.as_str()) {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => Ok(format!("{rest}{}", op.path)),
            _ => Err(skip(format!(
                "the operation's server {url} is not below the base URL {base}"
            ))),
        }
    }

    fn parameters<'o>(&mut self, op: &'o Op) -> Result<Vec<Param<'o>>, SkipReason> {
        let mut out: Vec<Param> = Vec::new();
        for (level, list) in [
            ("path item", op.item.get("parameters")),
            ("operation", op.op().get("parameters")),
        ] {
            let Some(list) = list else { continue };
            let Some(list) = list.as_array() else {
                return Err(skip(format!("{level} parameters are not a list")));
            };
            let mut seen = HashSet::new();
            for raw in list {
                let (doc, def) = self.store.deref(op.doc, raw)?;
                let name = def.get("name").and_then(Value::as_str);
                let location = def.get("in").and_then(Value::as_str);
                let (Some(name), Some(location)) = (name, location) else {
                    return Err(skip("a parameter has no `name` or no `in`"));
                };
                let valid = if self.flavor == Flavor::Swagger2 || self.lenient {
                    ["query", "header", "path", "formData", "body"].contains(&location)
                } else {
                    ["query", "header", "path", "cookie"].contains(&location)
                };
                if !valid {
                    return Err(skip(format!(
                        "parameter {name:?} is in {location:?}, which is not a parameter location"
                    )));
                }
                if !seen.insert((name.to_string(), location.to_string())) {
                    return Err(skip(format!(
                        "parameter {name:?} in {location} is declared twice"
                    )));
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
            return Err(skip("more than one body parameter"));
        }
        Ok(out)
    }

    /// The credentials the converted capabilities need, with how many use each.
    pub(super) fn required_secrets(&mut self) -> Vec<RequiredSecret> {
        std::mem::take(&mut self.secret_use)
            .into_iter()
            .filter_map(|(name, used_by)| {
                let (scheme, description) = self.schemes.get(&name)?.clone();
                Some(RequiredSecret {
                    name,
                    scheme,
                    description,
                    used_by,
                })
            })
            .collect()
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

pub(super) fn param_schema(
    conv: &mut Converter,
    p: &Param,
    flavor: Flavor,
) -> Result<(Value, Value), SkipReason> {
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

/// Every `{name}` in the path template has a path parameter and every path parameter appears
/// in the template.
fn check_path_template(path: &str, params: &[Param]) -> Result<(), SkipReason> {
    let mut vars = Vec::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            return Err(skip("unbalanced `{` in the path"));
        };
        vars.push(&rest[start + 1..start + len]);
        rest = &rest[start + len + 1..];
    }
    for v in &vars {
        if !params.iter().any(|p| p.location == "path" && p.name == *v) {
            return Err(skip(format!("path variable {{{v}}} has no path parameter")));
        }
    }
    for p in params.iter().filter(|p| p.location == "path") {
        if !vars.contains(&p.name.as_str()) {
            return Err(skip(format!(
                "path parameter {:?} does not appear in the path",
                p.name
            )));
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
fn check_schema(schema: &Value, patterns: &Patterns) -> Result<(), SkipReason> {
    let Err(compile_error) = patterns.compile(schema) else {
        return Ok(());
    };
    if let Err(e) = jsonschema::meta::validate(schema) {
        return Err(skip(format!(
            "the converted input schema is not valid JSON Schema: {e}"
        )));
    }
    Err(skip(format!(
        "the converted input schema does not compile: {compile_error}"
    )))
}

pub(super) fn risk_of(cap: &Capability, op: &Op) -> Option<Risk> {
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
