//! `slovo dashboard` prints a one-time sign-in link that works once against a running
//! `slovo serve` on the same data directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, SET_COOKIE};
use support::{Install, free_port};

fn client() -> reqwest::Client {
    // reqwest needs a TLS provider chosen, even for plain HTTP.
    slovo_sandbox::http::ensure_tls_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn redeem(port: u16, code: &str) -> reqwest::Response {
    client()
        .post(format!("http://127.0.0.1:{port}/signin/link"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("code={code}"))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_printed_link_signs_a_browser_in_once() {
    let dir = tempfile::tempdir().unwrap();
    let install = Install {
        data: dir.path().join("data"),
        url: None,
    };
    std::fs::create_dir_all(&install.data).unwrap();
    let port = free_port();
    let mut server = install.serve(port);

    let out = install
        .cmd()
        .args(["dashboard", "--no-open"])
        .env("SLOVO_SERVER_LISTEN", format!("127.0.0.1:{port}"))
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let url = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let prefix = format!("http://127.0.0.1:{port}/signin/link/");
    let code = url
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{url:?} is not a sign-in link to the server"));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signs one browser in once"),
        "it says what the link is for"
    );

    // Opening the link alone signs nobody in (a preview cannot use it up).
    let page = client().get(&url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers().get(SET_COOKIE).is_none());
    assert!(page.text().await.unwrap().contains(code));

    // The button signs in: a session cookie that opens the dashboard.
    let first = redeem(port, code).await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let cookie = first.headers()[SET_COOKIE].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let tools = client()
        .get(format!("http://127.0.0.1:{port}/tools"))
        .header(COOKIE, &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(tools.status(), StatusCode::OK);

    // Once only.
    let again = redeem(port, code).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert!(again.headers().get(SET_COOKIE).is_none());

    // Both the making and the use are on the audit trail.
    let store = install.store().await;
    let kinds: Vec<String> = store
        .audit_page(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(
        kinds.iter().any(|k| k == "dashboard.signin_link_created"),
        "{kinds:?}"
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "dashboard.signin_link_used")
            .count(),
        1,
        "{kinds:?}"
    );

    // A bad validity is a usage error.
    let bad = install
        .cmd()
        .args(["dashboard", "--no-open", "--valid-for", "0"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--valid-for"));

    server.kill().unwrap();
    server.wait().unwrap();
}
