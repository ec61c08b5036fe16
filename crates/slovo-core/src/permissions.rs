//! Requests and grants.
//!
//! A manifest *requests* [`Permissions`]; a person *grants* a [`Grant`], which is the request
//! or something narrower. Sandboxes are built from grants only. The comparison
//! [`Permissions::widenings_over`] decides whether a new version of a tool may replace the
//! approved one in place or must be approved again.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Default storage quota when a manifest says nothing (MB).
pub const DEFAULT_STORAGE_MB: u64 = 100;
/// Default CPU share when a manifest says nothing (percent of one CPU).
pub const DEFAULT_CPU_PERCENT: u32 = 50;
/// Default memory limit when a manifest says nothing (MB).
pub const DEFAULT_MEMORY_MB: u64 = 512;
/// Default wall-clock timeout when a manifest says nothing (seconds).
pub const DEFAULT_TIMEOUT_S: u64 = 30;
/// Default process limit when a manifest says nothing.
pub const DEFAULT_PIDS: u32 = 64;

/// Accepted range for `storage_quota_mb` (0 means no persistent state).
pub const STORAGE_MB_RANGE: (u64, u64) = (0, 102_400);
/// Accepted range for `cpu_limit_percent` (100 is one whole CPU).
pub const CPU_PERCENT_RANGE: (u64, u64) = (1, 800);
/// Accepted range for `memory_limit_mb`.
pub const MEMORY_MB_RANGE: (u64, u64) = (8, 65_536);
/// Accepted range for `timeout_s`.
pub const TIMEOUT_S_RANGE: (u64, u64) = (1, 3_600);
/// Accepted range for `pids_limit`.
pub const PIDS_RANGE: (u64, u64) = (1, 4_096);

/// What a manifest asks for. Every field has a value: defaults are filled in at parse time so
/// that what a person reviews is exactly what would be granted by a plain approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    /// Any public host may be reached.
    pub internet_access: bool,
    /// Only these hosts may be reached (ignored for reach when `internet_access` is true).
    pub network_allow: Vec<HostPattern>,
    /// Size of the tool's persistent `/data` (MB); 0 means no persistent state.
    pub storage_quota_mb: u64,
    /// CPU share, in percent of one CPU.
    pub cpu_limit_percent: u32,
    /// Memory limit (MB), swap included.
    pub memory_limit_mb: u64,
    /// Wall-clock timeout of one call (seconds).
    pub timeout_s: u64,
    /// Maximum number of processes or threads at once.
    pub pids_limit: u32,
    /// When the permission should lapse, if the tool asks for a limited time.
    pub expires_at: Option<DateTime<Utc>>,
}

impl Default for Permissions {
    fn default() -> Self {
        Permissions {
            internet_access: false,
            network_allow: Vec::new(),
            storage_quota_mb: DEFAULT_STORAGE_MB,
            cpu_limit_percent: DEFAULT_CPU_PERCENT,
            memory_limit_mb: DEFAULT_MEMORY_MB,
            timeout_s: DEFAULT_TIMEOUT_S,
            pids_limit: DEFAULT_PIDS,
            expires_at: None,
        }
    }
}

/// One way in which a request asks for more than a grant allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Widening {
    /// The permission field, as named in the canonical manifest.
    pub field: &'static str,
    /// What is granted now.
    pub granted: String,
    /// What the new request asks for.
    pub requested: String,
}

impl fmt::Display for Widening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: granted {}, requested {}",
            self.field, self.granted, self.requested
        )
    }
}

impl Permissions {
    /// Every way in which this request exceeds `grant`. Empty means the request fits inside
    /// the grant, so a new version asking for it can be upgraded in place.
    pub fn widenings_over(&self, grant: &Grant) -> Vec<Widening> {
        let mut out = Vec::new();
        let mut wider = |field: &'static str, granted: String, requested: String| {
            out.push(Widening {
                field,
                granted,
                requested,
            });
        };
        if self.internet_access && !grant.internet_access {
            wider("internet_access", "false".into(), "true".into());
        }
        for host in &self.network_allow {
            if !grant.reaches(host) {
                wider("network_allow", grant.network_summary(), host.to_string());
            }
        }
        if self.storage_quota_mb > grant.storage_quota_mb {
            wider(
                "storage_quota_mb",
                grant.storage_quota_mb.to_string(),
                self.storage_quota_mb.to_string(),
            );
        }
        if self.cpu_limit_percent > grant.cpu_limit_percent {
            wider(
                "cpu_limit_percent",
                grant.cpu_limit_percent.to_string(),
                self.cpu_limit_percent.to_string(),
            );
        }
        if self.memory_limit_mb > grant.memory_limit_mb {
            wider(
                "memory_limit_mb",
                grant.memory_limit_mb.to_string(),
                self.memory_limit_mb.to_string(),
            );
        }
        if self.timeout_s > grant.timeout_s {
            wider(
                "timeout_s",
                grant.timeout_s.to_string(),
                self.timeout_s.to_string(),
            );
        }
        if self.pids_limit > grant.pids_limit {
            wider(
                "pids_limit",
                grant.pids_limit.to_string(),
                self.pids_limit.to_string(),
            );
        }
        out
    }
}

/// What a person granted a tool. Built from a request by [`Grant::narrowed`], never wider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Any public host may be reached.
    pub internet_access: bool,
    /// Only these hosts may be reached.
    pub network_allow: Vec<HostPattern>,
    /// Size of `/data` (MB).
    pub storage_quota_mb: u64,
    /// CPU share, in percent of one CPU.
    pub cpu_limit_percent: u32,
    /// Memory limit (MB), swap included.
    pub memory_limit_mb: u64,
    /// Wall-clock timeout of one call (seconds).
    pub timeout_s: u64,
    /// Maximum number of processes or threads.
    pub pids_limit: u32,
    /// After this instant calls are refused until the tool is approved again.
    pub expires_at: Option<DateTime<Utc>>,
}

/// How a person narrows a request at approval. `None` keeps what was requested.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Narrowing {
    /// Grant no network at all.
    pub no_network: bool,
    /// Grant only these hosts (each must be covered by the request).
    pub network_allow: Option<Vec<HostPattern>>,
    /// Storage quota (MB).
    pub storage_quota_mb: Option<u64>,
    /// CPU share (percent).
    pub cpu_limit_percent: Option<u32>,
    /// Memory limit (MB).
    pub memory_limit_mb: Option<u64>,
    /// Timeout (seconds).
    pub timeout_s: Option<u64>,
    /// Process limit.
    pub pids_limit: Option<u32>,
    /// Expiry of the grant.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A narrowing that would widen the request instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot grant {field} = {asked}: the tool requested only {requested}")]
pub struct GrantError {
    /// The permission field.
    pub field: &'static str,
    /// What the tool requested.
    pub requested: String,
    /// What the approval asked to grant.
    pub asked: String,
}

impl Grant {
    /// The grant for `request`, narrowed by `narrowing`. Fails if the narrowing would give more
    /// than was requested: a person can only take away.
    pub fn narrowed(request: &Permissions, narrowing: &Narrowing) -> Result<Grant, GrantError> {
        fn at_most<T: PartialOrd + ToString + Copy>(
            field: &'static str,
            requested: T,
            asked: Option<T>,
        ) -> Result<T, GrantError> {
            match asked {
                None => Ok(requested),
                Some(a) if a <= requested => Ok(a),
                Some(a) => Err(GrantError {
                    field,
                    requested: requested.to_string(),
                    asked: a.to_string(),
                }),
            }
        }
        let (internet_access, network_allow) = if narrowing.no_network {
            (false, Vec::new())
        } else if let Some(hosts) = &narrowing.network_allow {
            for host in hosts {
                let covered = request.internet_access || request.network_allow.iter().any(|r| r.covers(host));
                if !covered {
                    return Err(GrantError {
                        field: "network_allow",
                        requested: summarize_network(request.internet_access, &request.network_allow),
                        asked: host.to_string(),
                    });
                }
            }
            (false, hosts.clone())
        } else {
            (request.internet_access, request.network_allow.clone())
        };
        Ok(Grant {
            internet_access,
            network_allow,
            storage_quota_mb: at_most(
                "storage_quota_mb",
                request.storage_quota_mb,
                narrowing.storage_quota_mb,
            )?,
            cpu_limit_percent: at_most(
                "cpu_limit_percent",
                request.cpu_limit_percent,
                narrowing.cpu_limit_percent,
            )?,
            memory_limit_mb: at_most(
                "memory_limit_mb",
                request.memory_limit_mb,
                narrowing.memory_limit_mb,
            )?,
            timeout_s: at_most("timeout_s", request.timeout_s, narrowing.timeout_s)?,
            pids_limit: at_most("pids_limit", request.pids_limit, narrowing.pids_limit)?,
            // The person's expiry wins; otherwise the tool's own requested expiry applies.
            expires_at: narrowing.expires_at.or(request.expires_at),
        })
    }

    /// True when the grant lets the tool reach every host `host` matches.
    pub fn reaches(&self, host: &HostPattern) -> bool {
        self.internet_access || self.network_allow.iter().any(|g| g.covers(host))
    }

    /// True when the tool may use the network at all.
    pub fn allows_network(&self) -> bool {
        self.internet_access || !self.network_allow.is_empty()
    }

    /// True when the grant has lapsed at `now`.
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }

    fn network_summary(&self) -> String {
        summarize_network(self.internet_access, &self.network_allow)
    }
}

fn summarize_network(internet: bool, hosts: &[HostPattern]) -> String {
    if internet {
        "any public host".to_string()
    } else if hosts.is_empty() {
        "no network".to_string()
    } else {
        hosts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A host a tool may reach: an exact name (`api.example.org`) or a suffix pattern
/// (`*.example.org`, which matches names *below* `example.org`, not `example.org` itself),
/// each with an optional port (`api.example.org:443`). Names are lowercase ASCII.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HostPattern {
    wildcard: bool,
    host: String,
    port: Option<u16>,
}

/// A host pattern that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid host pattern {text:?}: {reason}")]
pub struct HostPatternError {
    text: String,
    reason: &'static str,
}

impl HostPattern {
    /// True when every host that `other` matches is matched by `self`.
    pub fn covers(&self, other: &HostPattern) -> bool {
        let port_ok = match (self.port, other.port) {
            (None, _) => true,
            (Some(a), Some(b)) => a == b,
            (Some(_), None) => false,
        };
        if !port_ok {
            return false;
        }
        match (self.wildcard, other.wildcard) {
            (false, false) => self.host == other.host,
            (false, true) => false,
            (true, _) => {
                other.host.ends_with(&format!(".{}", self.host))
                    || (other.wildcard && other.host == self.host)
            }
        }
    }

    /// True when `host` (a name, no port) on `port` is matched.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        if self.wildcard {
            host.ends_with(&format!(".{}", self.host))
        } else {
            host == self.host
        }
    }
}

impl FromStr for HostPattern {
    type Err = HostPatternError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |reason| HostPatternError {
            text: text.to_string(),
            reason,
        };
        let (name, port) = match text.rsplit_once(':') {
            Some((n, p)) => {
                let port: u16 = p
                    .parse()
                    .map_err(|_| err("the port is not a number from 1 to 65535"))?;
                if port == 0 {
                    return Err(err("the port is not a number from 1 to 65535"));
                }
                (n, Some(port))
            }
            None => (text, None),
        };
        let (wildcard, host) = match name.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, name),
        };
        if host.is_empty() || host.len() > 253 {
            return Err(err("the host name is empty or longer than 253 characters"));
        }
        if host.contains('*') {
            return Err(err("a wildcard is only allowed as a leading `*.`"));
        }
        for label in host.split('.') {
            let ok = !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                return Err(err(
                    "each label must be 1-63 lowercase letters, digits or inner hyphens",
                ));
            }
        }
        Ok(HostPattern {
            wildcard,
            host: host.to_string(),
            port,
        })
    }
}

impl TryFrom<String> for HostPattern {
    type Error = HostPatternError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<HostPattern> for String {
    fn from(value: HostPattern) -> Self {
        value.to_string()
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

/// Parses a size for a limit flag: `64M`, `1G`, `512K`, `10MB`, `2GiB` or a plain number of
/// megabytes. Returns whole megabytes (rounded up, so `512K` is 1 MB).
pub fn parse_size_mb(text: &str) -> Result<u64, SizeError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| SizeError::NotASize {
        text: text.to_string(),
    })?;
    let kib: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "M" | "MB" | "MIB" => 1024,
        "K" | "KB" | "KIB" => 1,
        "G" | "GB" | "GIB" => 1024 * 1024,
        _ => {
            return Err(SizeError::UnknownUnit {
                text: text.to_string(),
            });
        }
    };
    let total_kib = n.checked_mul(kib).ok_or_else(|| SizeError::TooLarge {
        text: text.to_string(),
    })?;
    Ok(total_kib.div_ceil(1024))
}

/// Why a size given for a limit is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// No number where the size starts.
    #[error("{text:?} is not a size such as 64M or 1G")]
    NotASize {
        /// What was given.
        text: String,
    },
    /// A unit other than K, M or G.
    #[error("{text:?} has an unknown unit (use K, M or G)")]
    UnknownUnit {
        /// What was given.
        text: String,
    },
    /// More than fits in a number of kibibytes.
    #[error("{text:?} is too large")]
    TooLarge {
        /// What was given.
        text: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(s: &str) -> HostPattern {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn host_patterns_cover_as_documented() {
        assert!(hp("*.example.org").covers(&hp("api.example.org")));
        assert!(hp("*.example.org").covers(&hp("*.api.example.org")));
        assert!(!hp("*.example.org").covers(&hp("example.org")));
        assert!(!hp("*.example.org").covers(&hp("evilexample.org")));
        assert!(hp("api.example.org").covers(&hp("api.example.org:443")));
        assert!(!hp("api.example.org:443").covers(&hp("api.example.org")));
        assert!(!hp("api.example.org").covers(&hp("*.api.example.org")));
        assert!(hp("*.example.org").matches("A.Example.org.", 443));
        assert!(!hp("api.example.org:443").matches("api.example.org", 80));
    }

    #[test]
    fn bad_host_patterns_are_rejected() {
        for bad in [
            "",
            "*.",
            "a..b",
            "ex*mple.org",
            "UPPER.org",
            "a.org:0",
            "a.org:99999",
            "-a.org",
        ] {
            assert!(bad.parse::<HostPattern>().is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn narrowing_never_widens() {
        let request = Permissions {
            network_allow: vec![hp("*.example.org")],
            memory_limit_mb: 128,
            ..Permissions::default()
        };
        let grant = Grant::narrowed(
            &request,
            &Narrowing {
                memory_limit_mb: Some(64),
                network_allow: Some(vec![hp("api.example.org")]),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(grant.memory_limit_mb, 64);
        assert_eq!(grant.network_allow, vec![hp("api.example.org")]);

        let err = Grant::narrowed(
            &request,
            &Narrowing {
                memory_limit_mb: Some(1024),
                ..Default::default()
            },
        );
        assert_eq!(err.map_err(|e| e.field), Err("memory_limit_mb"));
        let err = Grant::narrowed(
            &request,
            &Narrowing {
                network_allow: Some(vec![hp("evil.net")]),
                ..Default::default()
            },
        );
        assert_eq!(err.map_err(|e| e.field), Err("network_allow"));
    }

    #[test]
    fn approval_narrows_internet_access_to_hosts_and_ports() {
        // internet_access means "any public host": a person may grant a few hosts instead.
        let internet = Permissions {
            internet_access: true,
            ..Permissions::default()
        };
        let grant = Grant::narrowed(
            &internet,
            &Narrowing {
                network_allow: Some(vec![hp("api.example.org:443"), hp("*.cdn.example.org")]),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(!grant.internet_access);
        assert_eq!(
            grant.network_allow,
            vec![hp("api.example.org:443"), hp("*.cdn.example.org")]
        );
        // A requested host may be narrowed to one port, never widened from one port to all.
        let one_port = Permissions {
            network_allow: vec![hp("api.example.org:443")],
            ..Permissions::default()
        };
        let narrow = Narrowing {
            network_allow: Some(vec![hp("api.example.org")]),
            ..Default::default()
        };
        assert_eq!(
            Grant::narrowed(&one_port, &narrow).map_err(|e| e.field),
            Err("network_allow")
        );
        let any_port = Permissions {
            network_allow: vec![hp("api.example.org")],
            ..Permissions::default()
        };
        let narrow = Narrowing {
            network_allow: Some(vec![hp("api.example.org:443")]),
            ..Default::default()
        };
        assert!(Grant::narrowed(&any_port, &narrow).is_ok());
        // A suffix pattern covers names below it, not the bare domain.
        let suffix = Permissions {
            network_allow: vec![hp("*.example.org")],
            ..Permissions::default()
        };
        let bare = Narrowing {
            network_allow: Some(vec![hp("example.org")]),
            ..Default::default()
        };
        assert!(Grant::narrowed(&suffix, &bare).is_err());
    }

    #[test]
    fn widenings_are_listed_field_by_field() {
        let request = Permissions::default();
        let grant = Grant::narrowed(
            &request,
            &Narrowing {
                cpu_limit_percent: Some(20),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            request
                .widenings_over(
                    &Grant::narrowed(&request, &Narrowing::default()).unwrap_or_else(|e| panic!("{e}"))
                )
                .is_empty()
        );
        let w = request.widenings_over(&grant);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].field, "cpu_limit_percent");
        let networked = Permissions {
            network_allow: vec![hp("a.example.org")],
            ..Permissions::default()
        };
        assert_eq!(networked.widenings_over(&grant)[0].field, "network_allow");
    }

    #[test]
    fn sizes_parse_to_megabytes() {
        assert_eq!(parse_size_mb("64M"), Ok(64));
        assert_eq!(parse_size_mb("1G"), Ok(1024));
        assert_eq!(parse_size_mb("10"), Ok(10));
        assert_eq!(parse_size_mb("512K"), Ok(1));
        assert_eq!(parse_size_mb("2GiB"), Ok(2048));
        assert!(matches!(parse_size_mb("lots"), Err(SizeError::NotASize { .. })));
        assert!(matches!(parse_size_mb("5T"), Err(SizeError::UnknownUnit { .. })));
        assert!(matches!(
            parse_size_mb("99999999999999999999"),
            Err(SizeError::NotASize { .. })
        ));
        assert!(matches!(
            parse_size_mb("18446744073709551615G"),
            Err(SizeError::TooLarge { .. })
        ));
        assert_eq!(
            parse_size_mb("5T").map_err(|e| e.to_string()),
            Err("\"5T\" has an unknown unit (use K, M or G)".to_string())
        );
    }
}
