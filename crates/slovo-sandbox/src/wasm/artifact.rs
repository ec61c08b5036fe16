//! Precompiled modules: compiled once at install, loaded (never compiled) by calls.
//!
//! An artifact lives in the cache directory as `<module sha256>-<engine fingerprint>.cwasm`,
//! next to a `.json` record of what it was made from and its own SHA-256. A call loads an
//! artifact only if the record names the module's hash, this engine's fingerprint and the
//! artifact's exact bytes; wasmtime then checks its own version and settings in the artifact's
//! header. So a module changed on disk, a newer wasmtime, another setting or a damaged file is
//! never loaded: the call fails with "not installed" and the tool is installed again.

use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

/// Largest module accepted (bytes).
pub(crate) const MAX_MODULE_BYTES: u64 = 256 * 1024 * 1024;

/// The record kept next to an artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ArtifactRecord {
    /// SHA-256 of the module it was compiled from.
    pub module_sha256: String,
    /// The engine fingerprint it was compiled for.
    pub engine: String,
    /// SHA-256 of the artifact's bytes.
    pub artifact_sha256: String,
}

/// Where a module's artifact and record live.
#[derive(Debug, Clone)]
pub(crate) struct ArtifactPaths {
    pub artifact: PathBuf,
    pub record: PathBuf,
}

impl ArtifactPaths {
    pub(crate) fn new(cache_dir: &Path, module_sha256: &str, engine: &str) -> ArtifactPaths {
        let stem = format!("{module_sha256}-{engine}");
        ArtifactPaths {
            artifact: cache_dir.join(format!("{stem}.cwasm")),
            record: cache_dir.join(format!("{stem}.json")),
        }
    }
}

/// The module file of a bundle, refusing paths that leave it.
pub(crate) fn module_path(bundle_dir: &Path, module: &str) -> Result<PathBuf, String> {
    let rel = Path::new(module);
    if rel.as_os_str().is_empty()
        || !rel
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "execution.module {module:?} must be a relative path inside the bundle"
        ));
    }
    Ok(bundle_dir.join(rel))
}

/// A module's bytes and SHA-256.
pub(crate) fn read_module(path: &Path) -> Result<(Vec<u8>, String), String> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot open module {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_MODULE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read module {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_MODULE_BYTES {
        return Err(format!(
            "module {} is larger than {} MiB",
            path.display(),
            MAX_MODULE_BYTES / 1024 / 1024
        ));
    }
    let sha = hex::encode(Sha256::digest(&bytes));
    Ok((bytes, sha))
}

/// What compiling did.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    pub module: Module,
    pub paths: ArtifactPaths,
    pub record: ArtifactRecord,
    /// Milliseconds spent compiling, or `None` when a valid artifact was reused.
    pub compile_ms: Option<u64>,
}

/// Compiles `bytes` for `engine` into the cache (or reuses a valid artifact), and returns the
/// loaded module.
pub(crate) fn compile(
    engine: &Engine,
    fingerprint: &str,
    cache_dir: &Path,
    bytes: &[u8],
    module_sha256: &str,
) -> Result<Compiled, String> {
    const CORE: [u8; 8] = *b"\0asm\x01\0\0\0";
    const COMPONENT: [u8; 8] = *b"\0asm\x0d\0\x01\0";
    if bytes.starts_with(&COMPONENT) {
        return Err(
            "this is a WebAssembly component (WASI preview 2); only core modules are supported for now: \
             build the tool for wasm32-wasip1"
                .into(),
        );
    }
    if !bytes.starts_with(&CORE) {
        return Err("this is not a WebAssembly module (no `\\0asm` version 1 header)".into());
    }
    let paths = ArtifactPaths::new(cache_dir, module_sha256, fingerprint);
    if let Ok(module) = load(engine, fingerprint, &paths, module_sha256) {
        let record = read_record(&paths.record)?;
        return Ok(Compiled {
            module,
            paths,
            record,
            compile_ms: None,
        });
    }
    let clock = Instant::now();
    let artifact = engine
        .precompile_module(bytes)
        .map_err(|e| format!("failed to compile the module: {e:#}"))?;
    let compile_ms = u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX);
    std::fs::create_dir_all(cache_dir).map_err(|e| format!("cannot create {}: {e}", cache_dir.display()))?;
    let record = ArtifactRecord {
        module_sha256: module_sha256.to_string(),
        engine: fingerprint.to_string(),
        artifact_sha256: hex::encode(Sha256::digest(&artifact)),
    };
    let record_json =
        serde_json::to_vec_pretty(&record).map_err(|e| format!("cannot encode the artifact record: {e}"))?;
    // Artifact first, record last: a record only ever names a complete artifact.
    write_atomically(&paths.artifact, &artifact)?;
    write_atomically(&paths.record, &record_json)?;
    let module = load(engine, fingerprint, &paths, module_sha256)?;
    Ok(Compiled {
        module,
        paths,
        record,
        compile_ms: Some(compile_ms),
    })
}

/// Loads a verified artifact; never compiles.
pub(crate) fn load(
    engine: &Engine,
    fingerprint: &str,
    paths: &ArtifactPaths,
    module_sha256: &str,
) -> Result<Module, String> {
    let record = read_record(&paths.record)?;
    if record.module_sha256 != module_sha256 || record.engine != fingerprint {
        return Err(format!(
            "the artifact record {} is for another module or engine",
            paths.record.display()
        ));
    }
    let bytes = std::fs::read(&paths.artifact)
        .map_err(|e| format!("cannot read artifact {}: {e}", paths.artifact.display()))?;
    if hex::encode(Sha256::digest(&bytes)) != record.artifact_sha256 {
        return Err(format!(
            "artifact {} does not match its record (damaged or replaced)",
            paths.artifact.display()
        ));
    }
    // SAFETY: `Module::deserialize` trusts its input to be wasmtime's own output. These bytes
    // are exactly the artifact this backend wrote at install for this module and this engine
    // fingerprint (checked against the record above, in memory, so nothing can change them
    // between the check and the load), and wasmtime itself refuses an artifact whose header
    // names another wasmtime version or other settings.
    unsafe { Module::deserialize(engine, &bytes) }
        .map_err(|e| format!("cannot load artifact {}: {e:#}", paths.artifact.display()))
}

fn read_record(path: &Path) -> Result<ArtifactRecord, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("no artifact record {}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("unreadable artifact record {}: {e}", path.display()))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_paths_stay_inside_the_bundle() {
        let b = Path::new("/b");
        assert_eq!(
            module_path(b, "tool.wasm").unwrap(),
            PathBuf::from("/b/tool.wasm")
        );
        assert_eq!(
            module_path(b, "bin/t.wasm").unwrap(),
            PathBuf::from("/b/bin/t.wasm")
        );
        for bad in ["../t.wasm", "/etc/t.wasm", "a/../../t.wasm", ""] {
            assert!(module_path(b, bad).is_err(), "{bad}");
        }
    }
}
