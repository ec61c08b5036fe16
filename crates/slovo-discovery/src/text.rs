//! Text analysis shared by documents and queries: split identifiers, lower-case, drop stop
//! words, stem (Snowball English). Queries also mark the words that look like argument
//! values (quoted text, numbers, dates, a capitalised place after "in"), which count for
//! scoring but not for deciding whether a capability fits.

use std::sync::LazyLock;

use rust_stemmers::{Algorithm, Stemmer};

static STEMMER: LazyLock<Stemmer> = LazyLock::new(|| Stemmer::create(Algorithm::English));

/// Words that say nothing about which capability is meant: English function words plus the
/// filler of requests ("please", "can you", "get me").
const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "all",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "been",
    "but",
    "by",
    "can",
    "could",
    "do",
    "does",
    "for",
    "from",
    "get",
    "give",
    "has",
    "have",
    "how",
    "i",
    "id",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "let",
    "like",
    "look",
    "me",
    "my",
    "need",
    "of",
    "on",
    "or",
    "our",
    "please",
    "s",
    "should",
    "show",
    "so",
    "some",
    "tell",
    "that",
    "the",
    "their",
    "them",
    "then",
    "there",
    "these",
    "this",
    "to",
    "up",
    "us",
    "want",
    "was",
    "we",
    "what",
    "whats",
    "when",
    "where",
    "which",
    "who",
    "will",
    "with",
    "would",
    "you",
    "your",
    "t",
    "ll",
    "d",
    "m",
    "re",
    "ve",
    "just",
    "now",
    "currently",
    "current",
    "returns",
    "return",
    "using",
    "use",
    "given",
    "specified",
    "via",
    "api",
    "one",
    "out",
];

/// Whether `word` (lower case) is a stop word.
pub fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.contains(&word)
}

/// Splits `text` into lower-case words: on anything that is not a letter or digit, and inside
/// identifiers on `camelCase` humps and letter/digit changes (`getAirQuality2` → get, air,
/// quality, 2).
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev: Option<char> = None;
    for c in text.chars() {
        if !c.is_alphanumeric() {
            flush(&mut cur, &mut out);
            prev = None;
            continue;
        }
        if let Some(p) = prev {
            let hump = p.is_lowercase() && c.is_uppercase();
            let digit_change = p.is_ascii_digit() != c.is_ascii_digit();
            if hump || digit_change {
                flush(&mut cur, &mut out);
            }
        }
        cur.extend(c.to_lowercase());
        prev = Some(c);
    }
    flush(&mut cur, &mut out);
    out
}

fn flush(cur: &mut String, out: &mut Vec<String>) {
    if !cur.is_empty() {
        out.push(std::mem::take(cur));
    }
}

/// The stem of a lower-case word.
pub fn stem(word: &str) -> String {
    STEMMER.stem(word).into_owned()
}

/// The index terms of `text`: words without stop words and pure numbers, stemmed.
pub fn terms(text: &str) -> Vec<String> {
    words(text)
        .into_iter()
        .filter(|w| !is_stop_word(w) && !w.chars().all(|c| c.is_ascii_digit()))
        .map(|w| stem(&w))
        .collect()
}

/// One term of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryTerm {
    /// The stemmed term.
    pub term: String,
    /// The word looks like an argument value (quoted, a number or date, a capitalised name after
    /// "in"/"for"/"at"…): it may match, but a capability is not required to mention it.
    pub value: bool,
}

/// Prepositions after which a capitalised word is probably a place or a name.
const VALUE_PREPOSITIONS: &[&str] = &[
    "in", "at", "for", "near", "from", "to", "of", "about", "called", "named",
];

/// Analyses a query: distinct stemmed terms, each marked whether it looks like a value.
pub fn query_terms(query: &str) -> Vec<QueryTerm> {
    let quoted = quoted_spans(query);
    let mut out: Vec<QueryTerm> = Vec::new();
    let mut prev_word: Option<String> = None;
    let mut in_name = false;
    let mut byte = 0;
    for raw in query.split_whitespace() {
        let start = query[byte..].find(raw).map(|i| i + byte).unwrap_or(byte);
        byte = start + raw.len();
        let inside_quotes = quoted.iter().any(|&(s, e)| start >= s && start < e);
        let trimmed = raw.trim_matches(|c: char| !c.is_alphanumeric());
        let capitalised = trimmed.chars().next().is_some_and(char::is_uppercase);
        let after_prep = prev_word
            .as_deref()
            .is_some_and(|p| VALUE_PREPOSITIONS.contains(&p));
        // "in New York": the name continues while words stay capitalised.
        in_name = capitalised && (after_prep || in_name) && start > 0;
        let date_or_number = trimmed.chars().next().is_some_and(|c| c.is_ascii_digit());
        let value = inside_quotes || in_name || date_or_number || raw.contains("://") || raw.contains('@');
        for w in words(raw) {
            if is_stop_word(&w) {
                continue;
            }
            let numeric = w.chars().all(|c| c.is_ascii_digit());
            let term = if numeric { w.clone() } else { stem(&w) };
            let value = value || numeric;
            match out.iter_mut().find(|t| t.term == term) {
                Some(t) => t.value &= value,
                None => out.push(QueryTerm { term, value }),
            }
        }
        prev_word = Some(trimmed.to_lowercase());
        if raw.ends_with([',', '.', '?', '!', ';']) {
            in_name = false;
            prev_word = None;
        }
    }
    out
}

/// Byte ranges of text inside matching quotes (`"…"`, `'…'`, `“…”`, `«…»`); an apostrophe
/// inside a word (`what's`) does not open a quote.
pub fn quoted_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        let close = match c {
            '"' => Some('"'),
            '\'' => Some('\''),
            '“' => Some('”'),
            '«' => Some('»'),
            _ => None,
        };
        let word_before = i > 0 && chars[i - 1].1.is_alphanumeric();
        if let Some(close) = close
            && !word_before
            && let Some(j) = (i + 1..chars.len())
                .find(|&j| chars[j].1 == close && chars.get(j + 1).is_none_or(|(_, n)| !n.is_alphanumeric()))
        {
            spans.push((pos + c.len_utf8(), chars[j].0));
            i = j + 1;
            continue;
        }
        i += 1;
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn splits_identifiers_and_stems() {
        assert_eq!(words("getAirQuality_v2"), vec!["get", "air", "quality", "v", "2"]);
        assert_eq!(terms("Lists the repositories"), vec!["list", "repositori"]);
    }

    #[test]
    fn marks_places_and_quotes_as_values() {
        let q = query_terms("what's the air quality in New York?");
        let got: Vec<(&str, bool)> = q.iter().map(|t| (t.term.as_str(), t.value)).collect();
        assert_eq!(
            got,
            vec![("air", false), ("qualiti", false), ("new", true), ("york", true)]
        );
        let q = query_terms("shorten 'https://example.com/a' please");
        assert!(q.iter().filter(|t| t.term != "shorten").all(|t| t.value));
        assert!(q.iter().any(|t| t.term == "shorten" && !t.value));
    }

    #[test]
    fn apostrophes_do_not_open_quotes() {
        assert_eq!(quoted_spans("what's 'this' and it's"), vec![(8, 12)]);
    }
}
