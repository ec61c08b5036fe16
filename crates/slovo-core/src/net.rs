//! Which addresses count as "public": the only ones a tool's network grant can reach.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// True when `ip` is a globally routable unicast address: not loopback, private (RFC 1918,
/// unique-local), link-local, CGNAT (100.64/10), unspecified, broadcast, multicast,
/// documentation, benchmarking or reserved ranges. Cloud metadata (169.254.169.254) is
/// link-local and so never public. IPv4-mapped IPv6 addresses are judged as IPv4.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b))         // CGNAT
        || (a == 192 && b == 0 && c == 0)                // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)                // TEST-NET-1
        || (a == 198 && b == 51 && c == 100)             // TEST-NET-2
        || (a == 203 && b == 0 && c == 113)              // TEST-NET-3
        || (a == 198 && (b == 18 || b == 19))            // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00                     // unique local
        || (s[0] & 0xffc0) == 0xfe80                     // link local
        || (s[0] == 0x2001 && s[1] == 0x0db8)            // documentation
        || (s[0] == 0x0064 && s[1] == 0xff9b)            // NAT64 (embeds IPv4)
        || s[0] == 0) // IPv4-compatible and other reserved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_global_addresses_are_public() {
        for ip in ["93.184.215.14", "1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap_or_else(|_| panic!("{ip}"))), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "127.9.9.9",
            "10.0.0.1",
            "172.16.5.5",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "198.51.100.7",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "2001:db8::1",
            "64:ff9b::7f00:1",
            "::",
        ] {
            assert!(!is_public(ip.parse().unwrap_or_else(|_| panic!("{ip}"))), "{ip}");
        }
    }
}
