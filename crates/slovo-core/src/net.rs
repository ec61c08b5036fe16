//! Which addresses count as "public": the only ones a tool's network grant can reach.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

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

/// An address range in CIDR notation (`198.51.100.0/24`, `fd00::/8`) or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

/// An address range that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid address range {0:?} (expected an address or ADDRESS/PREFIX, such as 192.168.1.20/32)")]
pub struct IpRangeError(String);

impl IpRange {
    /// True when `ip` lies in the range. An IPv4-mapped IPv6 address is judged as IPv4, so
    /// `::ffff:10.0.0.1` is in `10.0.0.0/8` (and not smuggled past it).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpRange {
    type Err = IpRangeError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || IpRangeError(text.to_string());
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| err())?)),
            None => (text, None),
        };
        let network: IpAddr = addr.parse().map_err(|_| err())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(err());
        }
        Ok(IpRange { network, prefix })
    }
}

impl TryFrom<String> for IpRange {
    type Error = IpRangeError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<IpRange> for String {
    fn from(value: IpRange) -> Self {
        value.to_string()
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Which addresses a granted tool may reach: the public ones ([`is_public`]) plus ranges a
/// person (or a test) declares public, such as one LAN device or a test network. Shared by
/// the egress proxy and the HTTP backend so that both draw the line in the same place.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicPolicy {
    /// Ranges treated as public in addition to the globally routable ones.
    #[serde(default)]
    pub also_public: Vec<IpRange>,
}

impl PublicPolicy {
    /// Only globally routable addresses.
    pub fn strict() -> PublicPolicy {
        PublicPolicy::default()
    }

    /// Globally routable addresses and `ranges`.
    pub fn with_ranges(ranges: impl IntoIterator<Item = IpRange>) -> PublicPolicy {
        PublicPolicy {
            also_public: ranges.into_iter().collect(),
        }
    }

    /// True when a granted tool may reach `ip`.
    pub fn allows(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.also_public.iter().any(|r| r.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_contain() {
        let r: IpRange = "198.51.100.0/24".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(r.contains("198.51.100.7".parse().unwrap_or_else(|e| panic!("{e}"))));
        assert!(r.contains("::ffff:198.51.100.7".parse().unwrap_or_else(|e| panic!("{e}"))));
        assert!(!r.contains("198.51.101.7".parse().unwrap_or_else(|e| panic!("{e}"))));
        assert_eq!(r.to_string(), "198.51.100.0/24");
        let one: IpRange = "192.168.1.20".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(one.contains("192.168.1.20".parse().unwrap_or_else(|e| panic!("{e}"))));
        assert!(!one.contains("192.168.1.21".parse().unwrap_or_else(|e| panic!("{e}"))));
        let all: IpRange = "0.0.0.0/0".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(all.contains("10.0.0.1".parse().unwrap_or_else(|e| panic!("{e}"))));
        let v6: IpRange = "fd00::/8".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(v6.contains("fd12::1".parse().unwrap_or_else(|e| panic!("{e}"))));
        assert!(!v6.contains("10.0.0.1".parse().unwrap_or_else(|e| panic!("{e}"))));
        for bad in ["", "10.0.0.0/33", "::/129", "host/8", "10.0.0.0/x"] {
            assert!(bad.parse::<IpRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_declared_range_is_public_and_nothing_else_changes() {
        let p = PublicPolicy::with_ranges(["198.51.100.0/24".parse().unwrap_or_else(|e| panic!("{e}"))]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap_or_else(|e| panic!("{e}"));
        assert!(p.allows(ip("198.51.100.9")));
        assert!(p.allows(ip("1.1.1.1")));
        assert!(!p.allows(ip("127.0.0.1")));
        assert!(!p.allows(ip("169.254.169.254")));
        assert!(!PublicPolicy::strict().allows(ip("198.51.100.9")));
    }

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
