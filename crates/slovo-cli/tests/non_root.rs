//! The process sandbox run by an ordinary user: `slovo` as `nobody` (through `runuser`), so
//! the sandbox has only user namespaces to work with. It must refuse to run until the weaker
//! tier is named, say exactly which protections that tier lacks, and still contain the tool:
//! an unprivileged uid inside, no host files, no host loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// Reads the request, then reports its uid and what happened when it tried to read a host
/// file and to reach a port on the host's loopback.
const PROBE_C: &str = r#"
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char buf[4096];
    while (read(0, buf, sizeof buf) > 0) {}
    int port = atoi(argv[1]);
    int fd = open("/etc/passwd", O_RDONLY);
    int passwd_errno = fd < 0 ? errno : 0;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(0x7f000001);
    int connected = s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) == 0;
    printf("{\"uid\": %d, \"passwd_errno\": %d, \"loopback_connected\": %s}\n",
           getuid(), passwd_errno, connected ? "true" : "false");
    return 0;
}
"#;

/// `errno` for "no such file": `/etc` does not exist in the sandbox's root.
const ENOENT: i64 = 2;

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

struct AsNobody {
    slovo: PathBuf,
    home: PathBuf,
    data: PathBuf,
}

impl AsNobody {
    fn run(&self, weaker: bool, args: &[&str]) -> Output {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "nobody", "--", "env", "-i", "PATH=/usr/bin:/bin"])
            .arg(format!("HOME={}", self.home.display()))
            .arg(format!("SLOVO_DATA_DIR={}", self.data.display()));
        if weaker {
            cmd.arg("SLOVO_SANDBOX_ALLOW_WEAKER=1");
        }
        cmd.arg(&self.slovo).args(args).output().unwrap()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn world_readable(dir: &Path) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
}

#[test]
fn an_ordinary_user_gets_a_named_weaker_tier_that_still_contains_the_tool() {
    if !is_root() {
        // `runuser` needs root; CI runs as root, so this skip only happens on a laptop.
        eprintln!("skipped: switching to nobody needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    world_readable(dir.path());
    // The binary is copied out of the target directory, which `nobody` may not be able to
    // traverse on every checkout.
    let slovo = dir.path().join("slovo");
    std::fs::copy(assert_cmd::cargo::cargo_bin("slovo"), &slovo).unwrap();
    std::fs::set_permissions(&slovo, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bundle = dir.path().join("probe");
    std::fs::create_dir_all(&bundle).unwrap();
    let src = dir.path().join("probe.c");
    std::fs::write(&src, PROBE_C).unwrap();
    let gcc = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(bundle.join("probe"))
        .arg(&src)
        .output()
        .expect("gcc (installed by scripts/ci-sandbox-deps.sh)");
    assert!(gcc.status.success(), "{}", String::from_utf8_lossy(&gcc.stderr));
    // A service on the host's loopback that the tool must not reach.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::fs::write(
        bundle.join("slovo.yaml"),
        format!(
            "name: probe\nversion: 1.0.0\ndescription: probe\ncapabilities:\n  - name: run\n    description: run\n\
             permissions: {{memory_limit_mb: 64, storage_quota_mb: 0}}\n\
             execution: {{type: process, command: [probe, \"{port}\"], system_paths: false}}\n"
        ),
    )
    .unwrap();
    for entry in walk(dir.path()) {
        let mode = if entry.is_dir() { 0o777 } else { 0o755 };
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let nobody = AsNobody {
        slovo,
        home: dir.path().to_path_buf(),
        data: dir.path().join("data"),
    };

    // The doctor says exactly what an ordinary user's sandbox cannot enforce.
    let out = nobody.run(false, &["--json", "doctor"]);
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["root"], false, "{report}");
    let process = report["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["kind"] == "process")
        .unwrap_or_else(|| panic!("no process backend in {report}"));
    assert_eq!(process["verdict"], "refuses", "{process}");
    let missing = process["cannot_enforce"].to_string();
    for protection in ["storage quota", "non-root", "cgroup"] {
        assert!(
            missing.contains(protection),
            "{protection} not named in {missing}"
        );
    }

    // Without the weaker tier named, the call is refused and recorded with the reason.
    let out = nobody.run(false, &["tool", "import", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = nobody.run(false, &["tool", "approve", "probe"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = nobody.run(false, &["--json", "call", "probe", "run"]);
    let record: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(record["status"], "failure", "{record}");
    assert!(
        record["error"]
            .as_str()
            .unwrap_or_default()
            .contains("allow_weaker"),
        "{record}"
    );

    // Named explicitly, it runs — still as an unprivileged uid in its own namespaces, with
    // no host files and no host loopback.
    let out = nobody.run(true, &["--json", "call", "probe", "run"]);
    let record: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(record["status"], "success", "{record}");
    assert_eq!(record["output"]["uid"], 1000, "{record}");
    assert_eq!(record["output"]["passwd_errno"], ENOENT, "{record}");
    assert_eq!(record["output"]["loopback_connected"], false, "{record}");
    drop(listener);
}

fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}
