//! Chains: a capability made of calls to other tools' capabilities (`execution: {type: chain}`).
//!
//! A chain has no program and no permissions of its own. Each step names `tool.capability`
//! and builds that capability's arguments from a *template*: any JSON value in which a string
//! starting with `$` is a reference (`$.input.city`, `$.steps.weather.output.temp`,
//! `$.steps.weather.status`) and `$$` starts a literal string beginning with `$`. Steps that do
//! not reference each other may run at the same time; the order is the dependency graph the
//! references draw. This module holds the pure parts: the reference language, the checks done
//! at import (unknown references, cycles) and the evaluation of templates against what the
//! steps so far returned. See `docs/chains.md`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Most steps one chain may have.
pub const MAX_CHAIN_STEPS: usize = 32;

/// One call of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainStep {
    /// Unique within the chain: `^[a-z][a-z0-9_]{0,31}$`.
    pub id: String,
    /// `tool.capability` of the tool it calls.
    pub call: String,
    /// The arguments, as a template (an object).
    #[serde(default)]
    pub with: Map<String, Value>,
    /// A reference; the step runs only when it resolves to a truthy value (not missing,
    /// `null`, `false`, `0`, `""`, `[]` or `{}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// What a failure of this step does to the chain.
    #[serde(default)]
    pub on_error: OnError,
}

/// What a failed step does to its chain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// The chain fails, naming the step; no further step starts.
    #[default]
    Stop,
    /// The chain goes on; later steps see the step's `status` and `error`.
    Continue,
}

impl ChainStep {
    /// The tool and capability the step calls (`call` split at its first dot: tool names
    /// have none, capability names may).
    pub fn target(&self) -> Option<(&str, &str)> {
        self.call.split_once('.')
    }
}

/// One segment of a path into a JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
}

/// A parsed reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// `$.input…`: the chain's arguments.
    Input(Vec<PathSegment>),
    /// `$.steps.<id>.output…`: what a step returned.
    Output {
        /// The step.
        step: String,
        /// Where inside its output.
        path: Vec<PathSegment>,
    },
    /// `$.steps.<id>.status`: `success`, `failure`, `timeout`, `killed` or `skipped`.
    Status(String),
    /// `$.steps.<id>.error`: why it failed (missing when it did not).
    Error(String),
}

impl Reference {
    /// The step this reference reads, if any.
    pub fn step(&self) -> Option<&str> {
        match self {
            Reference::Input(_) => None,
            Reference::Output { step, .. } | Reference::Status(step) | Reference::Error(step) => Some(step),
        }
    }
}

impl fmt::Display for PathSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathSegment::Key(k) => write!(f, ".{k}"),
            PathSegment::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// Why a text is not a reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// It does not start with `$.`.
    #[error("{text:?} is not a reference (references start with `$.`)")]
    NotAReference {
        /// The text.
        text: String,
    },
    /// The path after `$.` does not parse.
    #[error("{text:?}: {reason}")]
    BadPath {
        /// The text.
        text: String,
        /// What is wrong with the path.
        reason: String,
    },
    /// `$.steps` with no step id after it.
    #[error("{text:?}: `$.steps` must be followed by a step id")]
    NoStepId {
        /// The text.
        text: String,
    },
    /// A step id followed by something other than `output`, `status` or `error`.
    #[error("{text:?}: after a step id comes `output` (with an optional path), `status` or `error`")]
    BadStepField {
        /// The text.
        text: String,
    },
    /// Neither `$.input` nor `$.steps`.
    #[error("{text:?}: a reference reads `$.input…` or `$.steps.<id>…`")]
    UnknownRoot {
        /// The text.
        text: String,
    },
}

/// Parses `$.input.a.b[0]`, `$.steps.s.output.x`, `$.steps.s.status`, `$.steps.s.error`.
pub fn parse_reference(text: &str) -> Result<Reference, ReferenceError> {
    let owned = || text.to_string();
    let rest = text
        .strip_prefix("$.")
        .ok_or_else(|| ReferenceError::NotAReference { text: owned() })?;
    let segments = parse_path(rest).map_err(|reason| ReferenceError::BadPath {
        text: owned(),
        reason,
    })?;
    let key = |i: usize| match segments.get(i) {
        Some(PathSegment::Key(k)) => Some(k.as_str()),
        _ => None,
    };
    match key(0) {
        Some("input") => Ok(Reference::Input(segments[1..].to_vec())),
        Some("steps") => {
            let step = key(1)
                .ok_or_else(|| ReferenceError::NoStepId { text: owned() })?
                .to_string();
            match (key(2), segments.len()) {
                (Some("output"), _) => Ok(Reference::Output {
                    step,
                    path: segments[3..].to_vec(),
                }),
                (Some("status"), 3) => Ok(Reference::Status(step)),
                (Some("error"), 3) => Ok(Reference::Error(step)),
                _ => Err(ReferenceError::BadStepField { text: owned() }),
            }
        }
        _ => Err(ReferenceError::UnknownRoot { text: owned() }),
    }
}

fn parse_path(text: &str) -> Result<Vec<PathSegment>, String> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    let mut expect_key = true;
    while let Some(&(start, c)) = chars.peek() {
        if c == '[' {
            chars.next();
            let mut digits = String::new();
            loop {
                match chars.next() {
                    Some((_, ']')) => break,
                    Some((_, d)) if d.is_ascii_digit() => digits.push(d),
                    _ => return Err("an index is `[` digits `]`".into()),
                }
            }
            let i = digits
                .parse::<usize>()
                .map_err(|_| format!("[{digits}] is not an index"))?;
            out.push(PathSegment::Index(i));
            expect_key = false;
        } else if c == '.' && !expect_key {
            chars.next();
            expect_key = true;
        } else if expect_key && (c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            let mut end = start;
            while let Some(&(i, k)) = chars.peek() {
                if k.is_ascii_alphanumeric() || k == '_' || k == '-' {
                    end = i + k.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(PathSegment::Key(text[start..end].to_string()));
            expect_key = false;
        } else {
            return Err(format!("unexpected {c:?} at offset {start}"));
        }
    }
    if expect_key {
        return Err("a path cannot end with `.` or be empty".into());
    }
    Ok(out)
}

/// Every reference in a template, each with where it sits (`.city`, `.days[1]`; empty for the
/// root).
pub fn template_references(template: &Value) -> Result<Vec<(String, Reference)>, (String, String)> {
    let mut out = Vec::new();
    collect(template, String::new(), &mut out)?;
    Ok(out)
}

fn collect(v: &Value, at: String, out: &mut Vec<(String, Reference)>) -> Result<(), (String, String)> {
    match v {
        Value::String(s) if is_reference(s) => {
            let r = parse_reference(s).map_err(|e| (at.clone(), e.to_string()))?;
            out.push((at, r));
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect(item, format!("{at}[{i}]"), out)?;
            }
        }
        Value::Object(members) => {
            for (k, item) in members {
                collect(item, format!("{at}.{k}"), out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn is_reference(s: &str) -> bool {
    s.starts_with('$') && !s.starts_with("$$")
}

/// What is known of one step while its chain runs.
#[derive(Debug, Clone, PartialEq)]
pub struct StepState {
    /// `success`, `failure`, `timeout`, `killed`, `skipped`, …
    pub status: String,
    /// Its output.
    pub output: Option<Value>,
    /// Why it failed.
    pub error: Option<String>,
}

/// What references resolve against: the chain's arguments and the steps finished so far.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// The chain's arguments.
    pub input: Value,
    /// Finished (or skipped) steps by id.
    pub steps: HashMap<String, StepState>,
}

impl Scope {
    /// The value a reference points at; `None` when it points at nothing (a missing member, a
    /// step that has not run, an error of a step that succeeded).
    pub fn resolve(&self, r: &Reference) -> Option<Value> {
        match r {
            Reference::Input(path) => follow(&self.input, path),
            Reference::Output { step, path } => follow(self.steps.get(step)?.output.as_ref()?, path),
            Reference::Status(step) => Some(Value::String(self.steps.get(step)?.status.clone())),
            Reference::Error(step) => self.steps.get(step)?.error.clone().map(Value::String),
        }
    }

    /// A template with each reference replaced by its value. An object member whose reference
    /// points at nothing is left out (so an optional argument stays absent); elsewhere it
    /// becomes `null`. References were checked at import, so one that no longer parses is
    /// also nothing.
    pub fn render(&self, template: &Value) -> Value {
        self.render_opt(template).unwrap_or(Value::Null)
    }

    fn render_opt(&self, template: &Value) -> Option<Value> {
        match template {
            Value::String(s) if is_reference(s) => parse_reference(s).ok().and_then(|r| self.resolve(&r)),
            Value::String(s) if s.starts_with("$$") => Some(Value::String(s[1..].to_string())),
            Value::Array(items) => Some(Value::Array(
                items
                    .iter()
                    .map(|i| self.render_opt(i).unwrap_or(Value::Null))
                    .collect(),
            )),
            Value::Object(members) => Some(Value::Object(
                members
                    .iter()
                    .filter_map(|(k, v)| self.render_opt(v).map(|v| (k.clone(), v)))
                    .collect(),
            )),
            other => Some(other.clone()),
        }
    }

    /// Whether a step's `when` lets it run.
    pub fn condition_holds(&self, when: &str) -> bool {
        match parse_reference(when).ok().and_then(|r| self.resolve(&r)) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::Object(o)) => !o.is_empty(),
            Some(Value::Bool(true)) => true,
        }
    }
}

fn follow(mut v: &Value, path: &[PathSegment]) -> Option<Value> {
    for seg in path {
        v = match seg {
            PathSegment::Key(k) => v.get(k)?,
            PathSegment::Index(i) => v.get(i)?,
        };
    }
    Some(v.clone())
}

/// The steps each step waits for, from the references in its `with` and `when`.
pub fn dependencies(steps: &[ChainStep]) -> BTreeMap<String, HashSet<String>> {
    steps
        .iter()
        .map(|s| {
            let deps = step_references(s)
                .into_iter()
                .filter_map(|(_, r)| r.step().map(str::to_string))
                .collect();
            (s.id.clone(), deps)
        })
        .collect()
}

/// Every reference of a step with the field it sits in (`with.city`, `when`); unparsable ones
/// are left out (import refuses them).
fn step_references(s: &ChainStep) -> Vec<(String, Reference)> {
    let mut out: Vec<(String, Reference)> = template_references(&Value::Object(s.with.clone()))
        .unwrap_or_default()
        .into_iter()
        .map(|(at, r)| (format!("with{at}"), r))
        .collect();
    if let Some(w) = &s.when
        && let Ok(r) = parse_reference(w)
    {
        out.push(("when".into(), r));
    }
    out
}

/// A problem with a chain, naming the field (relative to `execution`) and the reason.
pub type ChainProblem = (String, String);

/// The import-time checks of a chain: step ids, targets, references (each must parse, name a
/// known step and, for `$.input`, a declared parameter) and the absence of cycles. `chain_tool`
/// is the chain's own name (a chain may not call itself); `parameters` its capability's schema.
pub fn check_chain(
    chain_tool: &str,
    parameters: &Value,
    steps: &[ChainStep],
    result: &Value,
) -> Result<(), ChainProblem> {
    if steps.is_empty() {
        return Err(("steps".into(), "a chain needs at least one step".into()));
    }
    if steps.len() > MAX_CHAIN_STEPS {
        return Err((
            "steps".into(),
            format!("{} steps; a chain has at most {MAX_CHAIN_STEPS}", steps.len()),
        ));
    }
    let declared: Option<HashSet<&str>> = parameters
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().map(String::as_str).collect());
    let mut ids = HashSet::new();
    for (i, s) in steps.iter().enumerate() {
        let at = |f: &str| format!("steps[{i}].{f}");
        if !valid_step_id(&s.id) {
            return Err((
                at("id"),
                format!(
                    "{:?} is not a step id (lowercase letter first, then up to 31 of a-z 0-9 _)",
                    s.id
                ),
            ));
        }
        if !ids.insert(s.id.as_str()) {
            return Err((at("id"), format!("step {:?} is defined more than once", s.id)));
        }
        let Some((tool, capability)) = s.target() else {
            return Err((at("call"), format!("{:?} is not `tool.capability`", s.call)));
        };
        if tool.is_empty() || capability.is_empty() {
            return Err((at("call"), format!("{:?} is not `tool.capability`", s.call)));
        }
        if tool == chain_tool {
            return Err((at("call"), "a chain cannot call itself".into()));
        }
        if let Err((field, reason)) = template_references(&Value::Object(s.with.clone())) {
            return Err((format!("{}{field}", at("with")), reason));
        }
        if let Some(w) = &s.when {
            parse_reference(w).map_err(|e| (at("when"), e.to_string()))?;
        }
    }
    for (i, s) in steps.iter().enumerate() {
        for (field, r) in step_references(s) {
            check_known(&r, &ids, declared.as_ref())
                .map_err(|reason| (format!("steps[{i}].{field}"), reason))?;
            if r.step() == Some(s.id.as_str()) {
                return Err((
                    format!("steps[{i}].{field}"),
                    format!("step {:?} refers to itself", s.id),
                ));
            }
        }
    }
    let result_refs = template_references(result).map_err(|(at, e)| (format!("result{at}"), e))?;
    for (at, r) in result_refs {
        check_known(&r, &ids, declared.as_ref()).map_err(|reason| (format!("result{at}"), reason))?;
    }
    check_acyclic(steps)
}

fn check_known(r: &Reference, ids: &HashSet<&str>, declared: Option<&HashSet<&str>>) -> Result<(), String> {
    match r {
        Reference::Input(path) => match (path.first(), declared) {
            (Some(PathSegment::Key(k)), Some(declared)) if !declared.contains(k.as_str()) => {
                Err(format!("`$.input.{k}` is not one of the chain's parameters"))
            }
            _ => Ok(()),
        },
        other => {
            let step = other.step().unwrap_or_default();
            if ids.contains(step) {
                Ok(())
            } else {
                Err(format!("`$.steps.{step}` names no step of this chain"))
            }
        }
    }
}

/// Refuses a dependency cycle, naming a step on it, the field that closes it and the cycle.
fn check_acyclic(steps: &[ChainStep]) -> Result<(), ChainProblem> {
    let deps = dependencies(steps);
    // Depth-first search with colours; `path` is the current stack, for the message.
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    let mut colour: HashMap<&str, Colour> = steps.iter().map(|s| (s.id.as_str(), Colour::White)).collect();
    fn visit<'a>(
        id: &'a str,
        deps: &'a BTreeMap<String, HashSet<String>>,
        colour: &mut HashMap<&'a str, Colour>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        colour.insert(id, Colour::Grey);
        path.push(id);
        let mut next: Vec<&String> = deps.get(id).map(|d| d.iter().collect()).unwrap_or_default();
        next.sort();
        for d in next {
            match colour.get(d.as_str()).copied() {
                Some(Colour::Grey) => {
                    let start = path.iter().position(|p| *p == d.as_str()).unwrap_or(0);
                    let mut cycle: Vec<String> = path[start..].iter().map(|s| s.to_string()).collect();
                    cycle.push(d.clone());
                    return Some(cycle);
                }
                Some(Colour::White) => {
                    if let Some(c) = visit(d, deps, colour, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        colour.insert(id, Colour::Black);
        None
    }
    for s in steps {
        if colour.get(s.id.as_str()) == Some(&Colour::White) {
            let mut path = Vec::new();
            if let Some(cycle) = visit(&s.id, &deps, &mut colour, &mut path) {
                // The field of the first step on the cycle that refers to the next one.
                let (from, to) = (&cycle[0], &cycle[1]);
                let (index, step) = steps
                    .iter()
                    .enumerate()
                    .find(|(_, s)| &s.id == from)
                    .unwrap_or((0, s));
                let field = step_references(step)
                    .into_iter()
                    .find(|(_, r)| r.step() == Some(to.as_str()))
                    .map(|(f, _)| f)
                    .unwrap_or_else(|| "with".into());
                return Err((
                    format!("steps[{index}].{field}"),
                    format!("step {from:?} is on a dependency cycle: {}", cycle.join(" → ")),
                ));
            }
        }
    }
    Ok(())
}

fn valid_step_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn step(id: &str, call: &str, with: Value) -> ChainStep {
        ChainStep {
            id: id.into(),
            call: call.into(),
            with: with.as_object().cloned().unwrap_or_default(),
            when: None,
            on_error: OnError::Stop,
        }
    }

    #[test]
    fn references_parse_with_paths_and_indices() {
        assert_eq!(
            parse_reference("$.steps.w.output.days[2].temp").unwrap(),
            Reference::Output {
                step: "w".into(),
                path: vec![
                    PathSegment::Key("days".into()),
                    PathSegment::Index(2),
                    PathSegment::Key("temp".into())
                ]
            }
        );
        assert_eq!(parse_reference("$.input").unwrap(), Reference::Input(vec![]));
        assert_eq!(
            parse_reference("$.steps.w.status").unwrap(),
            Reference::Status("w".into())
        );
        for bad in [
            "$.",
            "$.input.",
            "$.foo",
            "$.steps",
            "$.steps.w",
            "$.steps.w.status.x",
            "$.input[x]",
            "input.a",
        ] {
            assert!(parse_reference(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn a_bad_reference_says_which_part_is_wrong() {
        let text = |t: &str| t.to_string();
        assert_eq!(
            parse_reference("input.a"),
            Err(ReferenceError::NotAReference {
                text: text("input.a")
            })
        );
        assert_eq!(
            parse_reference("$.input[x]"),
            Err(ReferenceError::BadPath {
                text: text("$.input[x]"),
                reason: "an index is `[` digits `]`".into()
            })
        );
        assert_eq!(
            parse_reference("$.steps"),
            Err(ReferenceError::NoStepId {
                text: text("$.steps")
            })
        );
        assert_eq!(
            parse_reference("$.steps.w.status.x"),
            Err(ReferenceError::BadStepField {
                text: text("$.steps.w.status.x")
            })
        );
        let foo = parse_reference("$.foo").unwrap_err();
        assert_eq!(foo, ReferenceError::UnknownRoot { text: text("$.foo") });
        assert_eq!(
            foo.to_string(),
            "\"$.foo\": a reference reads `$.input…` or `$.steps.<id>…`"
        );
    }

    #[test]
    fn templates_render_and_leave_out_missing_members() {
        let mut scope = Scope {
            input: json!({"city": "Oslo", "n": 2}),
            ..Scope::default()
        };
        scope.steps.insert(
            "w".into(),
            StepState {
                status: "success".into(),
                output: Some(json!({"temp": [3, 4]})),
                error: None,
            },
        );
        let t = json!({"c": "$.input.city", "t": "$.steps.w.output.temp[1]", "gone": "$.input.nope",
                       "lit": "$$.input.city", "list": ["$.input.n", "$.input.nope", 7], "s": "$.steps.w.status"});
        assert_eq!(
            scope.render(&t),
            json!({"c": "Oslo", "t": 4, "lit": "$.input.city", "list": [2, null, 7], "s": "success"})
        );
        assert!(scope.condition_holds("$.input.city"));
        assert!(!scope.condition_holds("$.input.nope"));
        assert!(!scope.condition_holds("$.steps.w.error"));
    }

    #[test]
    fn unknown_references_and_cycles_name_the_step_and_field() {
        let params = json!({"type": "object", "properties": {"city": {"type": "string"}}});
        let ok = vec![
            step("a", "t.x", json!({"q": "$.input.city"})),
            step("b", "u.y", json!({"q": "$.steps.a.output.v"})),
        ];
        check_chain("chain", &params, &ok, &json!({"v": "$.steps.b.output"})).unwrap();

        let unknown = vec![step("a", "t.x", json!({"q": "$.steps.nope.output"}))];
        assert_eq!(
            check_chain("chain", &params, &unknown, &json!(null))
                .unwrap_err()
                .0,
            "steps[0].with.q"
        );
        let undeclared = vec![step("a", "t.x", json!({"q": "$.input.town"}))];
        let e = check_chain("chain", &params, &undeclared, &json!(null)).unwrap_err();
        assert_eq!(e.0, "steps[0].with.q");
        assert!(e.1.contains("town"), "{e:?}");

        let cycle = vec![
            step("a", "t.x", json!({"q": "$.steps.c.output"})),
            step("b", "t.x", json!({"q": "$.steps.a.output"})),
            step("c", "t.x", json!({"deep": {"q": ["$.steps.b.output"]}})),
        ];
        let e = check_chain("chain", &params, &cycle, &json!(null)).unwrap_err();
        assert_eq!(e.0, "steps[0].with.q");
        assert!(e.1.contains("a → c → b → a"), "{e:?}");

        let itself = vec![step("a", "chain.x", json!({}))];
        assert_eq!(
            check_chain("chain", &params, &itself, &json!(null))
                .unwrap_err()
                .0,
            "steps[0].call"
        );
        let result_bad = check_chain("chain", &params, &ok, &json!({"x": "$.steps.z.output"})).unwrap_err();
        assert_eq!(result_bad.0, "result.x");
    }
}
