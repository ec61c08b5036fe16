//! Resource limits of the tool's processes that cgroups do not cover.
//!
//! Cgroups bound memory, CPU and the number of tasks of the whole call; rlimits bound each
//! process: no core dumps (they would land in the tool's writable directories and could leak
//! memory contents), a file-size ceiling just above the largest writable file system (so a
//! runaway write fails with `ENOSPC`, and a file can never grow past it), and a cap on open
//! files.

use crate::ResourceLimits;

/// Open files per process.
pub const NOFILE: u64 = 256;

/// `(resource, soft = hard limit)` for a call, in order.
pub fn plan(limits: &ResourceLimits, tmp_mb: u64) -> Vec<(libc::__rlimit_resource_t, u64)> {
    let largest_mb = limits.storage_mb.max(tmp_mb) + 1;
    vec![
        (libc::RLIMIT_CORE, 0),
        (libc::RLIMIT_FSIZE, largest_mb.saturating_mul(1024 * 1024)),
        (libc::RLIMIT_NOFILE, NOFILE),
    ]
}

/// Applies `plan` (raw system calls; called after `clone`). Returns the errno of a failure.
pub(crate) fn apply(plan: &[(libc::__rlimit_resource_t, u64)]) -> Result<(), i32> {
    for (resource, value) in plan {
        let lim = libc::rlimit {
            rlim_cur: *value,
            rlim_max: *value,
        };
        // SAFETY: a valid rlimit struct.
        if unsafe { libc::setrlimit(*resource, &lim) } < 0 {
            return Err(std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use std::time::Duration;

    #[test]
    fn core_off_file_size_above_largest_fs_and_open_files() {
        let limits = ResourceLimits {
            memory_mb: 64,
            cpu_percent: 50,
            pids: 32,
            storage_mb: 10,
            timeout: Duration::from_secs(1),
        };
        assert_eq!(
            plan(&limits, 16),
            vec![
                (libc::RLIMIT_CORE, 0),
                (libc::RLIMIT_FSIZE, 17 * 1024 * 1024),
                (libc::RLIMIT_NOFILE, 256)
            ]
        );
    }
}
