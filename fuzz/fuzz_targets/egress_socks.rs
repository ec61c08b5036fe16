//! The egress proxy's SOCKS5 side on arbitrary bytes: the greeting and request a tool sends,
//! read by the proxy's handshake and taken through the call's check (the same call as the
//! HTTP target). No socket is opened.
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
    let outcome = RUNTIME.block_on(slovo_egress::fuzzing::socks5(data));
    for addr in &outcome.passed {
        assert_eq!(
            addr.ip(),
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
            "the check passed {addr}, which the grant does not allow"
        );
    }
});
