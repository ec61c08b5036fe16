//! docs/deployment.md's "Try it on one machine", run as written against a fresh PostgreSQL
//! database (the one line naming the reader's database URL gets the test's).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use slovo_test_support::fresh_postgres_url;

const DOC_URL: &str = "postgres://slovo@db.internal:5432/slovo";

/// The ```sh blocks of the section that starts with `heading`.
fn blocks_of(doc: &str, heading: &str) -> Vec<String> {
    let start = doc.find(heading).unwrap_or_else(|| panic!("no {heading:?}"));
    let rest = &doc[start + heading.len()..];
    let end = rest.find("\n### ").unwrap_or(rest.len());
    support::sh_blocks(&rest[..end])
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_as_the_deployment_guide_describes() {
    let Some(url) = fresh_postgres_url().await else {
        return; // SLOVO_TEST_SKIP_POSTGRES=1
    };
    let doc = std::fs::read_to_string(support::repo().join("docs/deployment.md")).unwrap();
    let blocks = blocks_of(&doc, "### Try it on one machine");
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    let script = blocks.join("\n");
    assert!(script.contains(DOC_URL), "the guide's database URL changed");
    // Every process the guide starts ends with the script. The guide's ports are fixed, so two
    // checkouts running this test on one machine take turns (a lock outside either checkout).
    let script = format!(
        "set -euo pipefail\nexec 9>/tmp/slovo-deployment-guide-ports.lock\nflock -w 600 9\n\
         trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n{}\nrm -rf \"$one\" \"$two\"\n",
        script.replace(DOC_URL, &url)
    );
    let out = support::shell(&script).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the guide failed:\n{stdout}\n{stderr}");
    // The second instance answered the call with the tool imported through the first.
    assert!(stdout.contains("\"status\":\"success\""), "{stdout}\n{stderr}");
    assert!(stdout.contains("\"words\":5"), "{stdout}\n{stderr}");
    assert_eq!(stdout.matches(" alive ").count(), 2, "{stdout}");
}
