//! The README's commands, run as written: the quick start, every shell block of "A session"
//! against a fresh data directory, and the examples they use (a fresh clone has nothing else).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn is_root() -> bool {
    // SAFETY: a plain getter.
    unsafe { libc::geteuid() == 0 }
}

/// Runs `cmd` in a process group of its own with its output in files (a background process
/// it leaves behind must not keep a pipe open), ends the whole group after it exits or after
/// `limit`, and returns its status and output.
fn run_bounded(mut cmd: Command, limit: Duration) -> (std::process::ExitStatus, String, String) {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = cmd
        .process_group(0)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let group = child.id() as i32;
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            // SAFETY: signals our own process group.
            unsafe { libc::kill(-group, libc::SIGKILL) };
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Whatever the script started and did not stop (a server, a device) ends with it.
    // SAFETY: signals our own process group.
    unsafe { libc::kill(-group, libc::SIGKILL) };
    let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
    (status, read(&out), read(&err))
}

fn skip_docker() -> bool {
    std::env::var("SLOVO_TEST_SKIP_DOCKER").as_deref() == Ok("1")
}

/// The ```sh blocks between `## A session` and the next section that is not part of it.
fn session_blocks(readme: &str) -> Vec<String> {
    let start = readme.find("## A session").expect("README has `## A session`");
    let end = readme[start..]
        .find("## Documentation")
        .map_or(readme.len(), |i| start + i);
    support::sh_blocks(&readme[start..end])
}

#[test]
fn the_readme_refers_to_nothing_outside_the_repository() {
    let readme = std::fs::read_to_string(support::repo().join("README.md")).unwrap();
    assert!(
        !readme.contains("../"),
        "README.md refers to a path outside the repository"
    );
    for entry in std::fs::read_dir(support::repo().join("examples"))
        .unwrap()
        .flatten()
    {
        let path = entry.path();
        let files: Vec<PathBuf> = if path.is_dir() {
            std::fs::read_dir(&path)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .collect()
        } else {
            vec![path]
        };
        for f in files.into_iter().filter(|f| f.is_file()) {
            if let Ok(text) = std::fs::read_to_string(&f) {
                assert!(!text.contains("../shared"), "{} refers to ../shared", f.display());
            }
        }
    }
}

#[test]
fn the_quick_start_runs_as_written() {
    let mut cmd = support::shell("bash examples/quickstart.sh");
    cmd.env("SLOVO_BIN", env!("CARGO_BIN_EXE_slovo"));
    let (status, stdout, stderr) = run_bounded(cmd, Duration::from_secs(300));
    assert!(status.success(), "quickstart failed:\n{stdout}\n{stderr}");
    // A narrowed grant, a sandboxed call with its answer, its record, the verified chain.
    assert!(
        stdout.contains("│ memory       64 MB       32 MB   │"),
        "{stdout}"
    );
    assert!(stdout.contains("\"words\": 12"), "{stdout}");
    assert!(
        stdout.contains("text-stats 1.0.0   stats        success"),
        "{stdout}"
    );
    assert!(stdout.contains("audit trail verified: 4 events"), "{stdout}");
    assert!(stdout.contains("Next:"), "{stdout}");
    let data = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Its data directory is "))
        .and_then(|l| l.split(' ').next())
        .unwrap();
    let _ = std::fs::remove_dir_all(data);
}

#[test]
fn every_command_of_the_walk_through_runs_as_written() {
    if !is_root() {
        eprintln!("skipped: the walk-through's process and Docker tools need root");
        return;
    }
    let readme = std::fs::read_to_string(support::repo().join("README.md")).unwrap();
    let blocks: Vec<String> = session_blocks(&readme)
        .into_iter()
        .filter(|b| !(skip_docker() && b.contains("docker")))
        .collect();
    assert!(blocks.len() >= 4, "the walk-through lost its blocks: {blocks:?}");
    // One shell for all blocks, as a reader types them in one terminal; the data directory is
    // printed last so that the test can check what the session left behind.
    let script = format!(
        "set -euo pipefail\n{}\necho \"DATA_DIR=$SLOVO_DATA_DIR\"\n",
        blocks.join("\n")
    );
    let out = support::shell(&script).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the walk-through failed:\n{stdout}\n{stderr}"
    );
    for expected in [
        "\"value\": 9.84252",     // the process tool
        "\"most_frequent\"",      // the WebAssembly tool
        "\"brightness\": 40",     // the HTTP tool reached the device
        "audit trail verified",   // the chain
        "\"status\":\"success\"", // the REST call
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}\n{stderr}"
        );
    }
    if !skip_docker() {
        assert!(stdout.contains("hello from a container"), "{stdout}\n{stderr}");
    }
    // Nothing of the session stays mounted, and its data directory can be removed.
    let data = stdout.lines().find_map(|l| l.strip_prefix("DATA_DIR=")).unwrap();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(data), "a mount outlived the commands:\n{mounts}");
    std::fs::remove_dir_all(data).unwrap();
}

#[test]
fn the_committed_webassembly_example_is_what_its_source_builds() {
    let has_target = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l == "wasm32-wasip1")
        })
        .unwrap_or(false);
    if !has_target {
        eprintln!("skipped: no wasm32-wasip1 target (scripts/ci-wasm-setup.sh installs it)");
        return;
    }
    let copy = tempfile::tempdir().unwrap();
    let dir = copy.path().join("text-stats");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    for f in ["Cargo.toml", "Cargo.lock", "build.sh", "src/main.rs"] {
        std::fs::copy(support::repo().join("examples/text-stats").join(f), dir.join(f)).unwrap();
    }
    // Built in another folder: the bytes must not depend on where the checkout is.
    let out = Command::new("bash")
        .arg(dir.join("build.sh"))
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let built = std::fs::read(dir.join("text_stats.wasm")).unwrap();
    let committed = std::fs::read(support::repo().join("examples/text-stats/text_stats.wasm")).unwrap();
    assert!(
        built == committed,
        "examples/text-stats/text_stats.wasm differs from what build.sh makes of its source; run examples/text-stats/build.sh"
    );
}
