//! Secret values on their way to a backend: never printed, never serialized.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::manifest::Manifest;

/// The names of the secrets a tool's calls look up, as the HTTP executor resolves them
/// (`slovo_sandbox::http`): a capability imported from OpenAPI names its security scheme
/// (`x-slovo-security`), which holds the credential; otherwise the credential kind has a
/// conventional name (`api_key`, `token`, or `username` and `password`). Other tools receive
/// every secret set for them but name none in their manifest, so none is listed.
pub fn secrets_used(manifest: &Manifest) -> BTreeSet<String> {
    let Some(api) = &manifest.api_requirements else {
        return BTreeSet::new();
    };
    let conventional: &[&str] = match api.auth_type.as_deref() {
        Some("api_key") => &["api_key"],
        Some("bearer") => &["token"],
        Some("basic") => &["username", "password"],
        _ => return BTreeSet::new(),
    };
    manifest
        .capabilities
        .iter()
        .flat_map(|c| {
            match c
                .parameters
                .pointer("/x-slovo-security/0/0")
                .and_then(|v| v.as_str())
            {
                Some(scheme) => vec![scheme.to_string()],
                None => conventional.iter().map(|n| n.to_string()).collect(),
            }
        })
        .collect()
}

/// Decrypted credentials of one tool, by name. `Debug` shows names only, and the type is not
/// `Serialize`, so a secret cannot slip into a log line or a stored record by accident.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets(BTreeMap<String, String>);

/// The runtime keeps a tool's decrypted secrets while the tool is being called; the memory is
/// wiped when they are dropped.
impl Drop for Secrets {
    fn drop(&mut self) {
        for value in self.0.values_mut() {
            zeroize::Zeroize::zeroize(value);
        }
    }
}

impl Secrets {
    /// Secrets from name → value pairs.
    pub fn new(values: BTreeMap<String, String>) -> Self {
        Secrets(values)
    }

    /// The value called `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Their names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Replaces every occurrence of any secret value in `text` with `[redacted]`. Values
    /// shorter than 4 characters are left alone: replacing them would mangle ordinary text
    /// while hiding nothing worth hiding.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in self.0.values().filter(|v| v.len() >= 4) {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), "[redacted]");
            }
        }
        out
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http_manifest(auth_type: &str, scheme: Option<&str>) -> Manifest {
        let mut parameters = serde_json::json!({"type": "object"});
        if let Some(s) = scheme {
            parameters["x-slovo-security"] = serde_json::json!([[s]]);
        }
        let doc = serde_json::json!({
            "name": "api", "version": "1.0.0", "description": "An API",
            "capabilities": [{"name": "get", "description": "Get", "parameters": parameters,
                              "endpoint": "/x", "method": "GET"}],
            "permissions": {"network_allow": ["api.example.org"]},
            "execution": {"type": "http"},
            "api_requirements": {"base_url": "https://api.example.org", "auth_type": auth_type}
        });
        crate::parse_manifest("api.json", doc.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn secrets_used_names_the_scheme_or_the_conventional_secret() {
        let names = |m: &Manifest| secrets_used(m).into_iter().collect::<Vec<_>>();
        assert_eq!(names(&http_manifest("api_key", None)), ["api_key"]);
        assert_eq!(names(&http_manifest("bearer", None)), ["token"]);
        assert_eq!(names(&http_manifest("basic", None)), ["password", "username"]);
        assert_eq!(
            names(&http_manifest("bearer", Some("petstore_auth"))),
            ["petstore_auth"]
        );
        assert!(secrets_used(&http_manifest("none", None)).is_empty());
    }

    #[test]
    fn debug_shows_names_only_and_redaction_hides_values() {
        let s = Secrets::new([("api_key".to_string(), "hunter2-secret".to_string())].into());
        assert_eq!(format!("{s:?}"), "{\"api_key\"}");
        assert_eq!(s.redact("key=hunter2-secret&x=1"), "key=[redacted]&x=1");
        assert_eq!(s.get("api_key"), Some("hunter2-secret"));
    }
}
