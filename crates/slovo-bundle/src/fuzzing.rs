//! Entry point for the bundle fuzz target in `fuzz/` (not a stable API): the bundle steps a
//! tarball goes through on `slovo tool import bundle.tar`, up to the database.

use std::path::Path;

use slovo_core::{ManifestError, parse_manifest};

use crate::{BundleError, stage};

/// Largest tarball the target reads.
pub const MAX_INPUT: usize = 1024 * 1024;

/// Why an import was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// By the bundle checks.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// By the manifest parser.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// Writes `bytes` to `work/bundle.tar` (or `.tar.gz`), then unpacks it, stages the copy under
/// `work/bundles`, reads and parses its manifest, checks the files the manifest names and
/// installs the copy, as an import does. Returns the bundle's digest.
///
/// The unpacking directory is made in the system's temporary directory (as on a real import)
/// and removed before this returns; the staged copy and the installed bundle are under `work`.
pub fn import_tarball(bytes: &[u8], gzip: bool, work: &Path) -> Result<String, Refused> {
    let bytes = &bytes[..bytes.len().min(MAX_INPUT)];
    let tarball = work.join(if gzip { "bundle.tar.gz" } else { "bundle.tar" });
    std::fs::write(&tarball, bytes).map_err(|source| BundleError::Io {
        action: "write",
        path: tarball.clone(),
        source,
    })?;
    let staged = stage(&tarball, &work.join("bundles"))?;
    let (file_name, manifest) = staged.manifest()?;
    let manifest = parse_manifest(&format!("{}/{file_name}", tarball.display()), &manifest)?;
    staged.check_files_named_by(&manifest)?;
    Ok(staged.commit()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BundleRefusal;

    fn tarball(entries: &[(&str, &[u8], u32)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data, mode) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(*mode);
            h.set_entry_type(tar::EntryType::Regular);
            // `set_path` refuses `..`; the raw name field does not, as a hostile tarball's would.
            h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    const MANIFEST: &[u8] = b"name: t\nversion: \"1.0.0\"\ndescription: d\ncapabilities:\n  - name: run\n    description: r\n    parameters: {type: object}\nexecution:\n  type: process\n  command: [bin/t]\n";

    #[test]
    fn a_tarball_is_installed_under_work_and_a_hostile_one_refused() {
        let work = tempfile::tempdir().unwrap();
        let good = tarball(&[("slovo.yaml", MANIFEST, 0o644), ("bin/t", b"#!/bin/sh\n", 0o755)]);
        let digest = import_tarball(&good, false, work.path()).unwrap();
        assert!(work.path().join("bundles").join(&digest).join("bin/t").is_file());

        // The command the manifest names must be in the bundle.
        let work = tempfile::tempdir().unwrap();
        let missing = tarball(&[("slovo.yaml", MANIFEST, 0o644)]);
        let err = import_tarball(&missing, false, work.path()).unwrap_err();
        assert!(err.to_string().contains("is not in the bundle"), "{err}");

        let work = tempfile::tempdir().unwrap();
        let escape = tarball(&[("../escaped", b"x", 0o644)]);
        let err = import_tarball(&escape, false, work.path()).unwrap_err();
        assert!(
            matches!(
                &err,
                Refused::Bundle(BundleError::Entry {
                    reason: BundleRefusal::PathOutside,
                    ..
                })
            ),
            "{err}"
        );
        assert!(!work.path().join("escaped").exists());
        assert!(!work.path().parent().unwrap().join("escaped").exists());
    }
}
