//! Hostile: unbounded recursion.
#[inline(never)]
fn down(n: u64, pad: [u64; 16]) -> u64 {
    let pad = std::hint::black_box(pad);
    if std::hint::black_box(n) == u64::MAX {
        return 0;
    }
    down(n + 1, pad) + pad[(n % 16) as usize]
}
fn main() {
    println!("{}", down(0, [7; 16]));
}
