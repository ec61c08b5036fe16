//! Lists every capability of a catalogue directory (for writing evaluation sets), with the
//! time it took to load: `cargo run -p slovo-discovery --example catalogue -- DIR`.

use std::path::PathBuf;
use std::time::Instant;

use slovo_discovery::sources::{Catalogue, SourceConfig};

fn main() {
    let dir: PathBuf = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "../shared/corpus/openapi/directory-sample".into())
        .into();
    let start = Instant::now();
    let cat = Catalogue::load(&SourceConfig {
        catalogue_dirs: vec![dir],
        ..SourceConfig::default()
    });
    let (index, _) = cat.index();
    eprintln!(
        "{} candidates, {} capabilities, {} problems, loaded in {:?}",
        cat.candidates.len(),
        index.len(),
        cat.problems.len(),
        start.elapsed()
    );
    for p in &cat.problems {
        eprintln!("problem: {p}");
    }
    for d in index.docs() {
        let desc: String = d.description.chars().take(90).collect();
        println!(
            "{}\t{}\t{}\t{}",
            d.tool,
            d.capability,
            desc.replace('\n', " "),
            d.examples.first().cloned().unwrap_or_default()
        );
    }
}
