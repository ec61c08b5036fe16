//! Request bodies: OpenAPI 3 `requestBody` and Swagger 2.0 `body` / `formData` parameters,
//! read into one [`Body`] with the media type Slovo sends.

use serde_json::{Map, Value, json};

use super::Op;
use super::capability::{Param, SkipReason, param_schema, skip};
use crate::naming::{self, MAX_DESCRIPTION};
use crate::schema::{Converter, Flavor};

pub(super) struct Body {
    pub(super) schema: Value,
    pub(super) content_type: String,
    pub(super) required: bool,
    pub(super) description: Option<String>,
    /// The body's properties may become top-level inputs.
    pub(super) flattenable: bool,
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

pub(super) fn openapi_body(conv: &mut Converter, op: &Op) -> Result<Option<Body>, SkipReason> {
    let Some(raw) = op.op().get("requestBody") else {
        return Ok(None);
    };
    let (doc, body) = conv.refs().deref(op.doc, raw)?;
    let Some(content) = body.get("content").and_then(Value::as_object) else {
        return Err(skip("requestBody has no content"));
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

pub(super) fn swagger_body(
    conv: &mut Converter,
    op: &Op,
    root: &Value,
    body: Option<&Param>,
    form: &[&Param],
) -> Result<Option<Body>, SkipReason> {
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
