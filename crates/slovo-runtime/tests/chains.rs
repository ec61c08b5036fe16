//! Chains over real backends (a wasm tool, a process tool in the Linux sandbox, an HTTP tool
//! against a loopback server), on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Value, json};
use slovo_core::execution::ExecutionStatus;
use slovo_core::permissions::Narrowing;
use slovo_runtime::ExecutionFilter;
use slovo_runtime::{Actor, CallRequest, ErrorKind, ImportSource, Runtime};
use slovo_sandbox::Backends;
use slovo_sandbox::http::{HttpBackend, HttpConfig};
use slovo_sandbox::process::{ProcessBackend, ProcessConfig};
use slovo_sandbox::wasm::{WasmBackend, WasmConfig};
use slovo_test_support::test_dbs;

/// How long each of two independent steps sleeps in the concurrency measurement.
const NAP_MS: u64 = 1500;

fn actor() -> Actor {
    Actor("test".into())
}

fn call(tool: &str, capability: &str, arguments: Value) -> CallRequest {
    CallRequest {
        tool: tool.into(),
        capability: capability.into(),
        arguments,
        conversation_id: Some("conv".into()),
        turn_id: None,
        actor: actor(),
    }
}

/// A loopback weather API: `GET /forecast?city=X` answers `{"city": X, "temp": 21}`. Returns
/// its port and every request line it saw.
fn weather_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65_536 {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&head).to_string();
            let line = text.lines().next().unwrap_or_default().to_string();
            log.lock().unwrap().push(line.clone());
            let city = line
                .split("city=")
                .nth(1)
                .and_then(|r| r.split([' ', '&']).next())
                .unwrap_or("nowhere")
                .to_string();
            let body = json!({"city": city, "temp": 21}).to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, seen)
}

fn weather_tool(port: u16) -> ImportSource {
    let text = json!({
        "name": "weather",
        "version": "1.0.0",
        "description": "Tomorrow's weather for a city",
        "capabilities": [{"name": "forecast", "description": "The forecast",
                          "parameters": {"type": "object", "required": ["city"],
                                         "properties": {"city": {"type": "string"}}},
                          "endpoint": "/forecast", "method": "GET", "read_only": true}],
        "permissions": {"network_allow": ["localhost"], "timeout_s": 10},
        "api_requirements": {"base_url": format!("http://localhost:{port}")},
        "execution": {"type": "http"}
    });
    ImportSource::Manifest {
        name: "weather.json".into(),
        bytes: text.to_string().into_bytes(),
    }
}

/// A process tool in Python: `nap` sleeps and echoes a label, `fail` exits 3, `fetch` tries to
/// open a URL (it has no network grant).
fn sleeper_bundle(parent: &Path) -> PathBuf {
    let dir = parent.join("sleeper");
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(
        dir.join("bin/run"),
        r#"#!/usr/bin/python3
import json, sys, time, urllib.request
req = json.load(sys.stdin)
args = req["arguments"]
if req["capability"] == "nap":
    time.sleep(args["ms"] / 1000)
    print(json.dumps({"label": args.get("label"), "slept_ms": args["ms"]}))
elif req["capability"] == "fetch":
    print(urllib.request.urlopen(args["url"], timeout=3).read().decode())
else:
    print("the step was told to fail", file=sys.stderr)
    sys.exit(3)
"#,
    )
    .unwrap();
    std::fs::set_permissions(dir.join("bin/run"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let object = |props: Value| json!({"type": "object", "properties": props});
    let manifest = json!({
        "name": "sleeper",
        "version": "1.0.0",
        "description": "Sleeps, fails or fetches on request",
        "capabilities": [
            {"name": "nap", "description": "Sleep", "read_only": true,
             "parameters": object(json!({"ms": {"type": "integer", "maximum": 5000}, "label": {"type": "string"}}))},
            {"name": "fail", "description": "Fail", "read_only": true, "parameters": object(json!({}))},
            {"name": "fetch", "description": "Fetch a URL", "read_only": true,
             "parameters": object(json!({"url": {"type": "string"}}))}
        ],
        "permissions": {"memory_limit_mb": 128, "timeout_s": 10},
        "execution": {"type": "process", "command": ["bin/run"], "system_paths": true}
    });
    std::fs::write(dir.join("slovo.json"), manifest.to_string()).unwrap();
    dir
}

fn chain(
    name: &str,
    version: &str,
    parameters: Value,
    steps: Value,
    result: Value,
    timeout_s: u64,
) -> ImportSource {
    let mut execution = json!({"type": "chain", "steps": steps});
    if !result.is_null() {
        execution["result"] = result;
    }
    let text = json!({
        "name": name,
        "version": version,
        "description": format!("The chain {name}"),
        "capabilities": [{"name": "run", "description": format!("Run the chain {name}"), "parameters": parameters,
                          "examples": examples_of(name)}],
        "permissions": {"timeout_s": timeout_s},
        "execution": execution
    });
    ImportSource::Manifest {
        name: format!("{name}.json"),
        bytes: text.to_string().into_bytes(),
    }
}

fn examples_of(chain: &str) -> Vec<&'static str> {
    match chain {
        "outfit" => vec!["what should I wear tomorrow"],
        _ => vec![],
    }
}

fn outfit_chain(version: &str) -> ImportSource {
    chain(
        "outfit",
        version,
        json!({"type": "object", "required": ["city"],
               "properties": {"city": {"type": "string"}, "notes": {"type": "string"}}}),
        json!([
            {"id": "weather", "call": "weather.forecast", "with": {"city": "$.input.city"}},
            {"id": "count", "call": "text-stats.stats", "with": {"text": "$.input.notes"}, "when": "$.input.notes"},
            {"id": "label", "call": "sleeper.nap", "with": {"ms": 10, "label": "$.steps.weather.output.body.city"}}
        ]),
        json!({"temp": "$.steps.weather.output.body.temp", "words": "$.steps.count.output.words",
               "echoed": "$.steps.label.output.label", "counted": "$.steps.count.status"}),
        30,
    )
}

struct Setup {
    rt: Runtime,
    label: &'static str,
    _db: slovo_test_support::TestDb,
}

async fn setups(port: u16, scratch: &Path) -> Vec<Setup> {
    let mut out = Vec::new();
    for (n, db) in test_dbs().await.into_iter().enumerate() {
        let data = db.dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        let mut process = ProcessConfig::new(data.join("sandbox"));
        // A host uid of this test's own, so that tests running in parallel never share one.
        let id = 1_970_000 + u32::try_from(n).unwrap() + 10 * (std::process::id() % 1000);
        (process.host_uid, process.host_gid) = (id, id);
        let process = ProcessBackend::new(process).unwrap();
        assert_eq!(
            process.refusal(),
            None,
            "this host must support the full process sandbox"
        );
        let wasm = WasmBackend::new(WasmConfig::new(data.join("wasm-cache"))).unwrap();
        let http = HttpBackend::new(HttpConfig {
            allow_private_addresses: true,
            ..HttpConfig::default()
        });
        let backends = Backends::new()
            .with(Arc::new(process))
            .with(Arc::new(wasm))
            .with(Arc::new(http));
        let rt = Runtime::new(db.store().await, backends, &data);
        let text_stats = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/text-stats");
        for source in [
            ImportSource::Bundle(text_stats),
            ImportSource::Bundle(sleeper_bundle(&scratch.join(db.label))),
            weather_tool(port),
        ] {
            let report = rt.import(source, &actor()).await.unwrap();
            rt.approve(&report.tool, &Narrowing::default(), &actor())
                .await
                .unwrap();
        }
        out.push(Setup {
            rt,
            label: db.label,
            _db: db,
        });
    }
    out
}

async fn children(rt: &Runtime, parent: &str) -> Vec<slovo_runtime::ExecutionView> {
    let mut all = rt
        .executions(&ExecutionFilter {
            limit: 1000,
            ..ExecutionFilter::default()
        })
        .await
        .unwrap();
    all.retain(|e| e.parent_execution_id.as_deref() == Some(parent));
    all.sort_by_key(|e| e.started_at);
    all
}

async fn audit_payloads(rt: &Runtime, execution_id: &str) -> Vec<Value> {
    let events = rt.store().audit_page(0, 10_000).await.unwrap();
    events
        .into_iter()
        .filter(|e| e.kind == "execution.finished")
        .map(|e| serde_json::from_str::<Value>(&e.payload).unwrap())
        .filter(|p| p["execution_id"] == execution_id || p["parent_execution_id"] == execution_id)
        .collect()
}

#[tokio::test]
async fn chains_run_each_step_under_its_own_grant_with_linked_records() {
    let (port, seen) = weather_server();
    let scratch = tempfile::tempdir().unwrap();
    for s in setups(port, scratch.path()).await {
        let (rt, label) = (&s.rt, s.label);

        // Import proposes; approval shows steps, tools, the union of their grants, hints.
        let report = rt.import(outfit_chain("1.0.0"), &actor()).await.unwrap();
        assert_eq!(report.status.to_string(), "pending_approval", "{label}");
        rt.approve("outfit", &Narrowing::default(), &actor())
            .await
            .unwrap();
        let view = rt.show("outfit").await.unwrap();
        let shown = view.chain.expect("a chain's view");
        let tools: Vec<&str> = shown.tools.iter().map(|t| t.tool.as_str()).collect();
        assert_eq!(tools, ["sleeper", "text-stats", "weather"], "{label}");
        let union = shown.union.expect("union of grants");
        assert_eq!(
            union.network_allow.len(),
            1,
            "{label}: only weather reaches a network"
        );
        let largest = shown
            .tools
            .iter()
            .map(|t| t.grant.as_ref().unwrap().memory_limit_mb)
            .max();
        assert_eq!(
            Some(union.memory_limit_mb),
            largest,
            "{label}: the largest memory limit"
        );
        assert!(
            shown
                .tools
                .iter()
                .any(|t| t.grant.as_ref().unwrap().memory_limit_mb == 128)
        );
        assert!(
            shown.hints.read_only && shown.hints.open_world && !shown.hints.destructive,
            "{label}"
        );
        assert_eq!(shown.approval, "holds", "{label}");
        let label_step = shown.steps.iter().find(|s| s.id == "label").unwrap();
        assert!(
            label_step.after.contains("weather"),
            "{label}: dependency from the reference"
        );

        // Arguments flow from the input and from earlier steps' outputs.
        let exec = rt
            .call(call(
                "outfit",
                "run",
                json!({"city": "Oslo", "notes": "Warm coat. Blue scarf."}),
            ))
            .await
            .unwrap();
        assert_eq!(exec.status, ExecutionStatus::Success, "{label}: {exec:?}");
        assert_eq!(
            exec.output,
            Some(json!({"temp": 21, "words": 4, "echoed": "Oslo", "counted": "success"})),
            "{label}"
        );
        let kids = children(rt, &exec.id).await;
        let mut tools: Vec<&str> = kids.iter().map(|k| k.tool.as_str()).collect();
        tools.sort();
        assert_eq!(tools, ["sleeper", "text-stats", "weather"], "{label}");
        assert!(
            kids.iter().all(|k| k.status == ExecutionStatus::Success),
            "{label}: {kids:?}"
        );
        let sleeper = kids.iter().find(|k| k.tool == "sleeper").unwrap();
        assert_eq!(sleeper.arguments, json!({"ms": 10, "label": "Oslo"}), "{label}");
        // Audit events link both ways: each step names its parent, the chain lists its steps.
        let payloads = audit_payloads(rt, &exec.id).await;
        assert_eq!(payloads.len(), 4, "{label}: {payloads:?}");
        let parent_event = payloads
            .iter()
            .find(|p| p["execution_id"] == exec.id.as_str())
            .unwrap();
        let listed: Vec<&str> = parent_event["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["execution_id"].as_str().unwrap())
            .collect();
        for k in &kids {
            assert!(listed.contains(&k.id.as_str()), "{label}: {k:?} not listed");
        }

        // A condition that does not hold skips its step; references to it resolve to nothing.
        let exec = rt
            .call(call("outfit", "run", json!({"city": "Bergen"})))
            .await
            .unwrap();
        assert_eq!(
            exec.output,
            Some(json!({"temp": 21, "echoed": "Bergen", "counted": "skipped"})),
            "{label}"
        );
        assert_eq!(children(rt, &exec.id).await.len(), 2, "{label}");

        // Independent steps run at the same time (measured).
        rt.import(
            chain(
                "pair",
                "1.0.0",
                json!({"type": "object"}),
                json!([
                    {"id": "a", "call": "sleeper.nap", "with": {"ms": NAP_MS, "label": "a"}},
                    {"id": "b", "call": "sleeper.nap", "with": {"ms": NAP_MS, "label": "b"}}
                ]),
                Value::Null,
                30,
            ),
            &actor(),
        )
        .await
        .unwrap();
        rt.approve("pair", &Narrowing::default(), &actor()).await.unwrap();
        let clock = Instant::now();
        let exec = rt.call(call("pair", "run", json!({}))).await.unwrap();
        let elapsed = clock.elapsed().as_millis() as u64;
        assert_eq!(exec.status, ExecutionStatus::Success, "{label}: {exec:?}");
        assert_eq!(exec.output.as_ref().unwrap()["b"]["slept_ms"], NAP_MS, "{label}");
        println!("{label}: two steps of {NAP_MS} ms each took {elapsed} ms as a chain");
        assert!(elapsed >= NAP_MS, "{label}: the steps really slept");
        assert!(
            elapsed < 2 * NAP_MS,
            "{label}: {elapsed} ms: the steps ran one after the other"
        );

        // A failing step is named; earlier results stay recorded; later steps never start.
        rt.import(
            chain(
                "broken",
                "1.0.0",
                json!({"type": "object"}),
                json!([
                    {"id": "first", "call": "sleeper.nap", "with": {"ms": 1, "label": "ok"}},
                    {"id": "second", "call": "sleeper.fail", "with": {"after": "$.steps.first.status"}},
                    {"id": "third", "call": "sleeper.nap", "with": {"ms": 1, "label": "$.steps.second.status"}}
                ]),
                Value::Null,
                30,
            ),
            &actor(),
        )
        .await
        .unwrap();
        rt.approve("broken", &Narrowing::default(), &actor())
            .await
            .unwrap();
        let exec = rt.call(call("broken", "run", json!({}))).await.unwrap();
        assert_eq!(exec.status, ExecutionStatus::Failure, "{label}");
        let error = exec.error.clone().unwrap();
        assert!(
            error.contains("step \"second\" (sleeper.fail)"),
            "{label}: {error}"
        );
        let steps = &exec.output.as_ref().unwrap()["steps"];
        assert_eq!(steps[2]["status"], "not_started", "{label}: {steps}");
        let kids = children(rt, &exec.id).await;
        assert_eq!(kids.len(), 2, "{label}");
        assert_eq!(kids[0].status, ExecutionStatus::Success, "{label}");
        assert_eq!(kids[1].status, ExecutionStatus::Failure, "{label}");
        // The step's arguments failed the step tool's schema? No: extra members are allowed
        // there; the process exited 3.
        assert_eq!(kids[1].exit_code, Some(3), "{label}");

        // The chain's budget bounds the whole: a step's timeout is narrowed to what is left.
        rt.import(
            chain(
                "hurried",
                "1.0.0",
                json!({"type": "object"}),
                json!([{"id": "slow", "call": "sleeper.nap", "with": {"ms": 4000, "label": "slow"}}]),
                Value::Null,
                1,
            ),
            &actor(),
        )
        .await
        .unwrap();
        rt.approve("hurried", &Narrowing::default(), &actor())
            .await
            .unwrap();
        let clock = Instant::now();
        let exec = rt.call(call("hurried", "run", json!({}))).await.unwrap();
        let elapsed = clock.elapsed().as_millis();
        assert_eq!(exec.status, ExecutionStatus::Timeout, "{label}: {exec:?}");
        assert!(
            elapsed < 3000,
            "{label}: {elapsed} ms: the step ran past the chain's 1 s budget"
        );
        let kids = children(rt, &exec.id).await;
        assert_eq!(kids[0].status, ExecutionStatus::Timeout, "{label}: {kids:?}");
        assert!(
            exec.error.as_deref().unwrap().contains("step \"slow\""),
            "{label}: {exec:?}"
        );

        // A step whose built arguments do not fit its capability's schema is refused before
        // it runs (no record of it), and the chain names it.
        rt.import(
            chain(
                "misfit",
                "1.0.0",
                json!({"type": "object", "properties": {"ms": {}}}),
                json!([{"id": "nap", "call": "sleeper.nap", "with": {"ms": "$.input.ms"}}]),
                Value::Null,
                10,
            ),
            &actor(),
        )
        .await
        .unwrap();
        rt.approve("misfit", &Narrowing::default(), &actor())
            .await
            .unwrap();
        let exec = rt
            .call(call("misfit", "run", json!({"ms": 999_999})))
            .await
            .unwrap();
        assert_eq!(exec.status, ExecutionStatus::Failure, "{label}");
        let error = exec.error.unwrap();
        assert!(
            error.contains("step \"nap\" (sleeper.nap) refused"),
            "{label}: {error}"
        );
        assert!(children(rt, &exec.id).await.is_empty(), "{label}");

        // `resolve` ranks chains with every other capability.
        let resolved = rt
            .resolve("what should I wear tomorrow", 3, &actor())
            .await
            .unwrap();
        let best = &resolved.resolution.candidates[0];
        assert_eq!(
            (best.tool.as_str(), best.capability.as_str()),
            ("outfit", "run"),
            "{label}"
        );

        // A step runs under its own tool's grant only: the process tool has no network, so it
        // cannot reach the API the HTTP step of the same chain reaches.
        rt.import(
            chain(
                "sneak",
                "1.0.0",
                json!({"type": "object"}),
                json!([
                    {"id": "weather", "call": "weather.forecast", "with": {"city": "Sneak"}},
                    {"id": "grab", "call": "sleeper.fetch", "on_error": "continue",
                     "with": {"url": format!("http://127.0.0.1:{port}/forecast?city=grabbed")}}
                ]),
                json!({"weather": "$.steps.weather.output.body.city", "grab": "$.steps.grab.status"}),
                30,
            ),
            &actor(),
        )
        .await
        .unwrap();
        rt.approve("sneak", &Narrowing::default(), &actor())
            .await
            .unwrap();
        let before = seen.lock().unwrap().len();
        let exec = rt.call(call("sneak", "run", json!({}))).await.unwrap();
        assert_eq!(
            exec.status,
            ExecutionStatus::Success,
            "{label}: on_error continue: {exec:?}"
        );
        assert_eq!(
            exec.output,
            Some(json!({"weather": "Sneak", "grab": "failure"})),
            "{label}"
        );
        let requests: Vec<String> = seen.lock().unwrap()[before..].to_vec();
        assert!(
            requests.iter().all(|r| !r.contains("grabbed")),
            "{label}: {requests:?}"
        );
        assert_eq!(requests.len(), 1, "{label}: {requests:?}");

        // A new version of a chain waits for a person, whatever it changes; the approved one
        // keeps serving.
        let report = rt.import(outfit_chain("1.0.1"), &actor()).await.unwrap();
        assert_eq!(
            report.outcome,
            slovo_runtime::ImportOutcome::UpgradePending,
            "{label}"
        );
        let exec = rt
            .call(call("outfit", "run", json!({"city": "Oslo"})))
            .await
            .unwrap();
        assert_eq!(exec.version, "1.0.0", "{label}");

        // A disabled step tool makes the chain refuse (nothing written), and it stays refused
        // after the tool is enabled again until the chain is approved again.
        let dump = rt.store().dump().await.unwrap();
        rt.disable("weather", &actor()).await.unwrap();
        let dump_after_disable = rt.store().dump().await.unwrap();
        let refused = rt
            .call(call("outfit", "run", json!({"city": "Oslo"})))
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::InvalidState, "{label}: {refused}");
        assert!(refused.to_string().contains("weather"), "{label}: {refused}");
        assert_eq!(
            rt.store().dump().await.unwrap(),
            dump_after_disable,
            "{label}: refusal wrote"
        );
        assert_ne!(dump, dump_after_disable);
        rt.enable("weather", &actor()).await.unwrap();
        let refused = rt
            .call(call("outfit", "run", json!({"city": "Oslo"})))
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("approve the chain again"),
            "{label}: {refused}"
        );
        rt.approve("outfit", &Narrowing::default(), &actor())
            .await
            .unwrap();
        let exec = rt
            .call(call("outfit", "run", json!({"city": "Oslo"})))
            .await
            .unwrap();
        assert_eq!(
            exec.status,
            ExecutionStatus::Success,
            "{label}: re-approved: {exec:?}"
        );

        // A step tool upgraded to a wider grant: the old grant serves (and the chain with it)
        // while the upgrade waits; once approved, the chain refuses until approved again.
        let ImportSource::Manifest { bytes, .. } = weather_tool(port) else {
            unreachable!()
        };
        let mut wider: Value = serde_json::from_slice(&bytes).unwrap();
        wider["version"] = json!("1.1.0");
        wider["permissions"]["network_allow"] = json!(["localhost", "weather.example.org"]);
        let report = rt
            .import(
                ImportSource::Manifest {
                    name: "weather-1.1.0.json".into(),
                    bytes: wider.to_string().into_bytes(),
                },
                &actor(),
            )
            .await
            .unwrap();
        assert_eq!(
            report.outcome,
            slovo_runtime::ImportOutcome::UpgradePending,
            "{label}"
        );
        let exec = rt
            .call(call("outfit", "run", json!({"city": "Oslo"})))
            .await
            .unwrap();
        assert_eq!(
            exec.status,
            ExecutionStatus::Success,
            "{label}: the approved grant still serves"
        );
        rt.approve("weather", &Narrowing::default(), &actor())
            .await
            .unwrap();
        let refused = rt
            .call(call("outfit", "run", json!({"city": "Oslo"})))
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("another grant"),
            "{label}: {refused}"
        );
        rt.approve("outfit", &Narrowing::default(), &actor())
            .await
            .unwrap();
        let exec = rt
            .call(call("outfit", "run", json!({"city": "Oslo"})))
            .await
            .unwrap();
        assert_eq!(
            exec.status,
            ExecutionStatus::Success,
            "{label}: re-approved: {exec:?}"
        );

        // A revoked step tool: refused, naming it.
        rt.revoke("text-stats", false, &actor()).await.unwrap();
        let refused = rt
            .call(call("outfit", "run", json!({"city": "Oslo"})))
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("text-stats"), "{label}: {refused}");
        // …and approving the chain again is refused while the tool is not active.
        let refused = rt
            .approve("outfit", &Narrowing::default(), &actor())
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("text-stats"), "{label}: {refused}");

        rt.verify_audit().await.unwrap();
    }
}

#[tokio::test]
async fn chain_manifests_with_unknown_references_or_cycles_are_refused() {
    let cycle = chain(
        "loop",
        "1.0.0",
        json!({"type": "object"}),
        json!([
            {"id": "a", "call": "x.y", "with": {"v": "$.steps.b.output"}},
            {"id": "b", "call": "x.y", "with": {"v": "$.steps.a.output"}}
        ]),
        Value::Null,
        10,
    );
    let unknown = chain(
        "lost",
        "1.0.0",
        json!({"type": "object", "properties": {"city": {"type": "string"}}}),
        json!([{"id": "a", "call": "x.y", "with": {"v": "$.steps.nope.output.temp"}}]),
        Value::Null,
        10,
    );
    let networked = ImportSource::Manifest {
        name: "net.json".into(),
        bytes: json!({"name": "net", "version": "1.0.0", "description": "d",
                      "capabilities": [{"name": "run", "description": "r", "parameters": {"type": "object"}}],
                      "permissions": {"network_allow": ["example.org"]},
                      "execution": {"type": "chain", "steps": [{"id": "a", "call": "x.y"}]}})
        .to_string()
        .into_bytes(),
    };
    for db in test_dbs().await {
        let rt = Runtime::new(db.store().await, Backends::new(), db.dir.path().join("data"));
        let before = rt.store().dump().await.unwrap();
        for (source, field, words) in [
            (cycle.clone(), "execution.steps[0].with.v", "cycle: a → b → a"),
            (unknown.clone(), "execution.steps[0].with.v", "names no step"),
            (
                networked.clone(),
                "permissions.network_allow",
                "no permissions of its own",
            ),
        ] {
            let e = rt.import(source, &actor()).await.unwrap_err().to_string();
            assert!(e.contains(field) && e.contains(words), "{}: {e}", db.label);
        }
        assert_eq!(rt.store().dump().await.unwrap(), before, "{}", db.label);
    }
}
