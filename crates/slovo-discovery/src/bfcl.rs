//! Evaluation sets in the layout of the Berkeley Function Calling Leaderboard's "live" data:
//! one JSON document per line, each a question (`question[0]`, a list of chat messages) with
//! the functions offered for it (`function`). For live multiple, `possible_answer/` names the
//! function to call (the first key of `ground_truth[0]`); in live irrelevance no function
//! serves the question (a gap); in live relevance some function does, unnamed.
//!
//! Every case brings its own small catalogue, so each is ranked against an index of its own.
//! Cases are split into a development part and a held-out part by a digest of their id:
//! deterministic, independent of file order, and the same on every machine.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::index::Document;

/// What serves a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// This function (by its full name).
    Function(String),
    /// Some function serves it; which one is not said.
    Any,
    /// None: a gap.
    Gap,
}

/// One request with the catalogue offered for it.
#[derive(Debug, Clone)]
pub struct CatalogueCase {
    /// The case's id in its file.
    pub id: String,
    /// The user's words (every user message of the first turn, joined).
    pub query: String,
    /// The functions offered, as capability documents.
    pub docs: Vec<Document>,
    /// What should come first.
    pub expected: Expected,
}

impl CatalogueCase {
    /// Whether the case belongs to the held-out part (about one in three): never look at
    /// these while tuning.
    pub fn held_out(&self) -> bool {
        held_out(&self.id)
    }
}

/// Whether a case with this id belongs to the held-out part.
pub fn held_out(id: &str) -> bool {
    Sha256::digest(id.as_bytes())[0] % 3 == 0
}

/// A file that could not be read or understood.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}: {reason}")]
pub struct BfclError {
    /// The file.
    pub path: PathBuf,
    /// The line (1-based; 0 for the file as a whole).
    pub line: usize,
    /// Why.
    pub reason: String,
}

#[derive(Deserialize)]
struct Question {
    id: String,
    question: Vec<Vec<Message>>,
    function: Vec<Function>,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    content: String,
}

#[derive(Deserialize)]
struct Function {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    parameters: Value,
}

#[derive(Deserialize)]
struct Answer {
    id: String,
    ground_truth: Vec<serde_json::Map<String, Value>>,
}

fn lines(path: &Path) -> Result<Vec<(usize, String)>, BfclError> {
    let text = std::fs::read_to_string(path).map_err(|e| BfclError {
        path: path.to_path_buf(),
        line: 0,
        reason: e.to_string(),
    })?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l.to_string()))
        .collect())
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path, line: usize, text: &str) -> Result<T, BfclError> {
    serde_json::from_str(text).map_err(|e| BfclError {
        path: path.to_path_buf(),
        line,
        reason: e.to_string(),
    })
}

fn document(f: Function) -> Document {
    // `module.function`: the module plays the tool.
    let tool = f.name.split('.').next().unwrap_or(&f.name).to_string();
    Document {
        tool,
        capability: f.name,
        status: "catalogue".into(),
        tool_description: String::new(),
        description: f.description,
        parameters: f.parameters,
        tags: vec![],
        examples: vec![],
        route: None,
    }
}

/// Reads a question file; `expected` gives each case's answer from its id.
pub fn load_questions(
    path: &Path,
    expected: impl Fn(&str) -> Option<Expected>,
) -> Result<Vec<CatalogueCase>, BfclError> {
    let mut cases = Vec::new();
    for (line, text) in lines(path)? {
        let q: Question = parse(path, line, &text)?;
        let Some(expected) = expected(&q.id) else {
            return Err(BfclError {
                path: path.to_path_buf(),
                line,
                reason: format!("no answer for case {}", q.id),
            });
        };
        let query = q
            .question
            .first()
            .map(|turn| {
                turn.iter()
                    .filter(|m| m.role == "user")
                    .map(|m| m.content.trim())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        cases.push(CatalogueCase {
            id: q.id,
            query,
            docs: q.function.into_iter().map(document).collect(),
            expected,
        });
    }
    Ok(cases)
}

/// Reads a `possible_answer` file: case id → the function to call.
pub fn load_answers(path: &Path) -> Result<HashMap<String, String>, BfclError> {
    let mut answers = HashMap::new();
    for (line, text) in lines(path)? {
        let a: Answer = parse(path, line, &text)?;
        let Some(name) = a.ground_truth.first().and_then(|g| g.keys().next()) else {
            return Err(BfclError {
                path: path.to_path_buf(),
                line,
                reason: "ground_truth names no function".into(),
            });
        };
        answers.insert(a.id, name.clone());
    }
    Ok(answers)
}

/// The three live sets of a BFCL data directory.
#[derive(Debug, Clone)]
pub struct LiveSets {
    /// Live multiple: the named function should come first.
    pub multiple: Vec<CatalogueCase>,
    /// Live irrelevance: gaps.
    pub irrelevance: Vec<CatalogueCase>,
    /// Live relevance: servable, function unnamed.
    pub relevance: Vec<CatalogueCase>,
}

/// Reads `BFCL_v4_live_{multiple,irrelevance,relevance}.json` and
/// `possible_answer/BFCL_v4_live_multiple.json` from `dir`.
pub fn load_live(dir: &Path) -> Result<LiveSets, BfclError> {
    let answers = load_answers(&dir.join("possible_answer/BFCL_v4_live_multiple.json"))?;
    let multiple = load_questions(&dir.join("BFCL_v4_live_multiple.json"), |id| {
        answers.get(id).map(|f| Expected::Function(f.clone()))
    })?;
    let irrelevance = load_questions(&dir.join("BFCL_v4_live_irrelevance.json"), |_| {
        Some(Expected::Gap)
    })?;
    let relevance_path = dir.join("BFCL_v4_live_relevance.json");
    let relevance = if relevance_path.exists() {
        load_questions(&relevance_path, |_| Some(Expected::Any))?
    } else {
        Vec::new()
    };
    Ok(LiveSets {
        multiple,
        irrelevance,
        relevance,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_is_stable_and_about_a_third() {
        let ids: Vec<String> = (0..3000).map(|i| format!("live_multiple_{i}-0-0")).collect();
        let held = ids.iter().filter(|i| held_out(i)).count();
        assert!((900..1100).contains(&held), "{held}");
        // Fixed by the digest (computed independently: the first byte of SHA-256 mod 3).
        assert!(!held_out("live_multiple_0-0-0"));
        assert!(!held_out("live_multiple_1-0-1"));
        assert!(held_out("live_irrelevance_0-0-0"));
        assert!(!held_out("live_irrelevance_2-0-2"));
        let again = ids.iter().rev().filter(|i| held_out(i)).count();
        assert_eq!(held, again);
    }
}
