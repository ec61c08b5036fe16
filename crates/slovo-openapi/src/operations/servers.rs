//! Document-level facts: the base URL (servers, or 2.0 `host`/`basePath`/`schemes`) and the
//! security schemes, by name.

use std::collections::BTreeMap;

use serde_json::Value;
use url::Url;

use super::METHODS;
use crate::IngestOptions;
use crate::naming;
use crate::refs::RefStore;
use crate::report::SecretScheme;
use crate::schema::Flavor;
use crate::source::Location;

/// A server object's URL with its variables replaced by their defaults, made absolute against
/// the document's own URL when it is relative.
pub(super) fn server_url(server: &Value, location: &Location) -> Option<String> {
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

pub(super) fn base_url(
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
pub(super) fn security_schemes(
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
