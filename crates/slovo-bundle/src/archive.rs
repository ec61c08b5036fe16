//! An installed bundle as one tarball, so that other instances sharing the database can install
//! the same bundle (`docs/deployment.md`). The receiving side never trusts the archive: it
//! stages it like any imported tarball ([`crate::stage`]) and accepts it only if the digest
//! it computes is the one the tool version names.

use std::path::Path;

use crate::{BundleError, Result};

/// Packs the installed bundle at `dir` (`bundles/<digest>`) into an uncompressed tarball:
/// files with their executable bit, directories, and symlinks as links (never followed).
pub fn pack(dir: &Path) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder
        .append_dir_all(".", dir)
        .map_err(|e| BundleError::io("pack", dir, e))?;
    builder.into_inner().map_err(|e| BundleError::io("pack", dir, e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_packed_bundle_stages_to_the_same_digest() {
        let src = tempfile::tempdir().unwrap();
        std::fs::write(
            src.path().join("slovo.yaml"),
            "name: t\nversion: 1.0.0\ndescription: d\ncapabilities: []\n",
        )
        .unwrap();
        std::fs::create_dir(src.path().join("bin")).unwrap();
        let tool = src.path().join("bin/run");
        std::fs::write(&tool, "#!/bin/sh\necho hi\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("bin/run", src.path().join("link")).unwrap();

        let here = tempfile::tempdir().unwrap();
        let digest = crate::stage(src.path(), here.path()).unwrap().commit().unwrap();
        let archive = pack(&here.path().join(&digest)).unwrap();

        let elsewhere = tempfile::tempdir().unwrap();
        let tarball = elsewhere.path().join("bundle.tar");
        std::fs::write(&tarball, &archive).unwrap();
        let bundles = elsewhere.path().join("bundles");
        std::fs::create_dir(&bundles).unwrap();
        let again = crate::stage(&tarball, &bundles).unwrap().commit().unwrap();
        assert_eq!(again, digest);
        let mode = std::fs::metadata(bundles.join(&again).join("bin/run"))
            .unwrap()
            .permissions()
            .mode();
        assert_ne!(mode & 0o111, 0, "the executable bit survives");
    }
}
