//! The contract: stdin, stdout, env, identity, status, accounting and refusals.

use std::time::Instant;

use serde_json::json;
use slovo_core::execution::NetworkPolicy;
use slovo_core::manifest::Execution;
use slovo_sandbox::Backend;
use slovo_sandbox::process::{ProcessBackend, ProcessConfig, Support};

use super::support::*;
use crate::require_root;

#[tokio::test]
async fn echoes_the_request_as_json() {
    require_root!();
    let sb = Sandbox::new();
    let o = sb.run(&sb.spec("echo", &["echo"])).await;
    assert_eq!(o.status.as_str(), "success", "{o:#?}");
    assert_eq!(o.output, Some(json!({"capability": "probe", "arguments": {}})));
    assert_eq!(o.exit_code, Some(0));
    assert!(o.cpu_ms.is_some() && o.peak_memory_bytes.is_some(), "{o:#?}");
    assert!(o.sandbox_id.as_deref().unwrap_or("").starts_with("slovo-"));
}

#[tokio::test]
async fn runs_unprivileged_without_capabilities_under_seccomp() {
    require_root!();
    let sb = Sandbox::new();
    let info = sb.probe("info", &["info"]).await;
    assert_eq!(
        info,
        json!({
            "uid": 1000, "euid": 1000, "gid": 1000, "egid": 1000, "pid": 1,
            "hostname": "slovo", "capability": "probe", "cwd": "/tool",
            "cap_eff": "0000000000000000", "seccomp": "2", "no_new_privs": "1",
            "sig_ign": "0000000000000000", "sig_blk": "0000000000000000"
        })
    );
}

#[tokio::test]
async fn a_non_zero_exit_is_a_failure_with_stderr() {
    require_root!();
    let sb = Sandbox::new();
    let o = sb.run(&sb.spec("exit", &["exit", "3"])).await;
    assert_eq!(o.status.as_str(), "failure");
    assert_eq!(o.exit_code, Some(3));
    assert_eq!(o.error.as_deref(), Some("exited with code 3"));
    assert_eq!(o.stderr, "exiting with 3\n");
}

#[tokio::test]
async fn stderr_is_capped() {
    require_root!();
    let sb = Sandbox::with_config(|c| c.stderr_limit = 1000);
    let o = sb.run(&sb.spec("errflood", &["stderr-flood"])).await;
    assert_eq!(o.status.as_str(), "success", "{o:#?}");
    assert!(o.stderr.starts_with(&"E".repeat(1000)));
    assert!(o.stderr.ends_with("[stderr truncated]"));
    assert!(o.stderr.len() < 1100);
}

#[tokio::test]
async fn a_missing_program_fails_clearly() {
    require_root!();
    let sb = Sandbox::new();
    let mut spec = sb.spec("missing", &[]);
    spec.execution = Execution::Process {
        command: vec!["nope".into()],
        system_paths: false,
    };
    let o = sb.run(&spec).await;
    assert_eq!(o.status.as_str(), "failure");
    assert_eq!(
        o.error.as_deref(),
        Some(
            "failed to execute /tool/nope: No such file or directory (os error 2) (a dynamically linked program or a script needs system_paths)"
        )
    );
}

#[tokio::test]
async fn system_paths_run_the_hosts_python_read_only() {
    require_root!();
    let sb = Sandbox::new();
    let mut spec = sb.spec("py", &[]);
    spec.execution = Execution::Process {
        command: vec![
            "hostile".into(),
            "exec".into(),
            "/usr/bin/python3".into(),
            "-c".into(),
            "import json, os, threading, subprocess; t = threading.Thread(target=print); t.start(); t.join(); \
             subprocess.run(['/tool/hostile', 'info'], check=True, capture_output=True); \
             ssl = sorted(os.listdir('/etc/ssl')) if os.path.isdir('/etc/ssl') else None; \
             print(json.dumps({'ok': True, 'etc': sorted(os.listdir('/etc')), 'ssl': ssl}))"
                .into(),
        ],
        system_paths: true,
    };
    let o = sb.run(&spec).await;
    assert_eq!(o.status.as_str(), "success", "{o:#?}");
    // Of `/etc`, only what the loader and Debian's alternatives need, and the public CA
    // certificates (not the rest of `/etc/ssl`, where private keys live).
    let expected = if std::path::Path::new("/etc/ssl/certs").is_dir() {
        json!({"ok": true, "etc": ["alternatives", "ld.so.cache", "ssl"], "ssl": ["certs"]})
    } else {
        json!({"ok": true, "etc": ["alternatives", "ld.so.cache"], "ssl": null})
    };
    assert_eq!(o.output, Some(expected));
    // Without system paths there is no interpreter at all.
    spec.execution = Execution::Process {
        command: vec!["hostile".into(), "exec".into(), "/usr/bin/python3".into()],
        system_paths: false,
    };
    assert_eq!(sb.run(&spec).await.output, Some(json!({"errno": libc::ENOENT})));
}

#[tokio::test]
async fn a_network_grant_gets_the_proxy_variables_and_nothing_else() {
    require_root!();
    let sb = Sandbox::new();
    let mut spec = sb.spec("net", &["exec", "/usr/bin/env"]);
    spec.execution = Execution::Process {
        command: vec!["hostile".into(), "exec".into(), "/usr/bin/env".into()],
        system_paths: true,
    };
    spec.network = NetworkPolicy::Public;
    let o = sb.run(&spec).await;
    assert_eq!(o.status.as_str(), "success", "{o:#?}");
    let env = o
        .output
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        assert!(env.contains(&format!("{var}=http://127.0.0.1:3128\n")), "{env}");
    }
    assert!(o.network_denials.is_empty());
}

#[tokio::test]
async fn a_host_without_a_feature_refuses_unless_a_weaker_tier_is_named() {
    require_root!();
    let sb = Sandbox::new();
    let weak_host = Support {
        landlock_abi: 0,
        ..sb.backend.support().clone()
    };
    let work = sb.dir.path().join("weak");
    let strict = ProcessBackend::with_support(ProcessConfig::new(&work), weak_host.clone()).unwrap();
    let o = strict.run(&sb.spec("weak", &["info"])).await;
    assert_eq!(o.status.as_str(), "failure");
    assert!(o.error.as_deref().unwrap_or("").contains("landlock"), "{o:#?}");

    let config = ProcessConfig {
        allow_weaker: true,
        ..ProcessConfig::new(&work)
    };
    let weaker = ProcessBackend::with_support(config, weak_host).unwrap();
    assert_eq!(weaker.refusal(), None);
    let o = weaker.run(&sb.spec("weak", &["info"])).await;
    assert_eq!(o.status.as_str(), "success", "{o:#?}");
    weaker.release_state(&sb.state("weak"), true).unwrap();
}

#[tokio::test]
async fn a_trivial_call_is_fast() {
    require_root!();
    let sb = Sandbox::new();
    let spec = sb.spec("fast", &["echo"]);
    sb.run(&spec).await;
    let t = Instant::now();
    for _ in 0..10 {
        assert_eq!(sb.run(&spec).await.status.as_str(), "success");
    }
    let per_call = t.elapsed() / 10;
    assert!(per_call.as_millis() < 50, "{per_call:?} per call");
}
