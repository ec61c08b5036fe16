//! Capability gaps and discovery (issue 8), against SQLite and PostgreSQL: resolve, the gap
//! that opens exactly one request, the worker over the APIs.guru sample, reject, the audit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use pretty_assertions::assert_eq;
use slovo_core::lifecycle::ToolStatus;
use slovo_runtime::{Actor, ImportSource, Runtime, SourceConfig, UrlFetcher};
use slovo_sandbox::Backends;
use slovo_store::DiscoveryStatus;
use slovo_test_support::test_dbs;

const AIR_QUALITY: &str = r#"
name: air-quality
version: "0.3.1"
description: Reads current air quality and pollen levels for a place.
capabilities:
  - name: current_air_quality
    description: Current air-quality index and main pollutant for a location
    endpoint: /v1/air/current
    method: GET
    parameters:
      type: object
      required: [latitude, longitude]
      properties:
        latitude: {type: number}
        longitude: {type: number}
  - name: pollen_forecast
    description: Pollen forecast for the next days
    parameters:
      type: object
      properties:
        days: {type: integer}
permissions:
  internet_access: true
api_requirements:
  base_url: https://air.example.net
"#;

fn catalogue() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/openapi/directory-sample")
}

#[tokio::test]
async fn gaps_open_one_request_and_the_worker_proposes_or_fails() {
    for db in test_dbs().await {
        let label = db.label;
        let rt = Runtime::new(db.store().await, Backends::new(), db.dir.path());
        let actor = Actor("test".into());
        rt.import(
            ImportSource::Manifest {
                name: "air-quality.yaml".into(),
                bytes: AIR_QUALITY.as_bytes().to_vec(),
            },
            &actor,
        )
        .await
        .unwrap();

        // An installed (here: proposed) tool serves the request.
        let r = rt
            .resolve("what's the air quality in Lyon", 5, &actor)
            .await
            .unwrap();
        assert!(!r.resolution.gap, "{label}: {r:?}");
        let top = &r.resolution.candidates[0];
        assert_eq!(
            (top.tool.as_str(), top.capability.as_str(), top.status.as_str()),
            ("air-quality", "current_air_quality", "pending_approval"),
            "{label}"
        );
        assert_eq!(top.missing, vec!["latitude".to_string(), "longitude".to_string()]);
        assert!(r.discovery.is_none());

        // A gap opens exactly one request, even when asked twice in other words.
        let first = rt
            .resolve("shorten the link https://example.com/a/long/path", 5, &actor)
            .await
            .unwrap();
        assert!(first.resolution.gap, "{label}: {first:?}");
        let d1 = first.discovery.clone().unwrap();
        assert!(d1.created);
        let again = rt
            .resolve("please shorten this link https://x.org", 5, &actor)
            .await
            .unwrap();
        let d2 = again.discovery.unwrap();
        assert_eq!((d2.id.as_str(), d2.created), (d1.id.as_str(), false), "{label}");
        let pizza = rt
            .resolve("order a large pepperoni pizza", 5, &actor)
            .await
            .unwrap();
        let pizza_id = pizza.discovery.unwrap().id;
        let requests = rt.discovery_requests().await.unwrap();
        assert_eq!(requests.len(), 2, "{label}");
        assert!(requests.iter().all(|r| r.status == DiscoveryStatus::Pending));

        // The worker: a proposal for the need the catalogue serves, a reason for the other.
        let sources = SourceConfig {
            catalogue_dirs: vec![catalogue()],
            ..SourceConfig::default()
        };
        let run = rt.run_discovery_once(&sources, &actor).await.unwrap();
        assert_eq!(run.processed.len(), 2, "{label}: {run:?}");
        assert!(run.candidates > 100, "{label}: {} candidates", run.candidates);
        let found = rt.discovery_request(&d1.id).await.unwrap();
        assert_eq!(found.status, DiscoveryStatus::Found, "{label}: {found:?}");
        assert_eq!(found.proposal_tool.as_deref(), Some("url-shortener"));
        let result = found.result.clone().unwrap();
        assert_eq!(result["chosen"]["capability"], "urlshortener_url_insert");
        assert!(!result["runners_up"].as_array().unwrap().is_empty());
        let tool = rt.store().tool("url-shortener").await.unwrap().unwrap();
        assert_eq!(tool.status, ToolStatus::PendingApproval);
        let failed = rt.discovery_request(&pizza_id).await.unwrap();
        assert_eq!(failed.status, DiscoveryStatus::Failed, "{label}: {failed:?}");
        assert!(
            failed
                .error
                .as_deref()
                .unwrap()
                .contains("nothing in the sources fits"),
            "{label}: {failed:?}"
        );
        // A second pass has nothing to do.
        assert!(
            rt.run_discovery_once(&sources, &actor)
                .await
                .unwrap()
                .processed
                .is_empty()
        );

        // The proposal now serves the request (waiting for approval): no new gap.
        let now = rt
            .resolve("shorten the link https://example.com/b", 5, &actor)
            .await
            .unwrap();
        assert!(!now.resolution.gap, "{label}: {now:?}");
        assert_eq!(now.resolution.candidates[0].tool, "url-shortener");

        // The person rejects the request: its waiting proposal is withdrawn.
        let rejected = rt.reject_request(&d1.id, &actor).await.unwrap();
        assert_eq!(rejected.status, DiscoveryStatus::Rejected);
        let tool = rt.store().tool("url-shortener").await.unwrap().unwrap();
        assert_eq!(tool.status, ToolStatus::Revoked);
        assert_eq!(
            rt.reject_request(&d1.id, &actor).await.unwrap().status,
            DiscoveryStatus::Rejected
        );
        assert!(rt.reject_request("no-such-id", &actor).await.is_err());

        // Every transition is audited, and the chain verifies.
        let report = rt.verify_audit().await.unwrap();
        let events = rt.store().audit_page(0, 1000).await.unwrap();
        assert_eq!(report.events as usize, events.len());
        let kinds: Vec<&str> = events
            .iter()
            .map(|e| e.kind.as_str())
            .filter(|k| k.starts_with("discovery."))
            .collect();
        assert_eq!(
            kinds,
            vec![
                "discovery.requested",
                "discovery.requested",
                "discovery.searching",
                "discovery.found",
                "discovery.searching",
                "discovery.failed",
                "discovery.rejected",
            ],
            "{label}"
        );
    }
}

#[tokio::test]
async fn worker_without_sources_fails_with_a_reason() {
    for db in test_dbs().await {
        let rt = Runtime::new(db.store().await, Backends::new(), db.dir.path());
        let actor = Actor("test".into());
        let r = rt
            .resolve("translate a sentence into Klingon", 5, &actor)
            .await
            .unwrap();
        assert!(r.resolution.gap);
        // A worker that crashed mid-search left it `searching` long ago: it is requeued.
        let id = r.discovery.unwrap().id;
        rt.store()
            .execute_raw(&format!(
                "UPDATE discovery_requests SET status = 'searching', updated_at = 0 WHERE id = '{id}'"
            ))
            .await
            .unwrap();
        let run = rt
            .run_discovery_once(&SourceConfig::default(), &actor)
            .await
            .unwrap();
        assert_eq!(run.processed[0].status, DiscoveryStatus::Failed);
        assert!(
            run.processed[0]
                .error
                .as_deref()
                .unwrap()
                .contains("no discovery sources")
        );
        rt.verify_audit().await.unwrap();
        let kinds: Vec<String> = rt
            .store()
            .audit_page(0, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds,
            vec![
                "discovery.requested",
                "discovery.pending",
                "discovery.searching",
                "discovery.failed"
            ]
        );
    }
}

/// An OpenAPI document about air quality, served over HTTP by [`serve_document`].
const AIR_OPENAPI: &str = r#"{
  "openapi": "3.0.3",
  "info": {"title": "Clean Air", "version": "2.1.0",
           "description": "Air quality and pollution measurements for cities worldwide."},
  "servers": [{"url": "https://api.clean-air.example.org/v2"}],
  "paths": {
    "/air-quality": {
      "get": {
        "operationId": "getAirQuality",
        "summary": "Current air quality index for a city",
        "description": "The current air quality index (AQI) and the dominant pollutant for a city.",
        "parameters": [{"name": "city", "in": "query", "required": true,
                        "description": "The city name", "schema": {"type": "string"}}],
        "responses": {"200": {"description": "The air quality"}}
      }
    },
    "/stations": {
      "get": {
        "operationId": "listStations",
        "summary": "List measuring stations",
        "responses": {"200": {"description": "Stations"}}
      }
    }
  }
}"#;

/// Serves `body` to every request on 127.0.0.1 from a thread; returns the base URL and a
/// counter of requests served.
fn serve_document(body: &'static str) -> (String, Arc<AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (base, hits)
}

/// `SourceConfig::openapi_urls` with the runtime's `UrlFetcher`: a gap, then the worker fetches
/// the document from the URL (a loopback server, allowed by the private-address switch) and
/// proposes the API it describes.
#[tokio::test]
async fn the_worker_proposes_an_api_from_an_openapi_url() {
    let (base, hits) = serve_document(AIR_OPENAPI);
    let url = format!("{base}/openapi.json");
    for db in test_dbs().await {
        let label = db.label;
        let rt = Runtime::new(db.store().await, Backends::new(), db.dir.path());
        let actor = Actor("test".into());
        let gap = rt
            .resolve("what's the air quality in Lyon", 5, &actor)
            .await
            .unwrap();
        assert!(gap.resolution.gap, "{label}: {gap:?}");
        let id = gap.discovery.unwrap().id;

        let sources = SourceConfig {
            openapi_urls: vec![url.clone()],
            fetcher: Some(Arc::new(UrlFetcher {
                allow_private_addresses: true,
                ..UrlFetcher::default()
            })),
            ..SourceConfig::default()
        };
        let run = rt.run_discovery_once(&sources, &actor).await.unwrap();
        assert_eq!(run.problems, Vec::<String>::new(), "{label}");
        assert_eq!(run.candidates, 1, "{label}");
        let found = rt.discovery_request(&id).await.unwrap();
        assert_eq!(found.status, DiscoveryStatus::Found, "{label}: {found:?}");
        let tool = found.proposal_tool.clone().unwrap();
        assert_eq!(tool, "clean-air");
        let result = found.result.clone().unwrap();
        assert_eq!(result["chosen"]["source"], url.as_str(), "{result}");
        assert_eq!(result["chosen"]["kind"], "openapi");
        assert_eq!(result["chosen"]["arguments"]["city"], "Lyon", "{result}");
        let row = rt.store().tool(&tool).await.unwrap().unwrap();
        assert_eq!(row.status, ToolStatus::PendingApproval);

        // The proposal now answers the need.
        let now = rt
            .resolve("what's the air quality in Lyon", 5, &actor)
            .await
            .unwrap();
        assert!(!now.resolution.gap, "{label}: {now:?}");
        assert_eq!(now.resolution.candidates[0].tool, "clean-air");
        rt.verify_audit().await.unwrap();
    }
    assert!(hits.load(Ordering::SeqCst) >= 1);
}

/// Without the private-address switch, a URL naming or resolving to a loopback address is
/// refused before any connection, and the pass says why.
#[tokio::test]
async fn openapi_urls_on_private_addresses_are_refused() {
    let (base, hits) = serve_document(AIR_OPENAPI);
    let port = base.rsplit(':').next().unwrap().to_string();
    let literal = format!("{base}/openapi.json");
    let named = format!("http://localhost:{port}/openapi.json");
    for db in test_dbs().await {
        let label = db.label;
        let rt = Runtime::new(db.store().await, Backends::new(), db.dir.path());
        let actor = Actor("test".into());
        let id = rt
            .resolve("what's the air quality in Lyon", 5, &actor)
            .await
            .unwrap()
            .discovery
            .unwrap()
            .id;
        let sources = SourceConfig {
            openapi_urls: vec![literal.clone(), named.clone(), "not a url".into()],
            fetcher: Some(Arc::new(UrlFetcher::default())),
            ..SourceConfig::default()
        };
        let run = rt.run_discovery_once(&sources, &actor).await.unwrap();
        assert_eq!(run.candidates, 0, "{label}");
        assert_eq!(run.problems.len(), 3, "{label}: {:?}", run.problems);
        assert!(
            run.problems[0].starts_with(&literal)
                && run.problems[0].contains("127.0.0.1 is not a public address")
                && run.problems[0].contains("SLOVO_HTTP_ALLOW_PRIVATE=1"),
            "{label}: {}",
            run.problems[0]
        );
        assert!(
            run.problems[1].starts_with(&named)
                && run.problems[1].contains("localhost resolves to")
                && run.problems[1].contains("not a public address"),
            "{label}: {}",
            run.problems[1]
        );
        assert!(run.problems[2].starts_with("not a url"), "{}", run.problems[2]);
        let failed = rt.discovery_request(&id).await.unwrap();
        assert_eq!(failed.status, DiscoveryStatus::Failed, "{label}");
        assert!(
            failed.error.as_deref().unwrap().contains("not a public address"),
            "{label}: {failed:?}"
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "a private address was contacted");
}

/// Two workers (two runtimes over one database, as two instances sharing PostgreSQL) run at the
/// same time over thirty requests: every request is taken by exactly one of them.
#[tokio::test(flavor = "multi_thread")]
async fn two_workers_never_take_the_same_request() {
    // Thirty needs with distinct content words, so that each opens a request of its own.
    let verbs = ["order", "translate", "book", "tune", "water", "paint"];
    let objects = [
        "a pepperoni pizza",
        "the grand piano",
        "a dentist appointment",
        "the balcony plants",
        "a Klingon sentence",
    ];
    let needs: Vec<String> = verbs
        .iter()
        .flat_map(|v| objects.iter().map(move |o| format!("{v} {o}")))
        .collect();
    for db in test_dbs().await {
        let label = db.label;
        let one = Arc::new(Runtime::new(
            db.store().await,
            Backends::new(),
            db.dir.path().join("one"),
        ));
        let two = Arc::new(Runtime::new(
            db.store().await,
            Backends::new(),
            db.dir.path().join("two"),
        ));
        let actor = Actor("test".into());
        for need in &needs {
            let r = one.resolve(need, 5, &actor).await.unwrap();
            assert!(r.discovery.is_some_and(|d| d.created), "{label}: {need}");
        }
        let sources = SourceConfig {
            catalogue_dirs: vec![catalogue()],
            ..SourceConfig::default()
        };
        let worker = |rt: &Arc<Runtime>, name: &str| {
            let (rt, sources, actor) = (rt.clone(), sources.clone(), Actor(name.into()));
            tokio::spawn(async move { rt.run_discovery_once(&sources, &actor).await })
        };
        let (a, b) = (worker(&one, "one"), worker(&two, "two"));
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        let (a, b) = (a.unwrap(), b.unwrap());
        let mut taken: Vec<String> = a
            .processed
            .iter()
            .chain(&b.processed)
            .map(|r| r.id.clone())
            .collect();
        taken.sort();
        let before = taken.len();
        taken.dedup();
        assert_eq!(before, taken.len(), "{label}: a request was taken twice");
        assert_eq!(taken.len(), needs.len(), "{label}: {a:?} {b:?}");
        let events = one.store().audit_page(0, 10_000).await.unwrap();
        let searching = events.iter().filter(|e| e.kind == "discovery.searching").count();
        assert_eq!(searching, needs.len(), "{label}: one search per request");
    }
}
