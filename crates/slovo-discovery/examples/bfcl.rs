//! BFCL live evaluation with the embeddings of every text kept in a file between runs, for
//! tuning the fusion and the embedded text quickly:
//! `cargo run --release -p slovo-discovery --example bfcl -- BFCL_DIR MODEL_DIR VECTORS.json [fit]`
//! (`slovo discover eval --bfcl` gives the same figures without the vector file).

use std::collections::HashMap;
use std::path::PathBuf;

use slovo_discovery::Ranker;
use slovo_discovery::embed::LocalModel;
use slovo_discovery::measure::{Embed, evaluate_live};

struct Cached {
    model: LocalModel,
    file: PathBuf,
}

impl Embed for Cached {
    fn model_id(&self) -> String {
        self.model.id().to_string()
    }
    fn embed_texts(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        let mut cache: HashMap<String, Vec<f32>> = std::fs::read(&self.file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let missing: Vec<String> = texts
            .iter()
            .filter(|t| !cache.contains_key(*t))
            .cloned()
            .collect();
        eprintln!("{} texts, {} to embed", texts.len(), missing.len());
        if !missing.is_empty() {
            let vs = self.model.embed(&missing).map_err(|e| e.to_string())?;
            cache.extend(missing.into_iter().zip(vs));
            std::fs::write(&self.file, serde_json::to_vec(&cache).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
        Ok(texts.iter().map(|t| cache[t].clone()).collect())
    }
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, model, file, rest @ ..] = &args[..] else {
        return Err("usage: bfcl BFCL_DIR MODEL_DIR VECTORS.json [fit]".into());
    };
    let sets = slovo_discovery::bfcl::load_live(dir.as_ref()).map_err(|e| e.to_string())?;
    let model = LocalModel::load(model.as_ref()).map_err(|e| e.to_string())?;
    let cached = Cached {
        model,
        file: file.into(),
    };
    if let (Some("embed"), Some(lines)) = (rest.first().map(String::as_str), rest.get(1)) {
        let text = std::fs::read_to_string(lines).map_err(|e| e.to_string())?;
        let texts: Vec<String> = text.lines().map(str::to_string).collect();
        for chunk in texts.chunks(256) {
            let t = std::time::Instant::now();
            cached.embed_texts(chunk)?;
            eprintln!("{} in {:?}", chunk.len(), t.elapsed());
        }
        return Ok(());
    }
    if rest.first().map(String::as_str) == Some("dump") {
        // Development cases only: what the gap features are studied on.
        let mixed: Vec<_> = sets
            .multiple
            .iter()
            .chain(&sets.irrelevance)
            .filter(|c| !c.held_out())
            .cloned()
            .collect();
        let texts = slovo_discovery::measure::texts_to_embed(&mixed);
        let vs = cached.embed_texts(&texts)?;
        let vectors: HashMap<String, Vec<f32>> = texts.into_iter().zip(vs).collect();
        let outcomes = slovo_discovery::measure::run(
            &mixed,
            &vectors,
            Ranker::Weighted,
            &slovo_discovery::GapRule::default(),
            &slovo_discovery::GapModel::default(),
        );
        for (c, o) in mixed.iter().zip(outcomes) {
            let index = slovo_discovery::Index::build(c.docs.clone());
            let sem: Vec<Vec<f32>> = c.docs.iter().map(|d| vectors[&slovo_discovery::hybrid::embedding_text(d)].clone()).collect();
            let si = slovo_discovery::SemanticIndex::new(&index, sem).map_err(|e| e.to_string())?;
            let r = slovo_discovery::resolve_with(&index, Some(slovo_discovery::Semantic { index: &si, query: &vectors[&c.query] }), &c.query, 1, Ranker::Weighted, &slovo_discovery::GapRule::default(), &slovo_discovery::GapModel::default());
            let top = r.candidates.first().map(|t| serde_json::json!({"name": t.capability, "filled": t.arguments.len(), "missing": t.missing.len(), "required": c.docs[t.doc].parameters.get("required").and_then(|v| v.as_array()).map_or(0, |a| a.len()), "props": c.docs[t.doc].parameters.get("properties").and_then(|v| v.as_object()).map_or(0, |a| a.len())}));
            let line = serde_json::json!({"id": c.id, "top": top, "query": c.query, "servable": o.servable,
                "rank": o.rank, "evidence": o.evidence, "n": c.docs.len(),
                "docs": c.docs.iter().map(|d| serde_json::json!({"name": d.capability, "text": slovo_discovery::hybrid::embedding_text(d), "parameters": d.parameters})).collect::<Vec<_>>()});
            println!("{line}");
        }
        return Ok(());
    }
    let fit = rest.first().map(|_| Ranker::Weighted);
    let report = evaluate_live(&sets, Some(&cached), fit)?;
    println!("{} fitted={}", report.gap_model, report.fitted);
    for r in &report.rankers {
        for (part, f) in [("dev", &r.dev), ("held-out", &r.held_out)] {
            println!(
                "{:9} {:8} n={:4} r@1 {:.3} r@5 {:.3} mrr {:.3} | gap acc {:.3} (never {:.3}) p {:.3} r {:.3} false-gap {:.3} | relevance false-gap {:.3}",
                r.ranker.as_str(),
                part,
                f.cases,
                f.recall_at_1,
                f.recall_at_5,
                f.mrr,
                f.gap_accuracy,
                f.never_gap_accuracy,
                f.gap_precision,
                f.gap_recall,
                f.false_gap_rate,
                r.relevance_false_gap_rate
            );
        }
    }
    Ok(())
}
