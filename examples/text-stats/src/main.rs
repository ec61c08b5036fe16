//! `text-stats`: counts the words, sentences and characters of a text, and names the most
//! frequent words. Reads `{"capability": "stats", "arguments": {"text": …, "top": n}}` on stdin
//! and writes the result as JSON on stdout (the sandbox contract of docs/wasm.md).

use std::collections::HashMap;
use std::io::Read;
use std::process::ExitCode;

use serde_json::{Value, json};

fn main() -> ExitCode {
    let mut input = String::new();
    if std::io::stdin().read_to_string(&mut input).is_err() {
        eprintln!("could not read the request");
        return ExitCode::from(2);
    }
    let request: Value = match serde_json::from_str(&input) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("the request is not JSON: {e}");
            return ExitCode::from(2);
        }
    };
    let text = request["arguments"]["text"].as_str().unwrap_or_default();
    let top = request["arguments"]["top"].as_u64().unwrap_or(3) as usize;
    println!("{}", stats(text, top));
    ExitCode::SUCCESS
}

fn stats(text: &str, top: usize) -> Value {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for w in &words {
        *counts.entry(w.as_str()).or_default() += 1;
    }
    let mut frequent: Vec<(&str, usize)> = counts.into_iter().collect();
    // Most frequent first; ties alphabetically, so the answer does not depend on hashing.
    frequent.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    frequent.truncate(top);
    let sentences = text
        .split(['.', '!', '?'])
        .filter(|s| s.chars().any(char::is_alphanumeric))
        .count();
    json!({
        "words": words.len(),
        "sentences": sentences,
        "characters": text.chars().count(),
        "most_frequent": frequent
            .into_iter()
            .map(|(word, count)| json!({"word": word, "count": count}))
            .collect::<Vec<_>>(),
    })
}
