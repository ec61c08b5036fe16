//! The audit chain per instance (`docs/audit.md`, "Several writers"): on PostgreSQL, instances
//! sharing the database each write their calls' results to a chain of their own, opened on
//! chain 1 and anchored there before every checkpoint. A clean run of three instances
//! verifies; each attack the design names is really made on the database (with the guards an
//! attacker would drop dropped first) and caught by `audit verify`. SQLite keeps one chain.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};
use slovo_core::audit::{AuditEvent, ChainError, event_hash, kinds};
use slovo_core::execution::{ExecutionStatus, Outcome, SandboxSpec};
use slovo_core::install::{DockerDeferred, DockerFacts, InstallFacts};
use slovo_core::permissions::Narrowing;
use slovo_runtime::{Actor, AuditCursor, AuditQuery, CallRequest, ImportSource, Runtime, RuntimeError};
use slovo_sandbox::{Backend, BackendError, Backends, InstallRequest};
use slovo_store::{DbKind, Store};
use slovo_test_support::{fresh_postgres_url, test_dbs};

/// Echoes its arguments; nothing runs.
struct Echo;

#[async_trait]
impl Backend for Echo {
    fn kind(&self) -> &'static str {
        "docker"
    }
    async fn install(&self, r: &InstallRequest) -> Result<InstallFacts, BackendError> {
        Ok(InstallFacts::Docker(DockerFacts::Deferred(DockerDeferred {
            image: "test".into(),
            entrypoint: None,
            reason: format!("installed {}", r.version),
        })))
    }
    async fn run(&self, spec: &SandboxSpec) -> Outcome {
        Outcome {
            status: ExecutionStatus::Success,
            output: Some(json!({"echo": spec.request["arguments"]})),
            exit_code: Some(0),
            ..Outcome::default()
        }
    }
}

fn actor() -> Actor {
    Actor("test".into())
}

/// One runtime per instance, each with its own store (pool) and data directory, sharing one
/// database, as `slovo serve` processes on several machines do.
struct Instances {
    url: String,
    dir: tempfile::TempDir,
    rts: Vec<Runtime>,
}

impl Instances {
    async fn start(url: String, n: usize) -> Instances {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Instances {
            url,
            dir,
            rts: Vec::new(),
        };
        for i in 0..n {
            let rt = out.runtime(i).await;
            rt.register_instance().await.unwrap();
            out.rts.push(rt);
        }
        out.install_echo().await;
        out
    }

    async fn runtime(&self, i: usize) -> Runtime {
        let store = Store::connect(&self.url).await.unwrap();
        Runtime::new(
            store,
            Backends::new().with(Arc::new(Echo)),
            self.dir.path().join(format!("data-{i}")),
        )
    }

    /// The instance that verifies and checkpoints (any would do; each has its own log).
    fn first(&self) -> &Runtime {
        &self.rts[0]
    }

    fn store(&self) -> &Store {
        self.first().store()
    }

    async fn install_echo(&self) {
        let manifest = json!({
            "name": "echo",
            "version": "1.0.0",
            "description": "Echoes its arguments",
            "capabilities": [{
                "name": "say",
                "description": "Say something",
                "parameters": {"type": "object", "required": ["text"],
                               "properties": {"text": {"type": "string"}},
                               "additionalProperties": false}
            }],
            "permissions": {"memory_limit_mb": 64},
            "execution": {"type": "docker", "image": "slovo-test/echo:1"}
        });
        let rt = self.first();
        rt.import(
            ImportSource::Manifest {
                name: "echo.json".into(),
                bytes: manifest.to_string().into_bytes(),
            },
            &actor(),
        )
        .await
        .unwrap();
        rt.approve("echo", &Narrowing::default(), &actor()).await.unwrap();
    }

    /// `n` calls through each instance, all at once.
    async fn calls(&self, n: usize) {
        let mut all = Vec::new();
        for (i, rt) in self.rts.iter().enumerate() {
            for k in 0..n {
                all.push(rt.call(CallRequest {
                    tool: "echo".into(),
                    capability: "say".into(),
                    arguments: json!({"text": format!("instance {i} call {k}")}),
                    conversation_id: None,
                    turn_id: None,
                    actor: actor(),
                }));
            }
        }
        for answer in futures::future::join_all(all).await {
            answer.unwrap();
        }
    }

    /// The chain instance `i` writes its calls' results to.
    fn chain_of(&self, i: usize) -> i64 {
        self.rts[i].store().call_chain()
    }

    async fn chain_events(&self, chain: i64) -> Vec<AuditEvent> {
        self.store().audit_chain_page(chain, 0, 100_000).await.unwrap()
    }

    async fn checkpoint(&self) {
        self.first().checkpoint_audit().await.unwrap().unwrap();
    }

    async fn broken(&self) -> ChainError {
        match self.first().verify_audit().await {
            Err(RuntimeError::AuditBroken(e)) => e,
            other => panic!("expected a broken trail, got {other:?}"),
        }
    }

    async fn sql(&self, sql: &str) {
        self.store()
            .execute_raw(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// What an attacker with write access to the database does first: drops the triggers that
    /// keep audit events append-only, heads moving forward and new heads starting at an
    /// opening.
    async fn drop_audit_guards(&self) {
        for (trigger, table) in [
            ("audit_events_no_update", "audit_events"),
            ("audit_events_no_delete", "audit_events"),
            ("audit_events_extend_head", "audit_events"),
            ("audit_head_follows", "audit_events"),
            ("audit_head_forward_only", "audit_head"),
            ("audit_head_no_delete", "audit_head"),
            ("audit_head_opened", "audit_head"),
        ] {
            self.sql(&format!("DROP TRIGGER {trigger} ON {table}")).await;
        }
    }

    /// Writes `e` as a raw row (after the guards were dropped).
    async fn insert_raw(&self, e: &AuditEvent) {
        let tool = e.tool.as_ref().map_or("NULL".into(), |t| format!("'{t}'"));
        self.sql(&format!(
            "INSERT INTO audit_events (chain, seq, at_ms, kind, tool, actor, payload, prev_hash, hash) \
             VALUES ({}, {}, {}, '{}', {tool}, '{}', '{}', '{}', '{}')",
            e.chain,
            e.seq,
            e.at_ms,
            e.kind,
            e.actor.replace('\'', "''"),
            e.payload.replace('\'', "''"),
            e.prev_hash,
            e.hash
        ))
        .await;
    }

    async fn set_head(&self, chain: i64, seq: i64, hash: &str) {
        self.sql(&format!(
            "UPDATE audit_head SET seq = {seq}, hash = '{hash}' WHERE id = {chain}"
        ))
        .await;
    }
}

/// Three instances over a fresh PostgreSQL database, `calls` calls through each, and a
/// checkpoint that anchors every chain. None when PostgreSQL is explicitly skipped.
async fn three_instances(calls: usize) -> Option<Instances> {
    let url = fresh_postgres_url().await?;
    let instances = Instances::start(url, 3).await;
    instances.calls(calls).await;
    instances.checkpoint().await;
    Some(instances)
}

#[tokio::test]
async fn three_instances_write_chains_of_their_own_that_verify_together() {
    let Some(inst) = three_instances(6).await else {
        return;
    };
    // Each instance opened a chain of its own, by an event on chain 1 naming it.
    let chains: Vec<i64> = (0..3).map(|i| inst.chain_of(i)).collect();
    assert_eq!(chains, [2, 3, 4]);
    let openings = inst.store().audit_chain_openings().await.unwrap();
    assert_eq!(openings.len(), 3);
    for (i, chain) in chains.iter().enumerate() {
        let payload: Value = serde_json::from_str(&openings[i].payload).unwrap();
        assert_eq!(payload["chain"], *chain);
        assert_eq!(payload["instance"], inst.rts[i].instance_id());
        // The chain's calls are its own, and its first event links to its opening.
        let events = inst.chain_events(*chain).await;
        assert_eq!(events.len(), 6, "chain {chain}");
        assert!(events.iter().all(|e| e.kind == kinds::EXECUTION_FINISHED));
        assert_eq!(events[0].prev_hash, openings[i].hash);
    }
    // Chain 1 holds no call results, and its anchor names every chain's head.
    let main = inst.chain_events(1).await;
    assert!(!main.iter().any(|e| e.kind == kinds::EXECUTION_FINISHED));
    let anchor = inst.store().latest_audit_anchor().await.unwrap().unwrap();
    let anchored: Value = serde_json::from_str(&anchor.payload).unwrap();
    let heads = inst.store().audit_chain_heads().await.unwrap();
    for h in heads.iter().filter(|h| h.chain != 1) {
        assert!(
            anchored["chains"]
                .as_array()
                .unwrap()
                .contains(&json!({"chain": h.chain, "seq": h.seq, "hash": h.hash})),
            "{anchored}"
        );
    }
    // The checkpoint signs chain 1's head, which is the anchor.
    assert_eq!(inst.store().audit_head().await.unwrap().1, anchor.hash);

    let report = inst.first().verify_audit().await.unwrap();
    assert_eq!(report.chains, 4);
    assert_eq!(report.events, main.len() as i64 + 18);
    assert_eq!(report.unchecked_events, 0);

    // Shown together, events are ordered by time, then chain, then sequence number.
    let shown = inst.store().audit_events_in_display_order(10_000).await.unwrap();
    assert_eq!(shown.len() as i64, report.events);
    let keys: Vec<_> = shown.iter().map(|e| (e.at_ms, e.chain, e.seq)).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);

    // An instance restarted with the same data directory finds its chain again.
    let again = inst.runtime(1).await;
    again.register_instance().await.unwrap();
    assert_eq!(again.store().call_chain(), chains[1]);
    assert_eq!(inst.store().audit_chain_openings().await.unwrap().len(), 3);

    // More calls, a second checkpoint: anchored again from the previous anchor.
    inst.calls(2).await;
    inst.checkpoint().await;
    let report = inst.first().verify_audit().await.unwrap();
    assert_eq!(report.unchecked_events, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpointers_anchoring_at_once_keep_the_anchors_in_order() {
    let Some(inst) = three_instances(2).await else {
        return;
    };
    // Every instance's checkpointer at once, while calls move the chains: each checks the
    // chains without chain 1's lock, and their anchors race for it.
    let checkpoints = || futures::future::join_all(inst.rts.iter().map(|rt| rt.checkpoint_audit()));
    for _ in 0..6 {
        let (written, ()) = tokio::join!(checkpoints(), inst.calls(4));
        for w in written {
            w.unwrap();
        }
    }
    for w in checkpoints().await {
        w.unwrap();
    }
    // No anchor records a chain's head older than the anchor before it did.
    let mut newest: std::collections::BTreeMap<i64, i64> = std::collections::BTreeMap::new();
    let anchors: Vec<AuditEvent> = inst
        .chain_events(1)
        .await
        .into_iter()
        .filter(|e| e.kind == kinds::AUDIT_CHAINS_ANCHORED)
        .collect();
    assert!(anchors.len() >= 6, "{} anchors", anchors.len());
    for anchor in &anchors {
        let payload: Value = serde_json::from_str(&anchor.payload).unwrap();
        for head in payload["chains"].as_array().unwrap() {
            let (chain, seq) = (head["chain"].as_i64().unwrap(), head["seq"].as_i64().unwrap());
            let before = newest.insert(chain, seq).unwrap_or(0);
            assert!(
                seq >= before,
                "anchor {} records chain {chain} at {seq} after {before}",
                anchor.seq
            );
        }
    }
    // The newest anchor names every chain's head (all calls were recorded before it), and the
    // trail verifies.
    for h in inst
        .store()
        .audit_chain_heads()
        .await
        .unwrap()
        .iter()
        .filter(|h| h.chain != 1)
    {
        assert_eq!(newest.get(&h.chain), Some(&h.seq), "chain {}", h.chain);
    }
    inst.first().verify_audit().await.unwrap();
}

#[tokio::test]
async fn the_database_refuses_a_chain_nobody_opened() {
    let Some(inst) = three_instances(1).await else {
        return;
    };
    let opening = &inst.store().audit_chain_openings().await.unwrap()[0];
    // A head for a chain with no opening event, or one that borrows another chain's opening.
    for (id, hash, instance) in [
        (9, "ab".repeat(32), "ghost"),
        (9, opening.hash.clone(), "ghost"),
        (9, opening.hash.clone(), inst.rts[0].instance_id()),
    ] {
        let err = inst
            .store()
            .execute_raw(&format!(
                "INSERT INTO audit_head (id, seq, hash, instance) VALUES ({id}, 0, '{hash}', '{instance}')"
            ))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("does not start at an audit.chain_opened event"),
            "{err}"
        );
    }
    // An event on a chain that has no head.
    let err = inst
        .store()
        .execute_raw(&format!(
            "INSERT INTO audit_events (chain, seq, at_ms, kind, actor, payload, prev_hash, hash) \
             VALUES (9, 1, 0, 'execution.finished', 'x', '{{}}', '{}', 'x')",
            opening.hash
        ))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("does not extend the audit chain head"),
        "{err}"
    );
    inst.first().verify_audit().await.unwrap();
}

#[tokio::test]
async fn a_deleted_chain_tail_is_detected_by_its_anchor() {
    let Some(inst) = three_instances(5).await else {
        return;
    };
    let chain = inst.chain_of(1);
    let events = inst.chain_events(chain).await;
    inst.drop_audit_guards().await;
    inst.sql(&format!(
        "DELETE FROM audit_events WHERE chain = {chain} AND seq > 2"
    ))
    .await;
    inst.set_head(chain, 2, &events[1].hash).await;
    // The chain itself still links from its opening to its (moved) head.
    match inst.broken().await {
        ChainError::AnchorMismatch {
            chain: c,
            seq,
            problem,
            ..
        } => {
            assert_eq!((c, seq), (chain, 5));
            assert!(problem.contains("events 3 to 5 deleted"), "{problem}");
        }
        other => panic!("expected the anchor to catch the truncation, got {other}"),
    }
    // And the checkpointer refuses to anchor the truncated chain, naming the anchor.
    let anchor = inst.store().latest_audit_anchor().await.unwrap().unwrap();
    match inst.first().checkpoint_audit().await {
        Err(RuntimeError::AuditBroken(ChainError::AnchorMismatch {
            chain: c,
            seq,
            anchor_seq,
            ..
        })) => {
            assert_eq!((c, seq, anchor_seq), (chain, 5, anchor.seq));
        }
        other => panic!("expected the checkpointer to refuse, got {other:?}"),
    }
}

#[tokio::test]
async fn a_whole_chain_deleted_is_detected_by_its_opening() {
    let Some(inst) = three_instances(3).await else {
        return;
    };
    let chain = inst.chain_of(2);
    inst.drop_audit_guards().await;
    inst.sql(&format!("DELETE FROM audit_events WHERE chain = {chain}"))
        .await;
    inst.sql(&format!("DELETE FROM audit_head WHERE id = {chain}"))
        .await;
    match inst.broken().await {
        ChainError::ChainMissing { chain: c, .. } => assert_eq!(c, chain),
        other => panic!("expected the deleted chain to be missed, got {other}"),
    }
}

#[tokio::test]
async fn an_event_moved_within_a_chain_breaks_its_links() {
    let Some(inst) = three_instances(4).await else {
        return;
    };
    let chain = inst.chain_of(0);
    inst.drop_audit_guards().await;
    // Events 2 and 3 swap places (their content and hashes kept).
    inst.sql(&format!(
        "UPDATE audit_events SET seq = -1 WHERE chain = {chain} AND seq = 2"
    ))
    .await;
    inst.sql(&format!(
        "UPDATE audit_events SET seq = 2 WHERE chain = {chain} AND seq = 3"
    ))
    .await;
    inst.sql(&format!(
        "UPDATE audit_events SET seq = 3 WHERE chain = {chain} AND seq = -1"
    ))
    .await;
    match inst.broken().await {
        ChainError::InChain { chain: c, error } => {
            assert_eq!(c, chain);
            // The sequence number is hashed: the event now at 2 is not the one hashed there.
            assert_eq!(*error, ChainError::ContentMismatch { seq: 2 });
        }
        other => panic!("expected a broken link in chain {chain}, got {other}"),
    }
}

#[tokio::test]
async fn an_event_moved_between_chains_breaks_its_links() {
    let Some(inst) = three_instances(3).await else {
        return;
    };
    // Calls after the newest anchor: removing one from the end of its chain goes unseen (the
    // limit `docs/audit.md` states), so only the chain it lands in can tell.
    inst.calls(2).await;
    // One more through the first instance: its chain is one event longer than the second's.
    inst.rts[0]
        .call(CallRequest {
            tool: "echo".into(),
            capability: "say".into(),
            arguments: json!({"text": "one more"}),
            conversation_id: None,
            turn_id: None,
            actor: actor(),
        })
        .await
        .unwrap();
    let (from, to) = (inst.chain_of(0), inst.chain_of(1));
    let from_events = inst.chain_events(from).await;
    let to_events = inst.chain_events(to).await;
    inst.drop_audit_guards().await;
    // The newest event of one chain becomes the newest of the other, each head following, so
    // that sequence numbers stay gap-free on both.
    let moved = from_events.last().unwrap();
    let new_seq = to_events.last().unwrap().seq + 1;
    // Same position in the other chain: its sequence number (which is hashed) fits there.
    assert_eq!(moved.seq, new_seq);
    inst.sql(&format!(
        "UPDATE audit_events SET chain = {to} WHERE chain = {from} AND seq = {}",
        moved.seq
    ))
    .await;
    inst.set_head(from, moved.seq - 1, &from_events[from_events.len() - 2].hash)
        .await;
    inst.set_head(to, new_seq, &moved.hash).await;
    match inst.broken().await {
        ChainError::InChain { chain, error } => {
            assert_eq!(chain, to);
            assert_eq!(
                *error,
                ChainError::BrokenLink {
                    seq: new_seq,
                    prev_seq: new_seq - 1
                }
            );
        }
        other => panic!("expected the move to break chain {to}, got {other}"),
    }
}

#[tokio::test]
async fn chains_swapped_wholesale_do_not_link_to_their_openings() {
    let Some(url) = fresh_postgres_url().await else {
        return;
    };
    // No checkpoint, so no anchor: only each chain's first link to its opening can tell.
    let inst = Instances::start(url, 2).await;
    inst.calls(3).await;
    let (a, b) = (inst.chain_of(0), inst.chain_of(1));
    let heads = inst.store().audit_chain_heads().await.unwrap();
    let head = |c: i64| heads.iter().find(|h| h.chain == c).unwrap().clone();
    let (head_a, head_b) = (head(a), head(b));
    inst.drop_audit_guards().await;
    inst.sql(&format!("UPDATE audit_events SET chain = 99 WHERE chain = {a}"))
        .await;
    inst.sql(&format!("UPDATE audit_events SET chain = {a} WHERE chain = {b}"))
        .await;
    inst.sql(&format!("UPDATE audit_events SET chain = {b} WHERE chain = 99"))
        .await;
    inst.set_head(a, head_b.seq, &head_b.hash).await;
    inst.set_head(b, head_a.seq, &head_a.hash).await;
    match inst.broken().await {
        ChainError::InChain { chain, error } => {
            assert_eq!(chain, a);
            assert_eq!(*error, ChainError::BrokenLink { seq: 1, prev_seq: 0 });
        }
        other => panic!("expected chain {a} not to link to its opening, got {other}"),
    }
}

#[tokio::test]
async fn a_chain_forged_for_an_instance_that_never_existed_is_detected() {
    let Some(inst) = three_instances(2).await else {
        return;
    };
    inst.drop_audit_guards().await;
    // A whole chain made up: a head and events that link perfectly from a start of its own.
    let start = "cd".repeat(32);
    inst.sql(&format!(
        "INSERT INTO audit_head (id, seq, hash, instance) VALUES (9, 0, '{start}', 'ghost')"
    ))
    .await;
    let mut prev = start;
    for seq in 1..=3 {
        let payload = json!({"execution_id": format!("ghost-{seq}")}).to_string();
        let at_ms = slovo_core::time::now_ms();
        let hash = event_hash(seq, at_ms, "tool.state_purged", None, "ghost", &payload, &prev);
        let e = AuditEvent {
            chain: 9,
            seq,
            at_ms,
            kind: "tool.state_purged".into(),
            tool: None,
            actor: "ghost".into(),
            payload,
            prev_hash: prev.clone(),
            hash: hash.clone(),
        };
        inst.insert_raw(&e).await;
        prev = hash;
    }
    inst.set_head(9, 3, &prev).await;
    match inst.broken().await {
        ChainError::ChainNotOpened { chain } => assert_eq!(chain, 9),
        other => panic!("expected the forged chain to be caught, got {other}"),
    }
}

#[tokio::test]
async fn sqlite_keeps_one_chain() {
    let db = test_dbs().await.into_iter().next().unwrap();
    assert_eq!(db.label, "sqlite");
    let store = db.store().await;
    assert_eq!(store.kind(), DbKind::Sqlite);
    let data_dir: PathBuf = db.dir.path().join("data");
    let rt = Runtime::new(store, Backends::new().with(Arc::new(Echo)), &data_dir);
    rt.register_instance().await.unwrap();
    assert_eq!(rt.store().call_chain(), 1);
    let inst = Instances {
        url: db.url.clone(),
        dir: tempfile::tempdir().unwrap(),
        rts: vec![rt],
    };
    inst.install_echo().await;
    inst.calls(3).await;
    let events = inst.chain_events(1).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == kinds::EXECUTION_FINISHED)
            .count(),
        3
    );
    assert!(!events.iter().any(|e| e.kind == kinds::AUDIT_CHAIN_OPENED));
    let report = inst.first().verify_audit().await.unwrap();
    assert_eq!(report.chains, 1);
    assert_eq!(report.events, events.len() as i64);
    // Read together, every event is chain 1's, newest first, and the total is its head.
    let shown = listed(inst.first(), AuditQuery::default()).await;
    assert_eq!(shown, events.iter().rev().cloned().collect::<Vec<_>>());
    assert_eq!(
        inst.first().audit_event_total().await.unwrap(),
        events.len() as i64
    );
    // The database keeps every event on chain 1: an event that extends the head, but on
    // another chain, is refused.
    let last = events.last().unwrap();
    let err = inst
        .store()
        .execute_raw(&format!(
            "INSERT INTO audit_events (chain, seq, at_ms, kind, actor, payload, prev_hash, hash) \
             VALUES (2, {}, 0, 'execution.finished', 'x', '{{}}', '{}', 'x')",
            last.seq + 1,
            last.hash
        ))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("CHECK constraint failed"), "{err}");
}

/// Every event of every chain, newest first as shown together.
async fn listed(rt: &Runtime, query: AuditQuery) -> Vec<AuditEvent> {
    rt.audit_events(&AuditQuery {
        limit: 100_000,
        ..query
    })
    .await
    .unwrap()
}

fn key(e: &AuditEvent) -> (i64, i64, i64) {
    (e.at_ms, e.chain, e.seq)
}

#[tokio::test]
async fn every_chain_is_listed_together_and_pages_stably_while_instances_append() {
    let Some(inst) = three_instances(4).await else {
        return;
    };
    let rt = inst.first();
    let snapshot = listed(rt, AuditQuery::default()).await;
    assert_eq!(snapshot.len() as i64, rt.audit_event_total().await.unwrap());
    let chains: BTreeSet<i64> = snapshot.iter().map(|e| e.chain).collect();
    assert_eq!(
        chains,
        BTreeSet::from([1, 2, 3, 4]),
        "call results come from every chain"
    );

    // Page by page, four events at a time, while every instance appends to its chain between
    // two pages.
    let mut seen = Vec::new();
    let mut before = None;
    let mut pages = 0;
    loop {
        let page = rt
            .audit_events(&AuditQuery {
                before,
                limit: 4,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        pages += 1;
        inst.calls(1).await;
        let Some(last) = page.last() else { break };
        before = Some(AuditCursor::of(last));
        // The cursor is handed out as text and read back.
        assert_eq!(
            before.unwrap().to_string().parse::<AuditCursor>().unwrap(),
            before.unwrap()
        );
        let full = page.len() == 4;
        seen.extend(page);
        if !full {
            break;
        }
    }
    let now = listed(rt, AuditQuery::default()).await;
    assert_eq!(
        now.len(),
        snapshot.len() + 3 * pages,
        "the instances appended meanwhile"
    );
    // Strictly in display order, so never the same event twice.
    assert!(
        seen.windows(2).all(|w| key(&w[0]) > key(&w[1])),
        "out of order or repeated"
    );
    // No gap: every event there when paging began was shown, and nothing that is not there.
    let shown: BTreeSet<_> = seen.iter().map(key).collect();
    assert!(
        snapshot.iter().all(|e| shown.contains(&key(e))),
        "an event was skipped"
    );
    let stored: BTreeSet<_> = now.iter().map(key).collect();
    assert!(shown.is_subset(&stored));

    // Filters hold over every chain.
    let results = listed(
        rt,
        AuditQuery {
            kind: Some(kinds::EXECUTION_FINISHED.into()),
            ..AuditQuery::default()
        },
    )
    .await;
    let heads = inst.store().audit_chain_heads().await.unwrap();
    let on_other_chains: i64 = heads.iter().filter(|h| h.chain != 1).map(|h| h.seq).sum();
    assert_eq!(results.len() as i64, on_other_chains);
    assert!(
        results
            .iter()
            .all(|e| e.kind == kinds::EXECUTION_FINISHED && e.chain != 1)
    );
    let about_echo = listed(
        rt,
        AuditQuery {
            tool: Some("echo".into()),
            ..AuditQuery::default()
        },
    )
    .await;
    assert_eq!(
        about_echo.iter().map(key).collect::<Vec<_>>(),
        now.iter()
            .filter(|e| e.tool.as_deref() == Some("echo"))
            .map(key)
            .collect::<Vec<_>>()
    );
    // One chain, one kind, paged two at a time: that chain's events, newest first.
    let chain = inst.chain_of(1);
    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = rt
            .audit_events(&AuditQuery {
                kind: Some(kinds::EXECUTION_FINISHED.into()),
                chain: Some(chain),
                before,
                limit: 2,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        before = Some(AuditCursor::of(last));
        paged.extend(page);
    }
    let mut expected = inst.chain_events(chain).await;
    expected.reverse();
    assert_eq!(paged, expected);
    assert_eq!(rt.audit_event_total().await.unwrap(), now.len() as i64);
}

#[tokio::test]
async fn unchecked_events_count_the_other_chains_events_after_their_anchor() {
    let Some(inst) = three_instances(2).await else {
        return;
    };
    assert_eq!(inst.first().verify_audit().await.unwrap().unchecked_events, 0);
    // Calls through the second instance only: its chain moves, chain 1 does not.
    let chain1 = inst.store().audit_head().await.unwrap();
    for k in 0..4 {
        inst.rts[1]
            .call(CallRequest {
                tool: "echo".into(),
                capability: "say".into(),
                arguments: json!({"text": format!("after the checkpoint {k}")}),
                conversation_id: None,
                turn_id: None,
                actor: actor(),
            })
            .await
            .unwrap();
    }
    assert_eq!(inst.store().audit_head().await.unwrap(), chain1);
    let report = inst.first().verify_audit().await.unwrap();
    assert_eq!(report.unchecked_events, 4);
    // A checkpoint anchors them.
    inst.checkpoint().await;
    assert_eq!(inst.first().verify_audit().await.unwrap().unchecked_events, 0);
}
