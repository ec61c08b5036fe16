//! The capability index: documents → BM25F index → ranked hits + a gap decision. Pure: no
//! I/O, no clock, no randomness.
//!
//! Each capability is one document with weighted fields (its own and its tool's names weigh
//! most, then the example requests and descriptions, then parameters). Scoring is BM25 over
//! the weighted term frequencies (a simplified BM25F, one length normalisation per document).
//! A hit is *confident* when its score is a large enough share of the best score the query
//! could reach and it covers enough of the query's (non-value) words, weighted by IDF; when no
//! hit is confident the query is a gap. Both thresholds are calibrated on the evaluation set
//! (`docs/discovery.md`).

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use slovo_core::manifest::Manifest;

use crate::text::{self, QueryTerm};

/// BM25 term-frequency saturation.
const K1: f32 = 1.2;
/// BM25 length normalisation.
const B: f32 = 0.75;

/// IDF is computed as if the collection had at least this many documents, so that a small
/// index (a handful of installed tools) scores like a large one and one calibrated gap rule
/// fits both: in a five-document index an unseen word would otherwise outweigh every match.
const MIN_COLLECTION: f32 = 1000.0;

/// Stemmed words a request may use for what capabilities call otherwise (both directions).
const SYNONYMS: &[(&str, &str)] = &[
    ("link", "url"),
    ("film", "movi"),
    ("email", "mail"),
    ("repo", "repositori"),
    ("photo", "imag"),
    ("pictur", "imag"),
    ("todo", "task"),
    ("car", "vehicl"),
];

fn synonyms<'a>(term: &'a str) -> impl Iterator<Item = &'static str> + 'a {
    SYNONYMS.iter().filter_map(move |&(a, b)| {
        if a == term {
            Some(b)
        } else if b == term {
            Some(a)
        } else {
            None
        }
    })
}

/// Field weights, in the order of [`Field`].
const WEIGHTS: [f32; 7] = [3.0, 2.0, 1.5, 0.6, 0.6, 1.0, 1.2];

/// A part of a capability document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    CapabilityName = 0,
    ToolName = 1,
    Description = 2,
    ToolDescription = 3,
    Parameters = 4,
    Tags = 5,
    Examples = 6,
}

/// One capability as the index sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Document {
    /// The tool.
    pub tool: String,
    /// The capability.
    pub capability: String,
    /// Where it stands: a tool status (`active`, `pending_approval`, …) or `catalogue`.
    pub status: String,
    /// The tool's description.
    pub tool_description: String,
    /// The capability's description.
    pub description: String,
    /// JSON Schema of the arguments (for argument filling).
    pub parameters: Value,
    /// The tool's tags.
    pub tags: Vec<String>,
    /// Requests a person might make that this capability serves.
    pub examples: Vec<String>,
    /// How an HTTP capability is reached, for planner-shaped answers ([`crate::planner`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<crate::planner::Route>,
}

impl Document {
    /// One document per capability of `manifest`, all with `status`.
    pub fn from_manifest(manifest: &Manifest, status: &str) -> Vec<Document> {
        manifest
            .capabilities
            .iter()
            .map(|c| Document {
                tool: manifest.name.clone(),
                capability: c.name.clone(),
                status: status.to_string(),
                tool_description: manifest.description.clone(),
                description: c.description.clone(),
                parameters: c.parameters.clone(),
                tags: manifest.tags.clone(),
                examples: c.examples.clone(),
                route: c
                    .method
                    .as_ref()
                    .zip(c.endpoint.as_ref())
                    .map(|(method, endpoint)| crate::planner::Route {
                        api: manifest
                            .api_requirements
                            .as_ref()
                            .map(|a| a.base_url.clone())
                            .unwrap_or_default(),
                        method: method.clone(),
                        endpoint: endpoint.clone(),
                    }),
            })
            .collect()
    }

    fn fields(&self) -> [(Field, String); 7] {
        let mut params = String::new();
        if let Some(props) = self.parameters.get("properties").and_then(Value::as_object) {
            for (name, schema) in props {
                params.push_str(name);
                params.push(' ');
                if let Some(d) = schema.get("description").and_then(Value::as_str) {
                    // Long parameter prose drowns the signal; its first sentence is enough.
                    params.push_str(d.split(". ").next().unwrap_or(d));
                    params.push(' ');
                }
            }
        }
        [
            (Field::CapabilityName, self.capability.clone()),
            (Field::ToolName, self.tool.clone()),
            (Field::Description, truncate(&self.description, 600)),
            (Field::ToolDescription, truncate(&self.tool_description, 300)),
            (Field::Parameters, params),
            (Field::Tags, self.tags.join(" ")),
            (Field::Examples, self.examples.join(" . ")),
        ]
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

/// When a hit is good enough to use, and when nothing is (a gap).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GapRule {
    /// Least normalised score (score / the best score this query could reach), 0–1.
    pub min_normalized: f32,
    /// Least IDF-weighted share of the query's non-value words the capability contains, 0–1.
    pub min_coverage: f32,
}

impl Default for GapRule {
    /// Calibrated on `eval/dev.jsonl` over the APIs.guru sample; see `docs/discovery.md`.
    fn default() -> Self {
        GapRule {
            min_normalized: 0.275,
            min_coverage: 0.35,
        }
    }
}

impl GapRule {
    /// Whether a hit with these figures is good enough.
    pub fn accepts(&self, normalized: f32, coverage: f32) -> bool {
        normalized >= self.min_normalized && coverage >= self.min_coverage
    }
}

/// One ranked capability.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// Index of the document (as given to [`Index::build`]).
    pub doc: usize,
    /// Raw BM25F score.
    pub score: f32,
    /// Score / best reachable score for the query (0–1).
    pub normalized: f32,
    /// IDF-weighted share of the query's non-value words found (0–1).
    pub coverage: f32,
    /// Cosine similarity of the capability's and the request's embeddings, when ranked by
    /// meaning too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
    /// Whether the gap rule accepts it.
    pub confident: bool,
}

/// The ranked hits for a query, and whether it is a gap.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranking {
    /// Best first; at most the `limit` asked for.
    pub hits: Vec<Hit>,
    /// The best hit is not confident (or there is none).
    pub gap: bool,
    /// Why it is a gap, for a person.
    pub gap_reason: Option<String>,
    /// For a ranking by meaning: the gap model's estimated chance that the best hit serves the
    /// request (the gap decision is this ≥ ½). `None` for the lexical rule.
    pub served_chance: Option<f32>,
}

struct Posting {
    doc: u32,
    /// Weighted term frequency.
    wtf: f32,
}

/// An inverted index over capability documents.
pub struct Index {
    docs: Vec<Document>,
    /// What each document needs and produces, for planner-shaped answers.
    planner: Vec<crate::planner::Facts>,
    terms: HashMap<String, u32>,
    postings: Vec<Vec<Posting>>,
    /// Per document: length normalisation `1 - b + b * len / avg_len`, times K1.
    norms: Vec<f32>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("docs", &self.docs.len())
            .field("terms", &self.terms.len())
            .finish()
    }
}

impl Index {
    /// Indexes `docs`.
    pub fn build(docs: Vec<Document>) -> Index {
        Index::build_with_weights(docs, WEIGHTS)
    }

    /// Indexes `docs` with every field weighing the same: plain BM25 over the concatenated
    /// text, the baseline the field weights are measured against.
    pub fn build_unweighted(docs: Vec<Document>) -> Index {
        Index::build_with_weights(docs, [1.0; 7])
    }

    fn build_with_weights(docs: Vec<Document>, weights: [f32; 7]) -> Index {
        let mut terms: HashMap<String, u32> = HashMap::new();
        let mut postings: Vec<Vec<Posting>> = Vec::new();
        let mut lengths = Vec::with_capacity(docs.len());
        for (d, doc) in docs.iter().enumerate() {
            let mut tf: HashMap<u32, f32> = HashMap::new();
            let mut len = 0.0;
            for (field, text) in doc.fields() {
                let w = weights[field as usize];
                for t in text::terms(&text) {
                    let next = terms.len() as u32;
                    let id = *terms.entry(t).or_insert(next);
                    if id as usize == postings.len() {
                        postings.push(Vec::new());
                    }
                    *tf.entry(id).or_default() += w;
                    len += w;
                }
            }
            for (id, wtf) in tf {
                postings[id as usize].push(Posting { doc: d as u32, wtf });
            }
            lengths.push(len);
        }
        let avg = if lengths.is_empty() {
            1.0
        } else {
            (lengths.iter().sum::<f32>() / lengths.len() as f32).max(1.0)
        };
        let norms = lengths.iter().map(|l| K1 * (1.0 - B + B * l / avg)).collect();
        Index {
            planner: crate::planner::analyse(&docs),
            docs,
            terms,
            postings,
            norms,
        }
    }

    /// The documents, in index order.
    pub fn docs(&self) -> &[Document] {
        &self.docs
    }

    /// What each document needs and produces ([`crate::planner`]), in index order.
    pub fn planner_facts(&self) -> &[crate::planner::Facts] {
        &self.planner
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// Whether the index has no document.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    fn idf(&self, df: usize) -> f32 {
        let n = (self.docs.len() as f32).max(MIN_COLLECTION);
        (1.0 + (n - df as f32 + 0.5) / (df as f32 + 0.5)).ln()
    }

    /// Ranks the capabilities for `query`: at most `limit` hits, and the gap decision by `rule`.
    pub fn search(&self, query: &str, limit: usize, rule: &GapRule) -> Ranking {
        let q = text::query_terms(query);
        self.search_terms(&q, limit, rule)
    }

    /// [`Index::search`] over an analysed query.
    pub fn search_terms(&self, q: &[QueryTerm], limit: usize, rule: &GapRule) -> Ranking {
        // Value words only count when nothing else is left ("Lyon" alone is a need too).
        let all_values = q.iter().all(|t| t.value);
        let mut max_score = 0.0;
        let mut need = 0.0;
        // Dense accumulators: (score, covered IDF) per document, and the documents touched.
        let mut scores: Vec<(f32, f32)> = vec![(0.0, 0.0); self.docs.len()];
        let mut touched: Vec<u32> = Vec::new();
        let mut best: HashMap<u32, f32> = HashMap::new();
        let common = self.docs.len() / 2;
        for t in q {
            let counted = !t.value || all_values;
            // The word itself and its synonyms; a document scores by the best of them.
            let mut words: Vec<&str> = vec![t.term.as_str()];
            for s in synonyms(&t.term) {
                words.push(s);
            }
            let alternatives: Vec<u32> = words.iter().filter_map(|w| self.terms.get(*w).copied()).collect();
            let df = alternatives
                .iter()
                .map(|&i| self.postings[i as usize].len())
                .max()
                .unwrap_or(0);
            // A word in more than half of a large index says nothing (its IDF is near zero):
            // treat it as a stop word rather than walk its postings.
            if df > common && self.docs.len() as f32 >= MIN_COLLECTION {
                continue;
            }
            let idf = self.idf(df);
            if counted {
                max_score += idf * (K1 + 1.0);
                need += idf;
            }
            let mut add = |doc: u32, s: f32| {
                let e = &mut scores[doc as usize];
                if e.0 == 0.0 {
                    touched.push(doc);
                }
                e.0 += s;
                if counted {
                    e.1 += idf;
                }
            };
            if let [id] = alternatives[..] {
                for p in &self.postings[id as usize] {
                    add(
                        p.doc,
                        idf * p.wtf * (K1 + 1.0) / (p.wtf + self.norms[p.doc as usize]),
                    );
                }
                continue;
            }
            best.clear();
            for &id in &alternatives {
                let idf = self.idf(self.postings[id as usize].len());
                for p in &self.postings[id as usize] {
                    let s = idf * p.wtf * (K1 + 1.0) / (p.wtf + self.norms[p.doc as usize]);
                    let e = best.entry(p.doc).or_default();
                    *e = e.max(s);
                }
            }
            for (&doc, &s) in &best {
                add(doc, s);
            }
        }
        let hit = |doc: u32| {
            let (score, covered) = scores[doc as usize];
            let normalized = if max_score > 0.0 {
                (score / max_score).min(1.0)
            } else {
                0.0
            };
            let coverage = if need > 0.0 {
                (covered / need).min(1.0)
            } else {
                0.0
            };
            Hit {
                doc: doc as usize,
                score,
                normalized,
                coverage,
                similarity: None,
                confident: rule.accepts(normalized, coverage),
            }
        };
        // Ties break on document order, so results are stable.
        let order = |a: &u32, b: &u32| {
            scores[*b as usize]
                .0
                .total_cmp(&scores[*a as usize].0)
                .then(a.cmp(b))
        };
        if limit > 0 && touched.len() > limit {
            touched.select_nth_unstable_by(limit - 1, order);
            touched.truncate(limit);
        }
        touched.sort_by(order);
        touched.truncate(limit);
        let hits: Vec<Hit> = touched.into_iter().map(hit).collect();
        let gap = !hits.first().is_some_and(|h| h.confident);
        let gap_reason = gap.then(|| match hits.first() {
            None if q.is_empty() => "the request has no meaningful words".to_string(),
            None => "no capability shares a word with the request".to_string(),
            Some(h) => format!(
                "best candidate {}.{} is too weak (normalised score {:.2}, needs {:.2}; covers {:.0}% of the request, needs {:.0}%)",
                self.docs[h.doc].tool,
                self.docs[h.doc].capability,
                h.normalized,
                rule.min_normalized,
                h.coverage * 100.0,
                rule.min_coverage * 100.0
            ),
        });
        Ranking {
            hits,
            gap,
            gap_reason,
            served_chance: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(tool: &str, cap: &str, desc: &str, examples: &[&str]) -> Document {
        Document {
            tool: tool.into(),
            capability: cap.into(),
            status: "active".into(),
            tool_description: String::new(),
            description: desc.into(),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
            tags: vec![],
            examples: examples.iter().map(|s| s.to_string()).collect(),
            route: None,
        }
    }

    fn index() -> Index {
        Index::build(vec![
            doc(
                "weather",
                "forecast",
                "Weather forecast for a city",
                &["will it rain tomorrow in Paris"],
            ),
            doc(
                "air",
                "air_quality",
                "Current air quality index (AQI) for a city",
                &["how polluted is the air in Delhi"],
            ),
            doc("github", "list_repos", "List the repositories of a user", &[]),
            doc("github", "create_issue", "Create an issue in a repository", &[]),
        ])
    }

    #[test]
    fn ranks_the_matching_capability_first() {
        let r = index().search("what's the air quality in Lyon", 5, &GapRule::default());
        assert!(!r.gap, "{r:?}");
        assert_eq!(r.hits[0].doc, 1);
        assert!(r.hits[0].confident);
        let r = index().search("open an issue on my repository", 5, &GapRule::default());
        assert_eq!(r.hits[0].doc, 3);
    }

    #[test]
    fn unrelated_request_is_a_gap() {
        let r = index().search("book a flight to Paris", 5, &GapRule::default());
        assert!(r.gap, "{r:?}");
        assert!(r.gap_reason.is_some());
        let r = index().search("the", 5, &GapRule::default());
        assert!(r.gap);
        assert!(r.hits.is_empty());
    }

    #[test]
    fn partial_overlap_is_not_confident() {
        // "quality" alone matches, "translation" does not: coverage too low.
        let r = index().search("translation quality of a sentence", 5, &GapRule::default());
        assert!(r.gap, "{r:?}");
    }
}
