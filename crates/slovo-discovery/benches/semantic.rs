//! Ranking by meaning over 10,000 synthetic capabilities with all-MiniLM-L6-v2 in process:
//! the cold index build (embedding every capability), the warm one (vectors already cached:
//! what a restart costs apart from reading them), and `resolve` p50/p95 *including the
//! request's embedding*, fused with BM25F. Needs the model of `scripts/ci-discovery-setup.sh`.
//! `cargo bench -p slovo-discovery --bench semantic` (figures in docs/BENCHMARKS.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use slovo_discovery::embed::LocalModel;
use slovo_discovery::hybrid::embedding_text;
use slovo_discovery::{GapModel, GapRule, Index, Ranker, Semantic, SemanticIndex, resolve_with};

#[path = "support/synthetic.rs"]
mod synthetic;
use synthetic::{CAPABILITIES, Rng, documents, queries};

/// Queries timed (each embeds the request; a few hundred give a stable median).
const TIMED: usize = 300;

fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() * 95 / 100])
}

fn main() {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let dir = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or(home.join(".cache"))
        .join("slovo-test/models/all-MiniLM-L6-v2");
    if !dir.join("model.safetensors").exists() {
        eprintln!(
            "semantic bench skipped: {} is missing (run scripts/ci-discovery-setup.sh)",
            dir.display()
        );
        return;
    }
    let t = Instant::now();
    let model = LocalModel::load(&dir).unwrap();
    let load = t.elapsed();

    let mut rng = Rng(0x5157_0b0e_d15c_0fe7);
    let docs = documents(&mut rng);
    let qs = queries(&mut rng);
    let t = Instant::now();
    let index = Index::build(docs);
    let lexical_build = t.elapsed();

    let texts: Vec<String> = index.docs().iter().map(embedding_text).collect();
    let t = Instant::now();
    let vectors = model.embed(&texts).unwrap();
    let cold = t.elapsed();
    let t = Instant::now();
    let semantic = SemanticIndex::new(&index, vectors.clone()).unwrap();
    let warm = t.elapsed() + lexical_build;

    let rule = GapRule::default();
    let gap = GapModel::default();
    let mut samples = Vec::new();
    let mut embed_only = Vec::new();
    for q in qs.iter().take(TIMED + 20) {
        let t = Instant::now();
        let v = model.embed(std::slice::from_ref(q)).unwrap().pop().unwrap();
        let e = t.elapsed();
        let sem = Semantic {
            index: &semantic,
            query: &v,
        };
        black_box(resolve_with(
            &index,
            Some(sem),
            q,
            5,
            Ranker::Weighted,
            &rule,
            &gap,
        ));
        samples.push(t.elapsed());
        embed_only.push(e);
    }
    // The first 20 warm the caches and the allocator.
    let (r50, r95) = percentiles(samples.split_off(20));
    let (e50, e95) = percentiles(embed_only.split_off(20));
    println!(
        "semantic bench: {CAPABILITIES} capabilities, {TIMED} queries, model {}",
        model.id()
    );
    // The machine may be shared: the load average says how much of it the figures had.
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let loadavg: Vec<&str> = loadavg.split_whitespace().take(3).collect();
    println!(
        "  load average (1, 5, 15 min) at the end   {} on {} cores",
        loadavg.join(" "),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("  model load                               {load:>10.1?}");
    println!("  index build, cold (embed every text)     {cold:>10.1?}  (+ lexical {lexical_build:.1?})");
    println!("  index build, warm (vectors cached)       {warm:>10.1?}");
    println!("  resolve incl. the request's embedding    p50 {r50:>10.1?}  p95 {r95:>10.1?}");
    println!("    of which embedding the request         p50 {e50:>10.1?}  p95 {e95:>10.1?}");
}
