#!/usr/bin/env bash
# The MCP server checked with the official Python `mcp` SDK from PyPI, over streamable HTTP
# (`slovo serve`, /mcp) and stdio (`slovo mcp`). See scripts/mcp_check.py for what is checked.
#
#   bash scripts/mcp-python-check.sh              # builds slovo (debug), makes a throwaway venv
#   SLOVO_BIN=target/release/slovo bash scripts/mcp-python-check.sh   # use an existing binary
#   MCP_PY_VERSION='mcp==2.3.0' bash scripts/mcp-python-check.sh      # pin the SDK
#
# Prints `N passed, M failed` last; exits non-zero when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

venv=$(mktemp -d /tmp/slovo-mcp-venv.XXXXXX)
trap 'rm -rf "$venv"' EXIT

log "creating a venv and installing ${MCP_PY_VERSION:-mcp} from PyPI"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "${MCP_PY_VERSION:-mcp}"
"$venv/bin/python" -c 'import importlib.metadata as m; print("mcp", m.version("mcp"))' >&2

if [ -z "${SLOVO_BIN:-}" ]; then
  log "building slovo"
  cargo build --quiet -p slovo-cli --bin slovo
  SLOVO_BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/slovo
fi

log "checking $SLOVO_BIN"
"$venv/bin/python" scripts/mcp_check.py --slovo "$SLOVO_BIN"
