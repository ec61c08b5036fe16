use super::*;

fn evidence(similarity: f32, query_words: usize) -> GapEvidence {
    GapEvidence {
        similarity,
        normalized: 0.0,
        coverage: 0.0,
        query_words,
        required_parameters: 1,
        parameters: 2,
    }
}

#[test]
fn a_tree_routes_by_its_thresholds() {
    let tree = Tree {
        inputs: [0, 3, 1],
        thresholds: [0.5, 4.0, 0.2],
        leaves: [1.0, 2.0, 3.0, 4.0],
    };
    let at = |similarity: f32, query_words: usize, normalized: f32| {
        let mut e = evidence(similarity, query_words);
        e.normalized = normalized;
        tree.value(&e.inputs())
    };
    assert_eq!(at(0.5, 4, 0.9), 1.0, "at the threshold goes left, twice");
    assert_eq!(at(0.4, 5, 0.9), 2.0);
    assert_eq!(at(0.6, 9, 0.2), 3.0, "the right side splits on its own input");
    assert_eq!(at(0.6, 1, 0.3), 4.0);
}

#[test]
fn the_fit_separates_what_similarity_separates() {
    // Served requests have similarities 0.5–0.7, gaps 0.1–0.3; twice as many served.
    let mut examples = Vec::new();
    for i in 0..20 {
        let i = i as f32 * 0.01;
        examples.push((evidence(0.5 + i, 4), true));
        examples.push((evidence(0.52 + i, 4), true));
        examples.push((evidence(0.1 + i, 4), false));
    }
    let m = fit(&examples);
    for (e, served) in &examples {
        assert_eq!(m.accepts(e), *served, "{m} at {}", e.similarity);
    }
    assert!(
        m.accepts(&evidence(0.45, 4)) && !m.accepts(&evidence(0.35, 4)),
        "{m}"
    );
    assert_eq!(fit(&examples), m, "deterministic");
}

#[test]
fn the_fit_learns_a_bar_that_moves_with_the_request_length() {
    // Long requests are served from similarity 0.3 on; short ones only from 0.6.
    let mut examples = Vec::new();
    for i in 0..30 {
        let s = i as f32 / 30.0;
        examples.push((evidence(s, 12), s >= 0.3));
        examples.push((evidence(s, 1), s >= 0.6));
    }
    let m = fit(&examples);
    assert!(m.accepts(&evidence(0.45, 12)), "{m}");
    assert!(!m.accepts(&evidence(0.45, 1)), "{m}");
    assert!(m.accepts(&evidence(0.7, 1)), "{m}");
}

#[test]
fn the_committed_model_is_what_its_source_says() {
    // committed.rs is the printed fit (then formatted, so spaces and trailing commas are
    // not compared); a hand edit that breaks the printing shows here.
    let squeeze = |s: &str| {
        s.split_whitespace()
            .collect::<String>()
            .replace(",]", "]")
            .replace(",)", ")")
    };
    let source = squeeze(include_str!("committed.rs"));
    assert!(
        source.contains(&squeeze(&GapModel::default().to_source())),
        "committed.rs was edited by hand"
    );
}

#[test]
fn the_model_reads_as_its_size_and_inputs() {
    let text = GapModel::default().to_string();
    assert!(
        text.contains("boosted trees of depth 2 over similarity, normalized, coverage, query words"),
        "{text}"
    );
}

#[test]
fn the_committed_model_answers_the_clear_cases_and_doubts_the_weak_ones() {
    let m = GapModel::default();
    let clear = GapEvidence {
        similarity: 0.8,
        normalized: 1.0,
        coverage: 1.0,
        query_words: 6,
        required_parameters: 1,
        parameters: 2,
    };
    let unrelated = GapEvidence {
        similarity: 0.1,
        normalized: 0.0,
        coverage: 0.0,
        ..clear
    };
    // A request that names a capability needing three things, and gives none of them.
    let underspecified = GapEvidence {
        similarity: 0.45,
        normalized: 0.3,
        coverage: 0.3,
        query_words: 2,
        required_parameters: 3,
        parameters: 4,
    };
    assert!(m.p_served(&clear) > 0.9, "{}", m.p_served(&clear));
    assert!(m.p_served(&unrelated) < 0.1, "{}", m.p_served(&unrelated));
    assert!(!m.accepts(&underspecified), "{}", m.p_served(&underspecified));
    // Pinned: a change of the committed trees shows here.
    assert!(
        (m.p_served(&clear) - 0.9796).abs() < 1e-3,
        "{}",
        m.p_served(&clear)
    );
}
