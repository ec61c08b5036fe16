//! The lenient pass: slips whose meaning is clear are repaired in the document before it is
//! validated and converted, and each repair is listed in the import report with its JSON
//! pointer (never silently).
//!
//! What is repaired (everything else is left for validation and conversion to judge):
//! - `required: "true"` / `"false"` (a string) on a parameter or request body → the boolean;
//! - in a schema (and on a Swagger 2.0 parameter, which carries schema keywords itself): a
//!   number written as a string where a number is meant (`minimum: "1"`), and `"true"` /
//!   `"false"` where a boolean is meant (`nullable`, `uniqueItems`, 2.0/3.0
//!   `exclusiveMinimum`…);
//! - a `type` in capitals or under a common alias (`String`, `int`, `long`, `float`, `double`,
//!   `bool`) → the JSON Schema type;
//! - a schema without `type` that has `properties` (→ `object`) or `items` (→ `array`);
//! - a property schema with `required: true` (the Swagger 1.x habit) → the property's name in
//!   the parent's `required` list;
//! - a parameter `in` in capitals (`Query`) → lower case;
//! - an `operationId` already used by an earlier operation → the first free `{id}_2`, `{id}_3`….
//!
//! Only the parts of the document that become a capability's inputs are walked (paths,
//! operations, parameters, request bodies, headers and their schemas, the reusable schemas,
//! parameters and bodies); responses are not read by the ingester and are left as written.
//! Examples, vendor extensions and unknown keys are data and are never touched.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::operations::METHODS;
use crate::schema::Flavor;

/// Schemas nested deeper than this are left alone (validation and conversion cap them anyway).
const MAX_DEPTH: usize = 128;

/// One repair: where, and what was done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repair {
    /// JSON pointer of the repaired field in the document (`/components/parameters/Market/required`).
    pub pointer: String,
    /// What was found and what was done.
    pub action: String,
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pointer, self.action)
    }
}

/// Repairs the document in place and lists the repairs.
pub(crate) fn repair(root: &mut Value, flavor: Flavor) -> Vec<Repair> {
    let mut r = Repairer {
        flavor,
        at: String::new(),
        repairs: Vec::new(),
    };
    let Value::Object(root) = root else {
        return r.repairs;
    };
    if let Some(Value::Object(paths)) = root.get_mut("paths") {
        r.operation_ids(paths);
        let mark = r.enter("paths");
        for (path, item) in paths.iter_mut() {
            if !path.starts_with("x-") {
                let inner = r.enter(path);
                r.path_item(item);
                r.leave(inner);
            }
        }
        r.leave(mark);
    }
    if flavor == Flavor::Swagger2 {
        r.each(root, "definitions", Repairer::schema_root);
        r.each(root, "parameters", Repairer::parameter);
    } else if let Some(Value::Object(components)) = root.get_mut("components") {
        let mark = r.enter("components");
        r.each(components, "schemas", Repairer::schema_root);
        r.each(components, "parameters", Repairer::parameter);
        r.each(components, "requestBodies", Repairer::request_body);
        r.each(components, "headers", Repairer::parameter);
        r.leave(mark);
    }
    r.repairs
}

/// A JSON pointer segment.
pub(crate) fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

struct Repairer {
    flavor: Flavor,
    /// The JSON pointer of the node being walked: one buffer, grown and cut back as the walk
    /// goes (a string per node was a noticeable share of the import time).
    at: String,
    repairs: Vec<Repair>,
}

impl Repairer {
    /// Appends a segment to the current pointer; returns the mark to [`Repairer::leave`] to.
    fn enter(&mut self, segment: &str) -> usize {
        let mark = self.at.len();
        self.at.push('/');
        if segment.contains(['~', '/']) {
            self.at.push_str(&escape(segment));
        } else {
            self.at.push_str(segment);
        }
        mark
    }

    fn enter_index(&mut self, i: usize) -> usize {
        let mark = self.at.len();
        self.at.push('/');
        self.at.push_str(&i.to_string());
        mark
    }

    fn leave(&mut self, mark: usize) {
        self.at.truncate(mark);
    }

    /// Records a repair of `field` of the current node.
    fn note(&mut self, field: &str, action: String) {
        let pointer = format!("{}/{}", self.at, escape(field));
        self.repairs.push(Repair { pointer, action });
    }

    /// Applies `f` to every entry of the mapping `obj[key]`.
    fn each(&mut self, obj: &mut Map<String, Value>, key: &str, f: fn(&mut Self, &mut Value)) {
        if let Some(Value::Object(m)) = obj.get_mut(key) {
            let mark = self.enter(key);
            for (name, v) in m.iter_mut() {
                let inner = self.enter(name);
                f(self, v);
                self.leave(inner);
            }
            self.leave(mark);
        }
    }

    /// Later operations that reuse an `operationId` get the first free numbered one.
    fn operation_ids(&mut self, paths: &mut Map<String, Value>) {
        let mut taken: HashSet<String> = HashSet::new();
        for item in paths.values() {
            for m in METHODS {
                if let Some(id) = item
                    .get(m)
                    .and_then(|o| o.get("operationId"))
                    .and_then(Value::as_str)
                {
                    taken.insert(id.to_string());
                }
            }
        }
        let mut first_user: HashMap<String, String> = HashMap::new();
        for (path, item) in paths.iter_mut() {
            for m in METHODS {
                let Some(Value::String(id)) = item.get_mut(m).and_then(|o| o.get_mut("operationId")) else {
                    continue;
                };
                let label = format!("{} {path}", m.to_ascii_uppercase());
                let Some(first) = first_user.get(id.as_str()) else {
                    first_user.insert(id.clone(), label);
                    continue;
                };
                let renamed = (2..)
                    .map(|i| format!("{id}_{i}"))
                    .find(|c| !taken.contains(c))
                    .unwrap_or_default();
                let action = format!(
                    "operationId {id:?} is already used by {first}; this operation is imported as {renamed:?}"
                );
                taken.insert(renamed.clone());
                *id = renamed;
                self.repairs.push(Repair {
                    pointer: format!("/paths/{}/{m}/operationId", escape(path)),
                    action,
                });
            }
        }
    }

    fn path_item(&mut self, item: &mut Value) {
        let Value::Object(item) = item else { return };
        if item.contains_key("$ref") {
            return;
        }
        self.parameter_list(item);
        for m in METHODS {
            if let Some(Value::Object(op)) = item.get_mut(m) {
                let mark = self.enter(m);
                self.parameter_list(op);
                if let Some(body) = op.get_mut("requestBody") {
                    let inner = self.enter("requestBody");
                    self.request_body(body);
                    self.leave(inner);
                }
                self.leave(mark);
            }
        }
    }

    fn parameter_list(&mut self, owner: &mut Map<String, Value>) {
        if let Some(Value::Array(list)) = owner.get_mut("parameters") {
            let mark = self.enter("parameters");
            for (i, p) in list.iter_mut().enumerate() {
                let inner = self.enter_index(i);
                self.parameter(p);
                self.leave(inner);
            }
            self.leave(mark);
        }
    }

    /// A parameter (or a 3.x header object, which has the same shape).
    fn parameter(&mut self, p: &mut Value) {
        let Value::Object(p) = p else { return };
        if p.contains_key("$ref") {
            return;
        }
        self.boolean_field(p, "required");
        if let Some(Value::String(location)) = p.get_mut("in") {
            let fixed = match location.to_ascii_lowercase().as_str() {
                "formdata" => Some("formData".to_string()),
                lower @ ("query" | "header" | "path" | "cookie" | "body") => Some(lower.to_string()),
                _ => None,
            };
            if let Some(fixed) = fixed
                && fixed != *location
            {
                let action = format!("`in: {location}` read as `{fixed}`");
                *location = fixed;
                self.note("in", action);
            }
        }
        if self.flavor == Flavor::Swagger2 {
            // A 2.0 parameter other than `in: body` carries its schema keywords itself.
            self.schema_keywords(p);
            self.child_schema(p, "items", 1);
        }
        self.child_schema(p, "schema", 0);
        self.content(p);
    }

    fn request_body(&mut self, body: &mut Value) {
        let Value::Object(body) = body else { return };
        if body.contains_key("$ref") {
            return;
        }
        self.boolean_field(body, "required");
        self.content(body);
    }

    /// `content: {media type: {schema}}` (3.x).
    fn content(&mut self, owner: &mut Map<String, Value>) {
        if let Some(Value::Object(content)) = owner.get_mut("content") {
            let mark = self.enter("content");
            for (media, m) in content.iter_mut() {
                if let Value::Object(m) = m {
                    let inner = self.enter(media);
                    self.child_schema(m, "schema", 0);
                    self.leave(inner);
                }
            }
            self.leave(mark);
        }
    }

    fn child_schema(&mut self, owner: &mut Map<String, Value>, key: &str, depth: usize) {
        if let Some(s) = owner.get_mut(key) {
            let mark = self.enter(key);
            self.schema(s, depth);
            self.leave(mark);
        }
    }

    fn schema_root(&mut self, s: &mut Value) {
        self.schema(s, 0);
    }

    /// One schema: a single pass over its keys repairs the scalar keywords and walks the
    /// subschemas (a lookup per keyword was most of the walk's time), then the type and the
    /// property flags are settled.
    fn schema(&mut self, s: &mut Value, depth: usize) {
        let Value::Object(s) = s else { return };
        if depth > MAX_DEPTH || s.contains_key("$ref") {
            return;
        }
        let (mut typed, mut has_properties) = (false, false);
        for (key, v) in s.iter_mut() {
            let k = key.as_str();
            match k {
                "type" => {
                    typed = true;
                    if let Value::String(text) = v
                        && let Some(t) = type_alias(text)
                    {
                        let action = format!("`type: {text}` read as `{t}`");
                        *v = Value::String(t.into());
                        self.note(k, action);
                    }
                }
                "allOf" | "anyOf" | "oneOf" | "not" => {
                    // The type comes from the composed schemas.
                    typed = true;
                    self.subschemas(k, v, depth);
                }
                "properties" | "patternProperties" => {
                    let Value::Object(props) = v else { continue };
                    has_properties |= k == "properties";
                    let mark = self.enter(k);
                    for (name, p) in props.iter_mut() {
                        let inner = self.enter(name);
                        self.schema(p, depth + 1);
                        self.leave(inner);
                    }
                    self.leave(mark);
                }
                "items" | "additionalProperties" | "prefixItems" => self.subschemas(k, v, depth),
                _ => {
                    if let Value::String(text) = v
                        && let Some((action, fixed)) = self.scalar_keyword(k, text)
                    {
                        *v = fixed;
                        self.note(k, action);
                    }
                }
            }
        }
        if !typed {
            self.missing_type(s);
        }
        if has_properties {
            self.property_required_flags(s);
        }
    }

    /// A subschema, or a list of them.
    fn subschemas(&mut self, key: &str, v: &mut Value, depth: usize) {
        let mark = self.enter(key);
        match v {
            Value::Array(list) => {
                for (i, x) in list.iter_mut().enumerate() {
                    let inner = self.enter_index(i);
                    self.schema(x, depth + 1);
                    self.leave(inner);
                }
            }
            Value::Object(_) => self.schema(v, depth + 1),
            _ => {}
        }
        self.leave(mark);
    }

    /// Numbers and booleans written as strings (`minimum: "1"`, `nullable: "true"`).
    fn scalar_keyword(&self, key: &str, text: &str) -> Option<(String, Value)> {
        let wants_number = match key {
            "minimum" | "maximum" | "multipleOf" | "minLength" | "maxLength" | "minItems" | "maxItems"
            | "minProperties" | "maxProperties" => true,
            "exclusiveMinimum" | "exclusiveMaximum" => self.flavor == Flavor::Oas31,
            "nullable" | "x-nullable" | "uniqueItems" | "readOnly" | "writeOnly" | "deprecated" => false,
            _ => return None,
        };
        if wants_number {
            number(text).map(|n| (format!("the string {text:?} read as the number {n}"), n))
        } else {
            boolean(text).map(|b| {
                (
                    format!("the string {text:?} read as the boolean {b}"),
                    Value::Bool(b),
                )
            })
        }
    }

    /// The scalar keywords of a Swagger 2.0 parameter, which carries them itself.
    fn schema_keywords(&mut self, s: &mut Map<String, Value>) {
        for (key, v) in s.iter_mut() {
            let Value::String(text) = v else { continue };
            let k = key.as_str();
            let repaired = if k == "type" {
                type_alias(text).map(|t| (format!("`type: {text}` read as `{t}`"), Value::String(t.into())))
            } else {
                self.scalar_keyword(k, text)
            };
            if let Some((action, fixed)) = repaired {
                *v = fixed;
                self.note(k, action);
            }
        }
    }

    /// `properties` without `type` is an object, `items` without `type` an array (unless the
    /// schema composes others, where the type comes from them).
    fn missing_type(&mut self, s: &mut Map<String, Value>) {
        let (t, why) = if s.get("properties").is_some_and(Value::is_object) {
            ("object", "properties")
        } else if s.get("items").is_some_and(|i| i.is_object() || i.is_array()) {
            ("array", "items")
        } else {
            return;
        };
        s.insert("type".into(), Value::String(t.into()));
        self.note("type", format!("no `type` but `{why}`: typed as {t}"));
    }

    /// `properties: {name: {required: true}}` → `required: [name]` on the parent.
    fn property_required_flags(&mut self, s: &mut Map<String, Value>) {
        let Some(Value::Object(props)) = s.get_mut("properties") else {
            return;
        };
        let mut newly_required = Vec::new();
        for (name, p) in props.iter_mut() {
            let Value::Object(p) = p else { continue };
            let flag = match p.get("required") {
                Some(Value::Bool(b)) => *b,
                Some(Value::String(t)) if t == "true" || t == "false" => t == "true",
                _ => continue,
            };
            p.remove("required");
            let pointer = format!("{}/properties/{}/required", self.at, escape(name));
            let action = if flag {
                newly_required.push(name.clone());
                "`required: true` on a property: listed in the parent's `required`"
            } else {
                "`required: false` on a property: dropped (optional is the default)"
            };
            self.repairs.push(Repair {
                pointer,
                action: action.into(),
            });
        }
        if newly_required.is_empty() {
            return;
        }
        let list = s.entry("required").or_insert_with(|| Value::Array(Vec::new()));
        if !list.is_array() {
            *list = Value::Array(Vec::new());
        }
        if let Value::Array(list) = list {
            for name in newly_required {
                if !list.iter().any(|v| v.as_str() == Some(name.as_str())) {
                    list.push(Value::String(name));
                }
            }
        }
    }

    /// `"true"` / `"false"` where a boolean is meant.
    fn boolean_field(&mut self, obj: &mut Map<String, Value>, key: &str) {
        if let Some(v) = obj.get_mut(key)
            && let Value::String(text) = v
            && let Some(b) = boolean(text)
        {
            let action = format!("the string {text:?} read as the boolean {b}");
            *v = Value::Bool(b);
            self.note(key, action);
        }
    }
}

/// `"1"`, `"-2.5"` → a JSON number; anything else (including `"NaN"`, `"1e999"`) → `None`.
fn number(text: &str) -> Option<Value> {
    let t = text.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Some(Value::from(i));
    }
    if let Ok(u) = t.parse::<u64>() {
        return Some(Value::from(u));
    }
    let f = t.parse::<f64>().ok().filter(|f| f.is_finite())?;
    // Only plain decimal notation: `inf`, `nan` and the like are not numbers a person meant.
    if !t
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
    {
        return None;
    }
    serde_json::Number::from_f64(f).map(Value::Number)
}

/// The JSON Schema type meant by a `type` in capitals or under a common alias.
fn type_alias(t: &str) -> Option<&'static str> {
    let fixed = match t.to_ascii_lowercase().as_str() {
        "int" | "int32" | "int64" | "long" => "integer",
        "float" | "double" | "decimal" => "number",
        "bool" => "boolean",
        "str" => "string",
        "string" => "string",
        "integer" => "integer",
        "number" => "number",
        "boolean" => "boolean",
        "array" => "array",
        "object" => "object",
        "null" => "null",
        "file" => "file",
        _ => return None,
    };
    (fixed != t).then_some(fixed)
}

fn boolean(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn numbers_and_booleans() {
        assert_eq!(number("1"), Some(json!(1)));
        assert_eq!(number(" 2.5 "), Some(json!(2.5)));
        assert_eq!(number("nan"), None);
        assert_eq!(number("inf"), None);
        assert_eq!(number("ten"), None);
        assert_eq!(boolean("True"), Some(true));
        assert_eq!(boolean("yes"), None);
    }

    #[test]
    fn correct_documents_get_no_repairs() {
        let mut doc = json!({"swagger": "2.0", "paths": {"/a": {"post": {"parameters": [
            {"name": "f", "in": "formData", "type": "file", "required": true},
            {"name": "q", "in": "query", "type": "integer", "minimum": 1}]}}},
            "definitions": {"D": {"type": "object", "properties": {"x": {"type": "string"}}}}});
        let before = doc.clone();
        assert_eq!(repair(&mut doc, Flavor::Swagger2), []);
        assert_eq!(doc, before);
    }

    #[test]
    fn examples_and_extensions_are_not_touched() {
        let mut doc = json!({"openapi": "3.0.3", "paths": {"/a": {"post": {
            "requestBody": {"required": "true", "content": {"application/json": {
                "schema": {"properties": {"n": {"type": "int", "minimum": "1"}}},
                "example": {"required": "true", "minimum": "1"}}}},
            "x-custom": {"required": "true"}}}}});
        let repairs = repair(&mut doc, Flavor::Oas30);
        let body = &doc["paths"]["/a"]["post"]["requestBody"];
        assert_eq!(body["required"], json!(true));
        let schema = &body["content"]["application/json"]["schema"];
        assert_eq!(schema["type"], "object");
        assert_eq!(
            schema["properties"]["n"],
            json!({"type": "integer", "minimum": 1})
        );
        assert_eq!(
            body["content"]["application/json"]["example"],
            json!({"required": "true", "minimum": "1"})
        );
        assert_eq!(
            doc["paths"]["/a"]["post"]["x-custom"],
            json!({"required": "true"})
        );
        let pointers: Vec<&str> = repairs.iter().map(|r| r.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/paths/~1a/post/requestBody/required",
                "/paths/~1a/post/requestBody/content/application~1json/schema/properties/n/type",
                "/paths/~1a/post/requestBody/content/application~1json/schema/properties/n/minimum",
                "/paths/~1a/post/requestBody/content/application~1json/schema/type",
            ]
        );
    }
}
