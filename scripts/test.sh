#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs the system packages the tests use,
# starts a private PostgreSQL server, then runs every test against SQLite and PostgreSQL.
#
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh -p slovo-core   # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

# --- system packages -------------------------------------------------------------------------
need_pkgs=()
command -v /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_pkgs+=(postgresql)
for extra in scripts/ci-*-deps.sh; do
  [ -f "$extra" ] && source "$extra"   # each may append to need_pkgs
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing: ${need_pkgs[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi
for hook in scripts/ci-*-setup.sh; do
  [ -f "$hook" ] && bash "$hook"
done

# --- PostgreSQL: a private cluster on a private port, removed on exit ---------------------------
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
# A free port, so that two runs on one machine never share a server.
pg_port=${SLOVO_TEST_PG_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
pg_dir=$(mktemp -d /tmp/slovo-test-pg.XXXXXX)
chmod 755 "$pg_dir"
as_pg() {
  # PostgreSQL refuses to run as root; use the postgres account when we are root.
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ "$(id -u)" -eq 0 ]; then chown postgres "$pg_dir"; fi
stop_pg() {
  as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$pg_dir"
}
trap stop_pg EXIT
log "starting PostgreSQL ($("$pg_bin/postgres" --version)) on 127.0.0.1:$pg_port"
as_pg "$pg_bin/initdb" -D "$pg_dir/data" -U slovo --auth=trust -E UTF8 >/dev/null
as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
  -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400" start >/dev/null
export SLOVO_TEST_DATABASE_URL="postgres://slovo@127.0.0.1:$pg_port/postgres"

# --- tests ------------------------------------------------------------------------------------
full=0
if [ $# -eq 0 ]; then set -- --workspace; full=1; fi
log "cargo test $*"
cargo test "$@"

# The process sandbox's suite again, on cgroup v2, in a VM (this machine's cgroups are v1).
if [ "$full" -eq 1 ] && [ "${SLOVO_TEST_SKIP_VM:-0}" != "1" ] && [ "$(uname -m)" = "x86_64" ]; then
  bash scripts/test-cgroup2-vm.sh
fi

# The MCP server against the official Python SDK (from PyPI, in a throwaway venv).
if [ "$full" -eq 1 ]; then
  log "MCP check with the Python SDK"
  SLOVO_BIN="$(pwd)/target/debug/slovo" bash scripts/mcp-python-check.sh
fi
