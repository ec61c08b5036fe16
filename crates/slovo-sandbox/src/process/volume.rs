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

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::error::{ProcessError, Result};

/// The state volumes under one directory.
#[derive(Debug)]
pub struct Volumes {
    dir: PathBuf,
    uid: u32,
    gid: u32,
    lock: tokio::sync::Mutex<()>,
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
        }
    }

    /// The image of the state directory `state_dir`.
    pub fn image_of(&self, state_dir: &Path) -> PathBuf {
        let key = Sha256::digest(state_dir.as_os_str().as_encoded_bytes());
        self.dir.join(format!("{}.ext4", &hex::encode(key)[..24]))
    }

    /// Makes sure the volume of `state_dir` (`size_mb`) is mounted on it.
    pub async fn ensure(&self, state_dir: &Path, size_mb: u64) -> Result<()> {
        if is_mount_point(state_dir) {
            return Ok(());
        }
        let _guard = self.lock.lock().await;
        if is_mount_point(state_dir) {
            return Ok(());
        }
        let image = self.image_of(state_dir);
        let (state_dir, uid, gid, dir) = (state_dir.to_path_buf(), self.uid, self.gid, self.dir.clone());
        tokio::task::spawn_blocking(move || create_and_mount(&dir, &image, &state_dir, size_mb, uid, gid))
            .await
            .map_err(|e| ProcessError::refused(format!("volume task failed: {e}")))?
    }

    /// Unmounts the volume of `state_dir`; with `purge`, deletes its image (the state).
    pub fn release(&self, state_dir: &Path, purge: bool) -> Result<()> {
        if is_mount_point(state_dir) {
            let c = cstring(state_dir)?;
            // SAFETY: a valid C string. A call still running keeps its own reference to the
            // file system in its private mount namespace.
            if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } < 0 {
                return Err(ProcessError::io(
                    "unmount",
                    state_dir,
                    std::io::Error::last_os_error(),
                ));
            }
        }
        if purge {
            let image = self.image_of(state_dir);
            match fs::remove_file(&image) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ProcessError::io("remove", image, e)),
            }
        }
        Ok(())
    }
}

fn cstring(p: &Path) -> Result<std::ffi::CString> {
    std::ffi::CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|_| ProcessError::refused(format!("path {} holds a NUL byte", p.display())))
}

fn run(image: &Path, cmd: &mut Command) -> Result<()> {
    let out = cmd.output().map_err(|e| ProcessError::Volume {
        image: image.to_path_buf(),
        reason: format!("failed to run {:?}: {e}", cmd.get_program()),
    })?;
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
        Err(ProcessError::Volume {
            image: image.to_path_buf(),
            reason,
        })
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
    fs::create_dir_all(dir).map_err(|e| ProcessError::io("create", dir, e))?;
    fs::create_dir_all(state_dir).map_err(|e| ProcessError::io("create", state_dir, e))?;
    let fresh = !image.exists();
    if fresh {
        let tmp = image.with_extension("new");
        let f = fs::File::create(&tmp).map_err(|e| ProcessError::io("create", &tmp, e))?;
        f.set_len(size_mb.max(1) * 1024 * 1024)
            .map_err(|e| ProcessError::io("size", &tmp, e))?;
        drop(f);
        run(
            image,
            Command::new("mkfs.ext4")
                .args(["-q", "-F", "-m", "0", "-L", "slovo-state", "-E"])
                .arg(format!("root_owner={uid}:{gid},nodiscard"))
                .arg(&tmp),
        )?;
        fs::rename(&tmp, image).map_err(|e| ProcessError::io("rename", &tmp, e))?;
    }
    let has_old_files = fs::read_dir(state_dir)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if fresh && has_old_files {
        // Files written before the volume existed move into it.
        let staging = image.with_extension("mnt");
        fs::create_dir_all(&staging).map_err(|e| ProcessError::io("create", &staging, e))?;
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
            .map_err(|e| ProcessError::io("chmod", state_dir, e))?;
    }
    Ok(())
}
