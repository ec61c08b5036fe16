//! Manifest errors: always the file, then the line where the parser knows it, then the field.

use std::fmt;

/// A manifest that cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    /// The file (or `-`, or `request body`) the manifest came from.
    pub source_name: String,
    /// Dotted path of the offending field (`permissions.storage_quota_mb`,
    /// `capabilities[1].parameters`), when there is one.
    pub field: Option<String>,
    /// 1-based line, when the parser knows it.
    pub line: Option<usize>,
    /// 1-based column, when the parser knows it.
    pub column: Option<usize>,
    /// What is wrong.
    pub kind: ManifestErrorKind,
}

/// What is wrong with a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestErrorKind {
    /// Larger than [`super::MAX_MANIFEST_BYTES`].
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Not UTF-8.
    NotUtf8 {
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// Empty or only white space.
    Empty,
    /// Malformed YAML or JSON (including YAML alias bombs and excessive nesting).
    Syntax(String),
    /// A field no dialect knows.
    UnknownField(String),
    /// A field is missing or of the wrong type.
    Invalid(String),
}

impl ManifestError {
    pub(crate) fn new(source_name: &str, kind: ManifestErrorKind) -> Self {
        ManifestError {
            source_name: source_name.to_string(),
            field: None,
            line: None,
            column: None,
            kind,
        }
    }

    pub(crate) fn field(source_name: &str, field: impl Into<String>, reason: impl Into<String>) -> Self {
        ManifestError {
            field: Some(field.into()),
            ..ManifestError::new(source_name, ManifestErrorKind::Invalid(reason.into()))
        }
    }

    pub(crate) fn at(mut self, line: Option<usize>, column: Option<usize>) -> Self {
        self.line = line;
        self.column = column;
        self
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source_name)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        f.write_str(": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        match &self.kind {
            ManifestErrorKind::TooLarge { size, max } => {
                write!(f, "manifest is {size} bytes, larger than the {max}-byte limit")
            }
            ManifestErrorKind::NotUtf8 { offset } => {
                write!(f, "manifest is not UTF-8 text (invalid byte at offset {offset})")
            }
            ManifestErrorKind::Empty => f.write_str("manifest is empty"),
            ManifestErrorKind::Syntax(m) => write!(f, "syntax error: {m}"),
            ManifestErrorKind::UnknownField(m) => write!(f, "{m}"),
            ManifestErrorKind::Invalid(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for ManifestError {}
