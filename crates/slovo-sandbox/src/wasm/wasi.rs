//! The host functions a tool gets: WASI preview 1, with a thin layer in front of the calls that
//! grow `/data`, close or move the standard streams, or sleep.
//!
//! # What the layer adds to wasmtime-wasi
//! - **Storage quota.** Every call that can grow the state directory is charged against the
//!   tool's quota *before* it runs: `fd_write`/`fd_pwrite` on a `/data` file by the bytes
//!   offered, `fd_filestat_set_size` by the new size, `path_open` with `O_CREAT`,
//!   `path_create_directory`, `path_symlink` and `path_link` by one 4 KiB block. A charge that
//!   does not fit fails in the guest with `ENOSPC`, and nothing is written. Charges are
//!   conservative (an overwrite is charged as growth); after a call that wrote, the directory
//!   is measured again and the measurement replaces the charges, so overwrites do not add up
//!   across calls. See [`Volume`].
//! - **Standard streams stay standard.** `fd_close` of 0–2 does nothing and `fd_renumber`
//!   from or onto 0–2 fails with `ENOTSUP`. Otherwise a tool could close stdout, open a file
//!   (which takes the lowest free descriptor, 1) and write to it uncharged.
//! - **Sleeps end at the deadline.** `poll_oneoff` clock subscriptions are cut to the time left
//!   and the call traps once the deadline has passed: epoch interruption stops WebAssembly
//!   code, not a host call blocked in a sleep.
//!
//! Everything else is wasmtime-wasi's preview 1 as is: `/data` is the only preopened directory
//! (its sandboxing of paths — `..`, absolute paths, symlinks out — is cap-std's), no socket is
//! ever handed over, and there is no other module to import from.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use wasmtime::{AsContextMut, Caller, Engine, Extern, Linker, Memory};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p1::wasi_snapshot_preview1 as p1;
use wasmtime_wasi::p1::wasi_snapshot_preview1::WasiSnapshotPreview1 as _;
use wasmtime_wasi::runtime::in_tokio;
use wiggle::GuestMemory;

use super::limits::{CallClock, Limiter};

const MODULE: &str = "wasi_snapshot_preview1";

/// WASI errno values returned by the layer.
const ERRNO_SUCCESS: i32 = 0;
const ERRNO_FAULT: i32 = 21;
const ERRNO_INVAL: i32 = 28;
const ERRNO_NOSPC: i32 = 51;
const ERRNO_NOTSUP: i32 = 58;

/// What one created entry (file, directory, link) is charged.
pub(crate) const BLOCK: u64 = 4096;

/// `O_CREAT` in `path_open`'s `oflags`.
const OFLAGS_CREAT: i32 = 1;
/// `subscription_clock.flags`: the timeout is absolute.
const SUBCLOCK_ABSTIME: u16 = 1;

/// The store data of one call.
pub(crate) struct CallState {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) limiter: Limiter,
    pub(crate) clock: CallClock,
    pub(crate) quota: QuotaCharge,
    pub(crate) http: super::http::HttpCalls,
}

impl CallState {
    pub(crate) fn new(
        wasi: WasiP1Ctx,
        limiter: Limiter,
        clock: CallClock,
        quota: QuotaCharge,
        http: super::http::HttpCalls,
    ) -> CallState {
        CallState {
            wasi,
            limiter,
            clock,
            quota,
            http,
        }
    }
}

/// The usage of one state directory, shared by every call of the tool.
#[derive(Debug, Default)]
pub(crate) struct Volume {
    /// Bytes used: measured, plus charges of calls since the last measurement.
    used: AtomicU64,
    /// Calls of this tool in flight.
    active: AtomicUsize,
}

impl Volume {
    /// A volume whose usage was just measured.
    pub(crate) fn measured(dir: &Path) -> Volume {
        Volume {
            used: AtomicU64::new(measure(dir)),
            active: AtomicUsize::new(0),
        }
    }

    /// Charges `bytes` if they fit in `quota`.
    fn charge(&self, bytes: u64, quota: u64) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|total| *total <= quota)
            })
            .is_ok()
    }

    fn refund(&self, bytes: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_sub(bytes))
            });
    }
}

/// One call's handle on its tool's [`Volume`].
#[derive(Debug)]
pub(crate) struct QuotaCharge {
    volume: Arc<Volume>,
    dir: PathBuf,
    quota: u64,
    /// Something was charged: measure again when the call ends.
    wrote: bool,
}

impl QuotaCharge {
    pub(crate) fn begin(volume: Arc<Volume>, dir: PathBuf, quota: u64) -> QuotaCharge {
        volume.active.fetch_add(1, Ordering::Relaxed);
        QuotaCharge {
            volume,
            dir,
            quota,
            wrote: false,
        }
    }

    fn charge(&mut self, bytes: u64) -> bool {
        self.wrote = true;
        self.volume.charge(bytes, self.quota)
    }
}

impl Drop for QuotaCharge {
    fn drop(&mut self) {
        // The last call out replaces the charges with a measurement; while other calls of the
        // tool run, their charges stay (they may not be on disk yet).
        if self.volume.active.fetch_sub(1, Ordering::Relaxed) == 1 && self.wrote {
            self.volume.used.store(measure(&self.dir), Ordering::Relaxed);
        }
    }
}

/// Bytes a directory tree counts against its quota: every entry's size rounded up to 4 KiB,
/// at least one block each (so a million empty files are not free). Symbolic links are not
/// followed.
pub(crate) fn measure(dir: &Path) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            total = total.saturating_add(meta.len().div_ceil(BLOCK).max(1).saturating_mul(BLOCK));
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    total
}

/// Runs wasmtime-wasi's own implementation of a preview 1 function (the function the layer
/// shadows) on the calling instance's memory, as wasmtime-wasi's linker glue does.
fn with_wasi<R>(
    caller: &mut Caller<'_, CallState>,
    f: impl FnOnce(&mut WasiP1Ctx, &mut GuestMemory<'_>) -> R,
) -> wasmtime::Result<R> {
    let fuel = caller.as_context_mut().hostcall_fuel();
    let Some(mem) = memory(caller) else {
        wasmtime::bail!("missing required memory export");
    };
    let (data, state) = mem.data_and_store_mut(&mut *caller);
    state.wasi.set_hostcall_fuel(fuel);
    Ok(f(&mut state.wasi, &mut GuestMemory::Unshared(data)))
}

pub(crate) fn memory(caller: &mut Caller<'_, CallState>) -> Option<Memory> {
    caller.get_export("memory").and_then(Extern::into_memory)
}

fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// Total length of an iovec array, or `None` if it lies outside the memory.
fn iovecs_len(caller: &mut Caller<'_, CallState>, iovs: i32, count: i32) -> Option<u64> {
    let mem = memory(caller)?;
    let data = mem.data(&*caller);
    let base = usize::try_from(iovs as u32).ok()?;
    let mut total = 0u64;
    for i in 0..usize::try_from(count as u32).ok()? {
        let at = base.checked_add(i.checked_mul(8)?)?;
        total = total.saturating_add(u64::from(read_u32(data, at.checked_add(4)?)?));
    }
    Some(total)
}

/// Charges a write of `bytes` to a `/data` descriptor, runs it, and refunds what was not
/// written.
fn charged_write(
    caller: &mut Caller<'_, CallState>,
    fd: i32,
    bytes: Option<u64>,
    nwritten: i32,
    run: impl FnOnce(&mut Caller<'_, CallState>) -> wasmtime::Result<i32>,
) -> wasmtime::Result<i32> {
    if (0..=2).contains(&fd) {
        return run(caller);
    }
    let Some(bytes) = bytes else {
        return Ok(ERRNO_FAULT);
    };
    if !caller.data_mut().quota.charge(bytes) {
        return Ok(ERRNO_NOSPC);
    }
    let errno = run(caller)?;
    let written = if errno == ERRNO_SUCCESS {
        memory(caller)
            .and_then(|m| read_u32(m.data(&*caller), usize::try_from(nwritten as u32).ok()?))
            .map(u64::from)
            .unwrap_or(bytes)
    } else {
        0
    };
    caller.data().quota.volume.refund(bytes.saturating_sub(written));
    Ok(errno)
}

/// Charges `bytes`, then runs the call (refunding on failure).
fn charged(
    caller: &mut Caller<'_, CallState>,
    bytes: u64,
    run: impl FnOnce(&mut Caller<'_, CallState>) -> wasmtime::Result<i32>,
) -> wasmtime::Result<i32> {
    if !caller.data_mut().quota.charge(bytes) {
        return Ok(ERRNO_NOSPC);
    }
    let errno = run(caller)?;
    if errno != ERRNO_SUCCESS {
        caller.data().quota.volume.refund(bytes);
    }
    Ok(errno)
}

/// Cuts every clock subscription of a `poll_oneoff` to the time left before the deadline.
/// Returns `ERRNO_NOTSUP` for absolute monotonic timeouts (their origin is the host's).
fn clamp_subscriptions(caller: &mut Caller<'_, CallState>, subs: i32, count: i32) -> Option<i32> {
    const SIZE: usize = 48;
    let remaining = caller.data().clock.remaining();
    let mem = memory(caller)?;
    let data = mem.data_mut(&mut *caller);
    let base = usize::try_from(subs as u32).ok()?;
    for i in 0..usize::try_from(count as u32).ok()? {
        let at = base.checked_add(i.checked_mul(SIZE)?)?;
        let sub = data.get_mut(at..at.checked_add(SIZE)?)?;
        if sub[8] != 0 {
            continue; // fd_read / fd_write readiness: stdio and files never block
        }
        let clock_id = u32::from_le_bytes(sub[16..20].try_into().ok()?);
        let timeout = u64::from_le_bytes(sub[24..32].try_into().ok()?);
        let flags = u16::from_le_bytes(sub[40..42].try_into().ok()?);
        let left = u64::try_from(remaining.as_nanos()).unwrap_or(u64::MAX);
        let relative = if flags & SUBCLOCK_ABSTIME != 0 {
            if clock_id != 0 {
                return Some(ERRNO_NOTSUP);
            }
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                .unwrap_or(0);
            timeout.saturating_sub(now)
        } else {
            timeout
        };
        sub[24..32].copy_from_slice(&relative.min(left).to_le_bytes());
        sub[40..42].copy_from_slice(&(flags & !SUBCLOCK_ABSTIME).to_le_bytes());
    }
    None
}

/// The linker every call instantiates against: WASI preview 1 and the layer above.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<CallState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut CallState| &mut s.wasi)?;
    linker.allow_shadowing(true);

    linker.func_wrap(
        MODULE,
        "fd_write",
        |mut c: Caller<'_, CallState>, fd: i32, iovs: i32, n: i32, nwritten: i32| {
            let bytes = iovecs_len(&mut c, iovs, n);
            charged_write(&mut c, fd, bytes, nwritten, |c| {
                with_wasi(c, |ctx, mem| {
                    in_tokio(p1::fd_write(ctx, mem, fd, iovs, n, nwritten))
                })?
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_pwrite",
        |mut c: Caller<'_, CallState>, fd: i32, iovs: i32, n: i32, offset: i64, nwritten: i32| {
            let bytes = iovecs_len(&mut c, iovs, n);
            charged_write(&mut c, fd, bytes, nwritten, |c| {
                with_wasi(c, |ctx, mem| {
                    in_tokio(p1::fd_pwrite(ctx, mem, fd, iovs, n, offset, nwritten))
                })?
            })
        },
    )?;
    linker.func_wrap(MODULE, "fd_close", |mut c: Caller<'_, CallState>, fd: i32| {
        if (0..=2).contains(&fd) {
            return Ok(ERRNO_SUCCESS);
        }
        with_wasi(&mut c, |ctx, mem| in_tokio(p1::fd_close(ctx, mem, fd)))?
    })?;
    linker.func_wrap(
        MODULE,
        "fd_renumber",
        |mut c: Caller<'_, CallState>, from: i32, to: i32| {
            if (0..=2).contains(&from) || (0..=2).contains(&to) {
                return Ok(ERRNO_NOTSUP);
            }
            with_wasi(&mut c, |ctx, mem| in_tokio(p1::fd_renumber(ctx, mem, from, to)))?
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_filestat_set_size",
        |mut c: Caller<'_, CallState>, fd: i32, size: i64| {
            let Ok(bytes) = u64::try_from(size) else {
                return Ok(ERRNO_INVAL);
            };
            if (0..=2).contains(&fd) {
                return with_wasi(&mut c, |ctx, mem| {
                    in_tokio(p1::fd_filestat_set_size(ctx, mem, fd, size))
                })?;
            }
            charged(&mut c, bytes, |c| {
                with_wasi(c, |ctx, mem| {
                    in_tokio(p1::fd_filestat_set_size(ctx, mem, fd, size))
                })?
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "path_open",
        |mut c: Caller<'_, CallState>,
         fd: i32,
         dirflags: i32,
         path: i32,
         path_len: i32,
         oflags: i32,
         base: i64,
         inheriting: i64,
         fdflags: i32,
         opened: i32| {
            let open = |c: &mut Caller<'_, CallState>| {
                with_wasi(c, |ctx, mem| {
                    in_tokio(p1::path_open(
                        ctx, mem, fd, dirflags, path, path_len, oflags, base, inheriting, fdflags, opened,
                    ))
                })?
            };
            if oflags & OFLAGS_CREAT == 0 {
                return open(&mut c);
            }
            charged(&mut c, BLOCK, open)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "path_create_directory",
        |mut c: Caller<'_, CallState>, fd: i32, path: i32, len: i32| {
            charged(&mut c, BLOCK, |c| {
                with_wasi(c, |ctx, mem| {
                    in_tokio(p1::path_create_directory(ctx, mem, fd, path, len))
                })?
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "path_symlink",
        |mut c: Caller<'_, CallState>, old: i32, old_len: i32, fd: i32, new: i32, new_len: i32| {
            charged(&mut c, BLOCK, |c| {
                with_wasi(c, |ctx, mem| {
                    in_tokio(p1::path_symlink(ctx, mem, old, old_len, fd, new, new_len))
                })?
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "path_link",
        |mut c: Caller<'_, CallState>,
         old_fd: i32,
         flags: i32,
         old: i32,
         old_len: i32,
         new_fd: i32,
         new: i32,
         new_len: i32| {
            charged(&mut c, BLOCK, |c| {
                with_wasi(c, |ctx, mem| {
                    in_tokio(p1::path_link(
                        ctx, mem, old_fd, flags, old, old_len, new_fd, new, new_len,
                    ))
                })?
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "poll_oneoff",
        |mut c: Caller<'_, CallState>, subs: i32, events: i32, n: i32, nevents: i32| {
            c.data_mut().clock.check_deadline()?;
            if let Some(errno) = clamp_subscriptions(&mut c, subs, n) {
                return Ok(errno);
            }
            let errno = with_wasi(&mut c, |ctx, mem| {
                in_tokio(p1::poll_oneoff(ctx, mem, subs, events, n, nevents))
            })??;
            c.data_mut().clock.check_deadline()?;
            Ok(errno)
        },
    )?;
    super::http::add_to_linker(&mut linker)?;
    Ok(linker)
}
