//! Writes to /data until an error, then reports. Modes (argument "mode"):
//! - "fill": one file (argument "file", default "big"), 64 KiB at a time;
//! - "files": many small files;
//! - "count": increments /data/counter (state across calls), writes nothing else;
//! - "set_size": extends a file with set_len to `mb` MiB.
use std::fs;
use std::io::Write;

fn report(written: u64, err: Option<std::io::Error>) {
    let (kind, msg) = match &err {
        Some(e) => (format!("{:?}", e.kind()), e.to_string()),
        None => ("none".into(), String::new()),
    };
    println!(
        "{{\"written\":{written},\"kind\":{},\"error\":{}}}",
        slovo_wasm_test_tools::quote(&kind),
        slovo_wasm_test_tools::quote(&msg)
    );
}

fn main() {
    let request = slovo_wasm_test_tools::request();
    let mode = slovo_wasm_test_tools::arg(&request, "mode").unwrap_or_else(|| "fill".into());
    match mode.as_str() {
        "count" => {
            let n: u64 = fs::read_to_string("/data/counter")
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            fs::write("/data/counter", format!("{}", n + 1)).unwrap_or_else(|e| panic!("write counter: {e}"));
            println!("{{\"count\":{}}}", n + 1);
        }
        "files" => {
            let mut n = 0u64;
            loop {
                if let Err(e) = fs::write(format!("/data/f{n}"), b"") {
                    report(n, Some(e));
                    return;
                }
                n += 1;
            }
        }
        "set_size" => {
            let mb: u64 = slovo_wasm_test_tools::arg(&request, "mb")
                .and_then(|v| v.parse().ok())
                .unwrap_or(64);
            let r = fs::File::create("/data/sparse").and_then(|f| f.set_len(mb * 1024 * 1024));
            report(0, r.err());
        }
        _ => {
            let name = slovo_wasm_test_tools::arg(&request, "file").unwrap_or_else(|| "big".into());
            let mut f = match fs::File::create(format!("/data/{name}")) {
                Ok(f) => f,
                Err(e) => return report(0, Some(e)),
            };
            let chunk = vec![7u8; 64 * 1024];
            let mut written = 0u64;
            loop {
                match f.write(&chunk) {
                    Ok(n) => written += n as u64,
                    Err(e) => return report(written, Some(e)),
                }
            }
        }
    }
}
