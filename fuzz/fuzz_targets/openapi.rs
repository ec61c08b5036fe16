//! The OpenAPI ingester on arbitrary bytes (JSON or YAML, any version), with limits that keep
//! one input well under a second: a 64 KiB document, split into tools of at most 50 operations
//! (which exercises the split by tag and by path prefix). References to
//! other documents cannot be followed from memory (and remote ones are refused by default), so
//! nothing is read from the file system or the network.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slovo_openapi::{IngestOptions, Source, ingest};

const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_DOCUMENT_BYTES {
        return;
    }
    let options = IngestOptions {
        max_document_bytes: MAX_DOCUMENT_BYTES,
        max_operations: 50,
        ..IngestOptions::default()
    };
    let source = Source::from_bytes("api.yaml", data.to_vec());
    let Ok(ingested) = ingest(&source, &options) else {
        return;
    };
    // Each proposal is stored as a manifest like any other: its canonical form must parse.
    for manifest in ingested.manifests {
        let text = serde_json::to_vec(&manifest.to_canonical()).expect("a JSON value serialises");
        if let Err(e) = slovo_core::parse_manifest("proposal.json", &text) {
            panic!("the ingester proposed a manifest the parser refuses: {e}");
        }
    }
});
