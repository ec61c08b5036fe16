//! Resource limits: fork bomb, memory bomb, timeout, CPU share, output floods, daemons.

use std::time::{Duration, Instant};

use serde_json::json;

use super::support::*;
use crate::require_root;

fn assert_nothing_left(sb: &Sandbox) {
    assert_eq!(
        sb.leftovers(),
        Vec::<i32>::new(),
        "sandbox processes left on the host"
    );
}

#[tokio::test]
async fn a_fork_bomb_hits_the_pids_limit() {
    require_root!();
    let sb = Sandbox::new();
    let mut spec = sb.spec("bomb", &["forkbomb"]);
    spec.limits.pids = 16;
    let o = sb.run(&spec).await;
    assert_eq!(o.status.as_str(), "success", "{o:#?}");
    let out = o.output.unwrap();
    assert!(out["forked"].as_i64().unwrap() <= 15, "{out}");
    assert_eq!(out["errno"], json!(libc::EAGAIN));
    assert_nothing_left(&sb);

    // One that never stops is ended by the timeout, and the reason names the limit.
    let mut spec = sb.spec("bomb", &["forkbomb-forever"]);
    spec.limits.pids = 16;
    spec.limits.timeout = Duration::from_millis(500);
    let t = Instant::now();
    let o = sb.run(&spec).await;
    assert!(t.elapsed() < Duration::from_secs(3));
    assert_eq!(o.status.as_str(), "timeout", "{o:#?}");
    assert!(o.error.unwrap().contains("the process limit (16) was reached"));
    assert_nothing_left(&sb);
}

#[tokio::test]
async fn a_memory_bomb_is_killed_for_out_of_memory() {
    require_root!();
    let sb = Sandbox::new();
    let mut spec = sb.spec("mem", &["membomb"]);
    spec.limits.memory_mb = 32;
    let o = sb.run(&spec).await;
    assert_eq!(o.status.as_str(), "killed", "{o:#?}");
    assert_eq!(o.error.as_deref(), Some("killed: out of memory (limit 32 MB)"));
    let peak = o.peak_memory_bytes.unwrap();
    assert!(peak <= 32 * 1024 * 1024 && peak > 16 * 1024 * 1024, "{peak}");
    assert_nothing_left(&sb);
}

#[tokio::test]
async fn spinning_past_the_timeout_kills_the_whole_tree() {
    require_root!();
    let sb = Sandbox::new();
    let mut spec = sb.spec("spin", &["spin"]);
    spec.limits.timeout = Duration::from_millis(600);
    let t = Instant::now();
    let o = sb.run(&spec).await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(o.status.as_str(), "timeout", "{o:#?}");
    assert!(o.error.as_deref().unwrap().starts_with("timed out after 600ms"));
    assert!(o.cpu_ms.unwrap() > 100, "{o:#?}");
    assert_nothing_left(&sb);
}

#[tokio::test]
async fn the_cpu_share_is_enforced() {
    require_root!();
    let sb = Sandbox::new();
    let mut spec = sb.spec("cpu", &["spin"]);
    spec.limits.timeout = Duration::from_secs(1);
    spec.limits.cpu_percent = 10;
    let o = sb.run(&spec).await;
    assert_eq!(o.status.as_str(), "timeout");
    // Four spinning processes, 10% of one CPU for about a second.
    let cpu = o.cpu_ms.unwrap();
    assert!(cpu <= 250, "{cpu} ms of CPU at 10%");
}

#[tokio::test]
async fn a_stdout_flood_is_killed_at_the_limit() {
    require_root!();
    let sb = Sandbox::with_config(|c| c.stdout_limit = 1024 * 1024);
    let o = sb.run(&sb.spec("flood", &["flood"])).await;
    assert_eq!(o.status.as_str(), "killed", "{:?}", o.error);
    assert_eq!(o.error.as_deref(), Some("killed: stdout exceeded its limit"));
    let len = o.output.as_ref().and_then(|v| v.as_str()).map_or(0, str::len);
    assert!(len <= 1024 * 1024, "{len}");
    assert_nothing_left(&sb);
}

#[tokio::test]
async fn a_child_that_outlives_its_parent_dies_with_the_call() {
    require_root!();
    let sb = Sandbox::new();
    // The daemon writes its marker after 4 s. The call must end well before that: it does not
    // wait for a child its tool left behind. The margin is wide because the suite also runs in
    // an emulated VM, where one call can take most of a second.
    let daemon_sleeps = Duration::from_secs(4);
    let t = Instant::now();
    let o = sb.run(&sb.spec("daemon", &["daemon", "4"])).await;
    assert!(
        t.elapsed() < daemon_sleeps - Duration::from_secs(1),
        "the call waited for the daemon ({:?})",
        t.elapsed()
    );
    assert_eq!(o.status.as_str(), "success", "{o:#?}");
    assert_eq!(o.output, Some(json!({"daemonised": true})));
    assert_nothing_left(&sb);
    // Past the time the daemon would have written its marker.
    std::thread::sleep((daemon_sleeps + Duration::from_millis(500)).saturating_sub(t.elapsed()));
    assert!(
        !sb.state("daemon").join("daemon-marker").exists(),
        "the daemon survived the call"
    );
    assert_nothing_left(&sb);
}

/// The names of this process's call cgroups under every hierarchy's parent.
fn own_call_cgroups(sb: &Sandbox) -> Vec<String> {
    let prefix = sb.backend.call_cgroup_prefix().expect("cgroups").to_string();
    let hierarchy = sb.backend.support().cgroups.clone().expect("cgroups");
    let mut names: Vec<String> = hierarchy
        .parents()
        .iter()
        .flat_map(|p| std::fs::read_dir(p).unwrap().flatten())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    names.sort();
    names
}

/// Cgroups are made ahead of time and removed after their call, off the call's path: each
/// still serves one call only, and none accumulates. A cgroup left by a process that is gone
/// is removed when a backend starts; one of a live process is not.
#[tokio::test]
async fn call_cgroups_serve_one_call_each_and_do_not_accumulate() {
    require_root!();
    let hierarchy = Sandbox::new().backend.support().cgroups.clone().expect("cgroups");
    // A stale cgroup of a process that no longer exists, and one of a live process (this one).
    let dead_pid = (1_000_000..4_000_000)
        .step_by(7919)
        // SAFETY: kill with signal 0 only checks whether the process exists.
        .find(|p| unsafe { libc::kill(*p, 0) } != 0)
        .unwrap();
    let parent = hierarchy.parents()[0].to_path_buf();
    let stale = parent.join(format!("slovo-{dead_pid}-0"));
    let live = parent.join(format!("slovo-{}-stale-test", std::process::id()));
    std::fs::create_dir(&stale).unwrap();
    std::fs::create_dir(&live).unwrap();
    let sb = Sandbox::new();
    assert!(!stale.exists(), "a dead process's cgroup survived start-up");
    assert!(live.exists(), "a live process's cgroup was removed");
    std::fs::remove_dir(&live).unwrap();

    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..12 {
        let o = sb.run(&sb.spec("t", &["echo"])).await;
        assert_eq!(o.status.as_str(), "success", "{o:#?}");
        assert!(o.cpu_ms.is_some() && o.peak_memory_bytes.is_some(), "{o:#?}");
        for name in own_call_cgroups(&sb) {
            seen.insert(name);
        }
    }
    // Bounded wait for the keeper to remove the used ones: what remains is the few it holds
    // ready, in each hierarchy.
    let per_hierarchy = |names: &[String]| names.len() / hierarchy.parents().len();
    let mut left = own_call_cgroups(&sb);
    for _ in 0..200 {
        if per_hierarchy(&left) <= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        left = own_call_cgroups(&sb);
    }
    assert!(per_hierarchy(&left) <= 2, "call cgroups accumulate: {left:?}");
    // Cgroups are numbered as they are made; a used one is never handed out again, so after
    // twelve calls the ones held ready were made after at least twelve others.
    let prefix = sb.backend.call_cgroup_prefix().unwrap().to_string();
    let newest = seen
        .iter()
        .chain(&left)
        .filter_map(|n| n.strip_prefix(&prefix)?.parse::<u64>().ok())
        .max()
        .unwrap();
    assert!(
        newest >= 12,
        "12 calls, but the newest cgroup is number {newest}: {seen:?}"
    );
}

/// The suite runs on this machine's cgroup v1 and, through `scripts/test-cgroup2-vm.sh`, in a
/// VM with cgroup v2 (which sets `SLOVO_TEST_CGROUP=v2`); this says which one the backend is
/// really using, judged independently of its own detection: a v1 `memory` hierarchy mounted
/// means v1.
#[tokio::test]
async fn the_backend_uses_the_hosts_cgroup_version() {
    require_root!();
    let sb = Sandbox::new();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let v1_memory = mountinfo.lines().any(|l| {
        let (_, fs) = l.split_once(" - ").unwrap_or_default();
        fs.starts_with("cgroup ") && fs.split([' ', ',']).any(|o| o == "memory")
    });
    let expected = std::env::var("SLOVO_TEST_CGROUP")
        .unwrap_or_else(|_| if v1_memory { "v1" } else { "v2" }.to_string());
    let used = match sb.backend.support().cgroups.clone().expect("cgroups") {
        slovo_sandbox::process::cgroups::Hierarchy::V1 { .. } => "v1",
        slovo_sandbox::process::cgroups::Hierarchy::V2 { .. } => "v2",
    };
    assert_eq!(used, expected, "{mountinfo}");
    // And a call runs under it, with its figures taken from it.
    let o = sb.run(&sb.spec("t", &["echo"])).await;
    assert_eq!(o.status.as_str(), "success", "{o:#?}");
    assert!(o.cpu_ms.is_some() && o.peak_memory_bytes.is_some(), "{o:#?}");
}
