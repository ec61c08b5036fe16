//! Every variant's kind and payload text, pinned against the `json!` objects the runtime wrote
//! before the payloads were typed: events written either way hash alike, so old trails verify.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::permissions::{HostPattern, Narrowing};

fn permissions() -> Permissions {
    Permissions {
        network_allow: vec!["api.example.org".parse::<HostPattern>().expect("a valid pattern")],
        ..Permissions::default()
    }
}

fn grant() -> Grant {
    Grant::narrowed(&permissions(), &Narrowing::default()).expect("the request itself is grantable")
}

fn widening() -> Widening {
    Widening {
        field: "permissions.timeout_s",
        granted: "10".into(),
        requested: "20".into(),
    }
}

fn change() -> Change {
    Change {
        field: "execution.command",
        serving: Some("a".into()),
        proposed: None,
    }
}

/// The record's kind and payload text are exactly `kind` and `old`'s text.
fn pinned(record: AuditRecord, kind: &str, old: serde_json::Value) {
    assert_eq!(record.kind(), kind);
    assert_eq!(record.payload().to_string(), old.to_string(), "payload of {kind}");
    assert!(kinds::ALL.contains(&kind), "{kind} is missing from kinds::ALL");
}

#[test]
fn tool_events_are_written_as_before() {
    for (outcome, kind) in [
        (ImportOutcome::New, "tool.imported"),
        (ImportOutcome::PendingReplaced, "tool.imported"),
        (ImportOutcome::Reimported, "tool.imported"),
        (ImportOutcome::UpgradedInPlace, "tool.upgraded"),
        (ImportOutcome::UpgradePending, "tool.upgrade_pending"),
    ] {
        pinned(
            AuditRecord::ToolImported(ToolImported {
                version: "1.2.0".into(),
                outcome,
                digest: "d1".into(),
                source: "t.yaml".into(),
                requested: permissions(),
                widenings: vec![widening()],
                changes: Some(vec![change()]),
            }),
            kind,
            json!({"version": "1.2.0", "outcome": outcome, "digest": "d1", "source": "t.yaml",
                   "requested": permissions(), "widenings": vec![widening()], "changes": vec![change()]}),
        );
    }
    // The same version of a revoked tool imported again: no `changes`.
    pinned(
        AuditRecord::ToolImported(ToolImported {
            version: "1.0.0".into(),
            outcome: ImportOutcome::Reimported,
            digest: "d".into(),
            source: "-".into(),
            requested: permissions(),
            widenings: vec![],
            changes: None,
        }),
        "tool.imported",
        json!({"version": "1.0.0", "outcome": ImportOutcome::Reimported, "digest": "d",
               "source": "-", "requested": permissions(), "widenings": []}),
    );
    let pins = [("step".to_string(), 7_i64)];
    pinned(
        AuditRecord::ToolApproved(ToolApproved {
            version: "1.0.0".into(),
            previous_version: None,
            requested: permissions(),
            granted: grant(),
            step_grants: vec![StepGrant {
                tool: "step".into(),
                grant_id: 7,
            }],
        }),
        "tool.approved",
        json!({
            "version": "1.0.0",
            "previous_version": None::<String>,
            "requested": permissions(),
            "granted": grant(),
            "step_grants": pins.iter().map(|(t, g)| json!({"tool": t, "grant_id": g})).collect::<Vec<_>>(),
        }),
    );
    // A Docker install's record, as the backend wrote it with `json!`.
    let install = json!({
        "image": "example/dict:1",
        "image_id": "sha256:ab",
        "repo_digests": Vec::<String>::new(),
        "entrypoint": None::<Vec<String>>,
        "user": "65534:65534",
    });
    let facts = crate::install::InstallFacts::from_value(install.clone()).expect("a Docker install record");
    pinned(
        AuditRecord::ToolInstalled(ToolInstalled {
            version: "1.0.0".into(),
            volume: "/d/volumes/t".into(),
            install: facts.clone(),
        }),
        "tool.installed",
        json!({"version": "1.0.0", "volume": "/d/volumes/t", "install": install}),
    );
    pinned(
        AuditRecord::ToolReinstalled(ToolReinstalled {
            version: "1.0.0".into(),
            install: facts,
            previous_install: None,
        }),
        "tool.reinstalled",
        json!({"version": "1.0.0", "install": install, "previous_install": None::<serde_json::Value>}),
    );
}

#[test]
fn transitions_are_written_as_before() {
    let change = |purge_state, from, to, chains: Vec<String>| StatusChange {
        purge_state,
        from,
        to,
        chains_needing_approval: chains,
    };
    pinned(
        AuditRecord::ToolDisabled(change(None, ToolStatus::Active, ToolStatus::Disabled, vec![])),
        "tool.disabled",
        json!({"from": ToolStatus::Active, "to": ToolStatus::Disabled}),
    );
    pinned(
        AuditRecord::ToolEnabled(change(None, ToolStatus::Disabled, ToolStatus::Active, vec![])),
        "tool.enabled",
        json!({"from": ToolStatus::Disabled, "to": ToolStatus::Active}),
    );
    pinned(
        AuditRecord::ToolRevoked(change(
            Some(true),
            ToolStatus::Active,
            ToolStatus::Revoked,
            vec!["trip".into()],
        )),
        "tool.revoked",
        json!({"purge_state": true, "from": ToolStatus::Active, "to": ToolStatus::Revoked,
               "chains_needing_approval": ["trip"]}),
    );
    pinned(
        AuditRecord::ToolStatePurged(StatePurged {
            path: PathBuf::from("/d/volumes/t"),
        }),
        "tool.state_purged",
        json!({"path": PathBuf::from("/d/volumes/t")}),
    );
    for (to, kind) in [
        (ToolStatus::Revoked, "tool.rejected"),
        (ToolStatus::Active, "tool.upgrade_rejected"),
    ] {
        let from = if to == ToolStatus::Revoked {
            ToolStatus::PendingApproval
        } else {
            ToolStatus::Active
        };
        pinned(
            AuditRecord::ToolRejected(ProposalRejected {
                version: "2.0.0".into(),
                reason: "no".into(),
                from,
                to,
            }),
            kind,
            json!({"version": "2.0.0", "reason": "no", "from": from, "to": to}),
        );
    }
    pinned(
        AuditRecord::ToolListChanged(ToolListChanged {
            version: "1.0.0".into(),
            difference: "+ b".into(),
            served_sha256: "ff".into(),
            replaced_pending: Some("1.1.0".into()),
        }),
        "tool.tool_list_changed",
        json!({"version": "1.0.0", "difference": "+ b", "served_sha256": "ff", "replaced_pending": "1.1.0"}),
    );
}

#[test]
fn execution_events_are_written_as_before() {
    let limits = ResourceLimits {
        memory_mb: 256,
        cpu_percent: 50,
        pids: 64,
        storage_mb: 0,
        timeout: Duration::from_millis(1500),
    };
    let network = NetworkPolicy::AllowList {
        hosts: vec!["api.example.org".parse().expect("a valid pattern")],
    };
    let steps = vec![StepRecord {
        step: "a".into(),
        call: "t.c".into(),
        status: "success".into(),
        execution_id: Some("e2".into()),
        error: None,
    }];
    let finished = |parent: Option<String>, steps: Option<Vec<StepRecord>>| CallFinished {
        execution_id: "e1".into(),
        version: "1.0.0".into(),
        capability: "c".into(),
        status: ExecutionStatus::Success,
        exit_code: Some(0),
        error: None,
        duration_ms: 12,
        cpu_ms: Some(3),
        peak_memory_bytes: None,
        sandbox_id: Some("s".into()),
        arguments_sha256: Some("aa".into()),
        output_sha256: None,
        limits: limits.clone(),
        network: network.clone(),
        parent_execution_id: parent,
        steps,
    };
    let mut old = json!({
        "execution_id": "e1",
        "version": "1.0.0",
        "capability": "c",
        "status": ExecutionStatus::Success,
        "exit_code": Some(0),
        "error": None::<String>,
        "duration_ms": 12,
        "cpu_ms": Some(3),
        "peak_memory_bytes": None::<i64>,
        "sandbox_id": Some("s"),
        "arguments_sha256": Some("aa"),
        "output_sha256": None::<String>,
        "limits": limits,
        "network": network,
    });
    pinned(
        AuditRecord::CallFinished(Box::new(finished(None, None))),
        "execution.finished",
        old.clone(),
    );
    let obj = old.as_object_mut().expect("an object");
    obj.insert("parent_execution_id".into(), json!("e0"));
    obj.insert("steps".into(), json!(steps));
    pinned(
        AuditRecord::CallFinished(Box::new(finished(Some("e0".into()), Some(steps.clone())))),
        "execution.finished",
        old,
    );
    pinned(
        AuditRecord::CallAbandoned(CallAbandoned {
            execution_id: "e1".into(),
            version: "1.0.0".into(),
            capability: "c".into(),
            status: ExecutionStatus::Interrupted,
            error: "stopped".into(),
            arguments_sha256: Some("aa".into()),
        }),
        "execution.finished",
        json!({"execution_id": "e1", "version": "1.0.0", "capability": "c",
               "status": ExecutionStatus::Interrupted, "error": "stopped",
               "arguments_sha256": Some("aa")}),
    );
    pinned(
        AuditRecord::InstanceLapsed(InstanceLapsed {
            instance: "i".into(),
            host: "h".into(),
            pid: 42,
            heartbeat_at: 1000,
            lease_ms: 30000,
            interrupted: 2,
        }),
        "instance.lapsed",
        json!({"instance": "i", "host": "h", "pid": 42, "heartbeat_at": 1000, "lease_ms": 30000,
               "interrupted": 2}),
    );
}

#[test]
fn audit_chain_events_are_pinned() {
    pinned(
        AuditRecord::AuditChainOpened(AuditChainOpened {
            chain: 2,
            instance: "i".into(),
        }),
        "audit.chain_opened",
        json!({"chain": 2, "instance": "i"}),
    );
    pinned(
        AuditRecord::AuditChainsAnchored(AuditChainsAnchored {
            chains: vec![AnchoredHead {
                chain: 2,
                seq: 7,
                hash: "ab".into(),
            }],
        }),
        "audit.chains_anchored",
        json!({"chains": [{"chain": 2, "seq": 7, "hash": "ab"}]}),
    );
}

#[test]
fn access_and_discovery_events_are_written_as_before() {
    let name = || SecretName {
        name: "API_KEY".into(),
    };
    pinned(
        AuditRecord::SecretSet(name()),
        "secret.set",
        json!({"name": "API_KEY"}),
    );
    pinned(
        AuditRecord::SecretDeleted(name()),
        "secret.deleted",
        json!({"name": "API_KEY"}),
    );
    pinned(
        AuditRecord::TokenCreated(TokenCreated {
            id: "t1".into(),
            role: Role::Admin,
            label: None,
        }),
        "token.created",
        json!({"id": "t1", "role": Role::Admin, "label": None::<String>}),
    );
    pinned(
        AuditRecord::TokenRevoked(TokenRevoked { id: "t1".into() }),
        "token.revoked",
        json!({"id": "t1"}),
    );
    pinned(
        AuditRecord::SigninLinkCreated(SigninLinkCreated {
            link: "l".into(),
            expires_at: 5,
        }),
        "dashboard.signin_link_created",
        json!({"link": "l", "expires_at": 5}),
    );
    pinned(
        AuditRecord::SigninLinkUsed(SigninLinkUsed { link: "l".into() }),
        "dashboard.signin_link_used",
        json!({"link": "l"}),
    );
    pinned(
        AuditRecord::DiscoveryRequested(DiscoveryRequested {
            request: "r".into(),
            description: "weather".into(),
            status: DiscoveryState::Pending,
        }),
        "discovery.requested",
        json!({"request": "r", "description": "weather", "status": "pending"}),
    );
    pinned(
        AuditRecord::DiscoveryRejected(DiscoveryRejected {
            request: "r".into(),
            from: DiscoveryState::Found,
            status: DiscoveryState::Rejected,
        }),
        "discovery.rejected",
        json!({"request": "r", "from": "found", "status": "rejected"}),
    );
    for (status, kind) in [
        (DiscoveryState::Pending, "discovery.pending"),
        (DiscoveryState::Searching, "discovery.searching"),
        (DiscoveryState::Found, "discovery.found"),
        (DiscoveryState::Failed, "discovery.failed"),
    ] {
        pinned(
            AuditRecord::DiscoveryMoved(DiscoveryMoved {
                request: "r".into(),
                from: DiscoveryState::Searching,
                status,
                error: None,
                proposal_tool: Some("weather".into()),
            }),
            kind,
            json!({"request": "r", "from": "searching", "status": status, "error": None::<String>,
                   "proposal_tool": Some("weather")}),
        );
    }
}

#[test]
fn every_kind_is_documented() {
    let docs = include_str!("../../../../docs/audit.md");
    let undocumented: Vec<&str> = kinds::ALL
        .iter()
        .copied()
        .filter(|k| !docs.contains(&format!("`{k}`")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "docs/audit.md does not list {undocumented:?}"
    );
}
