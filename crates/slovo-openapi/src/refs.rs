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

use crate::source::{Location, RemoteFetchError, RemotePolicy, RemoteRefusal, SyntaxError, parse_value};

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

/// Why a `$ref` cannot be followed. The operation that holds it is skipped with this message.
///
/// Cloned from the store's cache when a second reference points into a document that already
/// failed, hence the shared sources.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum RefError {
    /// The fragment's percent-encoding is malformed or not UTF-8.
    #[error("$ref {reference:?}: bad percent-encoding")]
    BadEncoding { reference: String },
    /// A fragment that is not a JSON pointer (an anchor name).
    #[error("$ref {reference:?}: only JSON-pointer fragments are supported")]
    NotPointer { reference: String },
    /// The pointer leads nowhere in its document.
    #[error("$ref {reference:?} points to nothing")]
    Dangling { reference: String },
    /// `$ref` holds something other than a string.
    #[error("$ref is not a string")]
    NotString,
    /// References to references, [`MAX_CHAIN`] deep.
    #[error("$ref chain longer than {MAX_CHAIN} (a reference cycle?)")]
    ChainTooLong,
    /// More external documents than one import loads.
    #[error("more than {MAX_EXTERNAL_DOCS} referenced documents")]
    TooManyDocuments,
    /// A `file:` URL.
    #[error("{doc_part:?}: file: URLs are not followed")]
    FileUrl { doc_part: String },
    /// A relative reference that does not join onto its document's URL.
    #[error("{doc_part:?}: {source}")]
    BadUrl {
        doc_part: String,
        #[source]
        source: url::ParseError,
    },
    /// A relative reference in a document that has no location.
    #[error("{doc_part:?}: a relative reference needs a document read from a file or URL")]
    NoBase { doc_part: String },
    /// File references without a file root.
    #[error("{doc_part:?}: file references are not allowed")]
    FilesNotAllowed { doc_part: String },
    /// An absolute path.
    #[error("{doc_part:?}: absolute file references are refused")]
    AbsoluteFile { doc_part: String },
    /// A path (or the link it is) leading out of the file root.
    #[error("{doc_part:?}: refusing a file outside the document's root {}", root.display())]
    OutsideRoot { doc_part: String, root: PathBuf },
    /// The referenced file does not exist (or a directory on its way cannot be read).
    #[error("cannot read referenced file {doc_part:?}: {source}")]
    MissingFile {
        doc_part: String,
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The referenced file exists but cannot be read.
    #[error("cannot read referenced file {}: {source}", path.display())]
    UnreadableFile {
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The remote policy refuses the URL; nothing was fetched.
    #[error("{url}: {refusal}")]
    RemoteRefused { url: Url, refusal: RemoteRefusal },
    /// The fetcher could not fetch the URL.
    #[error("{url}: {source}")]
    Fetch {
        url: Url,
        #[source]
        source: Arc<RemoteFetchError>,
    },
    /// The referenced document is larger than the import's limit.
    #[error("referenced document is larger than the {max}-byte limit")]
    TooLarge { max: usize },
    /// The referenced document is not JSON or YAML.
    #[error("referenced document: {source}")]
    Syntax {
        #[source]
        source: Arc<SyntaxError>,
    },
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
    by_key: HashMap<String, Result<DocId, RefError>>,
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
    pub fn resolve(&mut self, from: DocId, reference: &str) -> Result<Target, RefError> {
        let (doc_part, fragment) = match reference.split_once('#') {
            Some((d, f)) => (d, f),
            None => (reference, ""),
        };
        let doc = if doc_part.is_empty() {
            from
        } else {
            self.load(from, doc_part)?
        };
        let pointer = percent_decode(fragment).ok_or_else(|| RefError::BadEncoding {
            reference: reference.to_string(),
        })?;
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Err(RefError::NotPointer {
                reference: reference.to_string(),
            });
        }
        let target = Target {
            doc,
            root: self.docs[doc].root.clone(),
            pointer,
        };
        if target.value().is_none() {
            return Err(RefError::Dangling {
                reference: reference.to_string(),
            });
        }
        Ok(target)
    }

    /// Follows `value` while it is a `{"$ref": …}` object; returns the final value and the
    /// document it lives in (the base for the references inside it). A value that is not a
    /// reference comes back borrowed: most parameters and path items are written inline, and
    /// copying them (a path item holds all its operations) was a large share of the import time.
    pub fn deref<'v>(&mut self, doc: DocId, value: &'v Value) -> Result<(DocId, Cow<'v, Value>), RefError> {
        let mut doc = doc;
        let mut current = Cow::Borrowed(value);
        for _ in 0..MAX_CHAIN {
            let Some(r) = current.get("$ref") else {
                return Ok((doc, current));
            };
            let Some(r) = r.as_str() else {
                return Err(RefError::NotString);
            };
            let t = self.resolve(doc, r)?;
            doc = t.doc;
            current = Cow::Owned(t.value().cloned().unwrap_or(Value::Null));
        }
        Err(RefError::ChainTooLong)
    }

    fn load(&mut self, from: DocId, doc_part: &str) -> Result<DocId, RefError> {
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

    fn fetch(&mut self, place: Place) -> Result<DocId, RefError> {
        if self.docs.len() > MAX_EXTERNAL_DOCS {
            return Err(RefError::TooManyDocuments);
        }
        let (bytes, location) = match place {
            Place::File(path) => match std::fs::read(&path) {
                Ok(bytes) => (bytes, Location::File(path)),
                Err(e) => {
                    return Err(RefError::UnreadableFile {
                        path,
                        source: Arc::new(e),
                    });
                }
            },
            Place::Url(url) => {
                let fetcher = match (self.remote.refusal(&url), &self.remote.fetcher) {
                    (None, Some(fetcher)) => fetcher,
                    (Some(refusal), _) => return Err(RefError::RemoteRefused { url, refusal }),
                    (None, None) => {
                        return Err(RefError::RemoteRefused {
                            url,
                            refusal: RemoteRefusal::NoFetcher,
                        });
                    }
                };
                match fetcher.fetch(&url) {
                    Ok(bytes) => (bytes, Location::Url(url)),
                    Err(e) => {
                        return Err(RefError::Fetch {
                            url,
                            source: Arc::new(e),
                        });
                    }
                }
            }
        };
        if bytes.len() > self.max_bytes {
            return Err(RefError::TooLarge { max: self.max_bytes });
        }
        let value = parse_value(&bytes).map_err(|e| RefError::Syntax { source: Arc::new(e) })?;
        self.docs.push(Doc {
            root: Arc::new(value),
            location,
        });
        Ok(self.docs.len() - 1)
    }

    fn place(&self, from: DocId, doc_part: &str) -> Result<Place, RefError> {
        let doc_part_owned = || doc_part.to_string();
        if let Ok(url) = Url::parse(doc_part) {
            if url.scheme() == "file" {
                return Err(RefError::FileUrl {
                    doc_part: doc_part_owned(),
                });
            }
            if url.scheme().len() > 1 {
                return Ok(Place::Url(url));
            }
        }
        match &self.docs[from].location {
            Location::Url(base) => base
                .join(doc_part)
                .map(Place::Url)
                .map_err(|source| RefError::BadUrl {
                    doc_part: doc_part_owned(),
                    source,
                }),
            Location::Memory => Err(RefError::NoBase {
                doc_part: doc_part_owned(),
            }),
            Location::File(path) => {
                let Some(root) = &self.file_root else {
                    return Err(RefError::FilesNotAllowed {
                        doc_part: doc_part_owned(),
                    });
                };
                let decoded = percent_decode(doc_part).unwrap_or_else(|| doc_part.to_string());
                let rel = Path::new(&decoded);
                if rel.is_absolute() {
                    return Err(RefError::AbsoluteFile {
                        doc_part: doc_part_owned(),
                    });
                }
                let dir = path.parent().unwrap_or(Path::new("."));
                let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
                let joined = normalize(&dir.join(rel));
                let outside_root = || RefError::OutsideRoot {
                    doc_part: doc_part_owned(),
                    root: root.clone(),
                };
                if !joined.starts_with(root) {
                    return Err(outside_root());
                }
                // Symbolic links must not lead out either.
                let real = std::fs::canonicalize(&joined).map_err(|e| RefError::MissingFile {
                    doc_part: doc_part_owned(),
                    source: Arc::new(e),
                })?;
                if !real.starts_with(root) {
                    return Err(outside_root());
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;

    use super::*;
    use crate::source::RemoteFetcher;

    /// Counts the fetches asked of it and answers each with "too large".
    #[derive(Default)]
    struct Refusing {
        calls: AtomicUsize,
    }

    impl RemoteFetcher for Refusing {
        fn fetch(&self, _: &Url) -> Result<Vec<u8>, RemoteFetchError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Err(RemoteFetchError::TooLarge { max_bytes: 10 })
        }
    }

    #[test]
    fn a_file_outside_the_root_is_refused_and_a_missing_pointer_points_to_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("api");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(dir.path().join("secret.json"), "{\"a\": 1}").unwrap();
        std::fs::write(root.join("common.json"), "{\"a\": 1}").unwrap();
        let policy = RemotePolicy::default();
        let mut store = RefStore::new(
            json!({}),
            Location::File(root.join("main.json")),
            None,
            &policy,
            1 << 20,
        );
        let canonical_root = std::fs::canonicalize(&root).unwrap();

        let err = store.resolve(0, "../secret.json#/a").err().unwrap();
        assert!(
            matches!(&err, RefError::OutsideRoot { doc_part, root } if doc_part == "../secret.json" && *root == canonical_root),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "\"../secret.json\": refusing a file outside the document's root {}",
                canonical_root.display()
            )
        );

        assert_eq!(
            store.resolve(0, "common.json#/a").unwrap().value(),
            Some(&json!(1))
        );
        let err = store.resolve(0, "common.json#/b").err().unwrap();
        assert!(
            matches!(&err, RefError::Dangling { reference } if reference == "common.json#/b"),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "$ref \"common.json#/b\" points to nothing");

        let err = store.resolve(0, "gone.json").err().unwrap();
        assert!(matches!(&err, RefError::MissingFile { .. }), "{err:?}");
        let cause = std::error::Error::source(&err).map(ToString::to_string).unwrap();
        assert!(err.to_string().ends_with(&format!(": {cause}")), "{err}");
    }

    #[test]
    fn a_remote_reference_is_refused_by_the_policy_before_the_fetcher_and_its_failure_is_kept() {
        let fetcher = Arc::new(Refusing::default());
        let policy = RemotePolicy {
            fetcher: Some(fetcher.clone()),
            allow_private: false,
        };
        let mut store = RefStore::new(json!({}), Location::Memory, None, &policy, 1 << 20);

        let err = store.resolve(0, "http://127.0.0.1/defs.json#/a").err().unwrap();
        assert!(
            matches!(
                &err,
                RefError::RemoteRefused {
                    refusal: RemoteRefusal::PrivateAddress,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "http://127.0.0.1/defs.json: refusing a loopback, private or link-local address"
        );
        assert_eq!(fetcher.calls.load(Ordering::SeqCst), 0);

        let err = store
            .resolve(0, "https://api.example.org/defs.json#/a")
            .err()
            .unwrap();
        assert!(
            matches!(&err, RefError::Fetch { source, .. } if matches!(**source, RemoteFetchError::TooLarge { max_bytes: 10 })),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "https://api.example.org/defs.json: the document is larger than 10 bytes"
        );
        // A second reference into the same document reuses the first answer.
        let again = store
            .resolve(0, "https://api.example.org/defs.json#/b")
            .err()
            .unwrap();
        assert_eq!(again.to_string(), err.to_string());
        assert_eq!(fetcher.calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_cycle_of_bare_references_ends_in_an_error() {
        let doc = json!({"a": {"$ref": "#/b"}, "b": {"$ref": "#/a"}});
        let policy = RemotePolicy::default();
        let mut store = RefStore::new(doc.clone(), Location::Memory, None, &policy, 1 << 20);
        let err = store.deref(0, &doc["a"]).err().unwrap();
        assert!(matches!(err, RefError::ChainTooLong), "{err:?}");
        assert_eq!(err.to_string(), "$ref chain longer than 32 (a reference cycle?)");
    }
}
