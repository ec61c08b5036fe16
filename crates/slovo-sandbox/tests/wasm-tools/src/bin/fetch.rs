//! Outbound HTTP through the host: sends each document of `arguments.requests` with
//! `slovo_http::request`, collects each response document, prints `{"responses": [...]}`.
//! A negative return becomes `{"errno": N}`.

#[link(wasm_import_module = "slovo_http")]
unsafe extern "C" {
    fn request(ptr: *const u8, len: usize) -> i32;
    fn response(ptr: *mut u8, cap: usize) -> i32;
}

fn main() {
    let input = slovo_wasm_test_tools::request();
    let mut responses = Vec::new();
    for item in slovo_wasm_test_tools::raw_array(&input, "requests") {
        // SAFETY: the pointer and length describe `item`'s bytes, which outlive the call.
        let n = unsafe { request(item.as_ptr(), item.len()) };
        if n < 0 {
            responses.push(format!("{{\"errno\":{}}}", -n));
            continue;
        }
        let mut buf = vec![0u8; n as usize];
        // SAFETY: `buf` has room for `n` bytes.
        let m = unsafe { response(buf.as_mut_ptr(), buf.len()) };
        if m != n {
            responses.push(format!("{{\"errno\":{},\"expected\":{n}}}", -m));
            continue;
        }
        responses.push(String::from_utf8_lossy(&buf).into_owned());
    }
    println!("{{\"responses\":[{}]}}", responses.join(","));
}
