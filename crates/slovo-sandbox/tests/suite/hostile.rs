//! Hostile tools: each test really attempts an attack, then checks that it was contained on
//! the host and that the outcome recorded it.

use std::process::Command;

use serde_json::{Value, json};
use slovo_core::manifest::Execution;

use super::support::*;
use crate::require_root;

fn errno(v: &Value) -> i64 {
    v["errno"].as_i64().unwrap_or(-1)
}

#[tokio::test]
async fn host_files_are_absent() {
    require_root!();
    let sb = Sandbox::new();
    // The root holds only the sandbox's own directories.
    let root = sb.probe("reader", &["ls", "/"]).await;
    let mut entries: Vec<String> = serde_json::from_value(root["entries"].clone()).unwrap();
    entries.sort();
    assert_eq!(entries, ["data", "dev", "proc", "tmp", "tool"]);
    let data_dir = sb.dir.path().to_string_lossy().into_owned();
    let work = sb.backend.config().work_dir.to_string_lossy().into_owned();
    for path in [
        "/etc/shadow",
        "/etc/passwd",
        "/root",
        "/home",
        "/sys/kernel",
        data_dir.as_str(),
        work.as_str(),
    ] {
        let v = sb.probe("reader", &["read", path]).await;
        assert_eq!(errno(&v), ENOENT, "{path}: {v}");
    }
    // With the system directories, /etc still holds only what the loader needs.
    let mut spec = sb.spec("reader", &["read", "/etc/shadow"]);
    spec.execution = Execution::Process {
        command: vec!["hostile".into(), "read".into(), "/etc/shadow".into()],
        system_paths: true,
    };
    let o = sb.run(&spec).await;
    assert_eq!(o.output, Some(json!({"errno": ENOENT})), "{o:#?}");
}

#[tokio::test]
async fn another_tools_state_is_unreachable() {
    require_root!();
    let sb = Sandbox::new();
    assert_eq!(
        errno(
            &sb.probe("alice", &["write", "/data/secret", "alice-secret"])
                .await
        ),
        0
    );
    let alice_state = sb.state("alice");
    assert_eq!(
        std::fs::read_to_string(alice_state.join("secret")).unwrap(),
        "alice-secret"
    );
    // Bob sees only his own (empty) /data, and alice's host path does not exist for him.
    assert_eq!(
        sb.probe("bob", &["ls", "/data"]).await,
        json!({"errno": 0, "entries": []})
    );
    assert_eq!(errno(&sb.probe("bob", &["read", "/data/secret"]).await), ENOENT);
    let host_path = alice_state.join("secret").to_string_lossy().into_owned();
    assert_eq!(errno(&sb.probe("bob", &["read", &host_path]).await), ENOENT);
}

#[tokio::test]
async fn writes_outside_data_and_tmp_fail() {
    require_root!();
    let sb = Sandbox::new();
    for path in [
        "/tool/evil",
        "/evil",
        "/dev/evil",
        "/proc/evil",
        "/proc/sys/kernel/hostname",
        "/data/../evil",
    ] {
        let v = sb.probe("writer", &["write", path]).await;
        assert_ne!(errno(&v), 0, "{path}: {v}");
    }
    assert!(!sb.bundle.join("evil").exists());
    let mut spec = sb.spec("writer", &[]);
    spec.execution = Execution::Process {
        command: vec!["hostile".into(), "write".into(), "/usr/evil".into()],
        system_paths: true,
    };
    assert_eq!(sb.run(&spec).await.output, Some(json!({"errno": EROFS})));
    assert!(!std::path::Path::new("/usr/evil").exists());
    // The two writable places.
    assert_eq!(errno(&sb.probe("writer", &["write", "/data/ok"]).await), 0);
    assert_eq!(errno(&sb.probe("writer", &["write", "/tmp/ok"]).await), 0);
    assert!(sb.state("writer").join("ok").exists());
}

#[tokio::test]
async fn a_symlink_in_data_pointing_outside_leads_nowhere() {
    require_root!();
    let sb = Sandbox::new();
    let bundle = sb.bundle.to_string_lossy().into_owned();
    assert_eq!(
        errno(
            &sb.probe("links", &["symlink", "/etc/shadow", "/data/shadow"])
                .await
        ),
        0
    );
    assert_eq!(
        errno(
            &sb.probe("links", &["symlink", "../../../../../../etc/shadow", "/data/rel"])
                .await
        ),
        0
    );
    assert_eq!(
        errno(&sb.probe("links", &["symlink", &bundle, "/data/bundle"]).await),
        0
    );
    // A later call follows them inside its own root, where the targets do not exist…
    for link in ["/data/shadow", "/data/rel"] {
        assert_eq!(errno(&sb.probe("links", &["read", link]).await), ENOENT, "{link}");
    }
    assert_eq!(
        errno(&sb.probe("links", &["write", "/data/bundle/evil"]).await),
        ENOENT
    );
    // …and writing through a link into the read-only tree fails.
    assert_eq!(
        errno(
            &sb.probe("links", &["symlink", "/tool/hostile", "/data/tool"])
                .await
        ),
        0
    );
    assert_ne!(errno(&sb.probe("links", &["write", "/data/tool"]).await), 0);
    assert!(!sb.bundle.join("evil").exists());
}

#[tokio::test]
async fn a_setuid_binary_gains_nothing() {
    require_root!();
    let sb = Sandbox::new();
    let v = sb.probe("suid", &["exec", "/tool/hostile-suid", "info"]).await;
    assert_eq!(
        (v["uid"].as_i64(), v["euid"].as_i64()),
        (Some(1000), Some(1000)),
        "{v}"
    );
    assert_eq!(v["cap_eff"], "0000000000000000");
}

#[tokio::test]
async fn ptrace_is_denied() {
    require_root!();
    let sb = Sandbox::new();
    let me = std::process::id().to_string();
    assert_eq!(
        sb.probe("ptrace", &["ptrace", &me]).await,
        json!({"attach_host": EPERM, "attach_own_child": EPERM})
    );
    assert_eq!(sb.probe("traceme", &["traceme"]).await, json!({"traceme": EPERM}));
}

#[tokio::test]
async fn mount_unshare_and_setns_are_denied() {
    require_root!();
    let sb = Sandbox::new();
    assert_eq!(
        sb.probe("mnt", &["mount"]).await,
        json!({"tmpfs": EPERM, "bind": EPERM, "remount": EPERM, "umount": EPERM, "chroot": EPERM,
               "pivot_root": EPERM, "fsopen": EPERM, "open_tree": EPERM})
    );
    assert_eq!(
        sb.probe("ns", &["unshare"]).await,
        json!({"unshare_user": EPERM, "unshare_net": EPERM, "unshare_mount": EPERM, "clone_newuser": EPERM,
               "setns_user": EPERM, "setns_net": EPERM})
    );
}

#[tokio::test]
async fn kernel_attack_surface_is_denied() {
    require_root!();
    let sb = Sandbox::new();
    assert_eq!(
        sb.probe("kernel", &["kernel"]).await,
        json!({"keyctl": EPERM, "add_key": EPERM, "bpf": EPERM, "perf_event_open": EPERM, "userfaultfd": EPERM,
               "io_uring": EPERM, "mknod": EPERM, "sethostname": EPERM, "clone3": libc::ENOSYS})
    );
}

#[tokio::test]
async fn raw_and_packet_sockets_are_denied() {
    require_root!();
    let sb = Sandbox::new();
    assert_eq!(
        sb.probe("raw", &["raw"]).await,
        json!({"raw4": EPERM, "raw6": EPERM, "packet_raw": EPERM, "packet_dgram": EPERM})
    );
}

#[tokio::test]
async fn host_processes_are_invisible_and_unkillable() {
    require_root!();
    let sb = Sandbox::new();
    let mut victim = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = victim.id().to_string();
    assert_eq!(
        sb.probe("killer", &["kill", &pid]).await,
        json!({"kill_pid": libc::ESRCH, "kill_all": libc::ESRCH})
    );
    assert!(victim.try_wait().unwrap().is_none(), "the host process died");
    victim.kill().unwrap();
    victim.wait().unwrap();
    // /proc shows the tool's own PID namespace: only PID 1.
    let procs = sb.probe("killer", &["ls", "/proc"]).await;
    let pids: Vec<String> = serde_json::from_value::<Vec<String>>(procs["entries"].clone())
        .unwrap()
        .into_iter()
        .filter(|e| e.chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(pids, ["1"]);
}

#[tokio::test]
async fn system_calls_of_another_abi_do_not_get_through() {
    require_root!();
    let sb = Sandbox::new();
    // i386's entry (int 0x80) from a 64-bit program: the filter's architecture check fails,
    // and the process is killed before the call is made.
    let o = sb.run(&sb.spec("abi", &["foreign-abi", "i386"])).await;
    assert_eq!(o.status.as_str(), "killed", "{o:#?}");
    assert!(
        o.error.as_deref().unwrap_or_default().contains("SIGSYS"),
        "{o:#?}"
    );
    assert_eq!(o.output, None);
    // x32's numbering (bit 30 set): fails with EPERM, the call is not made.
    assert_eq!(
        sb.probe("abi", &["foreign-abi", "x32"]).await,
        json!({"result": -1, "errno": EPERM})
    );
}
