//! Network denials reported by a backend reach the execution record, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;
use slovo_core::execution::{ExecutionStatus, NetworkDenial, Outcome, SandboxSpec};
use slovo_core::install::{DockerDeferred, DockerFacts, InstallFacts};
use slovo_core::permissions::Narrowing;
use slovo_runtime::{Actor, ImportSource, Runtime};
use slovo_sandbox::{Backend, BackendError, Backends, InstallRequest};
use slovo_test_support::test_dbs;

/// A backend that reports, for a tool with a network grant, the denials an egress proxy
/// would have recorded.
struct DenyingBackend;

#[async_trait]
impl Backend for DenyingBackend {
    fn kind(&self) -> &'static str {
        "docker"
    }
    async fn install(&self, _: &InstallRequest) -> Result<InstallFacts, BackendError> {
        Ok(InstallFacts::Docker(DockerFacts::Deferred(DockerDeferred {
            image: "test".into(),
            entrypoint: None,
            reason: "a test backend pins no image".into(),
        })))
    }
    async fn run(&self, spec: &SandboxSpec) -> Outcome {
        let network_denials = if spec.network.allows_network() {
            vec![
                NetworkDenial {
                    host: "evil.example.net".into(),
                    port: 443,
                    reason: "evil.example.net:443 is not in the grant's allow list (api.example.org)".into(),
                },
                NetworkDenial {
                    host: "api.example.org".into(),
                    port: 443,
                    reason: "api.example.org resolves to 127.0.0.1, which is not a public address".into(),
                },
            ]
        } else {
            Vec::new()
        };
        Outcome {
            status: ExecutionStatus::Success,
            output: Some(json!({"ok": true})),
            exit_code: Some(0),
            network_denials,
            ..Outcome::default()
        }
    }
}

fn manifest(name: &str, hosts: &[&str]) -> ImportSource {
    let text = json!({
        "name": name,
        "version": "1.0.0",
        "description": "Reaches out",
        "capabilities": [{"name": "go", "description": "Go", "parameters": {"type": "object"}}],
        "permissions": {"network_allow": hosts},
        "execution": {"type": "docker", "image": "slovo-test/net:1"}
    });
    ImportSource::Manifest {
        name: format!("{name}.json"),
        bytes: text.to_string().into_bytes(),
    }
}

fn call(tool: &str) -> slovo_runtime::CallRequest {
    slovo_runtime::CallRequest {
        tool: tool.into(),
        capability: "go".into(),
        arguments: json!({}),
        conversation_id: None,
        turn_id: None,
        actor: Actor("test".into()),
    }
}

#[tokio::test]
async fn network_denials_are_stored_on_the_execution() {
    for db in test_dbs().await {
        let rt = Runtime::new(
            db.store().await,
            Backends::new().with(Arc::new(DenyingBackend)),
            db.dir.path().join("data"),
        );
        let actor = Actor("test".into());
        for (name, hosts) in [("net", &["api.example.org"][..]), ("quiet", &[][..])] {
            rt.import(manifest(name, hosts), &actor).await.unwrap();
            rt.approve(name, &Narrowing::default(), &actor).await.unwrap();
        }
        let exec = rt.call(call("net")).await.unwrap();
        assert_eq!(exec.network_denials.len(), 2, "{}", db.label);
        let stored = rt.execution(&exec.id).await.unwrap();
        assert_eq!(stored.network_denials, exec.network_denials, "{}", db.label);
        assert_eq!(stored.network_denials[1].host, "api.example.org");
        assert!(stored.network_denials[1].reason.contains("127.0.0.1"));
        // Shown in the JSON record; absent when there were none.
        assert_eq!(
            serde_json::to_value(&stored).unwrap()["network_denials"][0]["port"],
            json!(443)
        );
        let quiet = rt.call(call("quiet")).await.unwrap();
        let stored = rt.execution(&quiet.id).await.unwrap();
        assert!(stored.network_denials.is_empty(), "{}", db.label);
        assert!(
            serde_json::to_value(&stored)
                .unwrap()
                .get("network_denials")
                .is_none()
        );
    }
}
