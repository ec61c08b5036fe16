//! What an import found: the figures, the skipped operations, the secrets and the risks.

use std::fmt;

use serde::Serialize;

pub use crate::repair::Repair;
pub use crate::split::ToolPart;

/// The import report that goes with a proposal.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IngestReport {
    /// The document's name (path or URL).
    pub source: String,
    /// `swagger` or `openapi` version as written (`2.0`, `3.0.3`, `3.1.0`).
    pub spec_version: String,
    /// Operations in the document.
    pub operations_total: usize,
    /// Operations left out by the tag, path or method filters.
    pub filtered_out: usize,
    /// Capabilities produced (over all the tools).
    pub capabilities: usize,
    /// The tools proposed: one, or several for a large API (see `docs/openapi.md`).
    pub tools: Vec<ToolPart>,
    /// Slips in the document that were repaired because their meaning is clear (lenient mode
    /// only), each with its JSON pointer.
    pub repairs: Vec<Repair>,
    /// Operations that could not be imported, and why.
    pub skipped: Vec<Skipped>,
    /// Things a reviewer should know that did not stop anything (dropped keywords, refused
    /// references, guessed base URLs).
    pub warnings: Vec<String>,
    /// Credentials the API needs, from its security schemes.
    pub secrets: Vec<RequiredSecret>,
    /// Capabilities that change or delete things.
    pub risks: Vec<Risk>,
    /// The API host(s): the requested network allow list.
    pub hosts: Vec<String>,
    /// The base URL every endpoint is relative to, when the document gives one.
    pub base_url: Option<String>,
}

/// An operation that was left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// `METHOD /path`, plus the `operationId` in parentheses when there is one.
    pub operation: String,
    /// JSON pointer of the operation (or path item) in the document.
    pub pointer: String,
    /// Why.
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}: {}", self.operation, self.pointer, self.reason)
    }
}

/// A credential the API needs, from one security scheme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequiredSecret {
    /// The scheme's name in the document (the key under `securitySchemes` /
    /// `securityDefinitions`); capabilities refer to it in `x-slovo-security`.
    pub name: String,
    /// How the credential is sent.
    pub scheme: SecretScheme,
    /// The scheme's description, if any.
    pub description: Option<String>,
    /// How many capabilities need it.
    pub used_by: usize,
}

/// How a credential is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SecretScheme {
    /// An API key in a header, query parameter or cookie.
    ApiKey {
        /// `header`, `query` or `cookie`.
        location: String,
        /// The header, parameter or cookie name.
        parameter: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// `bearerFormat`, if given.
        format: Option<String>,
    },
    /// `Authorization: Basic <user:password>`.
    Basic,
    /// OAuth 2 client credentials: the runtime exchanges a client id and secret for a token at
    /// `token_url`, then sends it as a bearer token.
    OAuth2ClientCredentials {
        /// Where to get the token.
        token_url: String,
        /// Scopes the capabilities ask for.
        scopes: Vec<String>,
    },
    /// Another OAuth 2 flow (authorization code, implicit, password) or OpenID Connect: a
    /// person must obtain a token; it is then sent as a bearer token.
    OAuth2Token {
        /// The flows the document offers.
        flows: Vec<String>,
    },
    /// A scheme the HTTP backend cannot serve (mutual TLS, an unknown HTTP scheme).
    Unsupported {
        /// What the document says.
        kind: String,
    },
}

/// A capability that changes or deletes things.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Risk {
    /// The capability.
    pub capability: String,
    /// `METHOD /path`.
    pub operation: String,
    /// How bad.
    pub level: RiskLevel,
    /// One sentence for the reviewer.
    pub note: String,
}

/// How much an operation can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    /// Creates or changes things (POST, PATCH).
    Changes,
    /// Replaces things wholesale (PUT).
    Overwrites,
    /// Deletes things (DELETE).
    Deletes,
}
