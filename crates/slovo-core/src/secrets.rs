//! Secret values on their way to a backend: never printed, never serialized.

use std::collections::BTreeMap;
use std::fmt;

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

    #[test]
    fn debug_shows_names_only_and_redaction_hides_values() {
        let s = Secrets::new([("api_key".to_string(), "hunter2-secret".to_string())].into());
        assert_eq!(format!("{s:?}"), "{\"api_key\"}");
        assert_eq!(s.redact("key=hunter2-secret&x=1"), "key=[redacted]&x=1");
        assert_eq!(s.get("api_key"), Some("hunter2-secret"));
    }
}
