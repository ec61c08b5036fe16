//! The egress proxy's HTTP side on arbitrary bytes: what a tool sends on a fresh connection
//! (`CONNECT host:port`, `GET http://host/path`, pipelined requests, garbage), read by the
//! proxy's HTTP/1.1 server and taken through the call's check. No socket is opened: the check
//! stops where the proxy would connect.
//!
//! The call may reach `api.example.org` (any port), `*.example.org:443`, `198.51.100.7:8080`
//! and `missing.example.net`; only `api.example.org` and `198.51.100.7` resolve to an address
//! the policy calls public (198.51.100.7). Whatever the request, a target that passes the
//! check must be that address.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
});

fuzz_target!(|data: &[u8]| {
    let outcome = RUNTIME.block_on(slovo_egress::fuzzing::http(data));
    for addr in &outcome.passed {
        assert_eq!(
            addr.ip(),
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
            "the check passed {addr}, which the grant does not allow"
        );
    }
});
