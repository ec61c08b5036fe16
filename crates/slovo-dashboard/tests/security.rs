//! Sessions, CSRF and headers over plain HTTP: what a browser cannot be made to skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, LOCATION, SET_COOKIE};
use slovo_core::lifecycle::ToolStatus;
use support::{Server, manifest};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs in; returns the `name=value` cookie pair and the full `Set-Cookie` line.
async fn sign_in(server: &Server, extra: &[(&str, &str)]) -> (String, String) {
    let mut req = client()
        .post(format!("{}/signin", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", server.admin_token));
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let line = resp.headers()[SET_COOKIE].to_str().unwrap().to_string();
    (line.split(';').next().unwrap().to_string(), line)
}

/// The CSRF token a page embeds in its forms.
async fn csrf(server: &Server, cookie: &str, path: &str) -> String {
    let html = client()
        .get(format!("{}{path}", server.base))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    html[at..at + 64].to_string()
}

async fn post(server: &Server, path: &str, cookie: Option<&str>, body: &str) -> reqwest::Response {
    let mut req = client()
        .post(format!("{}{path}", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_string());
    if let Some(c) = cookie {
        req = req.header(COOKIE, c);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn the_session_cookie_is_http_only_strict_expiring_and_secure_behind_tls() {
    let server = Server::start().await;
    let (_, line) = sign_in(&server, &[]).await;
    assert!(line.contains("HttpOnly"), "{line}");
    assert!(line.contains("SameSite=Strict"), "{line}");
    assert!(line.contains("Max-Age=28800"), "{line}");
    assert!(
        !line.contains("Secure"),
        "plain HTTP: a Secure cookie would never come back: {line}"
    );
    let (_, line) = sign_in(&server, &[("x-forwarded-proto", "https")]).await;
    assert!(line.contains("; Secure"), "{line}");
}

#[tokio::test]
async fn a_wrong_token_or_a_cross_site_sign_in_is_refused() {
    let server = Server::start().await;
    let resp = post(&server, "/signin", None, "token=slv_0123456789abcdef_nope").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().get(SET_COOKIE).is_none());
    let resp = client()
        .post(format!("{}/signin", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "http://attacker.example")
        .header("sec-fetch-site", "cross-site")
        .body(format!("token={}", server.admin_token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.headers().get(SET_COOKIE).is_none());
}

#[tokio::test]
async fn state_changes_need_a_session_and_its_csrf_token() {
    let server = Server::start().await;
    server
        .import(&manifest(
            "weather",
            "1.0.0",
            "Weather",
            &["api.example.org"],
            256,
        ))
        .await;
    let (cookie, _) = sign_in(&server, &[]).await;
    let token = csrf(&server, &cookie, "/proposals/weather").await;

    // No session: pages send the browser to sign in; posts are refused.
    let resp = client()
        .get(format!("{}/inbox", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[LOCATION], "/signin");
    let resp = post(
        &server,
        "/proposals/weather/approve",
        None,
        &format!("csrf={token}&mode=as_requested"),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // A session but no CSRF token, or another one: refused.
    let resp = post(
        &server,
        "/proposals/weather/approve",
        Some(&cookie),
        "mode=as_requested",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let wrong = "0".repeat(64);
    let resp = post(
        &server,
        "/proposals/weather/approve",
        Some(&cookie),
        &format!("csrf={wrong}&mode=as_requested"),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        server.runtime.show("weather").await.unwrap().status,
        ToolStatus::PendingApproval
    );
    assert!(server.audit_events("tool.approved").await.is_empty());

    // With both, the same request is done: the refusals above were about the token alone.
    let resp = post(
        &server,
        "/proposals/weather/approve",
        Some(&cookie),
        &format!("csrf={token}&mode=as_requested"),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        server.runtime.show("weather").await.unwrap().status,
        ToolStatus::Active
    );

    // Signing out ends the session.
    let resp = post(&server, "/signout", Some(&cookie), &format!("csrf={token}")).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let resp = client()
        .get(format!("{}/tools", server.base))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn revoking_the_admin_token_ends_its_sessions() {
    let server = Server::start().await;
    let (cookie, _) = sign_in(&server, &[]).await;
    let resp = client()
        .get(format!("{}/tools", server.base))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let id = &server.admin_token["slv_".len().."slv_".len() + 16];
    server
        .runtime
        .revoke_token(id, &slovo_runtime::Actor::cli())
        .await
        .unwrap();
    let resp = client()
        .get(format!("{}/tools", server.base))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn every_page_carries_a_strict_content_security_policy() {
    let server = Server::start().await;
    let (cookie, _) = sign_in(&server, &[]).await;
    for path in [
        "/signin",
        "/tools",
        "/activity",
        "/audit",
        "/discovery",
        "/assets/dashboard.js",
    ] {
        let resp = client()
            .get(format!("{}{path}", server.base))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        let csp = resp.headers()[CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            csp.contains("default-src 'self'") && csp.contains("script-src 'self'"),
            "{path}: {csp}"
        );
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{path}: {csp}"
        );
        let html = resp.text().await.unwrap();
        assert!(
            !html.contains("<script>") && !html.contains(" style="),
            "{path}: no inline script or style"
        );
    }
}

#[tokio::test]
async fn a_sign_in_link_signs_in_once_and_names_itself_on_the_audit_trail() {
    let server = Server::start().await;
    server
        .import(&manifest("weather", "1.0.0", "Weather", &[], 64))
        .await;
    let link = server
        .runtime
        .create_signin_link(std::time::Duration::from_secs(60), &slovo_runtime::Actor::cli())
        .await
        .unwrap();

    // Opening the link uses nothing (a preview cannot burn it); its button does.
    let page = client()
        .get(format!("{}/signin/link/{}", server.base, link.code))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers().get(SET_COOKIE).is_none());
    let resp = post(&server, "/signin/link", None, &format!("code={}", link.code)).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let cookie = resp.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();

    // The session works, and what it does names the link.
    let token = csrf(&server, &cookie, "/proposals/weather").await;
    let resp = post(
        &server,
        "/proposals/weather/approve",
        Some(&cookie),
        &format!("csrf={token}&mode=as_requested"),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let approved = server.audit_events("tool.approved").await;
    let actor = approved[0]["actor"].as_str().unwrap();
    assert!(
        actor.starts_with("dashboard:session:") && actor.ends_with(&format!(":link:{}", link.id)),
        "{actor}"
    );
    assert_eq!(server.audit_events("dashboard.signin_link_used").await.len(), 1);

    // Used once: refused the second time, and so is a made-up or expired one.
    let again = post(&server, "/signin/link", None, &format!("code={}", link.code)).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert!(again.headers().get(SET_COOKIE).is_none());
    let made_up = format!("sl_{}_{}", "0".repeat(16), "0".repeat(64));
    let resp = post(&server, "/signin/link", None, &format!("code={made_up}")).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let expired = server
        .runtime
        .create_signin_link(std::time::Duration::ZERO, &slovo_runtime::Actor::cli())
        .await
        .unwrap();
    let resp = post(&server, "/signin/link", None, &format!("code={}", expired.code)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.audit_events("dashboard.signin_link_used").await.len(), 1);
}

#[tokio::test]
async fn rejecting_a_new_tool_revokes_it_with_the_reason_and_needs_one() {
    let server = Server::start().await;
    server
        .import(&manifest("weather", "1.0.0", "Weather", &[], 64))
        .await;
    let (cookie, _) = sign_in(&server, &[]).await;
    let token = csrf(&server, &cookie, "/proposals/weather").await;

    let resp = post(
        &server,
        "/proposals/weather/reject",
        Some(&cookie),
        &format!("csrf={token}&reason=+"),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "a reason is required");
    assert_eq!(
        server.runtime.show("weather").await.unwrap().status,
        ToolStatus::PendingApproval
    );

    let resp = post(
        &server,
        "/proposals/weather/reject",
        Some(&cookie),
        &format!("csrf={token}&reason=not+needed"),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let view = server.runtime.show("weather").await.unwrap();
    assert_eq!(view.status, ToolStatus::Revoked);
    let rejected = server.audit_events("tool.rejected").await;
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["payload"]["reason"], "not needed");

    // Nothing waits any more: a second rejection is refused and records nothing.
    let resp = post(
        &server,
        "/proposals/weather/reject",
        Some(&cookie),
        &format!("csrf={token}&reason=again"),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert_eq!(server.audit_events("tool.rejected").await.len(), 1);
}

#[tokio::test]
async fn a_session_outlives_a_restart_is_stored_only_as_a_hash_and_sign_out_deletes_it() {
    use sha2::{Digest, Sha256};

    let server = Server::start().await;
    let (cookie, _) = sign_in(&server, &[]).await;
    let token = csrf(&server, &cookie, "/tools").await;
    let session_id = cookie.split_once('=').unwrap().1.to_string();
    let id_hash = hex::encode(Sha256::digest(session_id.as_bytes()));
    let now = slovo_core::time::now_ms();
    let row = server
        .runtime
        .store()
        .live_session(&id_hash, now)
        .await
        .unwrap()
        .expect("the session is in the database, by the hash of its id");
    assert!(row.principal.starts_with("token:"), "{}", row.principal);
    assert!(
        row.expires_at > now + 7 * 3600 * 1000,
        "it expires with the session (8 hours)"
    );
    assert!(
        server
            .runtime
            .store()
            .live_session(&session_id, now)
            .await
            .unwrap()
            .is_none(),
        "the cookie's value itself is not a key"
    );

    // The server restarts: the same cookie and the same CSRF token still work.
    let server = server.restart().await;
    let resp = client()
        .get(format!("{}/tools", server.base))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "still signed in after the restart");
    assert_eq!(csrf(&server, &cookie, "/tools").await, token);

    // An expired session is refused even though its row is still there.
    let later = now + 9 * 3600 * 1000;
    assert!(
        server
            .runtime
            .store()
            .live_session(&id_hash, later)
            .await
            .unwrap()
            .is_none()
    );

    // Sign-out deletes the row; the cookie no longer works, on this server or after a restart.
    let resp = post(&server, "/signout", Some(&cookie), &format!("csrf={token}")).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(
        server
            .runtime
            .store()
            .live_session(&id_hash, now)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !server.runtime.store().delete_session(&id_hash).await.unwrap(),
        "already deleted"
    );
    let server = server.restart().await;
    let resp = client()
        .get(format!("{}/tools", server.base))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "signed out stays signed out"
    );
}
