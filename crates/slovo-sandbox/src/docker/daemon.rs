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

/// Why [`probe_blocking`] got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The host is neither `unix://` nor `tcp://` (nor `http://`).
    #[error("DOCKER_HOST={host}: only unix:// and tcp:// are probed")]
    UnsupportedHost {
        /// The host as configured.
        host: String,
    },
    /// Connecting, asking or reading the answer failed.
    #[error("{endpoint}: {source}")]
    Io {
        /// The socket path or `host:port`.
        endpoint: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Something other than an HTTP 200 answer.
    #[error("unexpected answer: {status_line}")]
    UnexpectedAnswer {
        /// The answer's first line (`(empty)` for none).
        status_line: String,
    },
    /// A 200 answer whose body is not the JSON `/version` returns.
    #[error("bad /version answer: {0}")]
    BadVersion(#[source] serde_json::Error),
}

/// Asks the daemon at `host` for its version, without an async runtime (for `slovo doctor`).
/// Speaks plain HTTP/1.0 over the unix socket or TCP; other transports are reported as such.
pub fn probe_blocking(host: &str) -> std::result::Result<DaemonFacts, ProbeError> {
    let response = if let Some(path) = host.strip_prefix("unix://") {
        let stream = std::os::unix::net::UnixStream::connect(path)
            .and_then(|s| s.set_read_timeout(PROBE_READ_TIMEOUT).map(|()| s));
        ask_version(path, stream)
    } else if let Some(addr) = host
        .strip_prefix("tcp://")
        .or_else(|| host.strip_prefix("http://"))
    {
        let stream = std::net::TcpStream::connect(addr)
            .and_then(|s| s.set_read_timeout(PROBE_READ_TIMEOUT).map(|()| s));
        ask_version(addr, stream)
    } else {
        return Err(ProbeError::UnsupportedHost {
            host: host.to_string(),
        });
    }?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if !head.starts_with("HTTP/1.") || head.split_whitespace().nth(1) != Some("200") {
        return Err(ProbeError::UnexpectedAnswer {
            status_line: head.lines().next().unwrap_or("(empty)").to_string(),
        });
    }
    let v: serde_json::Value = serde_json::from_str(body).map_err(ProbeError::BadVersion)?;
    let field = |k: &str| v[k].as_str().unwrap_or("?").to_string();
    Ok(DaemonFacts {
        version: field("Version"),
        api_version: field("ApiVersion"),
    })
}

/// How long the probe waits for each read of the answer.
const PROBE_READ_TIMEOUT: Option<Duration> = Some(Duration::from_secs(3));

/// Sends `GET /version` on a fresh connection to `endpoint` and reads the whole answer (the
/// daemon closes the connection after an HTTP/1.0 answer).
fn ask_version<S: Read + Write>(
    endpoint: &str,
    connected: std::io::Result<S>,
) -> std::result::Result<Vec<u8>, ProbeError> {
    let io = |source| ProbeError::Io {
        endpoint: endpoint.to_string(),
        source,
    };
    let mut stream = connected.map_err(io)?;
    stream
        .write_all(b"GET /version HTTP/1.0\r\nHost: docker\r\n\r\n")
        .map_err(io)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(io)?;
    Ok(response)
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

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// A loopback "daemon" that answers one request with `answer`; returns its `tcp://` host.
    fn answering(answer: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        format!("tcp://127.0.0.1:{port}")
    }

    #[test]
    fn the_probe_says_what_was_wrong_with_the_answer() {
        let facts = probe_blocking(&answering(
            "HTTP/1.0 200 OK\r\n\r\n{\"Version\": \"27.1.0\", \"ApiVersion\": \"1.46\"}",
        ))
        .unwrap();
        assert_eq!(
            facts,
            DaemonFacts {
                version: "27.1.0".into(),
                api_version: "1.46".into()
            }
        );

        let err = probe_blocking(&answering("HTTP/1.0 500 Oops\r\n\r\n")).unwrap_err();
        assert!(
            matches!(&err, ProbeError::UnexpectedAnswer { status_line } if status_line == "HTTP/1.0 500 Oops"),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "unexpected answer: HTTP/1.0 500 Oops");

        let err = probe_blocking(&answering("HTTP/1.0 200 OK\r\n\r\nnot json")).unwrap_err();
        assert!(matches!(err, ProbeError::BadVersion(_)), "{err:?}");

        let err = probe_blocking("ssh://docker.example").unwrap_err();
        assert_eq!(
            err.to_string(),
            "DOCKER_HOST=ssh://docker.example: only unix:// and tcp:// are probed"
        );
    }

    #[test]
    fn a_daemon_that_is_not_there_is_an_io_error_naming_the_endpoint() {
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap().to_string();
        drop(closed);
        let err = probe_blocking(&format!("tcp://{addr}")).unwrap_err();
        assert!(
            matches!(&err, ProbeError::Io { endpoint, source } if *endpoint == addr && source.kind() == std::io::ErrorKind::ConnectionRefused),
            "{err:?}"
        );
        assert!(err.to_string().starts_with(&format!("{addr}: ")), "{err}");
    }
}
