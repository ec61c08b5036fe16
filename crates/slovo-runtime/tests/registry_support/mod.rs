//! A package registry for the online fetch test, on test hosts in a network namespace the test
//! creates: an npm registry (packuments and tarballs) and a PyPI simple index (wheels), built
//! from the real packages `scripts/ci-mcp-servers-setup.sh` cached.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::netns_support::ip;

/// Two test hosts in one network namespace, reached from the host over a veth pair:
/// 198.51.100.254 (the registry) and 198.51.100.255 (another host), the host's end at
/// 198.51.100.253. Only addresses of 198.51.100.252/30 are used. Removed on drop.
pub struct TwoHosts {
    ns: String,
    veth: String,
    /// The registry's address.
    pub registry: String,
    /// The other host's address.
    pub other: String,
}

impl TwoHosts {
    pub fn new() -> TwoHosts {
        let tag = std::process::id() % 100_000;
        let ns = format!("slovo-reg{tag}");
        let veth = format!("sreg{tag}");
        let peer = format!("{veth}p");
        ip(&["netns", "add", &ns]);
        let hosts = TwoHosts {
            ns: ns.clone(),
            veth: veth.clone(),
            registry: "198.51.100.254".into(),
            other: "198.51.100.255".into(),
        };
        ip(&["link", "add", &veth, "type", "veth", "peer", "name", &peer]);
        ip(&["link", "set", &peer, "netns", &ns]);
        // Single addresses and explicit routes: no subnet, so no broadcast address either.
        ip(&["addr", "add", "198.51.100.253/32", "dev", &veth]);
        ip(&["link", "set", &veth, "up"]);
        ip(&[
            "route",
            "add",
            "198.51.100.254/31",
            "dev",
            &veth,
            "src",
            "198.51.100.253",
        ]);
        for addr in ["198.51.100.254/32", "198.51.100.255/32"] {
            ip(&["-n", &ns, "addr", "add", addr, "dev", &peer]);
        }
        ip(&["-n", &ns, "link", "set", &peer, "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ip(&["-n", &ns, "route", "add", "198.51.100.253/32", "dev", &peer]);
        hosts
    }

    /// Binds a listener on `addr` inside the namespace.
    pub fn listen(&self, addr: &str) -> TcpListener {
        let path = format!("/run/netns/{}", self.ns);
        let addr = addr.to_string();
        std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            let file = std::fs::File::open(path).unwrap();
            // SAFETY: joining a network namespace on this thread only.
            assert_eq!(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
            TcpListener::bind((addr.as_str(), 0)).unwrap()
        })
        .join()
        .unwrap()
    }
}

impl Drop for TwoHosts {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.veth])
            .status();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.ns])
            .status();
    }
}

/// One version of an npm package, as its lockfile entry gives it.
struct NpmVersion {
    version: String,
    integrity: String,
    /// `dependencies`, `peerDependencies`, … as locked.
    fields: Map<String, Value>,
}

/// What the registry serves.
pub struct Packages {
    /// Package name → its versions.
    npm: BTreeMap<String, Vec<NpmVersion>>,
    /// Hex of a tarball's SHA-512 → the tarball in npm's cache.
    tarballs: HashMap<String, PathBuf>,
    /// Normalized project name → its wheels.
    wheels: BTreeMap<String, Vec<PathBuf>>,
}

impl Packages {
    /// The packages of an installed npm bundle's `lockfile` (their tarballs found in the npm
    /// cache by their integrity) and every wheel of `wheelhouse`.
    pub fn load(lockfile: &Path, npm_cache: &Path, wheelhouse: &Path) -> Packages {
        let lock: Value = serde_json::from_slice(&std::fs::read(lockfile).unwrap()).unwrap();
        let mut npm: BTreeMap<String, Vec<NpmVersion>> = BTreeMap::new();
        let mut tarballs = HashMap::new();
        for (path, entry) in lock["packages"].as_object().unwrap() {
            let Some((_, name)) = path.rsplit_once("node_modules/") else {
                continue;
            };
            let integrity = entry["integrity"].as_str().unwrap().to_string();
            let hex = integrity_hex(&integrity);
            let file = npm_cache
                .join("_cacache/content-v2/sha512")
                .join(&hex[..2])
                .join(&hex[2..4])
                .join(&hex[4..]);
            assert!(file.is_file(), "{name}: not in the npm cache: {}", file.display());
            tarballs.insert(hex, file);
            let mut fields = Map::new();
            for key in [
                "dependencies",
                "optionalDependencies",
                "peerDependencies",
                "peerDependenciesMeta",
                "engines",
                "os",
                "cpu",
            ] {
                if let Some(v) = entry.get(key) {
                    fields.insert(key.into(), v.clone());
                }
            }
            let version = entry["version"].as_str().unwrap().to_string();
            let versions = npm.entry(name.to_string()).or_default();
            if !versions.iter().any(|v| v.version == version) {
                versions.push(NpmVersion {
                    version,
                    integrity,
                    fields,
                });
            }
        }
        let mut wheels: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
        for entry in std::fs::read_dir(wheelhouse).unwrap() {
            let path = entry.unwrap().path();
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            if let Some(project) = file.strip_suffix(".whl").and_then(|f| f.split('-').next()) {
                wheels.entry(normalized(project)).or_default().push(path);
            }
        }
        Packages {
            npm,
            tarballs,
            wheels,
        }
    }

    /// The integrity of `name` (its only locked version).
    pub fn npm_integrity(&self, name: &str) -> String {
        self.npm[name][0].integrity.clone()
    }

    /// The wheel of `project`.
    pub fn wheel(&self, project: &str) -> PathBuf {
        self.wheels[&normalized(project)][0].clone()
    }

    /// The packument of `name`, its tarballs at `tarball_base` (`http://host:port`).
    fn packument(&self, name: &str, tarball_base: &str) -> Option<Value> {
        let versions = self.npm.get(name)?;
        let mut out = Map::new();
        for v in versions {
            let mut doc = v.fields.clone();
            doc.insert("name".into(), json!(name));
            doc.insert("version".into(), json!(v.version));
            doc.insert(
                "dist".into(),
                json!({
                    "tarball": format!("{tarball_base}/tarballs/{}.tgz", integrity_hex(&v.integrity)),
                    "integrity": v.integrity,
                }),
            );
            out.insert(v.version.clone(), Value::Object(doc));
        }
        let latest = versions
            .iter()
            .map(|v| semver::Version::parse(&v.version).unwrap())
            .max()
            .unwrap();
        Some(json!({"name": name, "dist-tags": {"latest": latest.to_string()}, "versions": out}))
    }

    /// The PEP 503 page of `project`, each wheel with its SHA-256.
    fn simple_page(&self, project: &str) -> Option<String> {
        let wheels = self.wheels.get(&normalized(project))?;
        let mut page = String::from("<!DOCTYPE html><html><body>\n");
        for w in wheels {
            let file = w.file_name().unwrap().to_string_lossy();
            let sha = hex::encode(Sha256::digest(std::fs::read(w).unwrap()));
            page.push_str(&format!("<a href=\"/wheels/{file}#sha256={sha}\">{file}</a>\n"));
        }
        page.push_str("</body></html>\n");
        Some(page)
    }
}

/// A project name as PEP 503 compares it.
fn normalized(name: &str) -> String {
    name.to_ascii_lowercase().replace(['_', '.'], "-")
}

/// `sha512-BASE64` → the digest in hex (npm's cache names its content by it).
fn integrity_hex(integrity: &str) -> String {
    let b64 = integrity.strip_prefix("sha512-").unwrap();
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in b64.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c).unwrap() as u32;
        bits = (bits << 6) | v;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    hex::encode(out)
}

/// What the registry does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Serves its packages as they are.
    Honest,
    /// Its packuments name another host (`host:port`) for every tarball.
    TarballsAt(String),
    /// It serves the memory server's tarball with one byte of its gzip header changed.
    Tampered,
}

/// A registry (or another host) being served.
pub struct Served {
    /// Its `host:port`.
    pub authority: String,
    /// The request heads it saw.
    pub heads: Arc<Mutex<Vec<String>>>,
    /// What it does (honest to begin with).
    pub mode: Arc<Mutex<Mode>>,
}

/// Serves `packages` on `addr` (inside `hosts`' namespace) on a port of its own.
pub fn serve(hosts: &TwoHosts, addr: &str, packages: Arc<Packages>) -> Served {
    let listener = hosts.listen(addr);
    let authority = format!("{addr}:{}", listener.local_addr().unwrap().port());
    let heads = Arc::new(Mutex::new(Vec::new()));
    let mode = Arc::new(Mutex::new(Mode::Honest));
    let (h, m, me) = (heads.clone(), mode.clone(), authority.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let (h, m, p, me) = (h.clone(), m.clone(), packages.clone(), me.clone());
            std::thread::spawn(move || answer(stream, &h, &m, &p, &me));
        }
    });
    Served {
        authority,
        heads,
        mode,
    }
}

fn answer(mut s: TcpStream, heads: &Mutex<Vec<String>>, mode: &Mutex<Mode>, packages: &Packages, me: &str) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    heads.lock().unwrap().push(head.clone());
    let target = head.split(' ').nth(1).unwrap_or("/");
    // A proxy may forward the absolute form.
    let path = match target.strip_prefix("http://") {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    let mode = mode.lock().unwrap().clone();
    let (status, body, kind) = respond(path, &mode, packages, me);
    let _ = s.write_all(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let _ = s.write_all(&body);
}

fn respond(path: &str, mode: &Mode, packages: &Packages, me: &str) -> (&'static str, Vec<u8>, &'static str) {
    let not_found = ("404 Not Found", b"not found".to_vec(), "text/plain");
    if let Some(file) = path.strip_prefix("/tarballs/") {
        let Some(tarball) = file
            .strip_suffix(".tgz")
            .and_then(|hex| packages.tarballs.get(hex))
        else {
            return not_found;
        };
        let mut bytes = std::fs::read(tarball).unwrap();
        let memory = integrity_hex(&packages.npm_integrity("@modelcontextprotocol/server-memory"));
        if *mode == Mode::Tampered && file.starts_with(&memory) {
            // A byte of the gzip header's modification time: the archive still decompresses
            // (no header checksum: FHCRC is not set), so only the integrity check can refuse
            // it. A byte of the body or trailer could make zlib fail first, racing the check.
            assert_eq!(bytes[..3], [0x1f, 0x8b, 8], "a gzip stream");
            assert_eq!(bytes[3] & 0x02, 0, "no header checksum");
            bytes[4] ^= 0xff;
        }
        return ("200 OK", bytes, "application/octet-stream");
    }
    if let Some(rest) = path.strip_prefix("/wheels/") {
        let file = rest.split('#').next().unwrap_or(rest);
        let found = packages
            .wheels
            .values()
            .flatten()
            .find(|w| w.file_name().is_some_and(|f| f == file));
        return match found {
            Some(w) => ("200 OK", std::fs::read(w).unwrap(), "application/octet-stream"),
            None => not_found,
        };
    }
    if let Some(rest) = path.strip_prefix("/simple/") {
        return match packages.simple_page(rest.trim_end_matches('/')) {
            Some(page) => ("200 OK", page.into_bytes(), "text/html"),
            None => not_found,
        };
    }
    let name = path
        .trim_start_matches('/')
        .replace("%2f", "/")
        .replace("%2F", "/")
        .replace("%40", "@");
    let base = match mode {
        Mode::TarballsAt(other) => format!("http://{other}"),
        _ => format!("http://{me}"),
    };
    match packages.packument(&name, &base) {
        Some(doc) => ("200 OK", doc.to_string().into_bytes(), "application/json"),
        None => not_found,
    }
}
