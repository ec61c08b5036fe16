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
//! Only the parts of the document the ingester reads are walked (paths, operations,
//! parameters, request bodies, responses, headers and their schemas, the reusable components);
//! examples, vendor extensions and unknown keys are data and are never touched.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::operations::METHODS;
use crate::schema::Flavor;

/// Schemas nested deeper than this are left alone (validation and conversion cap them anyway).
const MAX_DEPTH: usize = 128;

/// Schema keywords whose value is a number.
const NUMBER_KEYWORDS: [&str; 9] = [
    "minimum",
    "maximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
];

/// Schema keywords whose value is a boolean.
const BOOLEAN_KEYWORDS: [&str; 6] = [
    "nullable",
    "x-nullable",
    "uniqueItems",
    "readOnly",
    "writeOnly",
    "deprecated",
];

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
        repairs: Vec::new(),
    };
    let Value::Object(root) = root else {
        return r.repairs;
    };
    if let Some(Value::Object(paths)) = root.get_mut("paths") {
        r.operation_ids(paths);
        for (path, item) in paths.iter_mut() {
            if !path.starts_with("x-") {
                r.path_item(item, &format!("/paths/{}", escape(path)));
            }
        }
    }
    if flavor == Flavor::Swagger2 {
        r.each(root, "definitions", "/definitions", Repairer::schema_at);
        r.each(root, "parameters", "/parameters", Repairer::parameter);
        r.each(root, "responses", "/responses", Repairer::response);
    } else if let Some(Value::Object(components)) = root.get_mut("components") {
        let c = "/components";
        r.each(components, "schemas", &format!("{c}/schemas"), Repairer::schema_at);
        r.each(components, "parameters", &format!("{c}/parameters"), Repairer::parameter);
        r.each(components, "requestBodies", &format!("{c}/requestBodies"), Repairer::request_body);
        r.each(components, "responses", &format!("{c}/responses"), Repairer::response);
        r.each(components, "headers", &format!("{c}/headers"), Repairer::parameter);
    }
    r.repairs
}

/// A JSON pointer segment.
pub(crate) fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

struct Repairer {
    flavor: Flavor,
    repairs: Vec<Repair>,
}

impl Repairer {
    fn note(&mut self, pointer: String, action: String) {
        self.repairs.push(Repair { pointer, action });
    }

    /// Applies `f` to every entry of the mapping `obj[key]`.
    fn each(
        &mut self,
        obj: &mut Map<String, Value>,
        key: &str,
        pointer: &str,
        f: fn(&mut Self, &mut Value, &str),
    ) {
        if let Some(Value::Object(m)) = obj.get_mut(key) {
            for (name, v) in m.iter_mut() {
                f(self, v, &format!("{pointer}/{}", escape(name)));
            }
        }
    }

    /// Later operations that reuse an `operationId` get the first free numbered one.
    fn operation_ids(&mut self, paths: &mut Map<String, Value>) {
        let mut taken: HashSet<String> = HashSet::new();
        for item in paths.values() {
            for m in METHODS {
                if let Some(id) = item.get(m).and_then(|o| o.get("operationId")).and_then(Value::as_str) {
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
                self.note(format!("/paths/{}/{m}/operationId", escape(path)), action);
            }
        }
    }

    fn path_item(&mut self, item: &mut Value, pointer: &str) {
        let Value::Object(item) = item else { return };
        if item.contains_key("$ref") {
            return;
        }
        self.parameter_list(item, pointer);
        for m in METHODS {
            if let Some(Value::Object(op)) = item.get_mut(m) {
                let at = format!("{pointer}/{m}");
                self.parameter_list(op, &at);
                if let Some(body) = op.get_mut("requestBody") {
                    self.request_body(body, &format!("{at}/requestBody"));
                }
                self.each(op, "responses", &format!("{at}/responses"), Repairer::response);
            }
        }
    }

    fn parameter_list(&mut self, owner: &mut Map<String, Value>, pointer: &str) {
        if let Some(Value::Array(list)) = owner.get_mut("parameters") {
            for (i, p) in list.iter_mut().enumerate() {
                self.parameter(p, &format!("{pointer}/parameters/{i}"));
            }
        }
    }

    /// A parameter (or a 3.x header object, which has the same shape).
    fn parameter(&mut self, p: &mut Value, pointer: &str) {
        let Value::Object(p) = p else { return };
        if p.contains_key("$ref") {
            return;
        }
        self.boolean_field(p, "required", pointer);
        if let Some(Value::String(location)) = p.get_mut("in") {
            let lower = location.to_ascii_lowercase();
            if lower != *location
                && ["query", "header", "path", "cookie", "formdata", "body"].contains(&lower.as_str())
            {
                let fixed = if lower == "formdata" { "formData".to_string() } else { lower };
                let action = format!("`in: {location}` read as `{fixed}`");
                *location = fixed;
                self.note(format!("{pointer}/in"), action);
            }
        }
        if self.flavor == Flavor::Swagger2 {
            // A 2.0 parameter other than `in: body` carries its schema keywords itself.
            self.schema_keywords(p, pointer);
            if let Some(items) = p.get_mut("items") {
                self.schema(items, &format!("{pointer}/items"), 1);
            }
        }
        if let Some(s) = p.get_mut("schema") {
            self.schema(s, &format!("{pointer}/schema"), 0);
        }
        self.content(p, pointer);
    }

    fn request_body(&mut self, body: &mut Value, pointer: &str) {
        let Value::Object(body) = body else { return };
        if body.contains_key("$ref") {
            return;
        }
        self.boolean_field(body, "required", pointer);
        self.content(body, pointer);
    }

    fn response(&mut self, response: &mut Value, pointer: &str) {
        let Value::Object(response) = response else {
            return;
        };
        if response.contains_key("$ref") {
            return;
        }
        if let Some(s) = response.get_mut("schema") {
            self.schema(s, &format!("{pointer}/schema"), 0);
        }
        self.content(response, pointer);
        self.each(response, "headers", &format!("{pointer}/headers"), Repairer::parameter);
    }

    /// `content: {media type: {schema}}` (3.x).
    fn content(&mut self, owner: &mut Map<String, Value>, pointer: &str) {
        if let Some(Value::Object(content)) = owner.get_mut("content") {
            for (media, m) in content.iter_mut() {
                if let Some(s) = m.get_mut("schema") {
                    self.schema(s, &format!("{pointer}/content/{}/schema", escape(media)), 0);
                }
            }
        }
    }

    fn schema_at(&mut self, s: &mut Value, pointer: &str) {
        self.schema(s, pointer, 0);
    }

    fn schema(&mut self, s: &mut Value, pointer: &str, depth: usize) {
        let Value::Object(s) = s else { return };
        if depth > MAX_DEPTH || s.contains_key("$ref") {
            return;
        }
        self.schema_keywords(s, pointer);
        self.missing_type(s, pointer);
        self.property_required_flags(s, pointer);
        for key in ["properties", "patternProperties"] {
            if let Some(Value::Object(props)) = s.get_mut(key) {
                for (name, p) in props.iter_mut() {
                    self.schema(p, &format!("{pointer}/{key}/{}", escape(name)), depth + 1);
                }
            }
        }
        for key in ["items", "additionalProperties", "not"] {
            match s.get_mut(key) {
                Some(Value::Array(list)) if key == "items" => {
                    for (i, x) in list.iter_mut().enumerate() {
                        self.schema(x, &format!("{pointer}/{key}/{i}"), depth + 1);
                    }
                }
                Some(v @ Value::Object(_)) => self.schema(v, &format!("{pointer}/{key}"), depth + 1),
                _ => {}
            }
        }
        for key in ["allOf", "anyOf", "oneOf", "prefixItems"] {
            if let Some(Value::Array(list)) = s.get_mut(key) {
                for (i, x) in list.iter_mut().enumerate() {
                    self.schema(x, &format!("{pointer}/{key}/{i}"), depth + 1);
                }
            }
        }
    }

    /// Numbers and booleans written as strings, and `type` aliases.
    fn schema_keywords(&mut self, s: &mut Map<String, Value>, pointer: &str) {
        for key in NUMBER_KEYWORDS {
            if let Some(v) = s.get_mut(key)
                && let Value::String(text) = v
                && let Some(n) = number(text)
            {
                let action = format!("the string {text:?} read as the number {n}");
                *v = n;
                self.note(format!("{pointer}/{key}"), action);
            }
        }
        for key in BOOLEAN_KEYWORDS {
            self.boolean_field(s, key, pointer);
        }
        for key in ["exclusiveMinimum", "exclusiveMaximum"] {
            if self.flavor == Flavor::Oas31 {
                if let Some(v) = s.get_mut(key)
                    && let Value::String(text) = v
                    && let Some(n) = number(text)
                {
                    let action = format!("the string {text:?} read as the number {n}");
                    *v = n;
                    self.note(format!("{pointer}/{key}"), action);
                }
            } else {
                self.boolean_field(s, key, pointer);
            }
        }
        if let Some(Value::String(t)) = s.get_mut("type") {
            let lower = t.to_ascii_lowercase();
            let fixed = match lower.as_str() {
                "int" | "int32" | "int64" | "long" => Some("integer"),
                "float" | "double" | "decimal" => Some("number"),
                "bool" => Some("boolean"),
                "str" => Some("string"),
                "string" | "integer" | "number" | "boolean" | "array" | "object" | "null" | "file"
                    if lower != *t =>
                {
                    Some(lower.as_str())
                }
                _ => None,
            };
            if let Some(fixed) = fixed.map(str::to_string) {
                let action = format!("`type: {t}` read as `{fixed}`");
                *t = fixed;
                self.note(format!("{pointer}/type"), action);
            }
        }
    }

    /// `properties` without `type` is an object, `items` without `type` an array (unless the
    /// schema composes others, where the type comes from them).
    fn missing_type(&mut self, s: &mut Map<String, Value>, pointer: &str) {
        if s.contains_key("type") || ["allOf", "anyOf", "oneOf", "not"].iter().any(|k| s.contains_key(*k)) {
            return;
        }
        let (t, why) = if s.get("properties").is_some_and(Value::is_object) {
            ("object", "properties")
        } else if s.get("items").is_some_and(|i| i.is_object() || i.is_array()) {
            ("array", "items")
        } else {
            return;
        };
        s.insert("type".into(), Value::String(t.into()));
        self.note(
            format!("{pointer}/type"),
            format!("no `type` but `{why}`: typed as {t}"),
        );
    }

    /// `properties: {name: {required: true}}` → `required: [name]` on the parent.
    fn property_required_flags(&mut self, s: &mut Map<String, Value>, pointer: &str) {
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
            let at = format!("{pointer}/properties/{}/required", escape(name));
            if flag {
                newly_required.push(name.clone());
                self.note(at, "`required: true` on a property: listed in the parent's `required`".into());
            } else {
                self.note(at, "`required: false` on a property: dropped (optional is the default)".into());
            }
        }
        if newly_required.is_empty() {
            return;
        }
        let list = s
            .entry("required")
            .or_insert_with(|| Value::Array(Vec::new()));
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
    fn boolean_field(&mut self, obj: &mut Map<String, Value>, key: &str, pointer: &str) {
        if let Some(v) = obj.get_mut(key)
            && let Value::String(text) = v
            && let Some(b) = boolean(text)
        {
            let action = format!("the string {text:?} read as the boolean {b}");
            *v = Value::Bool(b);
            self.note(format!("{pointer}/{key}"), action);
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
    if !t.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E')) {
        return None;
    }
    serde_json::Number::from_f64(f).map(Value::Number)
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
        assert_eq!(schema["properties"]["n"], json!({"type": "integer", "minimum": 1}));
        assert_eq!(
            body["content"]["application/json"]["example"],
            json!({"required": "true", "minimum": "1"})
        );
        assert_eq!(doc["paths"]["/a"]["post"]["x-custom"], json!({"required": "true"}));
        let pointers: Vec<&str> = repairs.iter().map(|r| r.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/paths/~1a/post/requestBody/required",
                "/paths/~1a/post/requestBody/content/application~1json/schema/type",
                "/paths/~1a/post/requestBody/content/application~1json/schema/properties/n/minimum",
                "/paths/~1a/post/requestBody/content/application~1json/schema/properties/n/type",
            ]
        );
    }
}
