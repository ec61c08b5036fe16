//! A WebAssembly tool through the `slovo` binary: bundle import, approval (which compiles the
//! module into the data directory), calls, and a hostile module contained and recorded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../slovo-sandbox/tests/wasm_support/tools.rs"]
mod wasm_tools;

mod support;

use std::path::Path;

use serde_json::{Value, json};
use support::{ok, run};

fn bundle(dir: &Path, name: &str, module: &str, capability: &str) -> std::path::PathBuf {
    let bundle = dir.join(name);
    std::fs::create_dir_all(&bundle).unwrap();
    let built = wasm_tools::wasm_tools_dir(Path::new(env!("CARGO_TARGET_TMPDIR"))).join(module);
    std::fs::copy(built, bundle.join("tool.wasm")).unwrap();
    std::fs::write(
        bundle.join("slovo.yaml"),
        format!(
            "name: {name}\nversion: 1.0.0\ndescription: {name}\ncapabilities:\n  - name: {capability}\n    description: {capability}\n\
             permissions: {{memory_limit_mb: 32, storage_quota_mb: 1, timeout_s: 2}}\n\
             execution: {{type: wasm, module: tool.wasm}}\n"
        ),
    )
    .unwrap();
    bundle
}

#[test]
fn wasm_tools_install_precompiled_and_run_contained() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let echo = bundle(dir.path(), "echo", "echo.wasm", "say");
    ok(&data, &["tool", "import", echo.to_str().unwrap()]);
    ok(&data, &["tool", "approve", "echo"]);
    // Approval compiled the module once, into the data directory.
    let cached: Vec<_> = std::fs::read_dir(data.join("wasm-cache"))
        .unwrap()
        .flatten()
        .collect();
    assert!(!cached.is_empty(), "no precompiled artifact under wasm-cache");
    let rec: Value = serde_json::from_str(&ok(
        &data,
        &[
            "--json",
            "call",
            "echo",
            "say",
            "--args",
            r#"{"text": "bonjour"}"#,
        ],
    ))
    .unwrap();
    assert_eq!(rec["status"], "success", "{rec}");
    assert_eq!(
        rec["output"]["request"],
        json!({"capability": "say", "arguments": {"text": "bonjour"}}),
        "{rec}"
    );

    // An infinite loop is stopped at the granted timeout and recorded as such.
    let spin = bundle(dir.path(), "spin", "spin.wasm", "run");
    ok(&data, &["tool", "import", spin.to_str().unwrap()]);
    ok(&data, &["tool", "approve", "spin", "--timeout", "1"]);
    let out = run(&data, &["--json", "call", "spin", "run"]);
    let rec: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(rec["status"], "timeout", "{rec}");
    let listed: Value =
        serde_json::from_str(&ok(&data, &["--json", "executions", "--tool", "spin"])).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    ok(&data, &["audit", "verify"]);
}
