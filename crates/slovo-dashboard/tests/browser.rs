//! The dashboard in a real headless Chromium against a real server: sign in, approve narrowed,
//! upgrade diff, reject, revoke with purge, live activity, inert untrusted text, phone width.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use fantoccini::Locator;
use serde_json::json;
use slovo_core::lifecycle::ToolStatus;
use slovo_core::permissions::Narrowing;
use slovo_runtime::{Actor, CallRequest};
use support::{Browser, ONE_BROWSER, Server, browser_available, manifest};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn sign_in_approve_narrowed_and_watch_a_call_arrive_live() {
    if !browser_available() {
        return;
    }
    let _one = ONE_BROWSER.lock().await;
    let server = Server::start().await;
    server
        .import(&manifest(
            "weather",
            "1.0.0",
            "Current weather for a city",
            &["api.example.org", "*.cdn.example.org"],
            256,
        ))
        .await;
    let b = Browser::start(1280, 900).await;

    // Sign in: the landing page is the inbox, and it lists the imported tool.
    b.sign_in(&server).await;
    assert!(
        b.wait_for_text("#inbox", "weather", WAIT).await,
        "the inbox lists the proposal"
    );
    assert!(b.text("#inbox").await.contains("new tool 1.0.0"));
    b.screenshot("inbox").await;

    // The proposal in plain language.
    b.click("#inbox a.button").await;
    assert!(b.wait_for_text("h1", "Proposal: weather", WAIT).await);
    let page = b.text("main").await;
    assert!(page.contains("only api.example.org (exact host)"), "{page}");
    assert!(
        page.contains("any subdomain of cdn.example.org, not cdn.example.org itself"),
        "{page}"
    );
    assert!(page.contains("query — text, required: What to look up"), "{page}");
    assert!(
        page.contains("The tool says about itself (not verified): read-only"),
        "{page}"
    );
    b.screenshot("proposal").await;

    // Narrow: drop the wildcard host, lower memory to 128 MB.
    b.click("#host-1").await;
    let memory = b.client.find(Locator::Css("#memory_limit_mb")).await.unwrap();
    memory.clear().await.unwrap();
    memory.send_keys("128").await.unwrap();
    b.click("button[value=narrowed]").await;
    assert!(b.wait_for_text("h1", "weather", WAIT).await);
    assert!(b.text("#granted-memory").await.contains("128 MB"));

    // The grant in the database says exactly that.
    let view = server.runtime.show("weather").await.unwrap();
    assert_eq!(view.status, ToolStatus::Active);
    let grant = view.granted.expect("a grant");
    assert_eq!(grant.memory_limit_mb, 128);
    let hosts: Vec<String> = grant.network_allow.iter().map(|h| h.to_string()).collect();
    assert_eq!(hosts, vec!["api.example.org"]);
    assert_eq!(
        grant.storage_quota_mb, 10,
        "fields left alone are granted as requested"
    );
    assert_eq!(grant.cpu_limit_percent, view.requested.cpu_limit_percent);
    let approved = server.audit_events("tool.approved").await;
    let actor = approved[0]["actor"].as_str().unwrap();
    assert!(actor.starts_with("dashboard:session:"), "{actor}");
    b.screenshot("tool").await;

    // Activity: a call made while the page is open appears without reloading.
    b.goto(&format!("{}/activity", server.base)).await;
    assert!(b.text("#activity").await.contains("No calls match"));
    b.client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("html[data-live-connected=yes]"))
        .await
        .expect("the page subscribes to live updates");
    b.eval("window.__samePage = 'yes'; return null;").await;
    server
        .runtime
        .call(CallRequest {
            tool: "weather".into(),
            capability: "lookup".into(),
            arguments: json!({"query": "Prague"}),
            conversation_id: None,
            turn_id: None,
            actor: Actor("token:agent:test".into()),
        })
        .await
        .unwrap();
    assert!(
        b.wait_for_text("#activity", "lookup", WAIT).await,
        "the call appears live"
    );
    assert_eq!(
        b.eval("return window.__samePage || null;").await,
        json!("yes"),
        "without a reload"
    );
    b.screenshot("activity").await;

    b.click("#activity a").await;
    assert!(b.wait_for_text("#execution", "Prague", WAIT).await);
    assert!(b.text("#execution").await.contains("success"));
    b.screenshot("execution").await;

    // Audit: verify from the page.
    b.goto(&format!("{}/audit", server.base)).await;
    b.click("form[action='/audit/verify'] button").await;
    assert!(b.wait_for_text("#verify-result", "Verified", WAIT).await);
    b.screenshot("audit").await;
}

#[tokio::test]
async fn upgrade_shows_its_diff_reject_keeps_serving_and_revoke_purges() {
    if !browser_available() {
        return;
    }
    let _one = ONE_BROWSER.lock().await;
    let server = Server::start().await;
    server
        .import(&manifest(
            "notes",
            "1.0.0",
            "Keeps notes",
            &["api.example.org"],
            256,
        ))
        .await;
    server
        .runtime
        .approve("notes", &Narrowing::default(), &Actor::cli())
        .await
        .unwrap();
    server
        .import(&manifest(
            "notes",
            "1.1.0",
            "Keeps notes and uploads them",
            &["api.example.org", "uploads.example.net"],
            512,
        ))
        .await;
    let b = Browser::start(1280, 900).await;
    b.sign_in(&server).await;
    assert!(b.wait_for_text("#inbox", "upgrade 1.0.0 → 1.1.0", WAIT).await);

    b.goto(&format!("{}/proposals/notes", server.base)).await;
    let diff = b.text("#diff").await;
    assert!(diff.contains("Host added: uploads.example.net"), "{diff}");
    assert!(
        diff.contains("Raised: memory_limit_mb from 256") && diff.contains("512"),
        "{diff}"
    );
    assert!(
        diff.contains("Changed: execution.image from notes:1.0.0 to notes:1.1.0"),
        "{diff}"
    );
    b.screenshot("upgrade").await;

    // Reject with a reason: the serving version keeps serving.
    b.client
        .find(Locator::Css("#reason"))
        .await
        .unwrap()
        .send_keys("uploads are not needed")
        .await
        .unwrap();
    b.click("form[action='/proposals/notes/reject'] button").await;
    assert!(b.wait_for_text("h1", "Waiting for approval", WAIT).await);
    let view = server.runtime.show("notes").await.unwrap();
    assert_eq!(view.status, ToolStatus::Active);
    assert_eq!(view.pending_version, None);
    assert_eq!(view.active_version.as_deref(), Some("1.0.0"));
    let rejected = server.audit_events("tool.upgrade_rejected").await;
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["payload"]["reason"], "uploads are not needed");
    assert_eq!(rejected[0]["payload"]["version"], "1.1.0");
    assert!(
        rejected[0]["actor"]
            .as_str()
            .unwrap()
            .starts_with("dashboard:session:")
    );

    // Revoke with purge, after a confirmation that names what is lost.
    let state_dir = server.runtime.data_dir().join("volumes").join("notes");
    let volume = server
        .runtime
        .show("notes")
        .await
        .unwrap()
        .volume
        .expect("a volume");
    let state_dir = if state_dir.exists() {
        state_dir
    } else {
        std::path::PathBuf::from(&volume.path)
    };
    assert!(state_dir.exists(), "{}", state_dir.display());
    b.goto(&format!("{}/tools/notes", server.base)).await;
    b.click("#purge").await;
    b.click("form[action='/tools/notes/revoke'] button").await;
    assert!(b.wait_for_text("h1", "Revoke notes?", WAIT).await);
    let confirm = b.text("main").await;
    assert!(
        confirm.contains("Its stored state is destroyed (up to 10 MB)"),
        "{confirm}"
    );
    assert!(
        confirm.contains("The assistant can no longer call notes"),
        "{confirm}"
    );
    assert_eq!(
        server.runtime.show("notes").await.unwrap().status,
        ToolStatus::Active,
        "nothing before confirming"
    );
    b.screenshot("revoke-confirm").await;
    b.click("form[action='/tools/notes/revoke'] button.danger").await;
    assert!(b.wait_for_text("main", "revoked", WAIT).await);
    let view = server.runtime.show("notes").await.unwrap();
    assert_eq!(view.status, ToolStatus::Revoked);
    assert!(
        view.volume.unwrap().purged_at.is_some(),
        "the volume is recorded as purged"
    );
    assert!(!state_dir.exists(), "the state directory is gone");
    let revoked = server.audit_events("tool.revoked").await;
    assert_eq!(revoked[0]["payload"]["purge_state"], true);
}

#[tokio::test]
async fn markup_in_a_manifest_stays_inert_text() {
    if !browser_available() {
        return;
    }
    let _one = ONE_BROWSER.lock().await;
    let server = Server::start().await;
    let payload = "Helpful.<script>window.__pwned = 'script';</script>\
                   <img src=x onerror=\"window.__pwned = 'img'; alert('pwned')\">";
    server.import(&manifest("evil", "1.0.0", payload, &[], 64)).await;
    let b = Browser::start(1280, 900).await;
    b.sign_in(&server).await;
    for path in ["/inbox", "/proposals/evil", "/tools", "/tools/evil"] {
        b.goto(&format!("{}{path}", server.base)).await;
        assert!(
            b.wait_for_text("main", "<script>window.__pwned", WAIT).await,
            "{path}: the markup is shown as text"
        );
        let no_elements = b
            .eval("return document.querySelectorAll('main img, main script').length;")
            .await;
        assert_eq!(no_elements, json!(0), "{path}: no element was made from the text");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            b.eval("return typeof window.__pwned;").await,
            json!("undefined"),
            "{path}: no script ran"
        );
        assert!(
            b.client.get_alert_text().await.is_err(),
            "{path}: no dialog opened"
        );
    }
    b.screenshot("inert").await;
}

#[tokio::test]
async fn a_phone_width_page_has_no_horizontal_scrolling() {
    if !browser_available() {
        return;
    }
    let _one = ONE_BROWSER.lock().await;
    let server = Server::start().await;
    server
        .import(&manifest(
            "a-tool-with-a-rather-long-name-for-a-small-screen",
            "1.0.0",
            "Reaches a host whose name is long enough to overflow a narrow screen if nothing wraps it",
            &[
                "a-very-long-subdomain-name.of-a-long-domain-name.example.org",
                "*.example.com",
            ],
            256,
        ))
        .await;
    server
        .import(&manifest("second", "1.0.0", "Another", &[], 64))
        .await;
    server
        .runtime
        .approve("second", &Narrowing::default(), &Actor::cli())
        .await
        .unwrap();
    let execution = server
        .runtime
        .call(CallRequest {
            tool: "second".into(),
            capability: "lookup".into(),
            arguments: json!({"query": "x".repeat(300)}),
            conversation_id: None,
            turn_id: None,
            actor: Actor("token:agent:test".into()),
        })
        .await
        .unwrap();
    let b = Browser::start(390, 844).await;
    b.sign_in(&server).await;
    let width = b.eval("return window.innerWidth;").await;
    assert_eq!(width, json!(390), "the page is laid out for a 390 px wide screen");
    let long = "a-tool-with-a-rather-long-name-for-a-small-screen";
    let pages = [
        "/inbox".to_string(),
        format!("/proposals/{long}"),
        "/tools".into(),
        format!("/tools/{long}"),
        "/tools/second".into(),
        "/activity".into(),
        format!("/activity/{}", execution.id),
        "/audit".into(),
        "/discovery".into(),
    ];
    for path in &pages {
        let started = std::time::Instant::now();
        b.goto(&format!("{}{path}", server.base)).await;
        eprintln!("{path}: loaded in {:?}", started.elapsed());
        let fits = b
            .eval("return [document.documentElement.scrollWidth, document.documentElement.clientWidth];")
            .await;
        let (scroll, client) = (fits[0].as_u64().unwrap(), fits[1].as_u64().unwrap());
        assert!(scroll <= client, "{path}: {scroll} px of content in {client} px");
        if path.starts_with("/proposals/") {
            b.screenshot("phone-proposal").await;
        }
    }
}
