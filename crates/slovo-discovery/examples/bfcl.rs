//! BFCL live evaluation with the embeddings of every text kept in a file between runs, for
//! tuning the fusion and the embedded text quickly:
//! `cargo run --release -p slovo-discovery --example bfcl -- BFCL_DIR MODEL_DIR VECTORS.json [fit]`;
//! `… VECTORS.json dump` prints one JSON line per *development* case (what the gap model saw,
//! the best candidate, the offered functions) for studying gap features without touching the
//! held-out part; `… VECTORS.json fit-source` fits the gap model on the development part only
//! and prints it as the source of `gap/committed.rs`; `… VECTORS.json cv` cross-validates
//! the gap model's fits and decision thresholds on the development part only (5 folds, three
//! shuffles); `… VECTORS.json embed LINES.txt` adds the vectors of arbitrary texts to the file.
//! (`slovo discover eval --bfcl` gives the same figures without the vector file).

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::json;
use slovo_discovery::bfcl::LiveSets;
use slovo_discovery::embed::LocalModel;
use slovo_discovery::hybrid::embedding_text;
use slovo_discovery::measure::{Embed, Outcome, evaluate_live, fit_gap_model, run, texts_to_embed};
use slovo_discovery::{GapModel, GapRule, Index, Ranker, Semantic, SemanticIndex, resolve_with};

struct Cached {
    model: LocalModel,
    file: PathBuf,
}

impl Embed for Cached {
    fn model_id(&self) -> String {
        self.model.id().to_string()
    }
    fn embed_texts(
        &self,
        texts: &[String],
    ) -> Result<Vec<Vec<f32>>, slovo_discovery::measure::EmbeddingFailed> {
        self.embed_cached(texts)
            .map_err(slovo_discovery::measure::EmbeddingFailed::new)
    }
}

impl Cached {
    fn embed_cached(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, model, file, rest @ ..] = &args[..] else {
        return Err(
            "usage: bfcl BFCL_DIR MODEL_DIR VECTORS.json [fit | fit-source | cv | dump | embed LINES.txt]"
                .into(),
        );
    };
    let sets = slovo_discovery::bfcl::load_live(dir.as_ref()).map_err(|e| e.to_string())?;
    let model = LocalModel::load(model.as_ref()).map_err(|e| e.to_string())?;
    let cached = Cached {
        model,
        file: file.into(),
    };
    match (rest.first().map(String::as_str), rest.get(1)) {
        (Some("embed"), Some(lines)) => return embed_lines(&cached, lines),
        (Some("dump"), _) => return dump_development_cases(&sets, &cached),
        (Some("fit-source"), _) => return print_development_fit(&sets, &cached),
        (Some("cv"), _) => return print_cross_validation(&sets, &cached),
        _ => {}
    }
    let fit = rest.first().map(|_| Ranker::Weighted);
    let report = evaluate_live(&sets, Some(&cached), fit)?;
    println!("{} fitted={}", report.gap_model, report.fitted);
    for r in &report.rankers {
        for (part, f) in [("dev", &r.dev), ("held-out", &r.held_out)] {
            println!(
                "{:9} {:8} n={:4} r@1 {:.3} r@5 {:.3} mrr {:.3} | gap acc {:.3} (never {:.3}) p {:.3} r {:.3} false-gap {:.3} | relevance false-gap {:.3} ({:.0} of {})",
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
                r.relevance_false_gap_rate,
                r.relevance_false_gap_rate * r.relevance_cases as f64,
                r.relevance_cases
            );
        }
    }
    Ok(())
}

/// Embeds every line of `lines` into the vector file, in chunks, saying how long each took.
fn embed_lines(cached: &Cached, lines: &str) -> Result<(), Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(lines).map_err(|e| e.to_string())?;
    let texts: Vec<String> = text.lines().map(str::to_string).collect();
    for chunk in texts.chunks(256) {
        let t = std::time::Instant::now();
        cached.embed_texts(chunk)?;
        eprintln!("{} in {:?}", chunk.len(), t.elapsed());
    }
    Ok(())
}

/// One JSON line per development case of live multiple + live irrelevance: the gap model's
/// evidence, the best candidate (with the arguments the filler found and the ones missing)
/// and the offered functions. Held-out cases are never printed.
fn dump_development_cases(sets: &LiveSets, cached: &Cached) -> Result<(), Box<dyn std::error::Error>> {
    let Development {
        cases: dev,
        vectors,
        outcomes,
    } = Development::rank(sets, cached)?;
    let (rule, gap) = (GapRule::default(), GapModel::default());
    for (c, o) in dev.iter().zip(outcomes) {
        let index = Index::build(c.docs.clone());
        let doc_vectors = c
            .docs
            .iter()
            .map(|d| vectors[&embedding_text(d)].clone())
            .collect();
        let semantic = SemanticIndex::new(&index, doc_vectors).map_err(|e| e.to_string())?;
        let query = Semantic {
            index: &semantic,
            query: &vectors[&c.query],
        };
        let r = resolve_with(&index, Some(query), &c.query, 1, Ranker::Weighted, &rule, &gap);
        let top = r
            .candidates
            .first()
            .map(|t| json!({"name": t.capability, "filled": t.arguments.len(), "missing": t.missing.len()}));
        // Every document's lexical figures, so that a fitting script can re-rank with other
        // embedded texts without re-running the lexical index.
        let loose = GapRule {
            min_normalized: 0.0,
            min_coverage: 0.0,
        };
        let mut lexical = vec![(0.0f32, 0.0f32); c.docs.len()];
        for h in index.search(&c.query, index.len(), &loose).hits {
            lexical[h.doc] = (h.normalized, h.coverage);
        }
        let docs: Vec<_> = c
            .docs
            .iter()
            .zip(&lexical)
            .map(|(d, (normalized, coverage))| {
                json!({"name": d.capability, "text": embedding_text(d), "description": d.description,
                    "parameters": d.parameters, "normalized": normalized, "coverage": coverage})
            })
            .collect();
        let line = json!({"id": c.id, "query": c.query, "servable": o.servable, "rank": o.rank,
            "evidence": o.evidence, "top": top, "n": c.docs.len(), "docs": docs});
        println!("{line}");
    }
    Ok(())
}

/// Fits the gap model on the development cases of live multiple + live irrelevance only and
/// prints it as Rust source; nothing of the held-out part is ranked or printed.
fn print_development_fit(sets: &LiveSets, cached: &Cached) -> Result<(), Box<dyn std::error::Error>> {
    let outcomes = Development::rank(sets, cached)?.outcomes;
    let model = fit_gap_model(&outcomes);
    let right = outcomes
        .iter()
        .filter(|o| model.accepts(&o.evidence) == o.servable)
        .count();
    eprintln!("development accuracy of the fit: {right} / {}", outcomes.len());
    // What the LLM judge would see: decisions within 0.2 of one half (the runtime's band).
    let (near, far): (Vec<_>, Vec<_>) = outcomes
        .iter()
        .partition(|o| (model.p_served(&o.evidence) - 0.5).abs() <= 0.2);
    let right_in = |part: &[&Outcome]| {
        part.iter()
            .filter(|o| model.accepts(&o.evidence) == o.servable)
            .count()
    };
    eprintln!(
        "borderline: {} decisions, {} right; elsewhere {} decisions, {} right",
        near.len(),
        right_in(&near),
        far.len(),
        right_in(&far)
    );
    print!("{}", model.to_source());
    Ok(())
}

/// The development cases of live multiple + live irrelevance, ranked with the weighted fusion
/// (what the gap model is fitted on); the held-out part is never ranked.
struct Development {
    cases: Vec<slovo_discovery::bfcl::CatalogueCase>,
    vectors: HashMap<String, Vec<f32>>,
    outcomes: Vec<Outcome>,
}

impl Development {
    fn rank(sets: &LiveSets, cached: &Cached) -> Result<Development, Box<dyn std::error::Error>> {
        let cases: Vec<_> = sets
            .multiple
            .iter()
            .chain(&sets.irrelevance)
            .filter(|c| !c.held_out())
            .cloned()
            .collect();
        let texts = texts_to_embed(&cases);
        let vectors: HashMap<String, Vec<f32>> =
            texts.iter().cloned().zip(cached.embed_texts(&texts)?).collect();
        // The gap model decides nothing here: the evidence of the best candidate is the same
        // whichever model judges it.
        let outcomes = run(
            &cases,
            &vectors,
            Ranker::Weighted,
            &GapRule::default(),
            &GapModel::default(),
        );
        Ok(Development {
            cases,
            vectors,
            outcomes,
        })
    }
}

/// 5-fold cross-validation over three shuffles on the development part only, of the
/// unconstrained and the monotone fit (and, for comparison, other directions), with the
/// decision threshold swept: how the gap model and its threshold were chosen.
fn print_cross_validation(sets: &LiveSets, cached: &Cached) -> Result<(), Box<dyn std::error::Error>> {
    use slovo_discovery::gap::{Direction, FitSettings, INPUT_COUNT, MONOTONE, cross_validate};
    let outcomes = Development::rank(sets, cached)?.outcomes;
    let cases: Vec<(&str, slovo_discovery::GapEvidence, bool)> = outcomes
        .iter()
        .map(|o| (o.id.as_str(), o.evidence, o.servable))
        .collect();
    let servable = cases.iter().filter(|c| c.2).count();
    println!(
        "{} development cases ({servable} servable); 5 folds, 3 shuffles",
        cases.len()
    );
    let (up, free) = (Direction::Increasing, Direction::Free);
    let similarity_facts_only = [up, up, up, free, free, free];
    let variants: [(&str, [Direction; INPUT_COUNT]); 3] = [
        ("unconstrained", FitSettings::unconstrained().directions),
        ("monotone (gap::MONOTONE)", MONOTONE),
        ("similarity, score, coverage only", similarity_facts_only),
    ];
    for (name, directions) in variants {
        // Chances as fitted (decided from one half), so that the sweep reads them unmoved.
        let settings = FitSettings {
            directions,
            threshold: 0.5,
            ..FitSettings::default()
        };
        let cv = cross_validate(&cases, settings, 5, 3);
        println!("{name}");
        for step in 0..=12u8 {
            let f = cv.at(f32::from(12 + step) / 40.0);
            println!(
                "  threshold {:.3}: accuracy {:.4} ({:.4}-{:.4}) false-gap rate {:.4} gap recall {:.4}",
                f.threshold,
                f.accuracy,
                f.accuracy_range.0,
                f.accuracy_range.1,
                f.false_gap_rate,
                f.gap_recall
            );
        }
    }
    Ok(())
}
