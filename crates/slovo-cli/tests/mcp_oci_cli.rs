//! An MCP server in an OCI image through the `slovo` binary: `slovo mcp-server import
//! oci:IMAGE@sha256:DIGEST` (a tag alone refused as invalid input), approval and calls, each in
//! a fresh container of the Docker backend, `/data` kept between them. The image is built
//! locally (`slovo-runtime/tests/mcp_support/oci_image.rs`); the test needs the Docker daemon
//! (`scripts/ci-docker-setup.sh`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../slovo-runtime/tests/mcp_support/oci_image.rs"]
mod oci_image;
mod support;

use serde_json::{Value, json};
use support::{ok, run};

#[test]
fn an_image_is_imported_by_digest_approved_and_called() {
    let Some(()) = oci_image::docker_ready() else {
        return;
    };
    let image = oci_image::image();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let tagged = run(&data, &["mcp-server", "import", &format!("oci:{}", image.tagged)]);
    assert_eq!(
        tagged.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&tagged.stderr)
    );
    assert!(String::from_utf8_lossy(&tagged.stderr).contains("names no digest"));

    let source = format!("oci:{}", image.by_digest());
    let out = ok(
        &data,
        &[
            "mcp-server",
            "import",
            &source,
            "--name",
            "oci-echo",
            "--arg",
            "plain",
        ],
    );
    assert!(out.contains("oci-echo 0.0.0+sha256."), "{out}");
    assert!(out.contains(&format!("integrity {}", image.id)), "{out}");
    assert!(out.contains("capability remember"), "{out}");

    ok(&data, &["tool", "approve", "oci-echo"]);
    let call = |capability: &str, arguments: Value| -> Value {
        let out = ok(
            &data,
            &[
                "--json",
                "call",
                "oci-echo",
                capability,
                "--args",
                &arguments.to_string(),
            ],
        );
        serde_json::from_str(&out).unwrap()
    };
    let exec = call("echo", json!({"text": "from the command line"}));
    assert_eq!(exec["status"], "success", "{exec:#}");
    assert_eq!(exec["output"], "from the command line", "{exec:#}");
    call("remember", json!({"text": "first"}));
    let exec = call("remember", json!({"text": "second"}));
    assert_eq!(exec["output"], json!({"notes": "first\nsecond"}), "{exec:#}");
}
