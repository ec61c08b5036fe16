//! Capability gaps and discovery (issue 8), against SQLite and PostgreSQL: resolve, the gap
//! that opens exactly one request, the worker over the APIs.guru sample, reject, the audit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use pretty_assertions::assert_eq;
use slovo_core::lifecycle::ToolStatus;
use slovo_runtime::{Actor, ImportSource, Runtime, SourceConfig};
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
