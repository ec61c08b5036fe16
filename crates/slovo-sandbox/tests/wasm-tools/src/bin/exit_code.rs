//! Writes a lot to stderr, a line to stdout, and exits with code 3.
fn main() {
    let line = "e".repeat(1023);
    for _ in 0..1024 {
        eprintln!("{line}");
    }
    println!("partial");
    std::process::exit(3);
}
