//! `$ref` resolution over the main document and the documents it points to.
//!
//! A reference is split into a document part and a fragment. The document part is resolved
//! against the location of the document the reference is written in: a file next to it (never
//! outside the file root), or a URL (only through the [`RemotePolicy`]). The fragment is a
//! percent-encoded JSON pointer. Each external document is read once; a chain of references
//! (`$ref` to a `$ref`) is followed at most [`MAX_CHAIN`] steps, so a cycle of bare references
//! ends in an error instead of a loop.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use url::Url;

use crate::source::{Location, RemotePolicy, parse_value};

/// Index of a document in the store; the main document is 0.
pub(crate) type DocId = usize;

/// Longest chain of `$ref` → `$ref` followed.
pub(crate) const MAX_CHAIN: usize = 32;
/// Most external documents loaded for one import.
const MAX_EXTERNAL_DOCS: usize = 64;

struct Doc {
    root: Arc<Value>,
    location: Location,
}

/// A resolved reference: a document and a JSON pointer inside it.
#[derive(Clone)]
pub(crate) struct Target {
    pub doc: DocId,
    pub root: Arc<Value>,
    pub pointer: String,
}

impl Target {
    pub fn value(&self) -> Option<&Value> {
        self.root.pointer(&self.pointer)
    }
    /// A key naming this target uniquely within the store.
    pub fn key(&self) -> (DocId, String) {
        (self.doc, self.pointer.clone())
    }
}

pub(crate) struct RefStore<'a> {
    docs: Vec<Doc>,
    by_key: HashMap<String, Result<DocId, String>>,
    file_root: Option<PathBuf>,
    remote: &'a RemotePolicy,
    max_bytes: usize,
}

impl<'a> RefStore<'a> {
    pub fn new(
        main: Value,
        location: Location,
        file_root: Option<PathBuf>,
        remote: &'a RemotePolicy,
        max_bytes: usize,
    ) -> Self {
        let file_root = file_root
            .or_else(|| match &location {
                Location::File(p) => Some(p.parent().map(Path::to_path_buf).unwrap_or_default()),
                _ => None,
            })
            .map(|r| {
                if r.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    r
                }
            })
            .map(|r| std::fs::canonicalize(&r).unwrap_or(r));
        RefStore {
            docs: vec![Doc {
                root: Arc::new(main),
                location,
            }],
            by_key: HashMap::new(),
            file_root,
            remote,
            max_bytes,
        }
    }

    pub fn root(&self, doc: DocId) -> Arc<Value> {
        self.docs[doc].root.clone()
    }

    /// The location of a document, for relative server URLs.
    pub fn location(&self, doc: DocId) -> &Location {
        &self.docs[doc].location
    }

    /// Resolves one reference written in document `from`.
    pub fn resolve(&mut self, from: DocId, reference: &str) -> Result<Target, String> {
        let (doc_part, fragment) = match reference.split_once('#') {
            Some((d, f)) => (d, f),
            None => (reference, ""),
        };
        let doc = if doc_part.is_empty() {
            from
        } else {
            self.load(from, doc_part)?
        };
        let pointer =
            percent_decode(fragment).ok_or_else(|| format!("$ref {reference:?}: bad percent-encoding"))?;
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Err(format!(
                "$ref {reference:?}: only JSON-pointer fragments are supported"
            ));
        }
        let target = Target {
            doc,
            root: self.docs[doc].root.clone(),
            pointer,
        };
        if target.value().is_none() {
            return Err(format!("$ref {reference:?} points to nothing"));
        }
        Ok(target)
    }

    /// Follows `value` while it is a `{"$ref": …}` object; returns the final value and the
    /// document it lives in (the base for the references inside it). A value that is not a
    /// reference comes back borrowed: most parameters and path items are written inline, and
    /// copying them (a path item holds all its operations) was a large share of the import time.
    pub fn deref<'v>(&mut self, doc: DocId, value: &'v Value) -> Result<(DocId, Cow<'v, Value>), String> {
        let mut doc = doc;
        let mut current = Cow::Borrowed(value);
        for _ in 0..MAX_CHAIN {
            let Some(r) = current.get("$ref") else {
                return Ok((doc, current));
            };
            let Some(r) = r.as_str() else {
                return Err("$ref is not a string".into());
            };
            let t = self.resolve(doc, r)?;
            doc = t.doc;
            current = Cow::Owned(t.value().cloned().unwrap_or(Value::Null));
        }
        Err(format!("$ref chain longer than {MAX_CHAIN} (a reference cycle?)"))
    }

    fn load(&mut self, from: DocId, doc_part: &str) -> Result<DocId, String> {
        let place = self.place(from, doc_part)?;
        let key = match &place {
            Place::File(p) => format!("file:{}", p.display()),
            Place::Url(u) => u.to_string(),
        };
        if let Some(known) = self.by_key.get(&key) {
            return known.clone();
        }
        let loaded = self.fetch(place);
        self.by_key.insert(key, loaded.clone());
        loaded
    }

    fn fetch(&mut self, place: Place) -> Result<DocId, String> {
        if self.docs.len() > MAX_EXTERNAL_DOCS {
            return Err(format!("more than {MAX_EXTERNAL_DOCS} referenced documents"));
        }
        let (bytes, location) = match place {
            Place::File(path) => {
                let bytes = std::fs::read(&path)
                    .map_err(|e| format!("cannot read referenced file {}: {e}", path.display()))?;
                (bytes, Location::File(path))
            }
            Place::Url(url) => {
                if let Some(why) = self.remote.refusal(&url) {
                    return Err(why);
                }
                let Some(fetcher) = &self.remote.fetcher else {
                    return Err(format!("{url}: remote references are not allowed"));
                };
                let bytes = fetcher.fetch(&url).map_err(|e| format!("{url}: {e}"))?;
                (bytes, Location::Url(url))
            }
        };
        if bytes.len() > self.max_bytes {
            return Err(format!(
                "referenced document is larger than the {}-byte limit",
                self.max_bytes
            ));
        }
        let value = parse_value(&bytes).map_err(|e| format!("referenced document: {e}"))?;
        self.docs.push(Doc {
            root: Arc::new(value),
            location,
        });
        Ok(self.docs.len() - 1)
    }

    fn place(&self, from: DocId, doc_part: &str) -> Result<Place, String> {
        if let Ok(url) = Url::parse(doc_part) {
            if url.scheme() == "file" {
                return Err(format!("{doc_part:?}: file: URLs are not followed"));
            }
            if url.scheme().len() > 1 {
                return Ok(Place::Url(url));
            }
        }
        match &self.docs[from].location {
            Location::Url(base) => base
                .join(doc_part)
                .map(Place::Url)
                .map_err(|e| format!("{doc_part:?}: {e}")),
            Location::Memory => Err(format!(
                "{doc_part:?}: a relative reference needs a document read from a file or URL"
            )),
            Location::File(path) => {
                let Some(root) = &self.file_root else {
                    return Err(format!("{doc_part:?}: file references are not allowed"));
                };
                let decoded = percent_decode(doc_part).unwrap_or_else(|| doc_part.to_string());
                let rel = Path::new(&decoded);
                if rel.is_absolute() {
                    return Err(format!("{doc_part:?}: absolute file references are refused"));
                }
                let dir = path.parent().unwrap_or(Path::new("."));
                let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
                let joined = normalize(&dir.join(rel));
                if !joined.starts_with(root) {
                    return Err(format!(
                        "{doc_part:?}: refusing a file outside the document's root {}",
                        root.display()
                    ));
                }
                // Symbolic links must not lead out either.
                let real = std::fs::canonicalize(&joined)
                    .map_err(|e| format!("cannot read referenced file {doc_part:?}: {e}"))?;
                if !real.starts_with(root) {
                    return Err(format!(
                        "{doc_part:?}: refusing a file outside the document's root {}",
                        root.display()
                    ));
                }
                Ok(Place::File(real))
            }
        }
    }
}

enum Place {
    File(PathBuf),
    Url(Url),
}

/// Removes `.` and `..` without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Decodes `%XX` escapes; `None` if they are malformed or not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
