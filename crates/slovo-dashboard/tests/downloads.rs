//! What the dashboard hands over as files: a range of the audit trail, and a call whose texts
//! are too large for the page.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_DISPOSITION, COOKIE, SET_COOKIE};
use serde_json::{Value, json};
use slovo_core::permissions::Narrowing;
use slovo_runtime::{Actor, CallRequest};
use support::{Server, manifest};

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

async fn get(server: &Server, cookie: &str, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}{path}", server.base))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_audit_range_exports_exactly_those_events_as_json_lines() {
    let server = Server::start().await;
    server.import(&manifest("a", "1.0.0", "A", &[], 64)).await;
    server.import(&manifest("b", "1.0.0", "B", &[], 64)).await;
    server
        .runtime
        .approve("a", &Narrowing::default(), &Actor::cli())
        .await
        .unwrap();
    let cookie = signed_in(&server).await;
    let resp = get(&server, &cookie, "/audit/export?from=2&to=3").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()[CONTENT_DISPOSITION],
        "attachment; filename=\"audit-2-3.jsonl\""
    );
    let lines: Vec<Value> = resp
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let stored = server.runtime.store().audit_page(1, 2).await.unwrap();
    assert_eq!(lines.len(), 2);
    for (line, event) in lines.iter().zip(&stored) {
        assert_eq!(line, &serde_json::to_value(event).unwrap());
    }
    assert_eq!(lines[0]["seq"], json!(2));
    assert_eq!(lines[1]["seq"], json!(3));
    assert!(
        lines[1]["hash"].as_str().is_some_and(|h| h.len() == 64),
        "each line has its hash"
    );

    // A reversed range is refused with the reason.
    let resp = get(&server, &cookie, "/audit/export?from=3&to=2").await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.unwrap().contains("1 ≤ from ≤ to"));
    // And not without a session: the browser is sent to sign in.
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/audit/export?from=1&to=2", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/signin");
}

#[tokio::test]
async fn a_large_output_is_cut_on_the_page_and_downloadable_whole() {
    let server = Server::start().await;
    server.import(&manifest("echo", "1.0.0", "Echo", &[], 64)).await;
    server
        .runtime
        .approve("echo", &Narrowing::default(), &Actor::cli())
        .await
        .unwrap();
    let long = "x".repeat(40_000) + "THE-END";
    let call = server
        .runtime
        .call(CallRequest {
            tool: "echo".into(),
            capability: "lookup".into(),
            arguments: json!({"query": long}),
            conversation_id: None,
            turn_id: None,
            actor: Actor("token:agent:test".into()),
        })
        .await
        .unwrap();
    let cookie = signed_in(&server).await;
    let page = get(&server, &cookie, &format!("/activity/{}", call.id))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Showing the first 16384 of"),
        "the page says it is cut"
    );
    assert!(!page.contains("THE-END"), "the end is not on the page");
    assert!(page.contains(&format!("/activity/{}/download", call.id)));

    let resp = get(&server, &cookie, &format!("/activity/{}/download", call.id)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()[CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"execution-")
    );
    let whole: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(whole["arguments"]["query"], json!(long), "the download is whole");
    assert_eq!(whole["output"]["query"], json!(long));
}
