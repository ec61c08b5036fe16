//! Hostile: tries to turn a standard stream into an uncharged /data file. Closes stdout (fd 1)
//! and opens a file, which would take the lowest free descriptor; then tries to renumber a
//! file onto fd 1. Writes 2 MiB through whatever it got and reports to stderr.
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd};

#[link(wasm_import_module = "wasi_snapshot_preview1")]
unsafe extern "C" {
    fn fd_renumber(from: u32, to: u32) -> u16;
}

fn main() {
    // SAFETY (test tool): fd 1 is stdout; dropping the File closes it.
    drop(unsafe { File::from_raw_fd(1) });
    let mut f = File::create("/data/sneaky").unwrap_or_else(|e| panic!("create: {e}"));
    let fd = f.as_raw_fd();
    let chunk = vec![1u8; 64 * 1024];
    let mut written = 0usize;
    for _ in 0..32 {
        match f.write(&chunk) {
            Ok(n) => written += n,
            Err(_) => break,
        }
    }
    // SAFETY (test tool): raw WASI call with two descriptor numbers.
    let renumber = unsafe { fd_renumber(fd as u32, 1) };
    let mut via_one = 0usize;
    let mut one = unsafe { File::from_raw_fd(1) };
    for _ in 0..32 {
        match one.write(&chunk) {
            Ok(n) => via_one += n,
            Err(_) => break,
        }
    }
    std::mem::forget(one);
    eprintln!("fd={fd} written={written} renumber={renumber} via_one={via_one}");
}
