//! Hostile: writes to stdout forever.
use std::io::Write;
fn main() {
    let line = vec![b'x'; 64 * 1024];
    let mut out = std::io::stdout().lock();
    loop {
        if out.write_all(&line).is_err() {
            // Keep going: a tool ignoring errors must still be stopped.
            continue;
        }
    }
}
