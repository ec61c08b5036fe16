//! Bundle import against hostile bundles: entries swapped for links while they are read, link
//! chains that only look as if they stay inside, special files, hard links to host files,
//! tarballs that try to write or read outside. Import runs as root, so these run as root too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use slovo_runtime::{Actor, BundleRefusal, ImportSource, Runtime, RuntimeError};
use slovo_sandbox::Backends;
use slovo_test_support::test_dbs;

const SECRET: &str = "host-secret-7f3a9c1e5b";

struct Harness {
    rt: Runtime,
    label: &'static str,
    data_dir: PathBuf,
    _db: slovo_test_support::TestDb,
}

async fn harnesses() -> Vec<Harness> {
    let mut out = Vec::new();
    for db in test_dbs().await {
        let data_dir = db.dir.path().join("data");
        let rt = Runtime::new(db.store().await, Backends::new(), data_dir.clone());
        out.push(Harness {
            rt,
            label: db.label,
            data_dir,
            _db: db,
        });
    }
    out
}

fn actor() -> Actor {
    Actor("test".into())
}

/// A host file the bundle's author must never see in an installed bundle: outside the bundle,
/// readable by root only.
fn host_secret(dir: &Path) -> PathBuf {
    let p = dir.join("secret.txt");
    std::fs::write(&p, SECRET).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

const PROCESS_MANIFEST: &str = "name: hostile\nversion: 0.1.0\ndescription: A hostile bundle\ncapabilities:\n  - name: run\n    description: Run\nexecution:\n  type: process\n  command: [bin/tool]\n";
const DOCKER_MANIFEST: &str = "name: outside\nversion: 0.1.0\ndescription: A manifest outside the bundle\ncapabilities:\n  - name: run\n    description: Run\nexecution:\n  type: docker\n  image: example/outside:1\n";

/// A valid process bundle at `dir`.
fn process_bundle(dir: &Path) {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(dir.join("slovo.yaml"), PROCESS_MANIFEST).unwrap();
    std::fs::write(dir.join("bin/tool"), "#!/bin/sh\necho '{}'\n").unwrap();
    std::fs::set_permissions(dir.join("bin/tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Fails if anything installed under `data/bundles` holds the secret or leads to it: every
/// regular file is read, every link resolved.
fn assert_no_secret_installed(data_dir: &Path, secret: &Path, label: &str) {
    let bundles = data_dir.join("bundles");
    let mut stack = vec![bundles.clone()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() {
                let bytes = std::fs::read(&p).unwrap();
                assert!(
                    !String::from_utf8_lossy(&bytes).contains(SECRET),
                    "{label}: {} holds the host secret",
                    p.display()
                );
            } else if meta.file_type().is_symlink() {
                // An installed link must not lead out of its bundle, least of all to the secret.
                if let Ok(real) = std::fs::canonicalize(&p) {
                    assert_ne!(real, secret, "{label}: {} leads to the host secret", p.display());
                    assert!(
                        real.starts_with(&bundles),
                        "{label}: {} leads to {}",
                        p.display(),
                        real.display()
                    );
                }
            }
        }
    }
}

/// The installed bundles (staging leftovers included, so a leak shows).
fn installed(data_dir: &Path) -> Vec<String> {
    match std::fs::read_dir(data_dir.join("bundles")) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Imports `path`, expecting a refusal of `entry` for the reason `matches` accepts; checks that
/// nothing was written: no row, no audit event, no installed bundle.
async fn assert_refused(
    h: &Harness,
    path: &Path,
    entry: &str,
    matches: impl Fn(&BundleRefusal) -> bool,
) -> String {
    let before = h.rt.store().dump().await.unwrap();
    let bundles_before = installed(&h.data_dir);
    let err =
        h.rt.import(ImportSource::Bundle(path.to_path_buf()), &actor())
            .await
            .err()
            .unwrap_or_else(|| panic!("{}: {} was imported", h.label, path.display()));
    match &err {
        RuntimeError::BundleEntry {
            bundle,
            entry: e,
            reason,
        } => {
            assert_eq!(bundle, path, "{}: {err}", h.label);
            assert_eq!(e, Path::new(entry), "{}: {err}", h.label);
            assert!(matches(reason), "{}: {err}", h.label);
        }
        other => panic!("{}: expected a refusal of {entry}, got {other}", h.label),
    }
    assert_eq!(err.kind(), slovo_runtime::ErrorKind::InvalidInput);
    let message = err.to_string();
    assert!(
        message.contains(&path.display().to_string()) && message.contains(entry),
        "{message}"
    );
    assert_eq!(
        before,
        h.rt.store().dump().await.unwrap(),
        "{}: a refusal wrote rows",
        h.label
    );
    assert_eq!(
        bundles_before,
        installed(&h.data_dir),
        "{}: a refusal left files",
        h.label
    );
    message
}

/// A thread swaps a file of the bundle for a link to a host secret and back, as fast as it
/// can, while the bundle is imported again and again. Reading by path after a check (the old
/// walk-then-copy) copies the secret into a bundle anyone can read; reading through one
/// descriptor opened without following links never does.
#[tokio::test]
async fn a_file_swapped_for_a_link_during_import_never_installs_the_host_file() {
    for h in harnesses().await {
        let t = tempfile::tempdir().unwrap();
        let secret = host_secret(t.path());
        let bundle = t.path().join("b/tool");
        process_bundle(&bundle);
        std::fs::write(bundle.join("data.txt"), "harmless").unwrap();
        // Reading this takes a while, which widens the gap between checking an entry and
        // copying it, as a slow disk or a large bundle would.
        std::fs::write(bundle.join("pad.bin"), vec![0u8; 512 * 1024]).unwrap();
        let spare = t.path().join("b/spare");
        std::fs::create_dir_all(&spare).unwrap();

        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let (stop, bundle, secret) = (stop.clone(), bundle.clone(), secret.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut swaps = 0u64;
                // Bounded by the importer's stop signal and, in case it panicked, by time.
                while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(15) {
                    // Both replacements made first, so that each state lasts about as long
                    // as the other: a link in place, then the file again.
                    let (l, f) = (spare.join("l"), spare.join("f"));
                    let _ = std::fs::remove_file(&l);
                    symlink(&secret, &l).unwrap();
                    std::fs::write(&f, "harmless").unwrap();
                    std::fs::rename(&l, bundle.join("data.txt")).unwrap();
                    std::thread::yield_now();
                    std::fs::rename(&f, bundle.join("data.txt")).unwrap();
                    std::thread::yield_now();
                    swaps += 1;
                }
                swaps
            })
        };
        let started = Instant::now();
        let (mut imported, mut refused, mut unexpected) = (0, 0, Vec::new());
        for _ in 0..200 {
            if started.elapsed() > Duration::from_secs(10) {
                break;
            }
            match h.rt.import(ImportSource::Bundle(bundle.clone()), &actor()).await {
                Ok(_) => imported += 1,
                // Seen as a link (absolute, refused) or caught changing: never read through.
                Err(RuntimeError::BundleEntry { entry, reason, .. })
                    if entry == Path::new("data.txt")
                        && matches!(
                            reason,
                            BundleRefusal::AbsoluteLink { .. } | BundleRefusal::Changed
                        ) =>
                {
                    refused += 1
                }
                Err(e) => unexpected.push(e.to_string()),
            }
        }
        stop.store(true, Ordering::Relaxed);
        let swaps = swapper.join().unwrap();
        assert!(swaps > 0, "{}: the swapper never ran", h.label);
        eprintln!(
            "{}: {imported} imported, {refused} refused, {} other errors, {swaps} swaps",
            h.label,
            unexpected.len()
        );
        assert_no_secret_installed(&h.data_dir, &secret, h.label);
        assert!(unexpected.is_empty(), "{}: {unexpected:?}", h.label);
        // Every import that went through installed the same harmless content.
        assert!(
            imported > 0,
            "{}: no import succeeded ({refused} refused)",
            h.label
        );
        let names = installed(&h.data_dir);
        assert_eq!(names.len(), 1, "{}: {names:?}", h.label);
    }
}

/// `s -> .` makes `s/s/../..` look, lexically, like the bundle's root; the kernel resolves it
/// to the bundle's grandparent. Installed under `bundles/<digest>`, the same link would reach
/// the data directory (and its secret key).
#[tokio::test]
async fn a_link_chain_through_a_self_link_is_refused() {
    for h in harnesses().await {
        let t = tempfile::tempdir().unwrap();
        let secret = host_secret(t.path());
        let bundle = t.path().join("b/tool");
        process_bundle(&bundle);
        symlink(".", bundle.join("s")).unwrap();
        symlink("s/s/../../secret.txt", bundle.join("m")).unwrap();
        // The link really reaches the secret from the source bundle.
        assert_eq!(std::fs::read_to_string(bundle.join("m")).unwrap(), SECRET);
        assert_refused(&h, &bundle, "m", |r| {
            matches!(r, BundleRefusal::LinkOutside { .. })
        })
        .await;
        assert_no_secret_installed(&h.data_dir, &secret, h.label);
    }
}

/// Links to directories outside: one that looks inside lexically (`s/..`), one plainly relative.
#[tokio::test]
async fn a_link_to_a_directory_outside_is_refused() {
    for h in harnesses().await {
        let t = tempfile::tempdir().unwrap();
        let bundle = t.path().join("b/tool");
        process_bundle(&bundle);
        symlink(".", bundle.join("s")).unwrap();
        symlink("s/..", bundle.join("up")).unwrap();
        assert!(std::fs::read_dir(bundle.join("up")).unwrap().count() > 0);
        assert_refused(&h, &bundle, "up", |r| {
            matches!(r, BundleRefusal::LinkOutside { .. })
        })
        .await;

        std::fs::remove_file(bundle.join("up")).unwrap();
        std::fs::create_dir(t.path().join("outside")).unwrap();
        std::fs::create_dir(bundle.join("lib")).unwrap();
        symlink("../../../outside", bundle.join("lib/out")).unwrap();
        assert_refused(&h, &bundle, "lib/out", |r| {
            matches!(r, BundleRefusal::LinkOutside { .. })
        })
        .await;
    }
}

#[tokio::test]
async fn an_absolute_link_is_refused_by_name() {
    for h in harnesses().await {
        let t = tempfile::tempdir().unwrap();
        let secret = host_secret(t.path());
        let bundle = t.path().join("b/tool");
        process_bundle(&bundle);
        symlink(&secret, bundle.join("bin/config")).unwrap();
        let message = assert_refused(
            &h,
            &bundle,
            "bin/config",
            |r| matches!(r, BundleRefusal::AbsoluteLink { target } if target == &secret),
        )
        .await;
        assert!(message.contains("absolute"), "{message}");
    }
}

/// A FIFO is refused by name without being opened (opening one for reading would block the
/// import until someone writes to it).
#[tokio::test]
async fn a_fifo_in_the_bundle_is_refused_by_name() {
    for h in harnesses().await {
        let t = tempfile::tempdir().unwrap();
        let bundle = t.path().join("b/tool");
        process_bundle(&bundle);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            bundle.join("bin/pipe").as_path(),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let message = assert_refused(&h, &bundle, "bin/pipe", |r| {
            matches!(r, BundleRefusal::Special { kind: "FIFO" })
        })
        .await;
        assert!(message.contains("FIFO"), "{message}");
    }
}

/// A hard link to a host file the bundle's owner cannot read (possible where
/// `fs.protected_hardlinks` is off): copying it would publish the file.
#[tokio::test]
async fn a_hard_link_to_a_private_host_file_is_refused() {
    for h in harnesses().await {
        let t = tempfile::tempdir().unwrap();
        let secret = host_secret(t.path());
        let bundle = t.path().join("b/tool");
        process_bundle(&bundle);
        // The bundle belongs to an ordinary user; the secret to root, mode 0600.
        rustix::fs::chown(bundle.as_path(), Some(rustix::fs::Uid::from_raw(65534)), None).unwrap();
        std::fs::hard_link(&secret, bundle.join("data.txt")).unwrap();
        assert_refused(&h, &bundle, "data.txt", |r| {
            matches!(r, BundleRefusal::ForeignHardLink { uid: 0, owner: 65534 })
        })
        .await;
        assert_no_secret_installed(&h.data_dir, &secret, h.label);

        // A world-readable file linked in is no secret: it imports.
        std::fs::remove_file(bundle.join("data.txt")).unwrap();
        let public = t.path().join("public.txt");
        std::fs::write(&public, "public").unwrap();
        std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::hard_link(&public, bundle.join("data.txt")).unwrap();
        h.rt.import(ImportSource::Bundle(bundle.clone()), &actor())
            .await
            .unwrap();
    }
}

/// Appends `path` to a tarball as a symlink to `target`.
fn tar_symlink(b: &mut tar::Builder<std::fs::File>, path: &str, target: &Path) {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    header.set_mode(0o777);
    b.append_link(&mut header, path, target).unwrap();
}

fn tar_file(b: &mut tar::Builder<std::fs::File>, path: &str, body: &str, mode: u32) {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(body.len() as u64);
    header.set_mode(mode);
    b.append_data(&mut header, path, body.as_bytes()).unwrap();
}

/// Appends a file whose header names `raw` exactly (the builder refuses `..`; an attacker's
/// tarball does not have to).
fn tar_raw_file(b: &mut tar::Builder<std::fs::File>, raw: &str, body: &str) {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..raw.len()].copy_from_slice(raw.as_bytes());
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(body.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    b.append(&header, body.as_bytes()).unwrap();
}

/// A tarball whose manifest is a link to a manifest outside: the import must not read it.
#[tokio::test]
async fn a_tarball_whose_manifest_is_a_link_is_refused() {
    for h in harnesses().await {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside.yaml");
        std::fs::write(&outside, DOCKER_MANIFEST).unwrap();
        let tarball = t.path().join("tool.tar");
        let mut b = tar::Builder::new(std::fs::File::create(&tarball).unwrap());
        tar_symlink(&mut b, "slovo.yaml", &outside);
        b.into_inner().unwrap().sync_all().unwrap();
        assert_refused(
            &h,
            &tarball,
            "slovo.yaml",
            // Refused as a link leading out, before the manifest is even looked for.
            |r| matches!(r, BundleRefusal::AbsoluteLink { target } if target == &outside),
        )
        .await;
        assert!(
            h.rt.store().tool("outside").await.unwrap().is_none(),
            "{}",
            h.label
        );

        // Pointing inside does not help: a manifest is read only as a regular file.
        let tarball = t.path().join("inner.tar");
        let mut b = tar::Builder::new(std::fs::File::create(&tarball).unwrap());
        tar_file(&mut b, "real.yaml", DOCKER_MANIFEST, 0o644);
        tar_symlink(&mut b, "slovo.yaml", Path::new("real.yaml"));
        b.into_inner().unwrap().sync_all().unwrap();
        assert_refused(&h, &tarball, "slovo.yaml", |r| {
            matches!(r, BundleRefusal::ManifestLink { .. })
        })
        .await;
    }
}

/// Unpacking writes nothing outside its own directory: not through a link entry, not through
/// `..`, not through an absolute path.
#[tokio::test]
async fn a_tarball_cannot_write_outside_its_directory() {
    for h in harnesses().await {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();

        let through_link = t.path().join("link.tar");
        let mut b = tar::Builder::new(std::fs::File::create(&through_link).unwrap());
        tar_file(&mut b, "slovo.yaml", PROCESS_MANIFEST, 0o644);
        tar_symlink(&mut b, "d", &outside);
        tar_file(&mut b, "d/pwned", "pwned", 0o644);
        b.into_inner().unwrap().sync_all().unwrap();
        assert_refused(&h, &through_link, "d", |r| {
            matches!(r, BundleRefusal::ThroughLink)
        })
        .await;

        let dotdot = t.path().join("dotdot.tar");
        let mut b = tar::Builder::new(std::fs::File::create(&dotdot).unwrap());
        tar_file(&mut b, "slovo.yaml", PROCESS_MANIFEST, 0o644);
        tar_raw_file(&mut b, "../../../../../../../../../../../../../../..", "pwned");
        b.into_inner().unwrap().sync_all().unwrap();
        assert_refused(&h, &dotdot, "../../../../../../../../../../../../../../..", |r| {
            matches!(r, BundleRefusal::PathOutside)
        })
        .await;

        let absolute = t.path().join("absolute.tar");
        let target = format!("{}/pwned", outside.display());
        let mut b = tar::Builder::new(std::fs::File::create(&absolute).unwrap());
        tar_raw_file(&mut b, &target, "pwned");
        b.into_inner().unwrap().sync_all().unwrap();
        assert_refused(&h, &absolute, &target, |r| {
            matches!(r, BundleRefusal::PathOutside)
        })
        .await;

        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "{}", h.label);
    }
}

/// What still works: links inside (the command reached through one), a dangling link, and the
/// same content as a directory and as a tarball installing under the same digest.
#[tokio::test]
async fn links_inside_and_tarballs_keep_working() {
    for h in harnesses().await {
        let t = tempfile::tempdir().unwrap();
        let bundle = t.path().join("b/tool");
        std::fs::create_dir_all(bundle.join("libexec")).unwrap();
        std::fs::create_dir_all(bundle.join("bin")).unwrap();
        std::fs::write(bundle.join("slovo.yaml"), PROCESS_MANIFEST).unwrap();
        std::fs::write(bundle.join("libexec/tool"), "#!/bin/sh\necho '{}'\n").unwrap();
        std::fs::set_permissions(
            bundle.join("libexec/tool"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        symlink("../libexec/tool", bundle.join("bin/tool")).unwrap();
        symlink("not-there", bundle.join("bin/dangling")).unwrap();
        h.rt.import(ImportSource::Bundle(bundle.clone()), &actor())
            .await
            .unwrap();
        let from_dir = installed(&h.data_dir);
        assert_eq!(from_dir.len(), 1, "{}", h.label);
        let installed_tool = h.data_dir.join("bundles").join(&from_dir[0]).join("bin/tool");
        assert_eq!(
            std::fs::read_link(&installed_tool).unwrap(),
            Path::new("../libexec/tool")
        );
        let mode = std::fs::metadata(&installed_tool).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o555, "{}", h.label);

        // The same content as a tarball (directories implied, not listed) is the same bundle.
        let tarball = t.path().join("tool.tar.gz");
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&tarball).unwrap(),
            flate2::Compression::fast(),
        );
        let mut b = tar::Builder::new(gz);
        for (path, src) in [("slovo.yaml", "slovo.yaml"), ("libexec/tool", "libexec/tool")] {
            b.append_path_with_name(bundle.join(src), path).unwrap();
        }
        for (path, target) in [("bin/tool", "../libexec/tool"), ("bin/dangling", "not-there")] {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            b.append_link(&mut header, path, target).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap();
        h.rt.import(ImportSource::Bundle(tarball), &actor())
            .await
            .unwrap();
        assert_eq!(installed(&h.data_dir), from_dir, "{}", h.label);
    }
}
