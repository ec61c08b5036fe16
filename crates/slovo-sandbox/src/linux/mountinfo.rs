//! `/proc/self/mountinfo`, read once and for everyone: the cgroup hierarchies (process
//! backend, Docker's accounting, `slovo doctor`) and the loop-mounted state volumes.
//!
//! A line is `id parent major:minor root mount-point options [optional…] - fstype source
//! super-options`; the optional fields vary in number, so the fields after the mount point
//! are found from the ` - ` separator.

use std::path::PathBuf;

/// One mount, the fields Slovo reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted, unescaped.
    pub mount_point: PathBuf,
    /// The file system type (`cgroup2`, `ext4`, …).
    pub fstype: String,
    /// The source (`/dev/loop3`, `cgroup2`, …), as written.
    pub source: String,
    /// The super block's options.
    pub super_options: Vec<String>,
}

/// Every well-formed line of a mountinfo text; malformed lines are skipped.
pub fn parse(mountinfo: &str) -> Vec<Mount> {
    mountinfo.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Mount> {
    let fields: Vec<&str> = line.split(' ').collect();
    let dash = fields.iter().position(|f| *f == "-")?;
    let mount_point = fields.get(4).filter(|_| dash > 4)?;
    let fstype = fields.get(dash + 1)?;
    let source = fields.get(dash + 2)?;
    let super_options = fields
        .get(dash + 3)
        .map(|o| o.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    Some(Mount {
        mount_point: PathBuf::from(unescape(mount_point)),
        fstype: (*fstype).to_string(),
        source: (*source).to_string(),
        super_options,
    })
}

/// The cgroup (v1 and v2) mounts of a mountinfo text: `(mount point, fstype, super options)`.
pub fn cgroup_mounts(mountinfo: &str) -> Vec<(PathBuf, String, Vec<String>)> {
    parse(mountinfo)
        .into_iter()
        .filter(|m| m.fstype == "cgroup" || m.fstype == "cgroup2")
        .map(|m| (m.mount_point, m.fstype, m.super_options))
        .collect()
}

/// Mountinfo writes space, tab, newline and backslash (any byte, in fact) as `\ooo` octal
/// escapes; a backslash not followed by three octal digits is kept as it is.
pub fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        if bytes[i] == b'\\'
            && let Some(d) = octal
        {
            let v = d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            out.push(u8::try_from(v).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_undone() {
        assert_eq!(unescape(r"/a\040b\011c\134d"), "/a b\tc\\d");
        assert_eq!(unescape(r"/plain/ü"), "/plain/ü");
        assert_eq!(unescape(r"/trailing\04"), r"/trailing\04");
    }

    #[test]
    fn lines_with_and_without_optional_fields() {
        let text = "\
36 35 98:0 / /sys/fs/cgroup rw,nosuid shared:5 - cgroup2 cgroup2 rw,nsdelegate
40 35 0:34 / /sys/fs/cgroup/cpu,cpuacct rw shared:9 master:1 - cgroup cgroup rw,cpu,cpuacct
120 30 7:3 / /var/lib/slovo/state/a\\040b rw,nosuid,nodev - ext4 /dev/loop3 rw
not a mountinfo line
";
        let mounts = parse(text);
        assert_eq!(mounts.len(), 3);
        assert_eq!(mounts[2].mount_point, PathBuf::from("/var/lib/slovo/state/a b"));
        assert_eq!(mounts[2].source, "/dev/loop3");
        assert_eq!(
            cgroup_mounts(text),
            vec![
                (
                    PathBuf::from("/sys/fs/cgroup"),
                    "cgroup2".to_string(),
                    vec!["rw".to_string(), "nsdelegate".to_string()]
                ),
                (
                    PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"),
                    "cgroup".to_string(),
                    vec!["rw".to_string(), "cpu".to_string(), "cpuacct".to_string()]
                ),
            ]
        );
    }
}
