//! Planner-shaped answers: a capability that needs the id of something ("get a playlist" needs
//! `playlist_id`) is usually not the first step of a plan; the operation that finds that id is
//! (the person's playlists, or a search). This module reads, from each capability's HTTP route
//! and parameters, which resources' ids it *needs* and which resources it *produces* (lists or
//! searches), and lifts a producer into the results right after a consumer whose id the
//! request does not give. Pure: no I/O.
//!
//! Facts, all from what an OpenAPI import stores in the manifest (method, path, parameters):
//! - **needs**: required parameters named `id`, `ids`, `*_id`, `*_ids`, `*Id`, `uri`, `uris`.
//!   The resource of `playlist_id` is `playlist`; of a bare `{id}` the path segment before it
//!   (`/albums/{id}/tracks` → `album`); of a bare `ids` or `uris` the path's last word
//!   (`/me/tracks` → `track`), and of `uri(s)` also any resource its description names.
//! - **produces**: a `GET` whose path ends in a literal segment lists that resource
//!   (`/me/playlists`, `/browse/featured-playlists` → `playlist`); a search (a last segment or
//!   a name saying `search`) produces the resources its enum values and description name
//!   (`type: [album, artist, track]`). A capability that needs the ids of what it lists
//!   (`GET /albums?ids=`) is not its producer.
//!
//! Producer and consumer must belong to the same API: the same tool, or tools with the same
//! base URL (a large API split into several tools by tag).

use serde::Serialize;
use serde_json::Value;

use crate::index::Document;

/// How an HTTP capability is reached (from its manifest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// The tool's base URL (`api_requirements.base_url`); empty when none.
    pub api: String,
    /// The HTTP method, upper case.
    pub method: String,
    /// The path below the base URL, with `{parameters}`.
    pub endpoint: String,
}

/// One id a capability needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    /// The parameter that takes it.
    pub parameter: String,
    /// The resources it may be the id of, singular and lower case (`playlist`).
    pub resources: Vec<String>,
}

/// What a capability needs and produces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Ids it needs.
    pub needs: Vec<Need>,
    /// Resources whose ids it lists or finds.
    pub produces: Vec<String>,
    /// It finds them by a search (rather than listing them).
    pub search: bool,
}

/// A capability lifted into the results because it finds an id another one needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Supply {
    /// The capability that needs the id (of the same API).
    pub capability: String,
    /// Its parameter the id goes to.
    pub parameter: String,
    /// The resource.
    pub resource: String,
}

/// The facts of every document, in index order. Two passes: the first finds the resources the
/// catalogue's paths and parameter names speak of, the second lets a bare `id` or `uri` name
/// those of them its description mentions.
pub fn analyse(docs: &[Document]) -> Vec<Facts> {
    let first: Vec<Facts> = docs.iter().map(|d| facts(d, &[])).collect();
    let mut known: Vec<String> = first
        .iter()
        .filter(|f| !f.search)
        .flat_map(|f| f.produces.iter().chain(f.needs.iter().flat_map(|n| &n.resources)))
        .cloned()
        .collect();
    known.sort();
    known.dedup();
    docs.iter().map(|d| facts(d, &known)).collect()
}

/// The facts of one capability (none without a route); `known` are the resources a bare `id`
/// or `uri` parameter may name in its description.
fn facts(doc: &Document, known: &[String]) -> Facts {
    let Some(route) = &doc.route else {
        return Facts::default();
    };
    let segments: Vec<&str> = route.endpoint.split('/').filter(|s| !s.is_empty()).collect();
    let last_literal = segments.iter().rev().find(|s| !s.starts_with('{')).copied();
    let path_resource = last_literal.map(last_word).map(|w| singular(&w));
    let needs = needs(doc, &segments, path_resource.as_deref(), known);
    let mut produces = Vec::new();
    let is_search = last_literal.is_some_and(|s| s.eq_ignore_ascii_case("search"))
        || doc.capability.to_lowercase().contains("search");
    if is_search {
        let mut words = Vec::new();
        enum_values(&doc.parameters, &mut words);
        words.extend(
            doc.description
                .split(|c: char| !c.is_alphanumeric())
                .map(str::to_lowercase),
        );
        for w in words {
            let w = singular(&w);
            if w.len() > 2 && !produces.contains(&w) {
                produces.push(w);
            }
        }
    } else if route.method.eq_ignore_ascii_case("GET")
        && segments.last().is_some_and(|s| !s.starts_with('{'))
        && let Some(r) = path_resource
    {
        produces.push(r);
    }
    produces.retain(|r| !needs.iter().any(|n| n.resources.contains(r)));
    Facts {
        needs,
        produces,
        search: is_search,
    }
}

fn needs(doc: &Document, segments: &[&str], path_resource: Option<&str>, known: &[String]) -> Vec<Need> {
    let required: Vec<&str> = doc
        .parameters
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    for name in required {
        let snake = snake_case(name);
        let mut resources = Vec::new();
        if let Some(prefix) = snake
            .strip_suffix("_ids")
            .or_else(|| snake.strip_suffix("_id"))
            .or_else(|| snake.strip_suffix("_uris"))
            .or_else(|| snake.strip_suffix("_uri"))
        {
            resources.push(singular(&last_word(prefix)));
        } else if matches!(snake.as_str(), "id" | "ids" | "uri" | "uris") {
            // `{id}` in the path: the resource is the segment before it.
            let placeholder = format!("{{{name}}}");
            let before = segments
                .iter()
                .position(|s| *s == placeholder)
                .and_then(|i| i.checked_sub(1))
                .map(|i| segments[i])
                .filter(|s| !s.starts_with('{'));
            match before {
                Some(s) => resources.push(singular(&last_word(s))),
                None => resources.extend(path_resource.map(str::to_string)),
            }
            // "The Spotify ID for the track" under `/audio-features/{id}`.
            resources.extend(mentioned_resources(doc, name, known));
        } else {
            continue;
        }
        let mut seen = Vec::new();
        resources.retain(|r| {
            let new = !seen.contains(r);
            seen.push(r.clone());
            new
        });
        if !resources.is_empty() {
            out.push(Need {
                parameter: name.to_string(),
                resources,
            });
        }
    }
    out
}

/// The `known` resources a parameter's description names ("a track or an episode URI").
fn mentioned_resources(doc: &Document, parameter: &str, known: &[String]) -> Vec<String> {
    let description = doc
        .parameters
        .pointer(&format!("/properties/{parameter}/description"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_lowercase();
    description
        .split(|c: char| !c.is_alphanumeric())
        .map(singular)
        .filter(|w| known.contains(w))
        .collect()
}

fn enum_values(schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(values) = map.get("enum").and_then(Value::as_array) {
                out.extend(values.iter().filter_map(Value::as_str).map(str::to_lowercase));
            }
            for v in map.values() {
                enum_values(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| enum_values(v, out)),
        _ => {}
    }
}

/// `featured-playlists` → `playlists`; `audio_features` → `features`.
fn last_word(segment: &str) -> String {
    snake_case(segment)
        .rsplit(['_', '-', '.'])
        .next()
        .unwrap_or(segment)
        .to_string()
}

/// `playlistId` → `playlist_id`.
fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out.replace('-', "_")
}

/// A crude English singular, enough for resource names: `categories` → `category`,
/// `playlists` → `playlist`; words ending in `ss` or `us` (`address`, `status`) are kept.
fn singular(word: &str) -> String {
    let w = word.to_lowercase();
    if let Some(stem) = w.strip_suffix("ies") {
        format!("{stem}y")
    } else if w.ends_with("ss") || w.ends_with("us") {
        w
    } else if let Some(stem) = w.strip_suffix('s') {
        stem.to_string()
    } else {
        w
    }
}

fn same_api(a: &Document, b: &Document) -> bool {
    a.tool == b.tool
        || matches!((&a.route, &b.route), (Some(x), Some(y)) if !x.api.is_empty() && x.api == y.api)
}

/// How many of the first results are taken as steps a planner would take, whose ids are looked
/// for.
pub const CONSUMERS_LOOKED_AT: usize = 3;

/// Lifts producers into `top` (document indices, best first, at most `limit`): for each of the
/// first [`CONSUMERS_LOOKED_AT`] that needs an id the request does not give (`missing(doc)`
/// names the required parameters left unfilled), the best-ranked producer of that resource in
/// the same API (`order`: every document, best first) goes right after it, unless it is
/// already among the results. Never displaces the first result, so the gap decision holds.
/// Returns the new order and, per document lifted or already present, what it supplies.
pub fn lift(
    docs: &[Document],
    facts: &[Facts],
    top: &[usize],
    order: &[usize],
    limit: usize,
    missing: &dyn Fn(usize) -> Vec<String>,
) -> (Vec<usize>, Vec<(usize, Supply)>) {
    let mut result: Vec<usize> = top.to_vec();
    let mut supplies: Vec<(usize, Supply)> = Vec::new();
    for &consumer in top.iter().take(CONSUMERS_LOOKED_AT) {
        let unfilled = missing(consumer);
        for need in &facts[consumer].needs {
            if !unfilled.contains(&need.parameter) {
                continue;
            }
            // The best-ranked lister and the best-ranked search: "my playlist" is found by
            // listing the person's playlists, "the album Abbey Road" by a search. A producer
            // that needs no id itself (`/me/playlists`) is preferred to one that does
            // (`/users/{user_id}/playlists`): it can really be the first step.
            for searching in [false, true] {
                let producers = || {
                    order.iter().copied().filter(move |&p| {
                        p != consumer
                            && facts[p].search == searching
                            && same_api(&docs[p], &docs[consumer])
                            && facts[p].produces.iter().any(|r| need.resources.contains(r))
                    })
                };
                let producer = producers()
                    .find(|&p| facts[p].needs.is_empty())
                    .or_else(|| producers().next());
                let Some(producer) = producer else { continue };
                let resource = facts[producer]
                    .produces
                    .iter()
                    .find(|r| need.resources.contains(r))
                    .cloned()
                    .unwrap_or_default();
                supplies.push((
                    producer,
                    Supply {
                        capability: docs[consumer].capability.clone(),
                        parameter: need.parameter.clone(),
                        resource,
                    },
                ));
                if result.contains(&producer) {
                    continue;
                }
                let at = result.iter().position(|&d| d == consumer).map_or(1, |i| i + 1);
                result.insert(at.max(1), producer);
            }
        }
    }
    result.truncate(limit.max(1));
    supplies.retain(|(d, _)| result.contains(d));
    (result, supplies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(cap: &str, method: &str, endpoint: &str, parameters: Value) -> Document {
        Document {
            tool: "music".into(),
            capability: cap.into(),
            status: "active".into(),
            tool_description: String::new(),
            description: String::new(),
            parameters,
            tags: vec![],
            examples: vec![],
            route: Some(Route {
                api: "https://api.example.net".into(),
                method: method.into(),
                endpoint: endpoint.into(),
            }),
        }
    }

    fn catalogue() -> Vec<Document> {
        vec![
            doc(
                "get_playlist",
                "GET",
                "/playlists/{playlist_id}",
                json!({"type": "object", "properties": {"playlist_id": {"type": "string"}}, "required": ["playlist_id"]}),
            ),
            doc("my_playlists", "GET", "/me/playlists", json!({"type": "object"})),
            doc(
                "album_tracks",
                "GET",
                "/albums/{id}/tracks",
                json!({"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}),
            ),
            doc(
                "search",
                "GET",
                "/search",
                json!({"type": "object", "properties": {"q": {"type": "string"}, "type": {"type": "array", "items": {"enum": ["album", "artist", "track"]}}}, "required": ["q", "type"]}),
            ),
            doc(
                "several_albums",
                "GET",
                "/albums",
                json!({"type": "object", "properties": {"ids": {"type": "string"}}, "required": ["ids"]}),
            ),
        ]
    }

    #[test]
    fn needs_and_products_come_from_routes_and_parameters() {
        let f = analyse(&catalogue());
        assert_eq!(f[0].needs[0].resources, ["playlist"]);
        assert_eq!(f[1].produces, ["playlist"]);
        assert_eq!(f[2].needs[0].resources, ["album"], "the segment before {{id}}");
        assert!(
            f[0].produces.is_empty(),
            "a path ending in a parameter lists nothing"
        );
        assert_eq!(f[2].produces, ["track"], "an album's tracks");
        assert!(f[3].produces.contains(&"album".to_string()) && f[3].produces.contains(&"track".to_string()));
        assert_eq!(f[4].needs[0].resources, ["album"]);
        assert!(
            f[4].produces.is_empty(),
            "needs album ids, so it does not produce them"
        );
    }

    #[test]
    fn a_bare_id_also_names_the_known_resources_its_description_mentions() {
        let docs = vec![
            doc(
                "audio_features",
                "GET",
                "/audio-features/{id}",
                json!({"type": "object", "properties": {"id": {"type": "string", "description": "The ID for the track."}}, "required": ["id"]}),
            ),
            doc("saved_tracks", "GET", "/me/tracks", json!({"type": "object"})),
        ];
        let f = analyse(&docs);
        assert_eq!(f[0].needs[0].resources, ["feature", "track"]);
        // Without a capability that speaks of tracks, "track" is not a known resource.
        let f = analyse(&docs[..1]);
        assert_eq!(f[0].needs[0].resources, ["feature"]);
    }

    #[test]
    fn a_producer_is_lifted_after_the_consumer_that_needs_it() {
        let docs = catalogue();
        let f = analyse(&docs);
        let order = [2, 0, 4, 1, 3];
        let all_missing = |d: usize| {
            docs[d].parameters["required"]
                .as_array()
                .map(|r| r.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default()
        };
        let (top, supplies) = lift(&docs, &f, &[2, 0], &order, 3, &all_missing);
        // album_tracks needs an album id (search finds it); get_playlist a playlist id.
        assert_eq!(top, vec![2, 3, 0]);
        assert_eq!(supplies[0].1.parameter, "id");
        assert_eq!(supplies[0].1.resource, "album");
        // With room for five, both producers come in, each after its consumer.
        let (top, _) = lift(&docs, &f, &[2, 0], &order, 5, &all_missing);
        assert_eq!(top, vec![2, 3, 0, 1]);
        // A request that gives the id needs no producer.
        let (top, supplies) = lift(&docs, &f, &[2, 0], &order, 5, &|_| vec![]);
        assert_eq!(top, vec![2, 0]);
        assert!(supplies.is_empty());
    }

    #[test]
    fn other_apis_do_not_supply_ids() {
        let mut docs = catalogue();
        docs[1].tool = "other".into();
        docs[1].route.as_mut().unwrap().api = "https://other.example.net".into();
        let f = analyse(&docs);
        let (top, _) = lift(&docs, &f, &[0], &[0, 1, 2, 3, 4], 5, &|_| {
            vec!["playlist_id".into()]
        });
        assert_eq!(top, vec![0]);
    }
}
