//! The hand-written index against tantivy (BM25 with the `en_stem` tokenizer, the same field
//! boosts, the same identifier splitting and stop words), in one release binary:
//!
//! ```text
//! cargo run --release -p slovo-discovery --features tantivy --example tantivy_eval -- DIR FILE.jsonl [THRESHOLD]
//! cargo run --release -p slovo-discovery --features tantivy --example tantivy_eval -- --synthetic
//! ```
//!
//! With a catalogue and a query file: recall@1, recall@5 and MRR of both engines, and the gap
//! decision. tantivy has no normalised score, so its gap rule is a raw-score threshold: the best
//! one for this very file (an optimistic figure), and `THRESHOLD` if given (e.g. the one
//! calibrated on the dev set, applied to the holdout set: the honest figure). Two controls:
//! tantivy's ranking with our gap rule, and our ranking with a raw-score threshold
//! (`OURS_THRESHOLD=T` applies a given one). Then the query latency of both engines over the
//! same queries (p50, p95).
//!
//! With `--synthetic`: both engines over the resolve benchmark's 10,000 synthetic capabilities
//! and 2,000 queries (`benches/support/synthetic.rs`): build time and query latency.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use slovo_discovery::eval::{EvalCase, Expected, evaluate, parse_cases};
use slovo_discovery::sources::{Catalogue, SourceConfig};
use slovo_discovery::{Document, GapRule, Index, resolve, text};
use tantivy::collector::TopDocs;
use tantivy::query::QueryParser;
use tantivy::schema::{Field, IndexRecordOption, STORED, Schema, TextFieldIndexing, TextOptions, Value};
use tantivy::{Searcher, TantivyDocument, doc};

#[path = "../benches/support/synthetic.rs"]
mod synthetic;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// A tantivy index over the same documents, with the same fields and boosts.
struct Tantivy {
    searcher: Searcher,
    parser: QueryParser,
    id: Field,
}

impl Tantivy {
    fn build(docs: &[Document]) -> Res<Tantivy> {
        let mut sb = Schema::builder();
        let opts = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("en_stem")
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        let names = [
            "capability",
            "tool",
            "description",
            "tool_description",
            "parameters",
            "tags",
            "examples",
        ];
        let boosts = [3.0, 2.0, 1.5, 0.6, 0.6, 1.0, 1.2];
        let fields: Vec<_> = names.iter().map(|n| sb.add_text_field(n, opts.clone())).collect();
        let id = sb.add_u64_field("id", STORED);
        let index = tantivy::Index::create_in_ram(sb.build());
        let mut writer = index.writer(50_000_000)?;
        let split = |s: &str| text::words(s).join(" ");
        for (i, d) in docs.iter().enumerate() {
            // Parameter names and the first sentence of their descriptions, as ours indexes.
            let params = d
                .parameters
                .get("properties")
                .and_then(|p| p.as_object())
                .map(|p| {
                    p.iter()
                        .map(|(k, v)| {
                            let desc = v.get("description").and_then(|d| d.as_str()).unwrap_or("");
                            format!("{k} {}", desc.split(". ").next().unwrap_or(""))
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            let values = [
                split(&d.capability),
                split(&d.tool),
                split(&d.description),
                split(&d.tool_description),
                split(&params),
                split(&d.tags.join(" ")),
                split(&d.examples.join(" ")),
            ];
            let mut doc = doc!(id => i as u64);
            for (f, v) in fields.iter().zip(values) {
                doc.add_text(*f, v);
            }
            writer.add_document(doc)?;
        }
        writer.commit()?;
        let searcher = index.reader()?.searcher();
        let mut parser = QueryParser::for_index(&index, fields.clone());
        for (f, b) in fields.iter().zip(boosts) {
            parser.set_field_boost(*f, b);
        }
        Ok(Tantivy { searcher, parser, id })
    }

    /// The best raw score and the ranked document numbers (top `limit`).
    fn rank(&self, query: &str, limit: usize) -> Res<(Option<f32>, Vec<usize>)> {
        let words: Vec<String> = text::words(query)
            .into_iter()
            .filter(|w| !text::is_stop_word(w))
            .collect();
        let (q, _) = self.parser.parse_query_lenient(&words.join(" "));
        let hits = self
            .searcher
            .search(&q, &TopDocs::with_limit(limit).order_by_score())?;
        let mut ranked = Vec::with_capacity(hits.len());
        for (_, addr) in &hits {
            let d: TantivyDocument = self.searcher.doc(*addr)?;
            ranked.push(d.get_first(self.id).and_then(|v| v.as_u64()).unwrap_or(0) as usize);
        }
        Ok((hits.first().map(|h| h.0), ranked))
    }
}

/// p50 and p95 of `f` over `qs`, after a warm-up over the first 200.
fn time<F: FnMut(&str)>(qs: &[String], mut f: F) -> (Duration, Duration) {
    for q in qs.iter().take(200) {
        f(q);
    }
    let mut v: Vec<Duration> = qs
        .iter()
        .map(|q| {
            let t = Instant::now();
            f(q);
            t.elapsed()
        })
        .collect();
    v.sort();
    (v[v.len() / 2], v[v.len() * 95 / 100])
}

/// The gap decision with a raw-score threshold: (cases right, gap precision, gap recall,
/// servable answered right ÷ servable).
fn with_threshold(
    cases: &[EvalCase],
    tops: &[(Option<f32>, Vec<usize>)],
    is: &dyn Fn(usize, &Expected) -> bool,
    t: f32,
) -> (usize, f64, f64, f64) {
    let (mut right, mut called, mut called_right, mut real, mut answered, mut servable) = (0, 0, 0, 0, 0, 0);
    for (c, (top, ranked)) in cases.iter().zip(tops) {
        let gap = top.is_none_or(|s| s < t);
        called += usize::from(gap);
        match &c.expected {
            None => {
                real += 1;
                right += usize::from(gap);
                called_right += usize::from(gap);
            }
            Some(e) => {
                servable += 1;
                let ok = !gap && ranked.first().is_some_and(|d| is(*d, e));
                right += usize::from(ok);
                answered += usize::from(ok);
            }
        }
    }
    let p = if called == 0 {
        1.0
    } else {
        called_right as f64 / called as f64
    };
    (
        right,
        p,
        called_right as f64 / real.max(1) as f64,
        answered as f64 / servable.max(1) as f64,
    )
}

fn catalogue_eval(dir: PathBuf, file: &str, threshold: Option<f32>) -> Res<()> {
    let cases = parse_cases(&std::fs::read_to_string(file)?)?;
    let cat = Catalogue::load(&SourceConfig {
        catalogue_dirs: vec![dir],
        ..SourceConfig::default()
    });
    let (ours, _) = cat.index();
    let docs = ours.docs();
    let tv = Tantivy::build(docs)?;

    let tops: Vec<(Option<f32>, Vec<usize>)> =
        cases.iter().map(|c| tv.rank(&c.query, 10)).collect::<Res<_>>()?;
    let is = |doc: usize, e: &Expected| {
        docs[doc].tool == e.tool && e.capability.as_ref().is_none_or(|c| &docs[doc].capability == c)
    };
    let (mut r1, mut r5, mut rr, mut n) = (0.0, 0.0, 0.0, 0.0);
    for (c, (_, ranked)) in cases.iter().zip(&tops) {
        if let Some(e) = &c.expected {
            n += 1.0;
            if let Some(k) = ranked.iter().position(|d| is(*d, e)) {
                r1 += f64::from(u8::from(k == 0));
                r5 += f64::from(u8::from(k < 5));
                rr += 1.0 / (k + 1) as f64;
            }
        }
    }
    // The best raw-score threshold for the gap decision on this very file.
    let mut best = (0, 0.0f32, (0, 0.0, 0.0, 0.0));
    let mut thresholds: Vec<f32> = tops.iter().filter_map(|t| t.0).collect();
    thresholds.push(f32::MAX);
    for t in thresholds {
        let r = with_threshold(&cases, &tops, &is, t);
        if r.0 > best.0 {
            best = (r.0, t, r);
        }
    }
    println!(
        "{file}: {} capabilities, {} cases ({} servable)",
        docs.len(),
        cases.len(),
        n
    );
    println!(
        "tantivy: r@1 {:.3} r@5 {:.3} mrr {:.3}; threshold calibrated on this file {:.2}: gap p {:.3} r {:.3}, answered right {:.3} ({} of {} cases right)",
        r1 / n,
        r5 / n,
        rr / n,
        best.1,
        best.2.1,
        best.2.2,
        best.2.3,
        best.0,
        cases.len()
    );
    if let Some(t) = threshold {
        let r = with_threshold(&cases, &tops, &is, t);
        println!(
            "tantivy: given threshold {t:.2}: gap p {:.3} r {:.3}, answered right {:.3} ({} of {} cases right)",
            r.1,
            r.2,
            r.3,
            r.0,
            cases.len()
        );
    }
    let rule = GapRule::default();
    // Hybrid: tantivy's ranking, our gap rule (normalised score and coverage of tantivy's top
    // capability, as our index scores it), which needs no raw threshold.
    let (mut h_right, mut h_called, mut h_called_right, mut h_answered) = (0usize, 0usize, 0usize, 0usize);
    for (c, (_, ranked)) in cases.iter().zip(&tops) {
        let all = ours.search(&c.query, ours.len(), &rule);
        let confident = ranked.first().is_some_and(|d| {
            all.hits
                .iter()
                .find(|h| h.doc == *d)
                .is_some_and(|h| rule.accepts(h.normalized, h.coverage))
        });
        h_called += usize::from(!confident);
        match &c.expected {
            None => {
                h_right += usize::from(!confident);
                h_called_right += usize::from(!confident);
            }
            Some(e) => {
                let ok = confident && ranked.first().is_some_and(|d| is(*d, e));
                h_right += usize::from(ok);
                h_answered += usize::from(ok);
            }
        }
    }
    let unservable = cases.len() as f64 - n;
    println!(
        "tantivy ranking + our default rule: gap p {:.3} r {:.3}, answered right {:.3} ({} of {} cases right)",
        h_called_right as f64 / h_called.max(1) as f64,
        h_called_right as f64 / unservable.max(1.0),
        h_answered as f64 / n,
        h_right,
        cases.len()
    );
    // Control: our ranking with a raw-score threshold like tantivy's (calibrated on this file,
    // or the given one), to tell the engine from the kind of gap rule.
    let ours_tops: Vec<(Option<f32>, Vec<usize>)> = cases
        .iter()
        .map(|c| {
            let r = ours.search(&c.query, 10, &rule);
            (
                r.hits.first().map(|h| h.score),
                r.hits.iter().map(|h| h.doc).collect(),
            )
        })
        .collect();
    let mut ours_best = (0, 0.0f32, (0, 0.0, 0.0, 0.0));
    let mut ts: Vec<f32> = ours_tops.iter().filter_map(|t| t.0).collect();
    ts.push(f32::MAX);
    for t in ts {
        let r = with_threshold(&cases, &ours_tops, &is, t);
        if r.0 > ours_best.0 {
            ours_best = (r.0, t, r);
        }
    }
    println!(
        "ours with a raw-score threshold calibrated on this file {:.2}: gap p {:.3} r {:.3}, answered right {:.3} ({} of {} cases right)",
        ours_best.1,
        ours_best.2.1,
        ours_best.2.2,
        ours_best.2.3,
        ours_best.0,
        cases.len()
    );
    if let Some(t) = std::env::var("OURS_THRESHOLD")
        .ok()
        .and_then(|t| t.parse::<f32>().ok())
    {
        let r = with_threshold(&cases, &ours_tops, &is, t);
        println!(
            "ours with the given raw-score threshold {t:.2}: gap p {:.3} r {:.3}, answered right {:.3} ({} of {} cases right)",
            r.1,
            r.2,
            r.3,
            r.0,
            cases.len()
        );
    }
    let report = evaluate(&ours, &cases, &rule);
    let ours_right = report.answered_correctly * n + report.gap_recall * unservable;
    println!(
        "ours (BM25F, default rule): r@1 {:.3} r@5 {:.3} mrr {:.3} gap p {:.3} r {:.3} answered right {:.3} ({:.0} of {} cases right)",
        report.recall_at_1,
        report.recall_at_5,
        report.mrr,
        report.gap_precision,
        report.gap_recall,
        report.answered_correctly,
        ours_right,
        cases.len()
    );

    let qs: Vec<String> = cases.iter().map(|c| c.query.clone()).collect();
    // Repeat the few queries so the percentiles have enough samples.
    let qs: Vec<String> = qs.iter().cycle().take(qs.len() * 20).cloned().collect();
    let (t50, t95) = time(&qs, |q| {
        black_box(tv.rank(q, 5).ok());
    });
    let (s50, s95) = time(&qs, |q| {
        black_box(ours.search(q, 5, &rule));
    });
    let (r50, r95) = time(&qs, |q| {
        black_box(resolve(&ours, q, 5, &rule));
    });
    println!("latency over {} queries (the file's, repeated):", qs.len());
    println!("  tantivy top 5 (parse + search + stored ids)  p50 {t50:>9.1?}  p95 {t95:>9.1?}");
    println!("  ours Index::search (rank + gap)              p50 {s50:>9.1?}  p95 {s95:>9.1?}");
    println!("  ours resolve (rank + gap + arguments)        p50 {r50:>9.1?}  p95 {r95:>9.1?}");
    Ok(())
}

fn synthetic_bench() -> Res<()> {
    let mut rng = synthetic::Rng(0x5157_0b0e_d15c_0fe7);
    let docs = synthetic::documents(&mut rng);
    let qs = synthetic::queries(&mut rng);
    let t = Instant::now();
    let tv = Tantivy::build(&docs)?;
    let tv_build = t.elapsed();
    let t = Instant::now();
    let ours = Index::build(docs);
    let ours_build = t.elapsed();
    let rule = GapRule::default();
    let (t50, t95) = time(&qs, |q| {
        black_box(tv.rank(q, 5).ok());
    });
    let (s50, s95) = time(&qs, |q| {
        black_box(ours.search(q, 5, &rule));
    });
    let (r50, r95) = time(&qs, |q| {
        black_box(resolve(&ours, q, 5, &rule));
    });
    println!(
        "synthetic: {} capabilities, {} queries; build: tantivy {tv_build:.1?}, ours {ours_build:.1?}",
        synthetic::CAPABILITIES,
        synthetic::QUERIES
    );
    println!("  tantivy top 5 (parse + search + stored ids)  p50 {t50:>9.1?}  p95 {t95:>9.1?}");
    println!("  ours Index::search (rank + gap)              p50 {s50:>9.1?}  p95 {s95:>9.1?}");
    println!("  ours resolve (rank + gap + arguments)        p50 {r50:>9.1?}  p95 {r95:>9.1?}");
    Ok(())
}

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: tantivy_eval DIR FILE.jsonl [THRESHOLD] | tantivy_eval --synthetic";
    let first = args.next().ok_or(usage)?;
    if first == "--synthetic" {
        return synthetic_bench();
    }
    let file = args.next().ok_or(usage)?;
    let threshold = args.next().map(|t| t.parse::<f32>()).transpose()?;
    catalogue_eval(first.into(), &file, threshold)
}
