//! The same evaluation with tantivy (BM25, `en_stem` tokenizer, the same field boosts and the
//! same identifier splitting and stop words), to compare it with the hand-written index:
//! `cargo run --release -p slovo-discovery --features tantivy --example tantivy_eval -- DIR FILE.jsonl`.
//! tantivy has no normalised score, so its gap rule is a raw-score threshold calibrated on the
//! same file (an optimistic figure for it).

use std::path::PathBuf;
use std::time::Instant;

use slovo_discovery::eval::parse_cases;
use slovo_discovery::sources::{Catalogue, SourceConfig};
use slovo_discovery::text;
use tantivy::collector::TopDocs;
use tantivy::query::QueryParser;
use tantivy::schema::{IndexRecordOption, STORED, Schema, TextFieldIndexing, TextOptions, Value};
use tantivy::{Index, TantivyDocument, doc};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir: PathBuf = args.next().ok_or("usage: tantivy_eval DIR FILE.jsonl")?.into();
    let cases = parse_cases(&std::fs::read_to_string(args.next().ok_or("usage")?)?)?;
    let cat = Catalogue::load(&SourceConfig {
        catalogue_dirs: vec![dir],
        ..SourceConfig::default()
    });
    let (ours, _) = cat.index();
    let docs = ours.docs();

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
    let index = Index::create_in_ram(sb.build());
    let mut writer = index.writer(50_000_000)?;
    let split = |s: &str| text::words(s).join(" ");
    for (i, d) in docs.iter().enumerate() {
        let params = d
            .parameters
            .get("properties")
            .and_then(|p| p.as_object())
            .map(|p| p.keys().cloned().collect::<Vec<_>>().join(" "))
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

    let mut tops: Vec<(Option<f32>, Vec<usize>)> = Vec::new();
    let mut lat = Vec::new();
    for c in &cases {
        let words: Vec<String> = text::words(&c.query)
            .into_iter()
            .filter(|w| !text::is_stop_word(w))
            .collect();
        let t = Instant::now();
        let (q, _) = parser.parse_query_lenient(&words.join(" "));
        let hits = searcher.search(&q, &TopDocs::with_limit(10).order_by_score())?;
        let mut ranked = Vec::new();
        for (_, addr) in &hits {
            let d: TantivyDocument = searcher.doc(*addr)?;
            ranked.push(d.get_first(id).and_then(|v| v.as_u64()).unwrap_or(0) as usize);
        }
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        tops.push((hits.first().map(|h| h.0), ranked));
    }
    let is = |doc: usize, e: &slovo_discovery::eval::Expected| {
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
    let mut best = (0, 0.0f32, 0.0, 0.0);
    let mut thresholds: Vec<f32> = tops.iter().filter_map(|t| t.0).collect();
    thresholds.push(f32::MAX);
    for t in thresholds {
        let (mut right, mut called, mut called_right, mut real) = (0, 0, 0, 0);
        for (c, (top, ranked)) in cases.iter().zip(&tops) {
            let gap = top.is_none_or(|s| s < t);
            called += usize::from(gap);
            match &c.expected {
                None => {
                    real += 1;
                    right += usize::from(gap);
                    called_right += usize::from(gap);
                }
                Some(e) => right += usize::from(!gap && ranked.first().is_some_and(|d| is(*d, e))),
            }
        }
        if right > best.0 {
            let p = if called == 0 {
                1.0
            } else {
                called_right as f64 / called as f64
            };
            best = (right, t, p, called_right as f64 / real.max(1) as f64);
        }
    }
    lat.sort_by(f64::total_cmp);
    println!(
        "tantivy: {} capabilities; r@1 {:.3} r@5 {:.3} mrr {:.3}; best score threshold {:.2}: gap p {:.3} r {:.3}, answered right {:.3}; query p50 {:.1} µs",
        docs.len(),
        r1 / n,
        r5 / n,
        rr / n,
        best.1,
        best.2,
        best.3,
        (best.0 as f64 - cases.iter().filter(|c| c.expected.is_none()).count() as f64 * best.3) / n,
        lat[lat.len() / 2]
    );
    Ok(())
}
