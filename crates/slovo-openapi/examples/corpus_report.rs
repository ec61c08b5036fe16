//! Ingests every document of the OpenAPI corpus and prints the figures of the import report.
//!
//! `cargo run --release -p slovo-openapi --example corpus_report [-- CORPUS_DIR] [--only-3x]
//! [--quiet]`; the corpus defaults to `../shared/corpus/openapi` next to the workspace.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use slovo_openapi::{IngestOptions, Source, ingest};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, out);
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "json" | "yaml" | "yml" | "oas3"))
        {
            out.push(p);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let only_3x = args.iter().any(|a| a == "--only-3x");
    let quiet = args.iter().any(|a| a == "--quiet");
    let corpus = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/openapi"));
    let mut all = Vec::new();
    files(&corpus, &mut all);
    if only_3x {
        all.retain(|p| p.to_string_lossy().contains("openapi3-twilio"));
    }
    all.retain(|p| !p.to_string_lossy().contains("/resources/"));

    // The defaults: a large API is split into several tools, never refused for its size.
    let options = IngestOptions::default();
    let started = Instant::now();
    let (mut ok, mut refused, mut empty) = (0, 0, 0);
    let (mut ops, mut tools, mut valid_schemas, mut good_names) = (0usize, 0usize, 0usize, 0usize);
    let (mut repairs, mut repaired_docs, mut split_docs, mut proposals) = (0usize, 0usize, 0usize, 0usize);
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut slowest = (Duration::ZERO, String::new());
    for path in &all {
        let t = Instant::now();
        let result = Source::from_path(path, slovo_openapi::DEFAULT_MAX_DOCUMENT_BYTES)
            .and_then(|s| ingest(&s, &options));
        let took = t.elapsed();
        if took > slowest.0 {
            slowest = (took, path.display().to_string());
        }
        match result {
            Ok(imported) => {
                ok += 1;
                ops += imported.report.operations_total;
                for s in &imported.report.skipped {
                    let key = s.reason.split(':').next().unwrap_or("").to_string();
                    *reasons.entry(key).or_default() += 1;
                    if !quiet {
                        println!("skipped  {}: {s}", path.display());
                    }
                }
                repairs += imported.report.repairs.len();
                repaired_docs += usize::from(!imported.report.repairs.is_empty());
                if !quiet {
                    for r in &imported.report.repairs {
                        println!("repaired {}: {r}", path.display());
                    }
                }
                if imported.manifests.is_empty() {
                    empty += 1;
                    continue;
                }
                proposals += imported.manifests.len();
                if imported.manifests.len() > 1 {
                    split_docs += 1;
                    println!(
                        "split    {} ({} operations): {}",
                        path.display(),
                        imported.report.operations_total,
                        imported
                            .report
                            .tools
                            .iter()
                            .map(|t| format!("{} ({})", t.name, t.capabilities))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                let mut names = HashSet::new();
                for c in imported.manifests.iter().flat_map(|m| &m.capabilities) {
                    tools += 1;
                    if jsonschema::meta::is_valid(&c.parameters)
                        && c.parameters.get("type").and_then(|t| t.as_str()) == Some("object")
                    {
                        valid_schemas += 1;
                    }
                    if c.name.len() <= 64 && names.insert(c.name.clone()) {
                        good_names += 1;
                    }
                }
            }
            Err(e) => {
                refused += 1;
                if !quiet {
                    let msg = e.to_string();
                    let short: String = msg.chars().take(240).collect();
                    println!("refused  {short}");
                }
            }
        }
    }
    let total = started.elapsed();
    println!("documents             {}", all.len());
    println!("  ingested            {ok} ({empty} with no operations)");
    println!("  refused             {refused}");
    println!("operations            {ops}");
    println!("capabilities          {tools}");
    println!("tools proposed        {proposals} ({split_docs} documents split by tag)");
    println!("repairs               {repairs} in {repaired_docs} documents");
    println!("schemas valid 2020-12 {valid_schemas} / {tools}");
    println!("names unique and <=64 {good_names} / {tools}");
    println!("failed operations     {}", reasons.values().sum::<usize>());
    for (reason, n) in &reasons {
        println!("  {n:>5}  {reason}");
    }
    println!(
        "slowest document      {:.1} ms  {}",
        slowest.0.as_secs_f64() * 1e3,
        slowest.1
    );
    println!("total time            {:.1} ms", total.as_secs_f64() * 1e3);
}
