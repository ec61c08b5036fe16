//! Hostile: tries to read and list the host's files from inside /data and outside it.
//! Prints one JSON object: each attempt and what happened ("ok:<first bytes>" or "err:<error>").
use std::fs;
use std::io::Read;

fn attempt_read(path: &str) -> String {
    match fs::File::open(path) {
        Ok(mut f) => {
            let mut s = String::new();
            match f.read_to_string(&mut s) {
                Ok(_) => format!("ok:{}", s.chars().take(40).collect::<String>()),
                Err(e) => format!("err:{e}"),
            }
        }
        Err(e) => format!("err:{e}"),
    }
}

fn attempt_list(path: &str) -> String {
    match fs::read_dir(path) {
        Ok(entries) => {
            let names: Vec<String> = entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            format!("ok:{}", names.join(","))
        }
        Err(e) => format!("err:{e}"),
    }
}

#[link(wasm_import_module = "wasi_snapshot_preview1")]
unsafe extern "C" {
    fn path_symlink(old: *const u8, old_len: usize, fd: u32, new: *const u8, new_len: usize) -> u16;
}

/// Creates `new` (relative to /data, descriptor 3) pointing at `old`; returns the WASI errno.
fn symlink_in_data(old: &str, new: &str) -> u16 {
    // SAFETY (test tool): raw WASI call with valid pointers and lengths.
    unsafe { path_symlink(old.as_ptr(), old.len(), 3, new.as_ptr(), new.len()) }
}

fn main() {
    let mut results: Vec<(&str, String)> = Vec::new();
    results.push(("etc_passwd", attempt_read("/etc/passwd")));
    results.push(("dotdot_passwd", attempt_read("/data/../etc/passwd")));
    results.push(("dotdot_many", attempt_read("/data/../../../../../../etc/passwd")));
    results.push(("relative_dotdot", attempt_read("../etc/passwd")));
    results.push(("sibling_state", attempt_read("/data/../other-tool/secret")));
    results.push(("proc_self", attempt_read("/proc/self/status")));
    results.push(("list_root", attempt_list("/")));
    results.push(("list_parent", attempt_list("/data/..")));
    // A symbolic link made inside /data that points out of it.
    let made = symlink_in_data("/etc/passwd", "link-abs");
    results.push(("symlink_abs_create", format!("{made:?}")));
    results.push(("symlink_abs_read", attempt_read("/data/link-abs")));
    let made = symlink_in_data("../../../../etc/passwd", "link-rel");
    results.push(("symlink_rel_create", format!("{made:?}")));
    results.push(("symlink_rel_read", attempt_read("/data/link-rel")));
    // A link the host put there (the test plants it before the call).
    results.push(("planted_link_read", attempt_read("/data/planted")));
    results.push(("own_file", {
        let _ = fs::write("/data/mine.txt", "hello");
        attempt_read("/data/mine.txt")
    }));
    let body: Vec<String> = results
        .iter()
        .map(|(k, v)| {
            format!(
                "{}:{}",
                slovo_wasm_test_tools::quote(k),
                slovo_wasm_test_tools::quote(v)
            )
        })
        .collect();
    println!("{{{}}}", body.join(","));
}
