//! The audit page over several instances sharing PostgreSQL: each instance writes its calls'
//! results to a chain of its own, and the page lists, filters, counts and exports every chain
//! (`docs/audit.md`, "Reading every chain").
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::{Value, json};
use slovo_core::permissions::Narrowing;
use slovo_runtime::{Actor, CallRequest, Runtime};
use slovo_test_support::fresh_postgres_url;
use support::{Server, manifest, runtime_on};

async fn signed_in(server: &Server) -> String {
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/signin", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", server.admin_token))
        .send()
        .await
        .unwrap();
    let line = resp.headers()[SET_COOKIE].to_str().unwrap();
    line.split(';').next().unwrap().to_string()
}

async fn get(server: &Server, cookie: &str, path: &str) -> (StatusCode, String) {
    let resp = reqwest::Client::new()
        .get(format!("{}{path}", server.base))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

async fn call(rt: &Runtime, text: &str) {
    rt.call(CallRequest {
        tool: "echo".into(),
        capability: "lookup".into(),
        arguments: json!({"query": text}),
        conversation_id: None,
        turn_id: None,
        actor: Actor("token:agent:test".into()),
    })
    .await
    .unwrap();
}

/// The `(chain, seq)` of each event row of the page's list, in the order shown.
fn listed(page: &str) -> Vec<(i64, i64)> {
    page.split("<tr data-chain=\"")
        .skip(1)
        .map(|row| {
            let (chain, rest) = row.split_once('"').unwrap();
            let seq = rest
                .split("data-seq=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            (chain.parse().unwrap(), seq.parse().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn the_audit_page_shows_lists_and_exports_the_chain_of_every_instance() {
    let Some(url) = fresh_postgres_url().await else {
        return;
    };
    // Two instances over one database: the one serving the dashboard, and another.
    let server = Server::start_on(url.clone()).await;
    server.runtime.register_instance().await.unwrap();
    let other = runtime_on(&url, &server.dir.path().join("other-data")).await;
    other.register_instance().await.unwrap();
    let (mine, theirs) = (server.runtime.store().call_chain(), other.store().call_chain());
    assert_eq!((mine, theirs), (2, 3));

    server.import(&manifest("echo", "1.0.0", "Echo", &[], 64)).await;
    server
        .runtime
        .approve("echo", &Narrowing::default(), &Actor::cli())
        .await
        .unwrap();
    for k in 0..3 {
        call(&server.runtime, &format!("here {k}")).await;
        call(&other, &format!("there {k}")).await;
    }

    let cookie = signed_in(&server).await;
    // The results of calls, from both instances' chains, each row naming its chain.
    let (status, page) = get(&server, &cookie, "/audit?kind=execution.finished").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let rows = listed(&page);
    assert_eq!(rows.len(), 6, "{rows:?}");
    assert_eq!(rows.iter().filter(|(c, _)| *c == mine).count(), 3, "{rows:?}");
    assert_eq!(rows.iter().filter(|(c, _)| *c == theirs).count(), 3, "{rows:?}");

    // Unfiltered, the page counts the events of every chain and lists chain 1's as well. The
    // server's checkpoint timer may anchor the chains meanwhile (an event on chain 1): the
    // page is compared with a total that did not move while it was read.
    let (total, chain1, page) = loop {
        let before = server.runtime.audit_event_total().await.unwrap();
        let chain1 = server.runtime.store().audit_head().await.unwrap().0;
        let (_, page) = get(&server, &cookie, "/audit").await;
        if server.runtime.audit_event_total().await.unwrap() == before {
            break (before, chain1, page);
        }
    };
    assert_eq!(total, chain1 + 6);
    assert!(
        page.contains(&format!("<dd id=\"audit-events\">{total}</dd>")),
        "the page counts {total} events"
    );
    let rows = listed(&page);
    assert_eq!(rows.len() as i64, total);
    assert!(rows.iter().any(|(c, _)| *c == 1));
    // Filtered by chain: only that chain's events.
    let (_, page) = get(&server, &cookie, &format!("/audit?chain={theirs}")).await;
    assert_eq!(listed(&page), [(theirs, 3), (theirs, 2), (theirs, 1)]);

    // A stretch of the other instance's chain, exported with its chain and hashes.
    let (status, body) = get(
        &server,
        &cookie,
        &format!("/audit/export?chain={theirs}&from=1&to=3"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let lines: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["chain"], json!(theirs));
        assert_eq!(line["seq"], json!(i + 1));
        assert_eq!(line["kind"], "execution.finished");
    }
    // A cursor that is not one is refused with the reason.
    let (status, page) = get(&server, &cookie, "/audit?before=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("AT_MS.CHAIN.SEQ"), "{page}");
}
