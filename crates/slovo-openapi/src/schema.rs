//! OpenAPI schema objects (Swagger 2.0, OpenAPI 3.0, OpenAPI 3.1) → JSON Schema 2020-12.
//!
//! The converter keeps the keywords JSON Schema 2020-12 knows, with their expected types, and
//! drops everything else (vendor extensions, `discriminator`, `xml`, keywords of the wrong
//! type), noting what it drops when it matters. On the way:
//! - `nullable: true` (3.0) and `x-nullable: true` (2.0) add `"null"` to `type` (and `null` to
//!   `enum`), or wrap a type-less schema as `anyOf: [schema, {type: null}]`;
//! - boolean `exclusiveMinimum` / `exclusiveMaximum` (2.0, 3.0) take the `minimum` / `maximum`;
//! - `example` becomes `examples: [example]`;
//! - `type: file` (2.0) becomes `type: string, format: binary`;
//! - an array-valued `items` becomes `prefixItems`;
//! - a `pattern` that does not compile is dropped.
//!
//! References are inlined while the inlining budget lasts and the target is not already being
//! expanded; a recursive reference, or any reference once the budget is spent, becomes
//! `{"$ref": "#/$defs/Name"}` with the target converted once into the root's `$defs`. Work is
//! bounded: at most [`MAX_NODES`] schema nodes per operation and [`MAX_DEPTH`] levels.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value, json};

use crate::refs::{DocId, RefError, RefStore};

/// Which OpenAPI version a schema is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    Swagger2,
    Oas30,
    Oas31,
}

/// Schema nodes inlined before references start going to `$defs`.
const INLINE_BUDGET: usize = 1_500;
/// Schema nodes converted for one operation before it is given up as too complex.
pub(crate) const MAX_NODES: usize = 100_000;
/// Nesting depth of one schema.
pub(crate) const MAX_DEPTH: usize = 64;

const SIMPLE_TYPES: [&str; 7] = [
    "array", "boolean", "integer", "null", "number", "object", "string",
];

/// Why the schemas of an operation cannot be converted; the operation is skipped with this
/// message.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SchemaError {
    /// A reference inside a schema cannot be followed.
    #[error(transparent)]
    Ref(#[from] RefError),
    /// A `$defs` entry owed for a pointer that no longer leads anywhere.
    #[error("$ref target {pointer} vanished")]
    Vanished { pointer: String },
    /// More than [`MAX_NODES`] schema nodes for one operation.
    #[error("schemas too large (more than {MAX_NODES} nodes)")]
    TooManyNodes,
    /// Deeper than [`MAX_DEPTH`].
    #[error("schema nested more than {MAX_DEPTH} levels")]
    TooDeep,
}

/// Converts the schemas of one operation; all of them share one `$defs`.
pub(crate) struct Converter<'s, 'a> {
    refs: &'s mut RefStore<'a>,
    flavor: Flavor,
    stack: Vec<(DocId, String)>,
    def_names: HashMap<(DocId, String), String>,
    used_names: HashSet<String>,
    pending: Vec<((DocId, String), String)>,
    pub defs: Map<String, Value>,
    inline_left: usize,
    nodes: usize,
    pub notes: Vec<String>,
    patterns: &'s mut Patterns,
}

/// The regular expressions of one document: whether each `pattern` compiles, and the compiled
/// expressions shared by every validator built for the document's input schemas. Operations of
/// one API repeat the same patterns (identifier formats, mostly); compiling each once instead
/// of once per schema that contains it was the largest part of compiling those schemas. Both
/// are memoisation of a deterministic compile with the same options, so the results are the
/// same as without them. (A process-wide cache was tried: no faster on the Twilio set, since
/// `jsonschema` still translates each pattern per build, and it would keep memory.)
#[derive(Default)]
pub(crate) struct Patterns {
    verdicts: HashMap<String, bool>,
    cache: jsonschema::PatternCache,
}

impl Patterns {
    /// Whether `p` is a regular expression JSON Schema validation can use.
    pub fn usable(&mut self, p: &str) -> bool {
        if let Some(ok) = self.verdicts.get(p) {
            return *ok;
        }
        let ok = self.compile(&json!({ "pattern": p })).is_ok();
        self.verdicts.insert(p.to_string(), ok);
        ok
    }

    /// `jsonschema::validator_for(schema)` (meta-schema check included), sharing compiled
    /// patterns with the other schemas of the document. The cache keeps failed compiles too.
    pub fn compile(
        &self,
        schema: &Value,
    ) -> Result<jsonschema::Validator, jsonschema::ValidationError<'static>> {
        jsonschema::options()
            .with_pattern_cache(self.cache.clone())
            .build(schema)
    }
}

impl<'s, 'a> Converter<'s, 'a> {
    pub fn new(refs: &'s mut RefStore<'a>, flavor: Flavor, patterns: &'s mut Patterns) -> Self {
        Converter {
            refs,
            flavor,
            stack: Vec::new(),
            def_names: HashMap::new(),
            used_names: HashSet::new(),
            pending: Vec::new(),
            defs: Map::new(),
            inline_left: INLINE_BUDGET,
            nodes: 0,
            notes: Vec::new(),
            patterns,
        }
    }

    pub fn refs(&mut self) -> &mut RefStore<'a> {
        self.refs
    }

    /// Converts one schema written in document `doc`.
    pub fn convert(&mut self, schema: &Value, doc: DocId) -> Result<Value, SchemaError> {
        self.convert_at(schema, doc, 0)
    }

    /// Converts the `$defs` still owed; call once after the last [`Converter::convert`].
    pub fn finish(&mut self) -> Result<(), SchemaError> {
        while let Some((key, name)) = self.pending.pop() {
            let target = self.refs.root(key.0);
            let Some(value) = target.pointer(&key.1) else {
                return Err(SchemaError::Vanished { pointer: key.1 });
            };
            self.stack.push(key.clone());
            let converted = self.convert_at(value, key.0, 1)?;
            self.stack.pop();
            self.defs.insert(name, converted);
        }
        Ok(())
    }

    fn convert_at(&mut self, schema: &Value, doc: DocId, depth: usize) -> Result<Value, SchemaError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(SchemaError::TooManyNodes);
        }
        if depth > MAX_DEPTH {
            return Err(SchemaError::TooDeep);
        }
        let obj = match schema {
            Value::Bool(_) if self.flavor == Flavor::Oas31 => return Ok(schema.clone()),
            Value::Object(o) => o,
            Value::Null => return Ok(json!({})),
            _ => {
                self.notes
                    .push(format!("ignored a schema that is not an object: {schema}"));
                return Ok(json!({}));
            }
        };
        if let Some(r) = obj.get("$ref") {
            let Some(r) = r.as_str() else {
                return Err(RefError::NotString.into());
            };
            let converted = self.reference(r, doc, depth)?;
            // 3.0 and 2.0 ignore siblings of `$ref`; keep only a description to help readers.
            // 3.1 (JSON Schema 2020-12) applies them alongside the reference.
            if self.flavor == Flavor::Oas31 && obj.keys().any(|k| k != "$ref" && !k.starts_with("x-")) {
                let siblings: Map<String, Value> = obj
                    .iter()
                    .filter(|(k, _)| k.as_str() != "$ref")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let mut rest = self.convert_object(&siblings, doc, depth)?;
                if let Value::Object(r) = &mut rest {
                    if r.is_empty() {
                        return Ok(converted);
                    }
                    r.insert("allOf".into(), json!([converted]));
                }
                return Ok(rest);
            }
            let mut converted = converted;
            if let (Some(Value::String(d)), Value::Object(c)) = (obj.get("description"), &mut converted)
                && !c.contains_key("description")
            {
                c.insert("description".into(), json!(d));
            }
            return Ok(converted);
        }
        self.convert_object(obj, doc, depth)
    }

    fn reference(&mut self, r: &str, doc: DocId, depth: usize) -> Result<Value, SchemaError> {
        let target = self.refs.resolve(doc, r)?;
        let key = target.key();
        let recursive = self.stack.contains(&key);
        if !recursive && self.inline_left > 0 && depth < MAX_DEPTH / 2 {
            let Some(value) = target.value() else {
                return Err(RefError::Dangling {
                    reference: r.to_string(),
                }
                .into());
            };
            self.stack.push(key);
            let before = self.nodes;
            let out = self.convert_at(value, target.doc, depth + 1);
            self.stack.pop();
            self.inline_left = self.inline_left.saturating_sub(self.nodes - before);
            return out;
        }
        let name = match self.def_names.get(&key) {
            Some(n) => n.clone(),
            None => {
                let base = def_name(&key.1);
                let mut name = base.clone();
                let mut i = 2;
                while self.used_names.contains(&name) {
                    name = format!("{base}_{i}");
                    i += 1;
                }
                self.used_names.insert(name.clone());
                self.def_names.insert(key.clone(), name.clone());
                self.pending.push((key, name.clone()));
                name
            }
        };
        Ok(json!({ "$ref": format!("#/$defs/{name}") }))
    }

    fn sub(&mut self, v: &Value, doc: DocId, depth: usize) -> Result<Value, SchemaError> {
        self.convert_at(v, doc, depth + 1)
    }

    fn convert_object(
        &mut self,
        obj: &Map<String, Value>,
        doc: DocId,
        depth: usize,
    ) -> Result<Value, SchemaError> {
        let mut out = Map::new();
        let mut nullable = false;
        let mut excl_min = false;
        let mut excl_max = false;
        for (k, v) in obj {
            match k.as_str() {
                "type" => match v {
                    Value::String(t) if t == "file" => {
                        out.insert("type".into(), json!("string"));
                        out.insert("format".into(), json!("binary"));
                    }
                    Value::String(t) if SIMPLE_TYPES.contains(&t.as_str()) => {
                        out.insert("type".into(), v.clone());
                    }
                    Value::Array(ts) => {
                        let mut seen = Vec::new();
                        for t in ts.iter().filter_map(Value::as_str) {
                            if SIMPLE_TYPES.contains(&t) && !seen.contains(&t) {
                                seen.push(t);
                            }
                        }
                        if !seen.is_empty() {
                            out.insert("type".into(), json!(seen));
                        }
                    }
                    _ => self.notes.push(format!("dropped unknown type {v}")),
                },
                "nullable" | "x-nullable" => nullable = v.as_bool() == Some(true),
                "exclusiveMinimum" | "exclusiveMaximum" => match v {
                    Value::Bool(b) => {
                        if k == "exclusiveMinimum" {
                            excl_min = *b;
                        } else {
                            excl_max = *b;
                        }
                    }
                    Value::Number(_) => {
                        out.insert(k.clone(), v.clone());
                    }
                    _ => {}
                },
                "minimum" | "maximum" if v.is_number() => {
                    out.insert(k.clone(), v.clone());
                }
                "multipleOf" if v.as_f64().is_some_and(|m| m > 0.0) => {
                    out.insert(k.clone(), v.clone());
                }
                "minLength" | "maxLength" | "minItems" | "maxItems" | "minProperties" | "maxProperties"
                | "minContains" | "maxContains" => {
                    if let Some(n) = non_negative(v) {
                        out.insert(k.clone(), json!(n));
                    }
                }
                "uniqueItems" | "readOnly" | "writeOnly" | "deprecated" if v.is_boolean() => {
                    out.insert(k.clone(), v.clone());
                }
                "title" | "description" | "format" | "contentMediaType" | "contentEncoding"
                    if v.is_string() =>
                {
                    out.insert(k.clone(), v.clone());
                }
                "pattern" => {
                    if let Some(p) = v.as_str() {
                        if self.pattern_ok(p) {
                            out.insert(k.clone(), v.clone());
                        } else {
                            self.notes
                                .push(format!("dropped pattern {p:?}: not a usable regular expression"));
                        }
                    }
                }
                "enum" => {
                    if let Value::Array(a) = v
                        && !a.is_empty()
                    {
                        out.insert(k.clone(), v.clone());
                    }
                }
                "const" | "default" => {
                    out.insert(k.clone(), v.clone());
                }
                "example" if !obj.contains_key("examples") => {
                    out.insert("examples".into(), json!([v]));
                }
                "examples" if v.is_array() => {
                    out.insert(k.clone(), v.clone());
                }
                "required" => {
                    if let Value::Array(a) = v {
                        let mut names: Vec<&str> = Vec::new();
                        for n in a.iter().filter_map(Value::as_str) {
                            if !names.contains(&n) {
                                names.push(n);
                            }
                        }
                        out.insert(k.clone(), json!(names));
                    }
                }
                "properties" | "patternProperties" | "dependentSchemas" => {
                    if let Value::Object(props) = v {
                        let mut m = Map::new();
                        for (name, s) in props {
                            if k == "patternProperties" && !self.pattern_ok(name) {
                                continue;
                            }
                            m.insert(name.clone(), self.sub(s, doc, depth)?);
                        }
                        out.insert(k.clone(), Value::Object(m));
                    }
                }
                "additionalProperties"
                | "unevaluatedProperties"
                | "unevaluatedItems"
                | "propertyNames"
                | "contains"
                | "not"
                | "if"
                | "then"
                | "else" => match v {
                    Value::Bool(_) => {
                        out.insert(k.clone(), v.clone());
                    }
                    Value::Object(_) => {
                        out.insert(k.clone(), self.sub(v, doc, depth)?);
                    }
                    _ => {}
                },
                "items" => match v {
                    Value::Bool(_) => {
                        out.insert(k.clone(), v.clone());
                    }
                    Value::Object(_) => {
                        out.insert(k.clone(), self.sub(v, doc, depth)?);
                    }
                    Value::Array(items) => {
                        let mut list = Vec::new();
                        for s in items {
                            list.push(self.sub(s, doc, depth)?);
                        }
                        out.insert("prefixItems".into(), Value::Array(list));
                    }
                    _ => {}
                },
                "prefixItems" | "allOf" | "anyOf" | "oneOf" => {
                    if let Value::Array(items) = v
                        && !items.is_empty()
                    {
                        let mut list = Vec::new();
                        for s in items {
                            list.push(self.sub(s, doc, depth)?);
                        }
                        out.insert(k.clone(), Value::Array(list));
                    }
                }
                "dependentRequired" => {
                    if let Value::Object(m) = v
                        && m.values()
                            .all(|x| x.as_array().is_some_and(|a| a.iter().all(Value::is_string)))
                    {
                        out.insert(k.clone(), v.clone());
                    }
                }
                _ => {}
            }
        }
        if excl_min && let Some(m) = out.remove("minimum") {
            out.insert("exclusiveMinimum".into(), m);
        }
        if excl_max && let Some(m) = out.remove("maximum") {
            out.insert("exclusiveMaximum".into(), m);
        }
        if nullable {
            return Ok(make_nullable(out));
        }
        Ok(Value::Object(out))
    }

    fn pattern_ok(&mut self, p: &str) -> bool {
        self.patterns.usable(p)
    }
}

fn non_negative(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 1e15)
            .map(|f| f as u64)
    })
}

fn make_nullable(mut out: Map<String, Value>) -> Value {
    if let Some(Value::Array(e)) = out.get_mut("enum")
        && !e.contains(&Value::Null)
    {
        e.push(Value::Null);
    }
    match out.get_mut("type") {
        Some(Value::String(t)) => {
            let t = t.clone();
            if t != "null" {
                out.insert("type".into(), json!([t, "null"]));
            }
            Value::Object(out)
        }
        Some(Value::Array(ts)) => {
            if !ts.contains(&json!("null")) {
                ts.push(json!("null"));
            }
            Value::Object(out)
        }
        _ => {
            if out.is_empty() {
                return Value::Object(out);
            }
            let description = out.remove("description");
            let mut wrapped = json!({ "anyOf": [Value::Object(out), { "type": "null" }] });
            if let (Some(d), Value::Object(w)) = (description, &mut wrapped) {
                w.insert("description".into(), d);
            }
            wrapped
        }
    }
}

/// A `$defs` name from the last segment of a JSON pointer: `[A-Za-z0-9_.-]`, never empty.
fn def_name(pointer: &str) -> String {
    let last = pointer.rsplit('/').next().unwrap_or("");
    let last = last.replace("~1", "/").replace("~0", "~");
    let mut name: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        name = "schema".into();
    }
    name.truncate(64);
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Location, RemotePolicy};

    fn convert_err(doc: Value, schema: Value) -> SchemaError {
        let policy = RemotePolicy::default();
        let mut store = RefStore::new(doc, Location::Memory, None, &policy, 1 << 20);
        let mut patterns = Patterns::default();
        let mut c = Converter::new(&mut store, Flavor::Oas30, &mut patterns);
        c.convert(&schema, 0).and_then(|_| c.finish()).err().unwrap()
    }

    #[test]
    fn a_schema_too_deep_or_with_a_dangling_reference_is_an_error_naming_it() {
        let mut deep = json!({"type": "string"});
        for _ in 0..=MAX_DEPTH {
            deep = json!({"type": "array", "items": deep});
        }
        let err = convert_err(json!({}), deep);
        assert!(matches!(err, SchemaError::TooDeep), "{err:?}");
        assert_eq!(err.to_string(), "schema nested more than 64 levels");

        let err = convert_err(
            json!({"components": {"schemas": {}}}),
            json!({"type": "object", "properties": {"a": {"$ref": "#/components/schemas/Nope"}}}),
        );
        assert!(
            matches!(err, SchemaError::Ref(RefError::Dangling { .. })),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "$ref \"#/components/schemas/Nope\" points to nothing"
        );

        let err = convert_err(json!({}), json!({"$ref": 7}));
        assert!(matches!(err, SchemaError::Ref(RefError::NotString)), "{err:?}");
        assert_eq!(err.to_string(), "$ref is not a string");
    }

    fn convert(flavor: Flavor, doc: Value, schema: Value) -> Value {
        let policy = RemotePolicy::default();
        let mut store = RefStore::new(doc, Location::Memory, None, &policy, 1 << 20);
        let mut patterns = Patterns::default();
        let mut c = Converter::new(&mut store, flavor, &mut patterns);
        let mut out = c.convert(&schema, 0).unwrap();
        c.finish().unwrap();
        if !c.defs.is_empty() {
            out["$defs"] = Value::Object(c.defs.clone());
        }
        out
    }

    #[test]
    fn nullable_and_exclusive_bounds() {
        let out = convert(
            Flavor::Oas30,
            json!({}),
            json!({"type": "integer", "nullable": true, "minimum": 1, "exclusiveMinimum": true, "example": 3, "x-foo": 1}),
        );
        assert_eq!(
            out,
            json!({"type": ["integer", "null"], "exclusiveMinimum": 1, "examples": [3]})
        );
    }

    #[test]
    fn swagger_file_and_x_nullable() {
        let out = convert(
            Flavor::Swagger2,
            json!({}),
            json!({"type": "file", "x-nullable": true}),
        );
        assert_eq!(out, json!({"type": ["string", "null"], "format": "binary"}));
    }

    #[test]
    fn recursion_becomes_defs() {
        let doc = json!({"components": {"schemas": {
            "A": {"type": "object", "properties": {"b": {"$ref": "#/components/schemas/B"}}},
            "B": {"type": "object", "properties": {"c": {"$ref": "#/components/schemas/C"}}},
            "C": {"type": "object", "properties": {"a": {"$ref": "#/components/schemas/A"}}}
        }}});
        let out = convert(Flavor::Oas30, doc, json!({"$ref": "#/components/schemas/A"}));
        assert_eq!(
            out["properties"]["b"]["properties"]["c"]["properties"]["a"],
            json!({"$ref": "#/$defs/A"})
        );
        assert!(out["$defs"]["A"].is_object());
        jsonschema::meta::validate(&out).unwrap();
        jsonschema::validator_for(&out).unwrap();
    }
}
