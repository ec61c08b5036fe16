//! Tool bundles: a directory (or tarball) holding a manifest and the tool's files, read into a
//! private, hashed copy. The runtime's import (`slovo_runtime`) stages a bundle here, then
//! records the tool; nothing in this crate touches the database.
//!
//! Import runs as root and a bundle may belong to someone else, who can change it while it is
//! being read. So a bundle is read once, from descriptors, and every later check looks at the
//! private copy, never at the source again:
//!
//! 1. **Stage.** The bundle's root is opened once; every entry under it is opened relative to
//!    that descriptor with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//!    RESOLVE_NO_MAGICLINKS)`, so no symlink is followed anywhere on the way (a directory
//!    swapped for a link is refused, not entered). Each entry is first opened `O_PATH |
//!    O_NOFOLLOW` and classified by `fstat` on that descriptor: a symlink's target is read from
//!    the descriptor itself, a device, FIFO or socket is refused by name without being opened,
//!    and a regular file is opened for reading (`O_NOFOLLOW | O_NONBLOCK`), checked to be the
//!    same inode, then copied into a private staging directory while its bytes are hashed. The
//!    digest covers exactly the bytes that were copied.
//! 2. **Check the copy.** Symlinks are copied as they are, then resolved in the staged copy with
//!    `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`: the kernel walks the target component
//!    by component and refuses any step above the root (`s -> .` then `m -> s/s/../../x` is
//!    refused, as are absolute links and loops). A link whose target does not exist is kept: it
//!    stops at a missing entry inside a copy that never changes, so it cannot lead out. The
//!    manifest is read from the copy and must be a regular file (a manifest that is a symlink
//!    is refused, even one pointing inside); the command or module the manifest names is
//!    checked there too.
//! 3. **Commit.** The copy is made read-only and renamed to `bundles/<digest>`. Calls run from
//!    it, so editing the source after approval changes nothing that runs.
//!
//! Tarballs are unpacked into a fresh private directory with the same descriptor-relative
//! calls (`O_CREAT | O_EXCL`, no symlink followed while creating), then staged like a
//! directory, so their links go through the same checks.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};
use slovo_core::manifest::{Execution, Manifest};

mod archive;
#[doc(hidden)]
pub mod fuzzing;

pub use archive::pack;

/// Why a bundle could not be staged or installed.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The bundle as a whole is unusable.
    #[error("{path}: {reason}")]
    Invalid {
        /// The bundle.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An entry of the bundle that import refuses (a link leading out, a special file, an entry
    /// that changed while it was read).
    #[error("bundle {bundle}: {entry}: {reason}")]
    Entry {
        /// The bundle, as named on import (a directory or a tarball).
        bundle: PathBuf,
        /// The entry, relative to the bundle's root.
        entry: PathBuf,
        /// Why.
        reason: BundleRefusal,
    },
    /// A file system operation failed.
    #[error("failed to {action} {path}: {source}")]
    Io {
        /// What was attempted.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
}

impl BundleError {
    fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BundleError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// The result of a bundle operation.
pub type Result<T> = std::result::Result<T, BundleError>;

/// File names looked for, in order, at the root of a bundle.
pub const BUNDLE_MANIFEST_NAMES: [&str; 6] = [
    "slovo.yaml",
    "slovo.yml",
    "slovo.json",
    "manifest.yaml",
    "manifest.yml",
    "manifest.json",
];

/// Largest bundle accepted (bytes of file content).
const MAX_BUNDLE_BYTES: u64 = 512 * 1024 * 1024;
/// Most entries accepted in a bundle.
const MAX_BUNDLE_ENTRIES: usize = 100_000;

/// Opening inside a bundle source: stay beneath the root and follow no link at all.
const NO_LINKS: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);
/// Resolving a link in the staged copy: follow links, but only while they stay beneath it.
const LINKS_BENEATH: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);

/// Why an entry of a bundle is refused.
#[derive(Debug, thiserror::Error)]
pub enum BundleRefusal {
    /// A symlink whose target, resolved inside the bundle, leads out of it.
    #[error("symlink to {target} resolves outside the bundle")]
    LinkOutside {
        /// The link's target, as written.
        target: PathBuf,
    },
    /// An absolute symlink: it would resolve against whatever root it is seen from.
    #[error("symlink to the absolute path {target}: links must be relative and stay inside the bundle")]
    AbsoluteLink {
        /// The link's target, as written.
        target: PathBuf,
    },
    /// A symlink that does not resolve (a loop, or too many links in a row).
    #[error("symlink to {target} does not resolve (a loop or too many links)")]
    LinkLoop {
        /// The link's target, as written.
        target: PathBuf,
    },
    /// A device, FIFO, socket or other special file.
    #[error("is a {kind}: only regular files, directories and symlinks may be in a bundle")]
    Special {
        /// What it is.
        kind: &'static str,
    },
    /// The manifest is a symlink: it is read only as a regular file of the bundle.
    #[error("the manifest is a symlink (to {target}); it must be a regular file in the bundle")]
    ManifestLink {
        /// The link's target, as written.
        target: PathBuf,
    },
    /// The manifest name is taken by something that is not a regular file.
    #[error("the manifest is a {kind}, not a regular file")]
    ManifestNotFile {
        /// What it is.
        kind: &'static str,
    },
    /// The entry was replaced or resized while it was being read.
    #[error("changed while the bundle was being imported; import it again once it is stable")]
    Changed,
    /// A directory on the way to the entry is a symlink (only in tarballs: a link entry, then
    /// an entry beneath it).
    #[error("its path goes through a symlink or a file")]
    ThroughLink,
    /// A hard link to a file that the bundle's owner could not read.
    #[error("is a hard link to a file owned by uid {uid} that the bundle's owner (uid {owner}) cannot read")]
    ForeignHardLink {
        /// The file's owner.
        uid: u32,
        /// The owner of the bundle's root directory.
        owner: u32,
    },
    /// A tarball entry whose path is absolute or climbs out with `..`.
    #[error("its path leaves the bundle")]
    PathOutside,
    /// A tarball entry whose path was already unpacked.
    #[error("appears more than once in the tarball")]
    Duplicate,
}

/// A bundle copied into a private staging directory under `bundles/`, hashed, not yet
/// installed. Dropping it removes the copy.
pub struct Staged {
    /// The bundle as named on import (directory or tarball), for messages.
    bundle: PathBuf,
    /// The staging directory; removed on drop unless the copy was moved out of it.
    _staging: tempfile::TempDir,
    /// The copy's root (inside the staging directory).
    root: PathBuf,
    /// The copy's root, opened.
    root_fd: OwnedFd,
    /// Directories of the copy (relative), in walk order.
    dirs: Vec<PathBuf>,
    /// Where the copy goes.
    dest: PathBuf,
    /// The content digest (hex SHA-256).
    digest: String,
}

fn entry_error(bundle: &Path, entry: impl Into<PathBuf>, reason: BundleRefusal) -> BundleError {
    BundleError::Entry {
        bundle: bundle.to_path_buf(),
        entry: entry.into(),
        reason,
    }
}

fn invalid(bundle: &Path, reason: String) -> BundleError {
    BundleError::Invalid {
        path: bundle.to_path_buf(),
        reason,
    }
}

/// `rel`, or `.` for the root (`openat2` refuses an empty path).
fn at(rel: &Path) -> &Path {
    if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    }
}

fn kind_name(ft: FileType) -> &'static str {
    match ft {
        FileType::RegularFile => "regular file",
        FileType::Directory => "directory",
        FileType::Symlink => "symlink",
        FileType::Fifo => "FIFO",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        _ => "special file",
    }
}

/// Opens `rel` beneath `root` without following any link, retrying the rare `EAGAIN` that
/// `RESOLVE_BENEATH` returns when a rename elsewhere races the lookup.
fn open_beneath(
    root: BorrowedFd<'_>,
    rel: &Path,
    flags: OFlags,
    resolve: ResolveFlags,
) -> std::io::Result<OwnedFd> {
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(root, at(rel), flags | OFlags::CLOEXEC, Mode::empty(), resolve) {
            Err(Errno::AGAIN) if tries < 16 => tries += 1,
            other => return other.map_err(std::io::Error::from),
        }
    }
}

/// The sorted names in the directory `fd` (a descriptor opened on the directory itself).
fn list(dir: BorrowedFd<'_>) -> std::io::Result<Vec<OsString>> {
    // Re-opened from the descriptor (not by path) so the listing is of this very directory.
    let fd = rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    for e in rustix::fs::Dir::new(fd)? {
        let e = e?;
        let name = e.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsString::from_vec(name.to_vec()));
        }
    }
    names.sort();
    Ok(names)
}

/// Hashes and copies the bundle at `path` (a directory or a tarball) into a staging directory
/// under `bundles_dir`, refusing what must not be in a bundle.
pub fn stage(path: &Path, bundles_dir: &Path) -> Result<Staged> {
    if is_tarball(path) {
        let unpacked = unpack_tarball(path)?;
        stage_dir(path, unpacked.path(), bundles_dir)
    } else {
        stage_dir(path, path, bundles_dir)
    }
}

/// Stages the directory `src`; `bundle` is how messages name it.
fn stage_dir(bundle: &Path, src: &Path, bundles_dir: &Path) -> Result<Staged> {
    // The root itself is the path the operator named; links on the way to it are theirs.
    let src_fd = rustix::fs::open(
        src,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        if e == Errno::NOENT || e == Errno::NOTDIR {
            invalid(bundle, "not a directory or tarball".into())
        } else {
            BundleError::io("open", src, e.into())
        }
    })?;
    let owner = rustix::fs::fstat(&src_fd)
        .map_err(|e| BundleError::io("stat", src, e.into()))?
        .st_uid;

    fs::create_dir_all(bundles_dir).map_err(|e| BundleError::io("create", bundles_dir, e))?;
    // Created 0700 by this process inside the data directory: nobody else can touch the copy.
    let staging = tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(bundles_dir)
        .map_err(|e| BundleError::io("create", bundles_dir, e))?;
    let root = staging.path().join("b");
    fs::create_dir(&root).map_err(|e| BundleError::io("create", &root, e))?;

    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total: u64 = 0;
    let mut count: usize = 0;
    let mut dirs = Vec::new();
    let mut links = Vec::new();
    // Depth first, children in byte order: the same order as sorting the relative paths, which
    // is the order the digest has always been computed in.
    let mut stack: Vec<PathBuf> = list(src_fd.as_fd())
        .map_err(|e| BundleError::io("read", src, e))?
        .into_iter()
        .rev()
        .map(PathBuf::from)
        .collect();
    let src_entry = |rel: &Path| bundle.join(rel);
    while let Some(rel) = stack.pop() {
        count += 1;
        if count > MAX_BUNDLE_ENTRIES {
            return Err(invalid(bundle, format!("more than {MAX_BUNDLE_ENTRIES} entries")));
        }
        let name = rel.to_string_lossy();
        let to = root.join(&rel);
        // O_PATH opens nothing: a device or FIFO is classified without its driver being touched.
        let fd = open_beneath(src_fd.as_fd(), &rel, OFlags::PATH | OFlags::NOFOLLOW, NO_LINKS)
            .map_err(|e| BundleError::io("open", src_entry(&rel), e))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| BundleError::io("stat", src_entry(&rel), e.into()))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                h.update(format!("d {} {}\n", name.len(), name));
                fs::create_dir(&to).map_err(|e| BundleError::io("create", &to, e))?;
                let children = list(fd.as_fd()).map_err(|e| BundleError::io("read", src_entry(&rel), e))?;
                stack.extend(children.into_iter().rev().map(|c| rel.join(c)));
                dirs.push(rel);
            }
            FileType::RegularFile => {
                if st.st_nlink > 1 && st.st_uid != owner && st.st_mode & 0o004 == 0 {
                    // Another name for a file its owner kept private (where the kernel lets
                    // hard links to others' files be made): copying it would publish it.
                    return Err(entry_error(
                        bundle,
                        rel,
                        BundleRefusal::ForeignHardLink {
                            uid: st.st_uid,
                            owner,
                        },
                    ));
                }
                let file = open_beneath(
                    src_fd.as_fd(),
                    &rel,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY,
                    NO_LINKS,
                )
                .map_err(|e| match e.raw_os_error().map(Errno::from_raw_os_error) {
                    // Replaced by a link (or a directory) since it was classified.
                    Some(Errno::LOOP) => entry_error(bundle, rel.clone(), BundleRefusal::Changed),
                    _ => BundleError::io("open", src_entry(&rel), e),
                })?;
                let fst = rustix::fs::fstat(&file)
                    .map_err(|e| BundleError::io("stat", src_entry(&rel), e.into()))?;
                if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino)
                    || FileType::from_raw_mode(fst.st_mode) != FileType::RegularFile
                {
                    return Err(entry_error(bundle, rel, BundleRefusal::Changed));
                }
                let executable = fst.st_mode & 0o111 != 0;
                let len = u64::try_from(fst.st_size).unwrap_or(0);
                total = total.saturating_add(len);
                if total > MAX_BUNDLE_BYTES {
                    return Err(invalid(bundle, format!("larger than {MAX_BUNDLE_BYTES} bytes")));
                }
                h.update(format!(
                    "f {} {} {} {}\n",
                    name.len(),
                    name,
                    u8::from(executable),
                    len
                ));
                // Hash what is written, as it is written: the digest names these bytes.
                let copied = copy_hashing(fs::File::from(file), &to, len, &mut h, &mut buf).map_err(
                    |(action, e)| match action {
                        "read" => BundleError::io("read", src_entry(&rel), e),
                        _ => BundleError::io(action, &to, e),
                    },
                )?;
                if copied != len {
                    return Err(entry_error(bundle, rel, BundleRefusal::Changed));
                }
                let mode = if executable { 0o555 } else { 0o444 };
                fs::set_permissions(&to, fs::Permissions::from_mode(mode))
                    .map_err(|e| BundleError::io("chmod", &to, e))?;
            }
            FileType::Symlink => {
                // Read from the descriptor of the link itself, not by path again.
                let target = rustix::fs::readlinkat(&fd, "", Vec::new())
                    .map_err(|e| BundleError::io("read link", src_entry(&rel), e.into()))?;
                let target = PathBuf::from(OsStr::from_bytes(target.to_bytes()));
                let t = target.to_string_lossy();
                h.update(format!("l {} {} {} {}\n", name.len(), name, t.len(), t));
                std::os::unix::fs::symlink(&target, &to).map_err(|e| BundleError::io("link", &to, e))?;
                links.push((rel, target));
            }
            other => {
                return Err(entry_error(
                    bundle,
                    rel,
                    BundleRefusal::Special {
                        kind: kind_name(other),
                    },
                ));
            }
        }
    }
    let digest = hex::encode(h.finalize());
    let root_fd = rustix::fs::open(
        &root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| BundleError::io("open", &root, e.into()))?;
    for (rel, target) in links {
        check_link(bundle, root_fd.as_fd(), &root, &rel, target)?;
    }
    Ok(Staged {
        bundle: bundle.to_path_buf(),
        dest: bundles_dir.join(&digest),
        _staging: staging,
        root,
        root_fd,
        dirs,
        digest,
    })
}

/// Copies at most `len + 1` bytes from `from` into a new file `to`, hashing them; returns how
/// many were copied (more or fewer than `len` means the file changed under us).
fn copy_hashing(
    mut from: fs::File,
    to: &Path,
    len: u64,
    h: &mut Sha256,
    buf: &mut [u8],
) -> std::result::Result<u64, (&'static str, std::io::Error)> {
    let mut out = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)
        .map_err(|e| ("create", e))?;
    let mut copied: u64 = 0;
    while copied <= len {
        let want = usize::try_from((len + 1 - copied).min(buf.len() as u64)).unwrap_or(buf.len());
        let n = from.read(&mut buf[..want]).map_err(|e| ("read", e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| ("write", e))?;
        copied += n as u64;
    }
    Ok(copied)
}

/// Refuses a staged link that does not stay inside the copy, walking its target in the kernel.
fn check_link(
    bundle: &Path,
    root_fd: BorrowedFd<'_>,
    root: &Path,
    rel: &Path,
    target: PathBuf,
) -> Result<()> {
    if target.is_absolute() {
        return Err(entry_error(bundle, rel, BundleRefusal::AbsoluteLink { target }));
    }
    match open_beneath(root_fd, rel, OFlags::PATH, LINKS_BENEATH) {
        Ok(_) => Ok(()),
        Err(e) => match e.raw_os_error().map(Errno::from_raw_os_error) {
            Some(Errno::XDEV) => Err(entry_error(bundle, rel, BundleRefusal::LinkOutside { target })),
            Some(Errno::LOOP) => Err(entry_error(bundle, rel, BundleRefusal::LinkLoop { target })),
            // Stops at a missing entry (or a file used as a directory) inside a copy that will
            // never change: dangling, but it cannot lead out.
            Some(Errno::NOENT | Errno::NOTDIR) => Ok(()),
            _ => Err(BundleError::io("resolve", root.join(rel), e)),
        },
    }
}

impl Staged {
    /// The manifest's file name and bytes, read from the staged copy; a manifest that is a
    /// symlink is refused rather than followed.
    pub fn manifest(&self) -> Result<(String, Vec<u8>)> {
        for name in BUNDLE_MANIFEST_NAMES {
            let rel = Path::new(name);
            let fd = match open_beneath(
                self.root_fd.as_fd(),
                rel,
                OFlags::PATH | OFlags::NOFOLLOW,
                NO_LINKS,
            ) {
                Ok(fd) => fd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(BundleError::io("open", self.root.join(rel), e)),
            };
            let st =
                rustix::fs::fstat(&fd).map_err(|e| BundleError::io("stat", self.root.join(rel), e.into()))?;
            match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile => {}
                FileType::Symlink => {
                    let target = rustix::fs::readlinkat(&fd, "", Vec::new())
                        .map_err(|e| BundleError::io("read link", self.root.join(rel), e.into()))?;
                    let target = PathBuf::from(OsStr::from_bytes(target.to_bytes()));
                    return Err(entry_error(
                        &self.bundle,
                        rel,
                        BundleRefusal::ManifestLink { target },
                    ));
                }
                other => {
                    return Err(entry_error(
                        &self.bundle,
                        rel,
                        BundleRefusal::ManifestNotFile {
                            kind: kind_name(other),
                        },
                    ));
                }
            }
            let file = open_beneath(
                self.root_fd.as_fd(),
                rel,
                OFlags::RDONLY | OFlags::NOFOLLOW,
                NO_LINKS,
            )
            .map_err(|e| BundleError::io("open", self.root.join(rel), e))?;
            let mut bytes = Vec::new();
            // One byte over the limit is enough for the parser to report the file as too large.
            fs::File::from(file)
                .take(slovo_core::manifest::MAX_MANIFEST_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| BundleError::io("read", self.root.join(rel), e))?;
            return Ok((name.to_string(), bytes));
        }
        Err(invalid(
            &self.bundle,
            format!(
                "no manifest found (looked for {})",
                BUNDLE_MANIFEST_NAMES.join(", ")
            ),
        ))
    }

    /// Checks that a path named by the manifest is a regular file of the staged copy
    /// (following links only beneath its root).
    pub fn check_entry(&self, rel: &str, field: &str, want_executable: bool) -> Result<()> {
        let refuse = |reason: String| invalid(&self.bundle, format!("{field}: {rel:?} {reason}"));
        let fd = open_beneath(self.root_fd.as_fd(), Path::new(rel), OFlags::PATH, LINKS_BENEATH)
            .map_err(|_| refuse("is not in the bundle".into()))?;
        let st =
            rustix::fs::fstat(&fd).map_err(|e| BundleError::io("stat", self.root.join(rel), e.into()))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(refuse("is not a regular file".into()));
        }
        if want_executable && st.st_mode & 0o111 == 0 {
            return Err(refuse("is not executable".into()));
        }
        Ok(())
    }

    /// Checks the files the manifest's execution names (the command of a process tool, the
    /// module of a WebAssembly tool) in the staged copy.
    pub fn check_files_named_by(&self, manifest: &Manifest) -> Result<()> {
        match &manifest.execution {
            Some(Execution::Process { command, .. }) => match command.first() {
                Some(program) => self.check_entry(program, "execution.command[0]", true),
                None => Ok(()),
            },
            Some(Execution::Wasm { module }) => self.check_entry(module, "execution.module", false),
            // A system program (`/usr/bin/node`) is not in the bundle, nor is the command of a
            // server in an image (the image's); a bundled one must be.
            Some(Execution::Mcp { command, image, .. }) => match command.first() {
                Some(program) if !program.starts_with('/') && image.is_none() => {
                    self.check_entry(program, "execution.command[0]", true)
                }
                _ => Ok(()),
            },
            // Nothing of the bundle runs: an image, a remote API, other tools.
            Some(Execution::Docker { .. } | Execution::Http | Execution::Chain { .. }) | None => Ok(()),
        }
    }

    /// The content digest of the staged copy (hex SHA-256).
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Makes the copy read-only and installs it at `bundles/<digest>`; returns the digest.
    /// Installing the same content twice is a no-op.
    pub fn commit(self) -> Result<String> {
        if self.dest.is_dir() {
            return Ok(self.digest);
        }
        // Directories last, deepest first, so that read-only parents do not block their children.
        for rel in self.dirs.iter().rev() {
            let to = self.root.join(rel);
            fs::set_permissions(&to, fs::Permissions::from_mode(0o555))
                .map_err(|e| BundleError::io("chmod", &to, e))?;
        }
        // The top directory is made read-only only once it is in place: moving a directory to
        // another parent rewrites its `..` entry, which needs write permission on it (root is
        // exempt, an ordinary user is not).
        match fs::rename(&self.root, &self.dest) {
            Ok(()) => fs::set_permissions(&self.dest, fs::Permissions::from_mode(0o555))
                .map_err(|e| BundleError::io("chmod", &self.dest, e))?,
            // Another import of the same content won the race: theirs is identical.
            Err(_) if self.dest.is_dir() => {}
            Err(e) => return Err(BundleError::io("install", &self.dest, e)),
        }
        Ok(self.digest)
    }
}

/// Unpacks a tarball (`.tar`, `.tar.gz`, `.tgz`) into a fresh temporary directory. Every entry
/// is created relative to that directory's descriptor without following any link, and with
/// `O_EXCL`, so nothing can be written outside it: an entry beneath a link entry, an absolute
/// path or `..` is refused, as are hard links, devices and FIFOs.
pub fn unpack_tarball(path: &Path) -> Result<tempfile::TempDir> {
    let file = fs::File::open(path).map_err(|e| BundleError::io("open", path, e))?;
    let name = path.to_string_lossy().to_ascii_lowercase();
    let reader: Box<dyn Read> = if name.ends_with(".gz") || name.ends_with(".tgz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let dir = tempfile::tempdir().map_err(|e| BundleError::io("create", std::env::temp_dir(), e))?;
    let root = rustix::fs::open(
        dir.path(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| BundleError::io("open", dir.path(), e.into()))?;
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(|e| BundleError::io("read", path, e))?;
    let mut total: u64 = 0;
    for (count, entry) in entries.enumerate() {
        if count >= MAX_BUNDLE_ENTRIES {
            return Err(invalid(path, format!("more than {MAX_BUNDLE_ENTRIES} entries")));
        }
        let mut entry = entry.map_err(|e| BundleError::io("read", path, e))?;
        // Archive-wide metadata (`git archive` writes the commit id there): nothing to unpack.
        if entry.header().entry_type().is_pax_global_extensions() {
            continue;
        }
        let raw = entry
            .path()
            .map_err(|e| BundleError::io("read", path, e))?
            .into_owned();
        let mut rel = PathBuf::new();
        for c in raw.components() {
            match c {
                Component::Normal(c) => rel.push(c),
                Component::CurDir => {}
                Component::RootDir | Component::ParentDir | Component::Prefix(_) => {
                    return Err(entry_error(path, raw, BundleRefusal::PathOutside));
                }
            }
        }
        let kind = entry.header().entry_type();
        // `./` and the like: the root itself.
        let (Some(parent), Some(leaf)) = (rel.parent(), rel.file_name()) else {
            if kind.is_dir() {
                continue;
            }
            return Err(entry_error(path, raw, BundleRefusal::PathOutside));
        };
        let parent_fd = make_dirs(path, root.as_fd(), parent)?;
        let exists = |e: Errno| {
            if e == Errno::EXIST {
                entry_error(path, rel.clone(), BundleRefusal::Duplicate)
            } else {
                BundleError::io("unpack", path.join(&rel), e.into())
            }
        };
        if kind.is_dir() {
            match rustix::fs::mkdirat(&parent_fd, leaf, Mode::from_raw_mode(0o700)) {
                Ok(()) => {}
                // Already made as a parent of an earlier entry: fine if it is a directory.
                Err(Errno::EXIST) => {
                    open_beneath(root.as_fd(), &rel, OFlags::PATH | OFlags::DIRECTORY, NO_LINKS)
                        .map_err(|_| entry_error(path, rel.clone(), BundleRefusal::Duplicate))?;
                }
                Err(e) => return Err(BundleError::io("unpack", path.join(&rel), e.into())),
            }
        } else if kind.is_file() {
            total = total.saturating_add(entry.size());
            if total > MAX_BUNDLE_BYTES {
                return Err(invalid(path, format!("larger than {MAX_BUNDLE_BYTES} bytes")));
            }
            let executable = entry.header().mode().map(|m| m & 0o111 != 0).unwrap_or(false);
            let fd = rustix::fs::openat2(
                &parent_fd,
                leaf,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(if executable { 0o700 } else { 0o600 }),
                NO_LINKS,
            )
            .map_err(exists)?;
            let mut out = fs::File::from(fd);
            // `entry` reads no more than the size its header declares.
            std::io::copy(&mut entry, &mut out).map_err(|e| BundleError::io("unpack", path.join(&rel), e))?;
        } else if kind.is_symlink() {
            let target = entry
                .link_name()
                .map_err(|e| BundleError::io("read", path, e))?
                .ok_or_else(|| invalid(path, format!("{}: symlink without a target", rel.display())))?
                .into_owned();
            // Created as written; the staging walk resolves it beneath the root.
            rustix::fs::symlinkat(target.as_os_str(), &parent_fd, leaf).map_err(exists)?;
        } else {
            let kind = if kind.is_hard_link() {
                "hard link"
            } else if kind.is_character_special() {
                "character device"
            } else if kind.is_block_special() {
                "block device"
            } else if kind.is_fifo() {
                "FIFO"
            } else {
                "special entry"
            };
            return Err(entry_error(path, rel, BundleRefusal::Special { kind }));
        }
    }
    Ok(dir)
}

/// Creates the directories of `rel` beneath `root` (as needed) and returns the last one,
/// opened; a symlink or file on the way is refused, never followed.
fn make_dirs(tarball: &Path, root: BorrowedFd<'_>, rel: &Path) -> Result<OwnedFd> {
    let mut cur = rustix::fs::openat(root, ".", OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| BundleError::io("open", tarball, e.into()))?;
    let mut done = PathBuf::new();
    for c in rel.components() {
        done.push(c);
        match rustix::fs::mkdirat(&cur, c.as_os_str(), Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(BundleError::io("unpack", tarball.join(&done), e.into())),
        }
        cur = open_beneath(
            cur.as_fd(),
            Path::new(c.as_os_str()),
            OFlags::PATH | OFlags::DIRECTORY,
            NO_LINKS,
        )
        .map_err(|_| entry_error(tarball, done.clone(), BundleRefusal::ThroughLink))?;
    }
    Ok(cur)
}

/// True when `path` names a tarball by its extension.
pub fn is_tarball(path: &Path) -> bool {
    let name = path.to_string_lossy().to_ascii_lowercase();
    name.ends_with(".tar") || name.ends_with(".tar.gz") || name.ends_with(".tgz")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn install(src: &Path, bundles: &Path) -> Result<String> {
        stage(src, bundles)?.commit()
    }

    #[test]
    fn install_is_content_addressed_and_read_only() {
        let src = tempfile::tempdir().unwrap();
        fs::create_dir(src.path().join("bin")).unwrap();
        fs::write(src.path().join("bin/tool"), b"#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(src.path().join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("tool", src.path().join("bin/alias")).unwrap();
        std::os::unix::fs::symlink("../bin", src.path().join("bin/self")).unwrap();
        std::os::unix::fs::symlink("missing/../../x", src.path().join("dangling")).unwrap();
        let data = tempfile::tempdir().unwrap();
        let a = install(src.path(), data.path()).unwrap();
        let b = install(src.path(), data.path()).unwrap();
        assert_eq!(a, b);
        let mode = fs::metadata(data.path().join(&a).join("bin/tool"))
            .unwrap()
            .mode();
        assert_eq!(mode & 0o777, 0o555);
        let mode = fs::metadata(data.path().join(&a).join("bin")).unwrap().mode();
        assert_eq!(mode & 0o777, 0o555);
        assert_eq!(
            fs::read_link(data.path().join(&a).join("bin/alias")).unwrap(),
            Path::new("tool")
        );
        // Only the installed copy is left: the staging directory went with the second import.
        assert_eq!(fs::read_dir(data.path()).unwrap().count(), 1);
        fs::write(src.path().join("bin/tool"), b"#!/bin/sh\necho changed\n").unwrap();
        let c = install(src.path(), data.path()).unwrap();
        assert_ne!(a, c);

        std::os::unix::fs::symlink("/etc/shadow", src.path().join("escape")).unwrap();
        let err = install(src.path(), data.path()).err().unwrap();
        assert!(
            matches!(&err, BundleError::Entry { entry, reason: BundleRefusal::AbsoluteLink { .. }, .. }
                if entry == Path::new("escape")),
            "{err}"
        );
    }

    /// The digest is the one computed before the descriptor-based walk (same order, same
    /// fields), so bundles imported earlier keep their names.
    #[test]
    fn digest_format_is_unchanged() {
        let src = tempfile::tempdir().unwrap();
        fs::create_dir(src.path().join("a")).unwrap();
        fs::write(src.path().join("a/z"), b"z").unwrap();
        fs::write(src.path().join("a-b"), b"ab").unwrap();
        fs::set_permissions(src.path().join("a-b"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("a/z", src.path().join("l")).unwrap();
        let mut h = Sha256::new();
        h.update("d 1 a\n");
        h.update("f 3 a/z 0 1\nz");
        h.update("f 3 a-b 1 2\nab");
        h.update("l 1 l 3 a/z\n");
        let data = tempfile::tempdir().unwrap();
        assert_eq!(
            install(src.path(), data.path()).unwrap(),
            hex::encode(h.finalize())
        );
    }
}
