//! Resolve over 10,000 synthetic capabilities: p50/p95 of `resolve` (ranking + gap decision +
//! argument filling for the top 5), of the ranking alone, and a baseline in the same run (a
//! linear scan counting the query's words in every capability's lower-cased text, the
//! simplest thing that could work). `cargo bench -p slovo-discovery --bench resolve`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::json;
use slovo_discovery::{Document, GapRule, Index, resolve};

const CAPABILITIES: usize = 10_000;
const QUERIES: usize = 2_000;

const VERBS: &[&str] = &[
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
const NOUNS: &[&str] = &[
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
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
    /// A made-up word (three syllables, 8,000 of them), so the index has a realistic long
    /// tail of rare words.
    fn rare(&mut self) -> String {
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

fn documents(rng: &mut Rng) -> Vec<Document> {
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
            }
        })
        .collect()
}

fn queries(rng: &mut Rng) -> Vec<String> {
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

fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() * 95 / 100])
}

fn time<F: FnMut(&str)>(qs: &[String], mut f: F) -> (Duration, Duration) {
    for q in qs.iter().take(200) {
        f(q); // warm up
    }
    let samples = qs
        .iter()
        .map(|q| {
            let t = Instant::now();
            f(q);
            t.elapsed()
        })
        .collect();
    percentiles(samples)
}

fn main() {
    let mut rng = Rng(0x5157_0b0e_d15c_0fe7);
    let docs = documents(&mut rng);
    let qs = queries(&mut rng);
    let texts: Vec<String> = docs
        .iter()
        .map(|d| {
            format!(
                "{} {} {} {} {}",
                d.tool,
                d.capability,
                d.description,
                d.tool_description,
                d.examples.join(" ")
            )
            .to_lowercase()
        })
        .collect();
    let t = Instant::now();
    let index = Index::build(docs);
    let build = t.elapsed();
    let rule = GapRule::default();

    let (r50, r95) = time(&qs, |q| {
        black_box(resolve(&index, q, 5, &rule));
    });
    let (s50, s95) = time(&qs, |q| {
        black_box(index.search(q, 5, &rule));
    });
    let (b50, b95) = time(&qs, |q| {
        let words: Vec<String> = q.to_lowercase().split_whitespace().map(str::to_string).collect();
        let mut best = (0usize, 0usize);
        for (i, text) in texts.iter().enumerate() {
            let n = words.iter().filter(|w| text.contains(w.as_str())).count();
            if n > best.0 {
                best = (n, i);
            }
        }
        black_box(best);
    });
    println!("resolve bench: {CAPABILITIES} capabilities, {QUERIES} queries, index built in {build:?}");
    println!("  resolve (rank + gap + arguments, top 5)  p50 {r50:>10.1?}  p95 {r95:>10.1?}");
    println!("  ranking only (Index::search)             p50 {s50:>10.1?}  p95 {s95:>10.1?}");
    println!("  baseline: linear substring scan          p50 {b50:>10.1?}  p95 {b95:>10.1?}");
}
