//! From an OpenAPI document to a call: `slovo openapi import`, approve, `slovo secret set`,
//! `slovo call`, against a real HTTP server on loopback. The credential reaches the API and
//! nowhere else.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use serde_json::{Value, json};
use slovo_store::Store;

const SECRET: &str = "weather-key-5d1c9e77a3";

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

async fn forecast(
    State(seen): State<Seen>,
    Path(city): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> axum::Json<Value> {
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    seen.0.lock().unwrap().push(key.clone());
    // A careless API that echoes the key back.
    axum::Json(json!({"city": city, "query": q, "echo_key": key, "temperature_c": 21.5}))
}

fn document(port: u16) -> String {
    format!(
        r#"openapi: 3.0.3
info: {{title: Local Weather, version: "1.4"}}
servers: [{{url: "http://localhost:{port}/api"}}]
components:
  securitySchemes:
    key: {{type: apiKey, in: header, name: X-Api-Key}}
security: [{{key: []}}]
paths:
  /forecast/{{city}}:
    get:
      operationId: getForecast
      summary: Weather forecast for a city
      parameters:
        - {{name: city, in: path, required: true, schema: {{type: string}}}}
        - {{name: days, in: query, schema: {{type: integer, minimum: 1, maximum: 7, nullable: true}}}}
      responses: {{"200": {{description: ok}}}}
    delete:
      operationId: deleteForecast
      parameters:
        - {{name: city, in: path, required: true, schema: {{type: string}}}}
      responses: {{"204": {{description: gone}}}}
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn openapi_tool_end_to_end_with_a_secret() {
    slovo_sandbox::http::ensure_tls_provider();
    let seen = Seen::default();
    let app = Router::new()
        .route("/api/forecast/{city}", get(forecast))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let spec = dir.path().join("weather.yaml");
    std::fs::write(&spec, document(port)).unwrap();
    let slovo = |args: &[&str], stdin: Option<&str>| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_slovo"))
            .env("SLOVO_DATA_DIR", &data)
            .env("SLOVO_HTTP_ALLOW_PRIVATE", "1")
            .env_remove("SLOVO_DATABASE_URL")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(text) = stdin {
            child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        }
        child.wait_with_output().unwrap()
    };

    let out = slovo(&["--json", "openapi", "import", spec.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["imports"][0]["tool"], "local-weather");
    assert_eq!(report["imports"][0]["status"], "pending_approval");
    assert_eq!(report["report"]["hosts"], json!([format!("localhost:{port}")]));
    let risks = report["report"]["risks"].to_string();
    assert!(risks.contains("delete_forecast"), "{risks}");

    let show = slovo(&["--json", "tool", "show", "local-weather"], None);
    let show: Value = serde_json::from_slice(&show.stdout).unwrap();
    let caps = show["manifest"]["capabilities"].as_array().unwrap();
    let get = caps.iter().find(|c| c["name"] == "get_forecast").unwrap();
    assert_eq!(get["read_only"], true);
    // nullable (3.0) became a 2020-12 type union.
    assert_eq!(
        get["parameters"]["properties"]["days"]["type"],
        json!(["integer", "null"])
    );

    assert!(
        slovo(&["tool", "approve", "local-weather"], None)
            .status
            .success()
    );
    // The call before the secret exists fails with a clear message, recorded.
    let out = slovo(
        &[
            "--json",
            "call",
            "local-weather",
            "get_forecast",
            "--args",
            r#"{"city": "Lyon"}"#,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(6));
    let rec: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        rec["error"]
            .as_str()
            .unwrap()
            .contains("slovo secret set local-weather"),
        "{rec}"
    );

    // The secret comes from stdin, never argv.
    let out = slovo(
        &["secret", "set", "local-weather", "key"],
        Some(&format!("{SECRET}\n")),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = slovo(
        &[
            "--json",
            "call",
            "local-weather",
            "get_forecast",
            "--args",
            r#"{"city": "Saint-Étienne/Loire", "days": 3}"#,
        ],
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rec: Value = serde_json::from_slice(&out.stdout).unwrap();
    let body = &rec["output"]["body"];
    assert_eq!(
        body["city"], "Saint-Étienne/Loire",
        "path parameter escaped and decoded intact"
    );
    assert_eq!(body["query"], json!([["days", "3"]]));
    assert_eq!(body["temperature_c"], 21.5);
    assert_eq!(
        body["echo_key"], "[redacted]",
        "the echoed key must not reach the record"
    );
    assert_eq!(
        seen.0.lock().unwrap().last().map(String::as_str),
        Some(SECRET),
        "the API got the real key"
    );

    // Schema violations never reach the API.
    let before = seen.0.lock().unwrap().len();
    let out = slovo(
        &[
            "call",
            "local-weather",
            "get_forecast",
            "--args",
            r#"{"city": "Lyon", "days": 30}"#,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(seen.0.lock().unwrap().len(), before);

    // Nowhere in the database.
    let store = Store::open_sqlite(&data.join("slovo.db")).await.unwrap();
    let dump = store.dump().await.unwrap().join("\n");
    assert!(
        !dump.contains(SECRET),
        "the secret's plaintext is in the database"
    );
    store.close().await;
    let db_bytes = std::fs::read(data.join("slovo.db")).unwrap();
    let wal = std::fs::read(data.join("slovo.db-wal")).unwrap_or_default();
    for bytes in [db_bytes, wal] {
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "plaintext in the database file"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn llm_analysis_enriches_the_proposal_and_its_key_comes_from_the_secret_store() {
    slovo_sandbox::http::ensure_tls_provider();
    let seen_auth: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = seen_auth.clone();
    let answer = r#"{"capabilities": [
      {"name": "get_forecast", "description": "Tells the weather forecast for a named city.", "examples": ["what's the weather in Lyon"]},
      {"name": "delete_forecast", "description": "Removes a stored forecast for a city.", "examples": ["drop the Lyon forecast"], "risk_note": "Deletes data."}
    ]}"#;
    let app = Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |headers: HeaderMap| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(
                    headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string(),
                );
                axum::Json(json!({"choices": [{"message": {"role": "assistant", "content": answer}}]}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let spec = dir.path().join("weather.yaml");
    std::fs::write(&spec, document(9)).unwrap();
    let run = |args: &[&str], stdin: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_slovo"))
            .env("SLOVO_DATA_DIR", &data)
            .env_remove("SLOVO_DATABASE_URL")
            .env_remove("SLOVO_LLM_BASE_URL")
            .env_remove("SLOVO_LLM_MODEL")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    assert!(
        run(&["secret", "set", "_llm", "api_key"], "llm-secret-key\n")
            .status
            .success()
    );
    let url = format!("http://127.0.0.1:{port}/v1");
    let out = run(
        &[
            "--json",
            "openapi",
            "import",
            spec.to_str().unwrap(),
            "--llm-base-url",
            &url,
            "--llm-model",
            "tiny",
        ],
        "",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["analysis"], "llm:tiny");
    assert_eq!(seen_auth.lock().unwrap().as_slice(), ["Bearer llm-secret-key"]);
    let show: Value =
        serde_json::from_slice(&run(&["--json", "tool", "show", "local-weather"], "").stdout).unwrap();
    let get = show["manifest"]["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "get_forecast")
        .unwrap()
        .clone();
    assert_eq!(get["description"], "Tells the weather forecast for a named city.");
    assert_eq!(get["examples"], json!(["what's the weather in Lyon"]));
}

/// `slovo openapi import URL` fetches under the runtime's address policy: a loopback address
/// is refused with exit 3 (invalid input) and a one-line reason, nothing is asked of the
/// server, and the same URL imports once the range is declared public.
#[tokio::test(flavor = "multi_thread")]
async fn openapi_import_from_a_url_refuses_a_private_address_until_it_is_declared_public() {
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Router::new().route(
        "/openapi.yaml",
        get(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move { document(port) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let import = |url: &str, also_public: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_slovo"));
        command
            .env("SLOVO_DATA_DIR", &data)
            .env_remove("SLOVO_DATABASE_URL")
            .env_remove("SLOVO_HTTP_ALLOW_PRIVATE")
            .env_remove("SLOVO_EGRESS_ALSO_PUBLIC")
            .env_remove("SLOVO_LLM_BASE_URL")
            .args(["--json", "openapi", "import", url]);
        if let Some(range) = also_public {
            command.env("SLOVO_EGRESS_ALSO_PUBLIC", range);
        }
        command.output().unwrap()
    };
    let url = format!("http://127.0.0.1:{port}/openapi.yaml");

    let refused = import(&url, None);
    assert_eq!(refused.status.code(), Some(3), "{refused:?}");
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr),
        format!("error: failed to fetch {url}: 127.0.0.1 is not a public address\n")
    );
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);

    let missing = import(
        &format!("http://127.0.0.1:{port}/nothing.yaml"),
        Some("127.0.0.1/32"),
    );
    assert_eq!(missing.status.code(), Some(3), "{missing:?}");
    assert!(
        String::from_utf8_lossy(&missing.stderr).ends_with(": HTTP 404 Not Found\n"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );

    let imported = import(&url, Some("127.0.0.1/32"));
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let report: Value = serde_json::from_slice(&imported.stdout).unwrap();
    assert_eq!(report["imports"][0]["tool"], "local-weather");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}
