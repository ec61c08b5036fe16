//! Bundle import from a tarball on arbitrary bytes: unpack, stage, read the manifest, check
//! the files it names, install. Inputs that start with the gzip magic are imported as
//! `.tar.gz`, the others as `.tar`.
//!
//! Everything happens under one directory of the fuzzer's own (the unpacking directory too:
//! `TMPDIR` points inside it), and after each input the target checks that nothing was left
//! in it but what it made itself, and nothing was written next to it.
#![no_main]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;

/// `<tmp>/slovo-fuzz-bundle-<pid>/{tmp,work}`, made once.
struct Dirs {
    /// Holds only `tmp` between inputs, and `work` during one.
    root: PathBuf,
    /// `TMPDIR` for the import: the unpacking directory is made here.
    tmp: PathBuf,
}

static DIRS: LazyLock<Dirs> = LazyLock::new(|| {
    let root = std::env::temp_dir().join(format!("slovo-fuzz-bundle-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    let tmp = root.join("tmp");
    fs::create_dir_all(&tmp).expect("create the fuzzer's directory");
    // SAFETY: set once, on the first input, before the import runs; libFuzzer runs inputs on one
    // thread and nothing else in this process reads the environment concurrently.
    unsafe { std::env::set_var("TMPDIR", &tmp) };
    assert_eq!(std::env::temp_dir(), tmp);
    Dirs { root, tmp }
});

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list a directory of the fuzzer's")
        .map(|e| {
            e.expect("read a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Removes `dir`, making the read-only directories of an installed bundle writable first.
fn remove(dir: &Path) {
    for entry in fs::read_dir(dir).expect("list a directory to remove") {
        let entry = entry.expect("read a directory entry");
        let ty = entry.file_type().expect("type of an entry");
        if ty.is_dir() {
            fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o700))
                .expect("make a directory writable");
            remove(&entry.path());
        } else {
            fs::remove_file(entry.path()).expect("remove a file");
        }
    }
    fs::remove_dir(dir).expect("remove a directory");
}

fuzz_target!(|data: &[u8]| {
    let dirs = &*DIRS;
    let work = dirs.root.join("work");
    fs::create_dir(&work).expect("create the work directory");
    let gzip = data.starts_with(&[0x1f, 0x8b]);
    let _ = slovo_bundle::fuzzing::import_tarball(data, gzip, &work);
    // The unpacking directory is gone whatever happened, and nothing was written beside `work`.
    assert_eq!(
        names(&dirs.tmp),
        Vec::<String>::new(),
        "the unpacking directory was left behind"
    );
    assert_eq!(
        names(&dirs.root),
        ["tmp", "work"],
        "an entry was written outside the bundle"
    );
    let bundles = work.join("bundles");
    if bundles.exists() {
        let staging: Vec<String> = names(&bundles)
            .into_iter()
            .filter(|n| n.starts_with(".staging-"))
            .collect();
        assert!(
            staging.is_empty(),
            "a staging directory was left behind: {staging:?}"
        );
    }
    remove(&work);
});
