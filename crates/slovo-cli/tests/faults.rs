//! Faults survived with nothing lost (docs/deployment.md): SQLite locked by another process,
//! the data directory's disk full, PostgreSQL restarted under load. Each is made to happen for
//! real against the `slovo` binary, bounded in time, on loopback only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Install, call_through, free_port, no_call_left_running, setup, slow_api, statuses};

/// Holds SQLite's write lock on `db` (`BEGIN IMMEDIATE`) for `seconds` from another process;
/// returns once the lock is taken.
fn hold_write_lock(db: &Path, seconds: f64) -> Child {
    let script = "import sqlite3, sys, time\n\
                  c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
                  c.execute('BEGIN IMMEDIATE')\n\
                  print('locked', flush=True)\n\
                  time.sleep(float(sys.argv[2]))\n\
                  c.execute('ROLLBACK')\n";
    let mut holder = Command::new("python3")
        .args(["-c", script, db.to_str().unwrap(), &seconds.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut line = String::new();
    BufReader::new(holder.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    holder
}

fn audit_verifies(install: &Install) {
    let v: Value = serde_json::from_str(&install.run(&["--json", "audit", "verify"])).unwrap();
    assert_eq!(v["ok"], true, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_locked_by_another_process_waits_within_a_bound_then_fails_clearly() {
    let api_port = slow_api(10).await;
    let root = tempfile::tempdir().unwrap();
    let (install, _) = setup(&root.path().join("data"), None, api_port);
    let db = install.data.join("slovo.db");

    // Held longer than Slovo waits: the call fails after about the bound, with a clear error
    // and a retry-later exit code, and nothing of it is recorded.
    let mut holder = hold_write_lock(&db, 16.0);
    let started = Instant::now();
    let out = install.cmd().args(["call", "slow", "wait"]).output().unwrap();
    let waited = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("the database is busy"), "{stderr}");
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(15),
        "waited {waited:?}"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    let store = install.store().await;
    assert!(statuses(&store).await.is_empty(), "a refused call left a record");

    // Held briefly: the call waits for it and succeeds.
    let mut holder = hold_write_lock(&db, 1.5);
    let started = Instant::now();
    let out = install.cmd().args(["call", "slow", "wait"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the lock was not contended"
    );
    holder.wait().unwrap();
    assert_eq!(statuses(&store).await, vec!["success"]);
    store.close().await;
    audit_verifies(&install);
}

/// A small ext4 file system on a loop device, unmounted on drop.
struct SmallDisk {
    mount: PathBuf,
}

impl SmallDisk {
    fn new(root: &Path, megabytes: u64) -> Option<SmallDisk> {
        // Only root may mount; the CI runs as root.
        if unsafe { libc::geteuid() } != 0 {
            assert!(
                std::env::var_os("CI").is_none(),
                "the disk-full test needs root in CI"
            );
            eprintln!("skipped: mounting a small disk needs root");
            return None;
        }
        let image = root.join("disk.img");
        let mount = root.join("disk");
        std::fs::create_dir_all(&mount).unwrap();
        let file = std::fs::File::create(&image).unwrap();
        file.set_len(megabytes << 20).unwrap();
        let ok = |c: &mut Command| assert!(c.status().unwrap().success(), "{c:?}");
        ok(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0"])
            .arg(&image));
        ok(Command::new("mount").args(["-o", "loop"]).arg(&image).arg(&mount));
        Some(SmallDisk { mount })
    }

    /// Fills the file system; removing the returned file gives the space back.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.mount.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        // The last partial blocks.
        let small = [0u8; 512];
        while f.write_all(&small).is_ok() {}
        let _ = f.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_fails_calls_cleanly_and_service_resumes_when_space_returns() {
    let api_port = slow_api(10).await;
    let root = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::new(root.path(), 32) else {
        return;
    };
    let (install, token) = setup(&disk.mount.join("data"), None, api_port);
    let port = free_port();
    let mut server = install.serve(port);
    let client = reqwest::Client::new();
    call_through(&client, port, &token).await.unwrap();

    let filler = disk.fill();
    // Calls fail with a clear answer (never a success that was not recorded), repeatedly.
    let mut refused = 0;
    for _ in 0..20 {
        match call_through(&client, port, &token).await {
            Ok(_) => {} // SQLite may still find a free page in its own files
            Err(e) => {
                assert!(e.starts_with("503"), "{e}");
                assert!(e.contains("disk is full"), "{e}");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "no call was refused on a full disk");
    eprintln!("{refused} of 20 calls refused on the full disk");

    // Space returns: calls succeed again, without a restart.
    std::fs::remove_file(&filler).unwrap();
    call_through(&client, port, &token).await.unwrap();

    // Nothing half-written: within a heartbeat the server closes the records of calls whose
    // result the full disk refused; every record is finished with its one event, and the
    // chain verifies.
    let store = install.store().await;
    let all = no_call_left_running(&store, Duration::from_secs(10)).await;
    let events = store.audit_events_in_display_order(10_000).await.unwrap();
    let finished = events.iter().filter(|e| e.kind == "execution.finished").count();
    assert_eq!(finished, all.len());
    audit_verifies(&install);
    server.kill().unwrap();
    server.wait().unwrap();
    store.close().await;
    drop(disk);
}

/// A `slovo serve` over `pg` with the slow API tool (each call takes `api_ms`): its directory,
/// installation, agent token, port and process.
async fn serving_over(pg: &PrivatePostgres, api_ms: u64) -> (tempfile::TempDir, Install, String, u16, Child) {
    let api_port = slow_api(api_ms).await;
    let root = tempfile::tempdir().unwrap();
    let (install, token) = setup(&root.path().join("data"), Some(pg.url()), api_port);
    let port = free_port();
    let server = install.serve(port);
    (root, install, token, port, server)
}

/// A PostgreSQL server of this test's own, so that restarting it disturbs no other test.
struct PrivatePostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivatePostgres {
    fn start() -> PrivatePostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is installed (scripts/test.sh installs it)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .max()
            .unwrap();
        let dir = tempfile::Builder::new()
            .prefix("slovo-pg-")
            .tempdir_in("/var/tmp")
            .unwrap();
        if unsafe { libc::geteuid() } == 0 {
            // PostgreSQL refuses to run as root.
            assert!(
                Command::new("chown")
                    .arg("postgres")
                    .arg(dir.path())
                    .status()
                    .unwrap()
                    .success()
            );
        }
        let pg = PrivatePostgres {
            bin,
            port: free_port(),
            dir,
        };
        let data = pg.dir.path().join("data");
        pg.as_postgres(&[
            "initdb",
            "-D",
            data.to_str().unwrap(),
            "-U",
            "slovo",
            "--auth=trust",
        ]);
        pg.ctl("start");
        pg
    }

    fn url(&self) -> String {
        format!("postgres://slovo@127.0.0.1:{}/postgres", self.port)
    }

    fn ctl(&self, action: &str) {
        let data = self.dir.path().join("data");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log");
        self.as_postgres(&[
            "pg_ctl",
            "-D",
            data.to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
            "-w",
            "-m",
            "fast",
            "-o",
            &opts,
            action,
        ]);
    }

    /// PostgreSQL's program `args[0]` with the rest as arguments, as the postgres account when
    /// we are root (PostgreSQL refuses to run as root).
    fn postgres_command(&self, args: &[&str]) -> Command {
        let program = self.bin.join(args[0]);
        let mut c = if unsafe { libc::geteuid() } == 0 {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        c.args(&args[1..]);
        c
    }

    fn as_postgres(&self, args: &[&str]) {
        let out = self.postgres_command(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = self
            .postgres_command(&["pg_ctl", "-D", data.to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_restarted_under_load_leaves_no_half_recorded_call() {
    let pg = PrivatePostgres::start();
    let (_root, install, token, port, mut server) = serving_over(&pg, 300).await;
    let client = reqwest::Client::new();

    // Calls keep arriving for three seconds while the database restarts under them.
    let load = {
        let (client, token) = (client.clone(), token.clone());
        tokio::spawn(async move {
            let until = Instant::now() + Duration::from_secs(3);
            let mut answers = Vec::new();
            while Instant::now() < until {
                let batch: Vec<_> = (0..8)
                    .map(|_| {
                        let (client, token) = (client.clone(), token.clone());
                        tokio::spawn(async move { call_through(&client, port, &token).await })
                    })
                    .collect();
                for call in batch {
                    answers.push(call.await.unwrap());
                }
            }
            answers
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let pg = tokio::task::spawn_blocking(move || {
        pg.ctl("restart");
        pg
    })
    .await
    .unwrap();
    let answers = load.await.unwrap();
    // A call in flight either completed or failed with an answer, never a hang.
    for e in answers.iter().filter_map(|a| a.as_ref().err()) {
        assert!(
            e.starts_with("503") && e.contains("try again"),
            "unclear failure: {e}"
        );
    }
    assert!(answers.iter().any(|a| a.is_ok()), "no call succeeded");
    let failed = answers.iter().filter(|a| a.is_err()).count();
    eprintln!("{} calls during the restart, {failed} failed", answers.len());

    // The instance reconnects by itself: a new call succeeds without a restart of Slovo.
    call_through(&client, port, &token).await.unwrap();

    // Nothing half-recorded: within a heartbeat the instance itself closes the records of
    // calls whose result the database could not take; every answered call is recorded and
    // every record is finished with its one event.
    let store = slovo_store::Store::connect(&pg.url()).await.unwrap();
    let all = no_call_left_running(&store, Duration::from_secs(10)).await;
    let executions = store
        .executions(&slovo_store::ExecutionFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    for id in answers.iter().filter_map(|a| a.as_ref().ok()) {
        let e = executions
            .iter()
            .find(|e| &e.id == id)
            .expect("an answered call is recorded");
        assert_eq!(e.status.to_string(), "success");
    }
    let events = store.audit_events_in_display_order(10_000).await.unwrap();
    let finished = events.iter().filter(|e| e.kind == "execution.finished").count();
    assert_eq!(finished, all.len());
    audit_verifies(&install);
    server.kill().unwrap();
    server.wait().unwrap();
    store.close().await;
    drop(pg);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_result_the_database_could_not_take_is_closed_by_the_instance_itself() {
    let pg = PrivatePostgres::start();
    let (_root, install, token, port, mut server) = serving_over(&pg, 2_000).await;
    let client = reqwest::Client::new();

    // A call starts (recorded as running), then the database stops while the tool works, so
    // the result cannot be written: the caller hears so.
    let call = {
        let (client, token) = (client.clone(), token.clone());
        tokio::spawn(async move { call_through(&client, port, &token).await })
    };
    let store = slovo_store::Store::connect(&pg.url()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while statuses(&store).await != vec!["running"] {
        assert!(Instant::now() < deadline, "the call never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    store.close().await;
    let pg = tokio::task::spawn_blocking(move || {
        pg.ctl("stop");
        pg
    })
    .await
    .unwrap();
    let answer = call.await.unwrap();
    let error = answer.expect_err("a result the database did not take was reported as success");
    assert!(error.starts_with("503"), "{error}");

    // The database returns: the instance closes the record by itself, as interrupted, with
    // its event; nobody restarts anything.
    let pg = tokio::task::spawn_blocking(move || {
        pg.ctl("start");
        pg
    })
    .await
    .unwrap();
    let store = slovo_store::Store::connect(&pg.url()).await.unwrap();
    assert_eq!(
        no_call_left_running(&store, Duration::from_secs(10)).await,
        vec!["interrupted"]
    );
    let events = store.audit_events_in_display_order(10_000).await.unwrap();
    assert_eq!(
        events.iter().filter(|e| e.kind == "execution.finished").count(),
        1
    );
    audit_verifies(&install);
    server.kill().unwrap();
    server.wait().unwrap();
    store.close().await;
}
