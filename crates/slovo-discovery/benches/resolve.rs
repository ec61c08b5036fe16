//! Resolve over 10,000 synthetic capabilities: p50/p95 of `resolve` (ranking + gap decision +
//! argument filling for the top 5), of the ranking alone, and a baseline in the same run (a
//! linear scan counting the query's words in every capability's lower-cased text, the
//! simplest thing that could work). `cargo bench -p slovo-discovery --bench resolve`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use slovo_discovery::{GapRule, Index, resolve};

#[path = "support/synthetic.rs"]
mod synthetic;
use synthetic::{CAPABILITIES, QUERIES, Rng, documents, queries};

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
