//! Placeholder until the process-call benchmark lands.
fn main() {}
