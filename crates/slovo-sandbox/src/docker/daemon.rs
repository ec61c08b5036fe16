//! The daemon: where it is, connecting (with API version negotiation), a blocking probe for
//! `slovo doctor`, and the removal of containers left behind by a crash.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};

use super::container::{LABEL_MANAGED, LABEL_PID, LABEL_PID_START};
use super::error::{DockerError, Result, is_not_found};

/// The daemon's socket unless configured otherwise (`docker.host`, or `DOCKER_HOST`, read by
/// the configuration).
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// A client for the daemon at `host` (`unix://…`, `tcp://…`), with the API
/// version negotiated (older daemons speak older API versions). Fails with
/// [`DockerError::Unavailable`] if the daemon does not answer.
pub async fn connect(host: &str) -> Result<Docker> {
    let unavailable = |reason: String| DockerError::Unavailable {
        host: host.to_string(),
        reason,
    };
    let docker = Docker::connect_with_host(host)
        .map_err(|e| unavailable(e.to_string()))?
        // Calls bound their own time; the client's default (2 min) would cut long calls short.
        .with_timeout(Duration::from_secs(24 * 3600));
    let docker = tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
        .await
        .map_err(|_| unavailable("no answer within 10 s".to_string()))?
        .map_err(|e| unavailable(e.to_string()))?;
    Ok(docker)
}

/// What the daemon said about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonFacts {
    /// Engine version.
    pub version: String,
    /// Newest API version it speaks.
    pub api_version: String,
}

/// Asks the daemon at `host` for its version, without an async runtime (for `slovo doctor`).
/// Speaks plain HTTP/1.0 over the unix socket or TCP; other transports are reported as such.
pub fn probe_blocking(host: &str) -> Result<DaemonFacts, String> {
    let request = b"GET /version HTTP/1.0\r\nHost: docker\r\n\r\n";
    let timeout = Some(Duration::from_secs(3));
    let mut response = Vec::new();
    if let Some(path) = host.strip_prefix("unix://") {
        let mut s = std::os::unix::net::UnixStream::connect(path).map_err(|e| format!("{path}: {e}"))?;
        s.set_read_timeout(timeout).map_err(|e| e.to_string())?;
        s.write_all(request).map_err(|e| e.to_string())?;
        s.read_to_end(&mut response).map_err(|e| e.to_string())?;
    } else if let Some(addr) = host
        .strip_prefix("tcp://")
        .or_else(|| host.strip_prefix("http://"))
    {
        let mut s = std::net::TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
        s.set_read_timeout(timeout).map_err(|e| e.to_string())?;
        s.write_all(request).map_err(|e| e.to_string())?;
        s.read_to_end(&mut response).map_err(|e| e.to_string())?;
    } else {
        return Err(format!("DOCKER_HOST={host}: only unix:// and tcp:// are probed"));
    }
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if !head.starts_with("HTTP/1.") || head.split_whitespace().nth(1) != Some("200") {
        return Err(format!(
            "unexpected answer: {}",
            head.lines().next().unwrap_or("(empty)")
        ));
    }
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("bad /version answer: {e}"))?;
    let field = |k: &str| v[k].as_str().unwrap_or("?").to_string();
    Ok(DaemonFacts {
        version: field("Version"),
        api_version: field("ApiVersion"),
    })
}

/// This process's start time (clock ticks after boot), from `/proc/<pid>/stat`.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22; the command (field 2) may hold spaces, so count after its closing parenthesis.
    stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process that labelled a container is still alive (same pid, same start time).
pub fn owner_alive(labels: &HashMap<String, String>) -> bool {
    let Some(pid) = labels.get(LABEL_PID).and_then(|p| p.parse::<u32>().ok()) else {
        return false;
    };
    match (
        start_time(pid),
        labels.get(LABEL_PID_START).and_then(|s| s.parse::<u64>().ok()),
    ) {
        (Some(now), Some(then)) => now == then,
        _ => false,
    }
}

/// Removes (forcibly) every container carrying [`LABEL_MANAGED`] whose creating process is gone:
/// what a crash or a kill left behind. Containers of running Slovo processes are kept. Returns
/// the ids removed.
pub async fn remove_leftovers(docker: &Docker) -> Result<Vec<String>> {
    let mut filters = HashMap::new();
    filters.insert("label".to_string(), vec![format!("{LABEL_MANAGED}=1")]);
    let list = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .map_err(DockerError::api("list leftover containers"))?;
    let mut removed = Vec::new();
    for c in list {
        let (Some(id), labels) = (c.id, c.labels.unwrap_or_default()) else {
            continue;
        };
        if owner_alive(&labels) {
            continue;
        }
        match docker
            .remove_container(
                &id,
                Some(RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                }),
            )
            .await
        {
            Ok(()) => removed.push(id),
            Err(e) if is_not_found(&e) => {}
            // Another backend's start-up cleanup is removing it already.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => {}
            Err(e) => tracing::warn!(container = %id, error = %e, "failed to remove a leftover container"),
        }
    }
    if !removed.is_empty() {
        tracing::info!(count = removed.len(), "removed containers left behind by a crash");
    }
    Ok(removed)
}
