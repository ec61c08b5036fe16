//! The synthetic capabilities and queries of the resolve benchmark, shared with the
//! `tantivy_eval` example so both engines are timed on the same data.
#![allow(dead_code)]

use serde_json::json;
use slovo_discovery::Document;

/// Capabilities indexed.
pub const CAPABILITIES: usize = 10_000;
/// Queries timed.
pub const QUERIES: usize = 2_000;

pub const VERBS: &[&str] = &[
    "get",
    "list",
    "create",
    "delete",
    "update",
    "search",
    "find",
    "send",
    "convert",
    "translate",
    "analyze",
    "summarize",
    "book",
    "cancel",
    "track",
    "upload",
    "download",
    "compute",
    "validate",
    "generate",
];
pub const NOUNS: &[&str] = &[
    "weather",
    "forecast",
    "air",
    "quality",
    "pollen",
    "repository",
    "issue",
    "gist",
    "email",
    "message",
    "queue",
    "invoice",
    "payment",
    "customer",
    "order",
    "flight",
    "hotel",
    "train",
    "station",
    "bus",
    "movie",
    "series",
    "episode",
    "word",
    "definition",
    "synonym",
    "sentiment",
    "entity",
    "document",
    "image",
    "photo",
    "video",
    "song",
    "playlist",
    "calendar",
    "event",
    "task",
    "note",
    "contact",
    "address",
    "domain",
    "certificate",
    "key",
    "secret",
    "vault",
    "archive",
    "backup",
    "alarm",
    "metric",
    "log",
    "user",
    "team",
    "project",
    "ticket",
    "incident",
    "alert",
    "price",
    "quote",
    "currency",
    "stock",
];

/// A small deterministic generator (xorshift), so every run indexes the same documents.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
    /// A made-up word (three syllables, 8,000 of them), so the index has a realistic long
    /// tail of rare words.
    pub fn rare(&mut self) -> String {
        const C: &[u8] = b"bdfgklmnprstvz";
        const V: &[u8] = b"aeiou";
        let mut n = self.next() % 8_000;
        let mut w = String::new();
        for _ in 0..3 {
            w.push(C[(n % 14) as usize] as char);
            n /= 14;
            w.push(V[(n % 5) as usize] as char);
        }
        w
    }
}

pub fn documents(rng: &mut Rng) -> Vec<Document> {
    (0..CAPABILITIES)
        .map(|i| {
            let (verb, noun, noun2) = (rng.pick(VERBS), rng.pick(NOUNS), rng.pick(NOUNS));
            let mut desc = format!("{verb} the {noun} of a {noun2}");
            for _ in 0..(8 + rng.next() % 12) {
                desc.push(' ');
                desc.push_str(&rng.rare());
            }
            Document {
                tool: format!("tool-{}-{}", rng.pick(NOUNS), i / 10),
                capability: format!("{verb}_{noun}_{}", i % 10),
                status: "active".into(),
                tool_description: format!("{} {} service {}", rng.pick(NOUNS), rng.pick(NOUNS), rng.rare()),
                description: desc,
                parameters: json!({
                    "type": "object",
                    "properties": {
                        "city": {"type": "string", "description": format!("the {noun2} city")},
                        "limit": {"type": "integer"},
                        noun: {"type": "string", "description": rng.rare()},
                    },
                    "required": ["city"],
                }),
                tags: vec![noun.to_string()],
                examples: vec![format!("{verb} my {noun} {} in Paris", rng.rare())],
                route: None,
            }
        })
        .collect()
}

pub fn queries(rng: &mut Rng) -> Vec<String> {
    (0..QUERIES)
        .map(|i| match i % 3 {
            0 => format!("{} the {} in Lyon", rng.pick(VERBS), rng.pick(NOUNS)),
            1 => format!(
                "please {} my {} {} for 5 days",
                rng.pick(VERBS),
                rng.pick(NOUNS),
                rng.rare()
            ),
            _ => format!("what is the {} of {} {}", rng.rare(), rng.rare(), rng.pick(NOUNS)),
        })
        .collect()
}
