//! Trivial tool: echoes its request and capability.
fn main() {
    let request = slovo_wasm_test_tools::request();
    let capability = std::env::var("SLOVO_CAPABILITY").unwrap_or_default();
    println!(
        "{{\"capability\":{},\"request\":{}}}",
        slovo_wasm_test_tools::quote(&capability),
        request.trim()
    );
}
