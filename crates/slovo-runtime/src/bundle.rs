//! Tool bundles: a directory (or tarball) holding a manifest and the tool's files.
//!
//! Import hashes the bundle's content (paths, kinds, executable bits and bytes, in a fixed
//! order), then copies it to `bundles/<digest>` under the data directory and makes the copy
//! read-only. Calls run from that copy, so editing the source directory after approval
//! changes nothing that runs. Symlinks are kept only when they stay inside the bundle; device
//! files, FIFOs and sockets are refused.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{Result, RuntimeError};

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

/// The manifest file of the bundle at `dir`.
pub fn find_bundle_manifest(dir: &Path) -> Result<PathBuf> {
    BUNDLE_MANIFEST_NAMES
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| RuntimeError::InvalidBundle {
            path: dir.to_path_buf(),
            reason: format!(
                "no manifest found (looked for {})",
                BUNDLE_MANIFEST_NAMES.join(", ")
            ),
        })
}

enum EntryKind {
    Dir,
    File { executable: bool },
    Symlink(PathBuf),
}

struct Entry {
    rel: PathBuf,
    kind: EntryKind,
}

/// Lists the bundle in a fixed order, refusing what must not be in it.
fn walk(root: &Path) -> Result<Vec<Entry>> {
    let invalid = |path: &Path, reason: String| RuntimeError::InvalidBundle {
        path: path.to_path_buf(),
        reason,
    };
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    let mut total: u64 = 0;
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let mut names: Vec<_> = fs::read_dir(&dir)
            .map_err(|e| RuntimeError::io("read", &dir, e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .map_err(|e| RuntimeError::io("read", &dir, e))?;
        names.sort();
        for name in names.into_iter().rev() {
            let rel = rel.join(&name);
            let path = root.join(&rel);
            let meta = fs::symlink_metadata(&path).map_err(|e| RuntimeError::io("stat", &path, e))?;
            let ft = meta.file_type();
            let kind = if ft.is_dir() {
                stack.push(rel.clone());
                EntryKind::Dir
            } else if ft.is_file() {
                total += meta.len();
                EntryKind::File {
                    executable: meta.mode() & 0o111 != 0,
                }
            } else if ft.is_symlink() {
                let target = fs::read_link(&path).map_err(|e| RuntimeError::io("read link", &path, e))?;
                if !stays_inside(&rel, &target) {
                    return Err(invalid(
                        &path,
                        format!("symlink to {} leaves the bundle", target.display()),
                    ));
                }
                EntryKind::Symlink(target)
            } else {
                return Err(invalid(
                    &path,
                    "only files, directories and symlinks may be in a bundle".into(),
                ));
            };
            out.push(Entry { rel, kind });
            if out.len() > MAX_BUNDLE_ENTRIES {
                return Err(invalid(root, format!("more than {MAX_BUNDLE_ENTRIES} entries")));
            }
            if total > MAX_BUNDLE_BYTES {
                return Err(invalid(root, format!("larger than {MAX_BUNDLE_BYTES} bytes")));
            }
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

/// True when a relative symlink at `link` (relative to the bundle root) resolves inside it.
fn stays_inside(link: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: i64 = link.components().count() as i64 - 1;
    for c in target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

/// The content digest of the bundle at `root` (hex SHA-256).
fn digest(root: &Path, entries: &[Entry]) -> Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    for e in entries {
        let rel = e.rel.to_string_lossy();
        match &e.kind {
            EntryKind::Dir => h.update(format!("d {} {}\n", rel.len(), rel)),
            EntryKind::Symlink(t) => {
                let t = t.to_string_lossy();
                h.update(format!("l {} {} {} {}\n", rel.len(), rel, t.len(), t));
            }
            EntryKind::File { executable } => {
                let path = root.join(&e.rel);
                let mut f = fs::File::open(&path).map_err(|err| RuntimeError::io("open", &path, err))?;
                let len = f
                    .metadata()
                    .map_err(|err| RuntimeError::io("stat", &path, err))?
                    .len();
                h.update(format!(
                    "f {} {} {} {}\n",
                    rel.len(),
                    rel,
                    u8::from(*executable),
                    len
                ));
                loop {
                    let n = f
                        .read(&mut buf)
                        .map_err(|err| RuntimeError::io("read", &path, err))?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
            }
        }
    }
    Ok(hex::encode(h.finalize()))
}

/// Hashes the bundle at `src` and installs a read-only copy at `bundles_dir/<digest>`;
/// returns the digest. Installing the same content twice is a no-op.
pub(crate) fn install(src: &Path, bundles_dir: &Path) -> Result<String> {
    let entries = walk(src)?;
    let digest = digest(src, &entries)?;
    let dir = bundles_dir.join(&digest);
    if dir.is_dir() {
        return Ok(digest);
    }
    fs::create_dir_all(bundles_dir).map_err(|e| RuntimeError::io("create", bundles_dir, e))?;
    let staging = tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(bundles_dir)
        .map_err(|e| RuntimeError::io("create", bundles_dir, e))?;
    let root = staging.path().join("b");
    fs::create_dir(&root).map_err(|e| RuntimeError::io("create", &root, e))?;
    for e in &entries {
        let to = root.join(&e.rel);
        match &e.kind {
            EntryKind::Dir => fs::create_dir(&to).map_err(|err| RuntimeError::io("create", &to, err))?,
            EntryKind::Symlink(t) => {
                std::os::unix::fs::symlink(t, &to).map_err(|err| RuntimeError::io("link", &to, err))?
            }
            EntryKind::File { executable } => {
                let from = src.join(&e.rel);
                fs::copy(&from, &to).map_err(|err| RuntimeError::io("copy", &from, err))?;
                let mode = if *executable { 0o555 } else { 0o444 };
                fs::set_permissions(&to, fs::Permissions::from_mode(mode))
                    .map_err(|err| RuntimeError::io("chmod", &to, err))?;
            }
        }
    }
    // Directories last, deepest first, so that read-only parents do not block their children.
    for e in entries.iter().rev().filter(|e| matches!(e.kind, EntryKind::Dir)) {
        let to = root.join(&e.rel);
        fs::set_permissions(&to, fs::Permissions::from_mode(0o555))
            .map_err(|err| RuntimeError::io("chmod", &to, err))?;
    }
    // The top directory is made read-only only once it is in place: moving a directory to
    // another parent rewrites its `..` entry, which needs write permission on it (root is
    // exempt, an ordinary user is not).
    match fs::rename(&root, &dir) {
        Ok(()) => fs::set_permissions(&dir, fs::Permissions::from_mode(0o555))
            .map_err(|err| RuntimeError::io("chmod", &dir, err))?,
        // Another import of the same content won the race: theirs is identical.
        Err(_) if dir.is_dir() => {}
        Err(e) => return Err(RuntimeError::io("install", &dir, e)),
    }
    Ok(digest)
}

/// Checks that a path named by the manifest exists in the bundle as a regular file (following
/// symlinks only inside the bundle).
pub(crate) fn check_entry(bundle_src: &Path, rel: &str, field: &str, want_executable: bool) -> Result<()> {
    let path = bundle_src.join(rel);
    let invalid = |reason: String| RuntimeError::InvalidBundle {
        path: bundle_src.to_path_buf(),
        reason,
    };
    let meta = fs::metadata(&path).map_err(|_| invalid(format!("{field}: {rel:?} is not in the bundle")))?;
    if !meta.is_file() {
        return Err(invalid(format!("{field}: {rel:?} is not a regular file")));
    }
    if want_executable && meta.mode() & 0o111 == 0 {
        return Err(invalid(format!("{field}: {rel:?} is not executable")));
    }
    Ok(())
}

/// Unpacks a tarball (`.tar`, `.tar.gz`, `.tgz`) into a fresh temporary directory. Entries
/// that would land outside it are refused by the tar crate's `unpack_in`.
pub(crate) fn unpack_tarball(path: &Path) -> Result<tempfile::TempDir> {
    let file = fs::File::open(path).map_err(|e| RuntimeError::io("open", path, e))?;
    let name = path.to_string_lossy().to_ascii_lowercase();
    let reader: Box<dyn Read> = if name.ends_with(".gz") || name.ends_with(".tgz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let dir = tempfile::tempdir().map_err(|e| RuntimeError::io("create", std::env::temp_dir(), e))?;
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(false);
    let entries = archive.entries().map_err(|e| RuntimeError::io("read", path, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| RuntimeError::io("read", path, e))?;
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir() || kind.is_symlink()) {
            return Err(RuntimeError::InvalidBundle {
                path: path.to_path_buf(),
                reason: "only files, directories and symlinks may be in a bundle".into(),
            });
        }
        let unpacked = entry
            .unpack_in(dir.path())
            .map_err(|e| RuntimeError::io("unpack", path, e))?;
        if !unpacked {
            return Err(RuntimeError::InvalidBundle {
                path: path.to_path_buf(),
                reason: "an entry would be written outside the bundle".into(),
            });
        }
    }
    Ok(dir)
}

/// True when `path` names a tarball by its extension.
pub(crate) fn is_tarball(path: &Path) -> bool {
    let name = path.to_string_lossy().to_ascii_lowercase();
    name.ends_with(".tar") || name.ends_with(".tar.gz") || name.ends_with(".tgz")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_must_stay_inside() {
        assert!(stays_inside(Path::new("lib/a.so"), Path::new("a.so.1")));
        assert!(stays_inside(Path::new("lib/a.so"), Path::new("../bin/x")));
        assert!(!stays_inside(Path::new("a"), Path::new("../etc/passwd")));
        assert!(!stays_inside(Path::new("lib/a"), Path::new("../../x")));
        assert!(!stays_inside(Path::new("a"), Path::new("/etc/passwd")));
    }

    #[test]
    fn install_is_content_addressed_and_read_only() {
        let src = tempfile::tempdir().unwrap();
        fs::create_dir(src.path().join("bin")).unwrap();
        fs::write(src.path().join("bin/tool"), b"#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(src.path().join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("tool", src.path().join("bin/alias")).unwrap();
        let data = tempfile::tempdir().unwrap();
        let a = install(src.path(), data.path()).unwrap();
        let b = install(src.path(), data.path()).unwrap();
        assert_eq!(a, b);
        let mode = fs::metadata(data.path().join(&a).join("bin/tool"))
            .unwrap()
            .mode();
        assert_eq!(mode & 0o777, 0o555);
        fs::write(src.path().join("bin/tool"), b"#!/bin/sh\necho changed\n").unwrap();
        let c = install(src.path(), data.path()).unwrap();
        assert_ne!(a, c);

        std::os::unix::fs::symlink("/etc/shadow", src.path().join("escape")).unwrap();
        assert!(matches!(
            install(src.path(), data.path()),
            Err(RuntimeError::InvalidBundle { .. })
        ));
    }
}
