//! State volumes: a tool's `/data`, with its storage quota enforced by the kernel.
//!
//! # Why an ext4 image per tool
//! A quota has to hold against a hostile tool, keep the state across calls, and not depend on
//! how the host's data directory is formatted. Each tool's state is therefore its own ext4
//! file system in a sparse image file of exactly `storage_quota_mb`, loop-mounted (`nosuid`,
//! `nodev`) *on the tool's state directory*. A write past the quota fails inside the tool with
//! `ENOSPC`; the host's disk and the other tools' volumes are untouched; the files stay in the
//! image between calls and are visible to the host at the state directory.
//!
//! The volume is mounted once (first call after boot, or after [`Volumes::release`]) and every
//! call bind-mounts it at `/data`, which costs one `mount` instead of a loop setup per call.
//! The image's root directory belongs to the sandbox's host uid (mode 0700), so only the tool
//! can write there.
//!
//! Limits: the file system's metadata takes a few percent of the quota; the size is fixed when
//! the image is created (a changed grant applies after [`Volumes::release`] and re-creation).
//!
//! # No mount outlives the processes using it
//! The mount lives in the host's mount namespace (Docker's daemon binds it too), so several
//! Slovo processes on one data directory (a server and a CLI command) share it. Each process
//! holds a *shared* `flock` on the image's lock file from its first use of the volume until
//! it lets go ([`Volumes::release_all`], at shutdown); letting go, it takes the lock
//! *exclusively* without waiting, and only if that succeeds (no other process uses the
//! volume) unmounts it; the loop device goes with the last mount (`autoclear`). A process
//! killed before letting go leaves a mount whose lock nobody holds:
//! [`Volumes::reclaim_unused`], run when a backend starts, unmounts those.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// A state volume could not be created, mounted or removed.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A host file operation failed.
    #[error("failed to {action} {path}: {source}")]
    Io {
        /// What was attempted ("create", "unmount", …).
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Making or mounting the image failed.
    #[error("failed to prepare the state volume {image}: {reason}")]
    Prepare {
        /// The image file.
        image: PathBuf,
        /// Why.
        reason: String,
    },
}

impl VolumeError {
    fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> VolumeError {
        VolumeError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    fn prepare(image: &Path, reason: impl Into<String>) -> VolumeError {
        VolumeError::Prepare {
            image: image.to_path_buf(),
            reason: reason.into(),
        }
    }
}

type Result<T, E = VolumeError> = std::result::Result<T, E>;

/// The state volumes under one directory.
#[derive(Debug)]
pub struct Volumes {
    dir: PathBuf,
    uid: u32,
    gid: u32,
    lock: tokio::sync::Mutex<()>,
    /// The volumes this process uses, by state directory, each with its shared lock.
    held: std::sync::Mutex<HashMap<PathBuf, fs::File>>,
}

/// Whether something is mounted on `path` (its device differs from its parent's).
pub fn is_mount_point(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(parent) = path.parent() else { return true };
    match (fs::metadata(path), fs::metadata(parent)) {
        (Ok(a), Ok(b)) => a.dev() != b.dev(),
        _ => false,
    }
}

impl Volumes {
    /// Volumes whose images live in `dir`, owned by `uid:gid` on the host.
    pub fn new(dir: PathBuf, uid: u32, gid: u32) -> Volumes {
        Volumes {
            dir,
            uid,
            gid,
            lock: tokio::sync::Mutex::new(()),
            held: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The lock file of `image`: shared by every process using the volume.
    fn lock_file_of(image: &Path) -> PathBuf {
        image.with_extension("lock")
    }

    fn holds(&self, state_dir: &Path) -> bool {
        self.held
            .lock()
            .map(|h| h.contains_key(state_dir))
            .unwrap_or(false)
    }

    /// The image of the state directory `state_dir`.
    pub fn image_of(&self, state_dir: &Path) -> PathBuf {
        let key = Sha256::digest(state_dir.as_os_str().as_encoded_bytes());
        self.dir.join(format!("{}.ext4", &hex::encode(key)[..24]))
    }

    /// Makes sure the volume of `state_dir` (`size_mb`) is mounted on it.
    pub async fn ensure(&self, state_dir: &Path, size_mb: u64) -> Result<()> {
        if self.holds(state_dir) && is_mount_point(state_dir) {
            return Ok(());
        }
        let _guard = self.lock.lock().await;
        let image = self.image_of(state_dir);
        if !self.holds(state_dir) {
            // Waits only while another process unmounts the volume (a moment).
            let (dir, lock_path) = (self.dir.clone(), Self::lock_file_of(&image));
            let file = tokio::task::spawn_blocking(move || lock_shared(&dir, &lock_path))
                .await
                .map_err(|e| VolumeError::prepare(&image, format!("the volume task failed: {e}")))??;
            if let Ok(mut held) = self.held.lock() {
                held.insert(state_dir.to_path_buf(), file);
            }
        }
        if is_mount_point(state_dir) {
            return Ok(());
        }
        let (state_dir, uid, gid, dir) = (state_dir.to_path_buf(), self.uid, self.gid, self.dir.clone());
        let task_image = image.clone();
        tokio::task::spawn_blocking(move || create_and_mount(&dir, &image, &state_dir, size_mb, uid, gid))
            .await
            .map_err(|e| VolumeError::prepare(&task_image, format!("the volume task failed: {e}")))?
    }

    /// Unmounts the volume of `state_dir`; with `purge`, deletes its image (the state) and,
    /// unless another process still uses the volume, its lock file.
    pub fn release(&self, state_dir: &Path, purge: bool) -> Result<()> {
        // Dropping the file lets go of this process's shared lock.
        if let Ok(mut held) = self.held.lock() {
            held.remove(state_dir);
        }
        if is_mount_point(state_dir) {
            unmount(state_dir)?;
        }
        if purge {
            let image = self.image_of(state_dir);
            remove_if_present(&image)?;
            remove_unused_lock_file(&Self::lock_file_of(&image))?;
        }
        Ok(())
    }
}

/// Removes `path`; one already gone is fine.
fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(VolumeError::io("remove", path, e)),
    }
}

/// Removes a purged volume's lock file when no process holds its lock. Removed while held, a
/// process that uses the volume would keep a lock on a file the next process cannot see, and
/// the two would no longer exclude each other; so a lock file still held is left (and reused
/// by the next volume of that state directory).
fn remove_unused_lock_file(lock_path: &Path) -> Result<()> {
    let file = match fs::OpenOptions::new().read(true).write(true).open(lock_path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(VolumeError::io("open", lock_path, e)),
    };
    // Exclusive without waiting: refused while another process holds its shared lock. Held
    // while the file is removed, so that nobody takes it in between.
    if file.try_lock().is_err() {
        tracing::debug!(lock = %lock_path.display(), "a purged volume's lock file is still held by another process; left");
        return Ok(());
    }
    remove_if_present(lock_path)
}

impl Volumes {
    /// Lets go of every volume this process used: each one no other process uses is unmounted
    /// (and its loop device freed). Runs at shutdown; calls must have ended.
    pub fn release_all(&self) {
        let held = match self.held.lock() {
            Ok(mut h) => std::mem::take(&mut *h),
            Err(_) => return,
        };
        for (state_dir, file) in held {
            // Exclusive without waiting: refused while another process holds its shared lock.
            if file.try_lock().is_ok()
                && is_mount_point(&state_dir)
                && let Err(e) = unmount(&state_dir)
            {
                tracing::warn!(volume = %state_dir.display(), error = %e, "could not unmount a state volume");
            }
        }
    }

    /// Unmounts the volumes of this directory that are mounted but used by no process (left by
    /// a process that was killed). Returns the state directories unmounted.
    pub fn reclaim_unused(&self) -> Vec<PathBuf> {
        let mut reclaimed = Vec::new();
        for (mount_point, image) in loop_mounts() {
            if image.parent() != Some(self.dir.as_path())
                || image.extension().and_then(|e| e.to_str()) != Some("ext4")
                || self.holds(&mount_point)
            {
                continue;
            }
            let Ok(file) = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(Self::lock_file_of(&image))
            else {
                continue;
            };
            if file.try_lock().is_ok() {
                match unmount(&mount_point) {
                    Ok(()) => reclaimed.push(mount_point),
                    Err(e) => {
                        tracing::warn!(volume = %mount_point.display(), error = %e, "could not unmount a stale state volume")
                    }
                }
            }
        }
        reclaimed
    }
}

impl Drop for Volumes {
    fn drop(&mut self) {
        self.release_all();
    }
}

/// Opens (creating) `lock_path` in `dir` and takes its shared lock, waiting if needed.
fn lock_shared(dir: &Path, lock_path: &Path) -> Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::create_dir_all(dir).map_err(|e| VolumeError::io("create", dir, e))?;
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(lock_path)
        .map_err(|e| VolumeError::io("open", lock_path, e))?;
    file.lock_shared()
        .map_err(|e| VolumeError::io("lock", lock_path, e))?;
    Ok(file)
}

/// Detaches the mount on `path`; a call still running keeps its own reference to the file
/// system in its private mount namespace, and the loop device is freed after the last one.
fn unmount(path: &Path) -> Result<()> {
    let c = cstring(path)?;
    // SAFETY: a valid C string.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } < 0 {
        return Err(VolumeError::io("unmount", path, std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Every mount of a loop device in this process's mount namespace: (mount point, the loop
/// device's backing file).
fn loop_mounts() -> Vec<(PathBuf, PathBuf)> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    super::mountinfo::parse(&info)
        .into_iter()
        .filter_map(|m| {
            let device = m.source.strip_prefix("/dev/")?;
            if !device.starts_with("loop") {
                return None;
            }
            let backing = fs::read_to_string(format!("/sys/block/{device}/loop/backing_file")).ok()?;
            Some((m.mount_point, PathBuf::from(backing.trim_end_matches('\n'))))
        })
        .collect()
}

fn cstring(p: &Path) -> Result<std::ffi::CString> {
    std::ffi::CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|_| VolumeError::prepare(p, "the path holds a NUL byte"))
}

fn run(image: &Path, cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .map_err(|e| VolumeError::prepare(image, format!("failed to run {:?}: {e}", cmd.get_program())))?;
    if out.status.success() {
        Ok(())
    } else {
        let reason = format!(
            "{:?} failed ({}): {}",
            cmd.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        tracing::error!(image = %image.display(), reason, "failed to prepare state volume");
        Err(VolumeError::prepare(image, reason))
    }
}

fn create_and_mount(
    dir: &Path,
    image: &Path,
    state_dir: &Path,
    size_mb: u64,
    uid: u32,
    gid: u32,
) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| VolumeError::io("create", dir, e))?;
    fs::create_dir_all(state_dir).map_err(|e| VolumeError::io("create", state_dir, e))?;
    let fresh = !image.exists();
    if fresh {
        let tmp = image.with_extension("new");
        let f = fs::File::create(&tmp).map_err(|e| VolumeError::io("create", &tmp, e))?;
        f.set_len(size_mb.max(1) * 1024 * 1024)
            .map_err(|e| VolumeError::io("size", &tmp, e))?;
        drop(f);
        run(
            image,
            Command::new("mkfs.ext4")
                .args(["-q", "-F", "-m", "0", "-L", "slovo-state", "-E"])
                .arg(format!("root_owner={uid}:{gid},nodiscard"))
                .arg(&tmp),
        )?;
        fs::rename(&tmp, image).map_err(|e| VolumeError::io("rename", &tmp, e))?;
    }
    let has_old_files = fs::read_dir(state_dir)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if fresh && has_old_files {
        // Files written before the volume existed move into it.
        let staging = image.with_extension("mnt");
        fs::create_dir_all(&staging).map_err(|e| VolumeError::io("create", &staging, e))?;
        run(
            image,
            Command::new("mount")
                .args(["-t", "ext4", "-o", "loop,nosuid,nodev"])
                .arg(image)
                .arg(&staging),
        )?;
        let copied = run(
            image,
            Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", state_dir.display()))
                .arg(&staging),
        )
        .and_then(|_| {
            run(
                image,
                Command::new("chown")
                    .arg("-R")
                    .arg(format!("{uid}:{gid}"))
                    .arg(&staging),
            )
        });
        run(image, Command::new("umount").arg(&staging))?;
        let _ = fs::remove_dir(&staging);
        copied?;
    }
    run(
        image,
        Command::new("mount")
            .args(["-t", "ext4", "-o", "loop,nosuid,nodev"])
            .arg(image)
            .arg(state_dir),
    )?;
    if fresh {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::remove_dir(state_dir.join("lost+found"));
        fs::set_permissions(state_dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| VolumeError::io("chmod", state_dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// A volume's image and lock file, as [`Volumes::ensure`] leaves them (without mounting,
    /// which needs root: nothing is mounted on the state directory here).
    fn leave_volume_files(volumes: &Volumes, state_dir: &Path) -> (PathBuf, PathBuf) {
        let image = volumes.image_of(state_dir);
        let lock = Volumes::lock_file_of(&image);
        fs::create_dir_all(&volumes.dir).unwrap();
        fs::write(&image, b"an ext4 image").unwrap();
        fs::write(&lock, b"").unwrap();
        (image, lock)
    }

    #[test]
    fn purging_a_volume_removes_its_image_and_its_lock_file_unless_another_process_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let volumes = Volumes::new(dir.path().join("volumes"), 0, 0);
        let state = dir.path().join("state");
        fs::create_dir_all(&state).unwrap();

        // Kept state (no purge): both files stay.
        let (image, lock) = leave_volume_files(&volumes, &state);
        volumes.release(&state, false).unwrap();
        assert!(image.exists() && lock.exists());

        // Purged, and nobody else holds the lock: nothing of the volume is left.
        volumes.release(&state, true).unwrap();
        assert_eq!(fs::read_dir(&volumes.dir).unwrap().count(), 0);

        // Purged while another process holds its shared lock (another open file description
        // stands for it): the image goes, the lock file stays for that process.
        let (image, lock) = leave_volume_files(&volumes, &state);
        let other = lock_shared(&volumes.dir, &lock).unwrap();
        volumes.release(&state, true).unwrap();
        assert!(!image.exists());
        assert!(lock.exists(), "a held lock file is left");
        drop(other);
        volumes.release(&state, true).unwrap();
        assert!(!lock.exists());
    }
}
