//! A test MCP server in an OCI image, built here (no image can be pulled): a FROM-scratch
//! image holding the host's bash, its libraries and `tests/mcp-tools/oci_server.sh`, imported
//! with `docker import` (as the Docker backend's own tests make theirs). Building it takes a
//! second; each test process builds it once, and removes the ones earlier runs left.
#![allow(dead_code)] // shared by test binaries, each using part of it

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The image: its reference with a tag (`slovo-test-mcp-oci:PID`) and its id (`sha256:…`).
pub struct TestImage {
    pub tagged: String,
    pub id: String,
}

impl TestImage {
    /// `NAME@sha256:…`: the image by its digest, as an import names it.
    pub fn by_digest(&self) -> String {
        let name = self
            .tagged
            .rsplit_once(':')
            .map_or(self.tagged.as_str(), |(n, _)| n);
        format!("{name}@{}", self.id)
    }
}

/// Whether the test may run: `None` (skip, with the reason printed) when the Docker tests are
/// switched off (`SLOVO_TEST_SKIP_DOCKER=1`) or this is not root (the state volumes need it);
/// a missing daemon is a failure naming the script that starts it.
pub fn docker_ready() -> Option<()> {
    if std::env::var("SLOVO_TEST_SKIP_DOCKER").as_deref() == Ok("1") {
        eprintln!("skipped: SLOVO_TEST_SKIP_DOCKER=1");
        return None;
    }
    // SAFETY: a plain getter.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the Docker backend's state volumes need root");
        return None;
    }
    let host = slovo_sandbox::docker::daemon::DEFAULT_HOST;
    if let Err(e) = slovo_sandbox::docker::daemon::probe_blocking(host) {
        panic!(
            "no Docker daemon answers at {host} ({e}): run scripts/ci-docker-setup.sh (as root), or set \
             SLOVO_TEST_SKIP_DOCKER=1 to skip the Docker tests"
        );
    }
    Some(())
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The test server's image, built once per test process.
pub fn image() -> &'static TestImage {
    static IMAGE: OnceLock<TestImage> = OnceLock::new();
    IMAGE.get_or_init(|| {
        remove_stale_images();
        build(&std::process::id().to_string(), None)
    })
}

/// Another image of the same repository (a new release of the server, as far as Slovo can
/// tell): the same server, with `variant` in `/variant` (which `probe` reports), so another
/// id. Built once per test process.
pub fn upgraded_image() -> &'static TestImage {
    static IMAGE: OnceLock<TestImage> = OnceLock::new();
    IMAGE.get_or_init(|| {
        remove_stale_images();
        build(&format!("{}-upgraded", std::process::id()), Some("upgraded"))
    })
}

/// Builds the image tagged `slovo-test-mcp-oci:TAG`, with `variant` in `/variant` if given.
fn build(tag: &str, variant: Option<&str>) -> TestImage {
    let tagged = format!("slovo-test-mcp-oci:{tag}");
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    add_program(r, Path::new("/usr/bin/bash"), "bin/bash");
    // Relative to this file, so that other crates' tests can include it.
    std::fs::write(r.join("server.sh"), include_str!("../mcp-tools/oci_server.sh")).unwrap();
    if let Some(variant) = variant {
        std::fs::write(r.join("variant"), variant).unwrap();
    }
    for d in ["data", "tmp", "etc", "writable"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    // As in real images, /tmp is world-writable; so is /writable, which only the read-only
    // root keeps the server from writing to.
    for d in ["tmp", "writable"] {
        std::fs::set_permissions(r.join(d), std::fs::Permissions::from_mode(0o1777)).unwrap();
    }
    let tar = r.with_extension("tar");
    run(Command::new("tar")
        .args(["--owner=0", "--group=0", "--numeric-owner", "-C"])
        .arg(r)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    run(Command::new("docker")
        .args(["import", "--change", r#"ENTRYPOINT ["/bin/bash", "/server.sh"]"#])
        .arg(&tar)
        .arg(&tagged));
    let _ = std::fs::remove_file(&tar);
    let id = run(Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", &tagged]));
    TestImage { tagged, id }
}

/// Copies `program` to `root/at`, with the shared libraries it loads at the host's paths.
fn add_program(root: &Path, program: &Path, at: &str) {
    let target = root.join(at);
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::copy(program, &target).unwrap();
    let libs = run(Command::new("ldd").arg(program));
    for lib in libs.split_whitespace().filter(|w| w.starts_with('/')) {
        let target: PathBuf = root.join(lib.trim_start_matches('/'));
        if !target.exists() {
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(lib, &target).unwrap();
        }
    }
}

/// Removes the test images of test processes that are gone.
fn remove_stale_images() {
    let listed = run(Command::new("docker").args([
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        "slovo-test-mcp-oci",
    ]));
    for old in listed.lines() {
        // `PID` or `PID-upgraded`.
        let tag = old.rsplit(':').next().unwrap_or_default();
        let pid = tag.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
            let _ = Command::new("docker").args(["rmi", "-f", old]).output();
        }
    }
}
