//! Hostile: allocates 1 MiB at a time, forever, touching every page.
fn main() {
    let mut keep: Vec<Vec<u8>> = Vec::new();
    loop {
        keep.push(vec![1u8; 1024 * 1024]);
        std::hint::black_box(&keep);
    }
}
