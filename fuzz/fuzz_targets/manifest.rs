//! The manifest parser (both syntaxes, both dialects) on arbitrary bytes.
//!
//! Each input is read three times, as `slovo tool import` would read it from a `.yaml` file, a
//! `.json` file and standard input (where a leading `{` means JSON). Whatever parses must have
//! a canonical form that parses again to the same canonical form: that is what is stored and
//! shown for a tool version.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slovo_core::parse_manifest;

fuzz_target!(|data: &[u8]| {
    for name in ["tool.yaml", "tool.json", "-"] {
        let Ok(manifest) = parse_manifest(name, data) else {
            continue;
        };
        let canonical = manifest.to_canonical();
        let text = serde_json::to_vec(&canonical).expect("a JSON value serialises");
        let again = parse_manifest("canonical.json", &text)
            .unwrap_or_else(|e| panic!("the canonical form of a valid manifest is refused: {e}"));
        assert_eq!(
            again.to_canonical(),
            canonical,
            "the canonical form is not stable"
        );
    }
});
