#!/usr/bin/env bash
# Makes sure a Docker daemon answers, for the Docker backend's tests and benchmark.
# Run by scripts/test.sh before the tests (as root, on a fresh Debian machine where dockerd is
# installed by scripts/ci-docker-deps.sh but not running). If `docker info` already works, it
# does nothing; otherwise it starts `dockerd` in the background, logging to
# $SLOVO_DOCKERD_LOG (default /var/log/slovo-dockerd.log), and waits up to
# $SLOVO_DOCKERD_WAIT seconds (default 60) for the daemon to answer.
# SLOVO_TEST_SKIP_DOCKER=1 skips it (and the Docker tests).
set -euo pipefail

log() { printf '==> %s\n' "$*" >&2; }

if [ "${SLOVO_TEST_SKIP_DOCKER:-0}" = "1" ]; then
  log "SLOVO_TEST_SKIP_DOCKER=1: not starting dockerd"
  exit 0
fi

answers() {
  if command -v docker >/dev/null 2>&1; then
    docker info >/dev/null 2>&1
  else
    # No CLI: ask the API directly.
    local sock=${DOCKER_HOST#unix://}
    [ -n "${DOCKER_HOST:-}" ] || sock=/var/run/docker.sock
    [ -S "$sock" ] && command -v curl >/dev/null 2>&1 &&
      curl -fsS --unix-socket "$sock" http://localhost/_ping >/dev/null 2>&1
  fi
}

if answers; then
  log "Docker daemon already running"
  exit 0
fi

dockerd_bin=$(command -v dockerd || true)
[ -n "$dockerd_bin" ] || { [ -x /usr/sbin/dockerd ] && dockerd_bin=/usr/sbin/dockerd; } || true
if [ -z "$dockerd_bin" ]; then
  log "dockerd is not installed (scripts/ci-docker-deps.sh installs docker.io); set SLOVO_TEST_SKIP_DOCKER=1 to skip the Docker tests"
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  log "starting dockerd needs root; start the Docker daemon or set SLOVO_TEST_SKIP_DOCKER=1"
  exit 1
fi

logfile=${SLOVO_DOCKERD_LOG:-/var/log/slovo-dockerd.log}
wait_s=${SLOVO_DOCKERD_WAIT:-60}
mkdir -p "$(dirname "$logfile")"
# A stale pid file or socket from a daemon that died would stop a new one from starting.
if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
  rm -f /var/run/docker.pid
fi
log "starting $dockerd_bin (log: $logfile)"
# setsid + nohup: the daemon outlives this script and the test run's shell.
setsid nohup "$dockerd_bin" >>"$logfile" 2>&1 </dev/null &
pid=$!
for _ in $(seq 1 "$((wait_s * 2))"); do
  if answers; then
    log "Docker daemon ready (pid $pid)"
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    log "dockerd exited; last lines of $logfile:"
    tail -n 30 "$logfile" >&2 || true
    exit 1
  fi
  sleep 0.5
done
log "dockerd did not answer within ${wait_s}s; last lines of $logfile:"
tail -n 30 "$logfile" >&2 || true
exit 1
