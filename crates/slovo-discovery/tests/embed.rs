//! The in-process embedding model against reference vectors computed independently (a numpy
//! forward pass: `tests/reference_embeddings.py`). Needs the model that
//! `scripts/ci-discovery-setup.sh` unpacks; fails without it when `CI` is set, skips otherwise.

use std::path::PathBuf;

use slovo_discovery::embed::{LocalModel, cosine};

fn model_dir() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let dir = cache.join("slovo-test/models/all-MiniLM-L6-v2");
    if dir.join("model.safetensors").exists() {
        return Some(dir);
    }
    let why = format!("{} is missing: run scripts/ci-discovery-setup.sh", dir.display());
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("skipped: {why}");
    None
}

const SENTENCES: [&str; 4] = [
    "book me a table for two tonight",
    "restaurant reservations",
    "current air quality index for a city",
    "delete a file from the repository",
];

/// First eight components of each sentence's vector, from `tests/reference_embeddings.py`.
const REFERENCE_HEADS: [[f32; 8]; 4] = [
    [
        0.03817, -0.03237, -0.02548, 0.01257, -0.03685, 0.00611, 0.08347, 0.02187,
    ],
    [
        0.06787, 0.00351, -0.02113, 0.02426, -0.09306, 0.04587, 0.094, -0.08726,
    ],
    [
        0.10312, -0.02533, 0.06971, 0.08386, 0.07035, -0.0109, 0.00519, -0.04497,
    ],
    [
        -0.06496, 0.04693, -0.08349, -0.02489, 0.01872, -0.05709, 0.08848, -0.03782,
    ],
];

/// Pairwise cosines (i, j, cosine), from the same script.
const REFERENCE_COSINES: [(usize, usize, f32); 6] = [
    (0, 1, 0.26603),
    (0, 2, -0.00824),
    (0, 3, -0.07938),
    (1, 2, 0.0135),
    (1, 3, -0.05453),
    (2, 3, -0.07101),
];

#[test]
fn vectors_match_an_independent_forward_pass() {
    let Some(dir) = model_dir() else { return };
    let model = LocalModel::load(&dir).unwrap();
    assert!(model.id().starts_with("all-MiniLM-L6-v2@"), "{}", model.id());
    let texts: Vec<String> = SENTENCES.iter().map(|s| s.to_string()).collect();
    // One batch: the shorter sentences are padded to the longest, which must change nothing.
    let vectors = model.embed(&texts).unwrap();
    assert_eq!(vectors.len(), 4);
    for (v, reference) in vectors.iter().zip(REFERENCE_HEADS) {
        assert_eq!(v.len(), 384);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "not normalised: {norm}");
        for (got, want) in v.iter().zip(reference) {
            assert!((got - want).abs() < 2e-4, "{:?} vs {reference:?}", &v[..8]);
        }
    }
    for (i, j, want) in REFERENCE_COSINES {
        let got = cosine(&vectors[i], &vectors[j]);
        assert!(
            (got - want).abs() < 2e-4,
            "cosine({i},{j}) = {got}, reference {want}"
        );
    }
    // Alone, without padding, a sentence gets the same vector as in the batch.
    let alone = model.embed(&texts[1..2]).unwrap();
    assert!(cosine(&alone[0], &vectors[1]) > 0.99999);
}

#[test]
fn a_directory_that_is_not_a_model_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let err = LocalModel::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("model.safetensors"), "{err}");
}
