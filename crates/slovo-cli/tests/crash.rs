//! `slovo serve` killed with SIGKILL in the middle of concurrent calls, then restarted: no
//! execution may stay `running`, and the audit chain must still verify. Also a graceful
//! shutdown that cuts calls short records them as `cancelled`. On SQLite and PostgreSQL.
//! And one of three instances sharing PostgreSQL killed during 100 calls: a survivor records
//! its calls once its lease lapses, every answered call is on the record, the others serve on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use slovo_test_support::{fresh_postgres_url, test_dbs};
use support::{Install, call_through, free_port, no_call_left_running, setup, slow_api, statuses};

fn fire_calls(
    port: u16,
    token: &str,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Result<reqwest::StatusCode, reqwest::Error>>> {
    (0..n)
        .map(|_| {
            let token = token.to_string();
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(format!("http://127.0.0.1:{port}/v1/calls"))
                    .bearer_auth(token)
                    .json(&json!({"tool": "slow", "capability": "wait"}))
                    .send()
                    .await
                    .map(|r| r.status())
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_calls_leaves_nothing_running_and_the_chain_intact() {
    let api_port = slow_api(2_000).await;
    for db in test_dbs().await {
        let data = db.dir.path().join("data");
        let url = (db.label == "postgres").then(|| db.url.clone());
        let (install, token) = setup(&data, url, api_port);
        let port = free_port();
        let mut server = install.serve(port);
        let calls = fire_calls(port, &token, 8);
        // Wait until the calls are recorded as running, then kill without warning.
        let store = install.store().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while statuses(&store).await.iter().filter(|s| *s == "running").count() < 8 {
            assert!(
                Instant::now() < deadline,
                "{}: calls never started: {:?}",
                db.label,
                statuses(&store).await
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.kill().unwrap();
        server.wait().unwrap();
        for c in calls {
            assert!(c.await.unwrap().is_err(), "the connection should have dropped");
        }
        assert_eq!(
            statuses(&store).await.iter().filter(|s| *s == "running").count(),
            8
        );

        // Restart: the server records the stale calls before it answers anything.
        let mut server = install.serve(port);
        let after = statuses(&store).await;
        assert_eq!(after.len(), 8);
        assert!(
            after.iter().all(|s| s == "interrupted"),
            "{}: {after:?}",
            db.label
        );
        let verified = install.run(&["--json", "audit", "verify"]);
        let v: Value = serde_json::from_str(&verified).unwrap();
        assert_eq!(v["ok"], true);
        // Every execution has exactly one finishing event in the chain.
        let events = store.audit_events_in_display_order(10_000).await.unwrap();
        assert_eq!(
            events.iter().filter(|e| e.kind == "execution.finished").count(),
            8
        );
        server.kill().unwrap();
        server.wait().unwrap();
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn graceful_shutdown_records_cut_calls_as_cancelled() {
    let api_port = slow_api(3_000).await;
    for db in test_dbs().await {
        let data = db.dir.path().join("data");
        let url = (db.label == "postgres").then(|| db.url.clone());
        let (install, token) = setup(&data, url, api_port);
        let port = free_port();
        let mut server = install.serve(port);
        let calls = fire_calls(port, &token, 3);
        let store = install.store().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while statuses(&store).await.iter().filter(|s| *s == "running").count() < 3 {
            assert!(Instant::now() < deadline, "calls never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // SIGTERM: with a grace of 0 s the calls are cut and must be recorded as cancelled.
        let pid = server.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = server.wait().unwrap();
        assert!(status.success(), "{}: serve exited with {status}", db.label);
        for c in calls {
            let _ = c.await.unwrap();
        }
        let after = statuses(&store).await;
        assert_eq!(after, vec!["cancelled"; 3], "{}", db.label);
        let v: Value = serde_json::from_str(&install.run(&["--json", "audit", "verify"])).unwrap();
        assert_eq!(v["ok"], true);
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_one_of_three_instances_loses_no_answered_call() {
    let Some(url) = fresh_postgres_url().await else {
        return; // SLOVO_TEST_SKIP_POSTGRES=1: several instances need PostgreSQL
    };
    let api_port = slow_api(400).await;
    let root = tempfile::tempdir().unwrap();
    let installs: Vec<Install> = ["a", "b", "c"]
        .iter()
        .map(|n| Install {
            data: root.path().join(n).join("data"),
            url: Some(url.clone()),
        })
        .collect();
    for install in &installs {
        std::fs::create_dir_all(install.data.parent().unwrap()).unwrap();
    }
    let (_, token) = setup(&installs[0].data, Some(url.clone()), api_port);
    let ports: Vec<u16> = installs.iter().map(|_| free_port()).collect();
    let mut servers: Vec<Child> = installs.iter().zip(&ports).map(|(i, p)| i.serve(*p)).collect();
    let victim = std::fs::read_to_string(installs[2].data.join("instance-id")).unwrap();
    let store = installs[0].store().await;

    // 100 concurrent calls, spread over the three instances.
    let client = reqwest::Client::new();
    let calls: Vec<_> = (0..100)
        .map(|i| {
            let (client, token, port) = (client.clone(), token.clone(), ports[i % 3]);
            tokio::spawn(async move { (i % 3, call_through(&client, port, &token).await) })
        })
        .collect();
    // Kill the third instance once it has calls running.
    let deadline = Instant::now() + Duration::from_secs(10);
    while store
        .running_execution_ids_of(victim.trim())
        .await
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the victim never started a call");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    servers[2].kill().unwrap();
    servers[2].wait().unwrap();
    let mut answered = Vec::new();
    for c in calls {
        let (instance, result) = c.await.unwrap();
        match result {
            Ok(id) => answered.push(id),
            Err(e) => assert_eq!(
                instance,
                2,
                "a survivor failed a call: {e}\n{}",
                std::fs::read_to_string(installs[instance].data.with_extension("serve.log"))
                    .unwrap_or_default()
            ),
        }
    }
    assert!(
        answered.len() >= 66,
        "the survivors answered only {}",
        answered.len()
    );

    // Within a lease and a heartbeat, nothing is left running.
    no_call_left_running(&store, Duration::from_secs(25)).await;
    let executions = store
        .executions(&slovo_store::ExecutionFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let events = store.audit_events_in_display_order(10_000).await.unwrap();
    let finished: Vec<Value> = events
        .iter()
        .filter(|e| e.kind == "execution.finished")
        .map(|e| serde_json::from_str(&e.payload).unwrap())
        .collect();
    // Every answered call is recorded, finished, with its one event.
    for id in &answered {
        let e = executions
            .iter()
            .find(|e| &e.id == id)
            .expect("answered call recorded");
        assert_eq!(e.status.to_string(), "success", "{id}");
        assert_eq!(
            finished
                .iter()
                .filter(|p| p["execution_id"] == id.as_str())
                .count(),
            1
        );
    }
    // Every execution has exactly one finishing event; the interrupted ones were the victim's.
    assert_eq!(finished.len(), executions.len());
    let interrupted: Vec<_> = executions
        .iter()
        .filter(|e| e.status.to_string() == "interrupted")
        .collect();
    assert!(
        !interrupted.is_empty(),
        "the victim's running calls were not interrupted"
    );
    assert!(
        interrupted
            .iter()
            .all(|e| e.error.as_deref().unwrap_or("").contains(victim.trim())),
        "{interrupted:?}"
    );
    let lapsed: Vec<_> = events.iter().filter(|e| e.kind == "instance.lapsed").collect();
    assert_eq!(
        lapsed.len(),
        1,
        "one survivor declares the death, once: {lapsed:?}"
    );
    assert!(lapsed[0].payload.contains(victim.trim()));

    // The survivors serve on; the instance list says who is alive.
    for port in &ports[..2] {
        call_through(&client, *port, &token).await.unwrap();
    }
    let list: Value = serde_json::from_str(&installs[0].run(&["--json", "instances"])).unwrap();
    let state_of = |id: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .map(|i| i["state"].clone())
    };
    assert_eq!(state_of(victim.trim()), Some(json!("stopped")));
    for install in &installs[..2] {
        let id = std::fs::read_to_string(install.data.join("instance-id")).unwrap();
        assert_eq!(state_of(id.trim()), Some(json!("alive")));
    }
    let v: Value = serde_json::from_str(&installs[0].run(&["--json", "audit", "verify"])).unwrap();
    assert_eq!(v["ok"], true);
    for s in &mut servers[..2] {
        s.kill().unwrap();
        s.wait().unwrap();
    }
    store.close().await;
}
