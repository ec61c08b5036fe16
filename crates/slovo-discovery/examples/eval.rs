//! Runs an evaluation set against a catalogue directory and calibrates the gap rule:
//! `cargo run -p slovo-discovery --example eval -- DIR FILE.jsonl` (the same figures as
//! `slovo discover eval`).

use std::path::PathBuf;

use slovo_discovery::GapRule;
use slovo_discovery::eval::{calibrate, evaluate, parse_cases};
use slovo_discovery::sources::{Catalogue, SourceConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir: PathBuf = args.next().ok_or("usage: eval DIR FILE.jsonl")?.into();
    let file = args.next().ok_or("usage: eval DIR FILE.jsonl")?;
    let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
    let cases = parse_cases(&text)?;
    let cat = Catalogue::load(&SourceConfig {
        catalogue_dirs: vec![dir],
        ..SourceConfig::default()
    });
    let (index, _) = cat.index();
    let report = evaluate(&index, &cases, &GapRule::default());
    println!(
        "{}",
        serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
    );
    let tuned = calibrate(&index, &cases);
    let t = evaluate(&index, &cases, &tuned);
    println!(
        "calibrated {:?}: r@1 {:.3} r@5 {:.3} mrr {:.3} gap p {:.3} r {:.3} answered {:.3}",
        tuned, t.recall_at_1, t.recall_at_5, t.mrr, t.gap_precision, t.gap_recall, t.answered_correctly
    );
    Ok(())
}
