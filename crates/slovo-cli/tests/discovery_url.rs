//! `slovo discover run --openapi-url` and `SLOVO_DISCOVERY_OPENAPI_URLS`: the worker fetches an
//! OpenAPI document from a loopback server (allowed by `SLOVO_HTTP_ALLOW_PRIVATE=1`) and
//! proposes it for an open gap; without the switch the URL is refused, with the reason shown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::get;
use serde_json::Value;

const DOCUMENT: &str = r#"openapi: 3.0.3
info: {title: Clean Air, version: "2.1.0", description: Air quality measurements for cities}
servers: [{url: "https://api.clean-air.example.org/v2"}]
paths:
  /air-quality:
    get:
      operationId: getAirQuality
      summary: Current air quality index for a city
      parameters:
        - {name: city, in: query, required: true, description: The city name, schema: {type: string}}
      responses: {"200": {description: ok}}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn discover_run_fetches_openapi_urls() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new().route(
        "/openapi.yaml",
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { DOCUMENT }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/openapi.yaml", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let slovo = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_slovo"));
        cmd.env("SLOVO_DATA_DIR", &data)
            .env_remove("SLOVO_DATABASE_URL")
            .env_remove("SLOVO_HTTP_ALLOW_PRIVATE")
            .env_remove("SLOVO_DISCOVERY_OPENAPI_URLS")
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.success(), stdout, stderr)
    };

    let (ok, out, err) = slovo(&["--json", "resolve", "what's the air quality in Lyon"], &[]);
    assert!(ok, "{err}");
    let gap: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(gap["gap"], true, "{gap}");
    let id = gap["discovery"]["id"].as_str().unwrap().to_string();

    // Without the private-address switch: refused before connecting, and the pass says why.
    let (ok, out, err) = slovo(&["discover", "run", "--openapi-url", &url], &[]);
    assert!(ok, "{err}");
    assert!(
        out.contains("problem: ") && out.contains("127.0.0.1 is not a public address"),
        "{out}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    let (ok, out, _) = slovo(&["--json", "discover", "list"], &[]);
    assert!(ok);
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["status"], "failed", "{list}");

    // A failed request does not block a new one; this time the switch allows loopback, and
    // the URL comes from the environment (comma-separated, next to an unusable one).
    let (ok, out, err) = slovo(&["--json", "resolve", "air quality in Paris"], &[]);
    assert!(ok, "{err}");
    let gap: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(gap["discovery"]["created"], true, "{gap}");
    assert_ne!(gap["discovery"]["id"], id.as_str());
    let urls = format!("{url},ftp://example.org/openapi.json");
    let (ok, out, err) = slovo(
        &["--json", "discover", "run"],
        &[
            ("SLOVO_HTTP_ALLOW_PRIVATE", "1"),
            ("SLOVO_DISCOVERY_OPENAPI_URLS", &urls),
        ],
    );
    assert!(ok, "{err}");
    let run: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(run["candidates"], 1, "{run}");
    assert_eq!(run["problems"].as_array().unwrap().len(), 1, "{run}");
    assert_eq!(run["processed"][0]["status"], "found", "{run}");
    assert_eq!(run["processed"][0]["proposal_tool"], "clean-air", "{run}");
    assert_eq!(
        run["processed"][0]["result"]["chosen"]["source"],
        url.as_str(),
        "{run}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let (ok, out, _) = slovo(&["--json", "tool", "show", "clean-air"], &[]);
    assert!(ok);
    let tool: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(tool["status"], "pending_approval", "{tool}");
}
