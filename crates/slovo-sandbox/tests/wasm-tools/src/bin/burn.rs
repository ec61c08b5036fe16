//! Burns CPU for `ms` milliseconds of wall time, then reports how many loop rounds it did.
use std::time::{Duration, Instant};
fn main() {
    let request = slovo_wasm_test_tools::request();
    let ms: u64 = slovo_wasm_test_tools::arg(&request, "ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let start = Instant::now();
    let mut rounds: u64 = 0;
    while start.elapsed() < Duration::from_millis(ms) {
        for _ in 0..10_000 {
            rounds = std::hint::black_box(rounds + 1);
        }
    }
    println!("{{\"rounds\":{rounds}}}");
}
