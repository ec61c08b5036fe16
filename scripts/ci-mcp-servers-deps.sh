#!/usr/bin/env bash
# Debian packages the MCP server tests need on a fresh machine.
#   nodejs, npm: the npm reference servers run with the system's /usr/bin/node; npm fetches them
#   python3, python3-pip: the PyPI servers and the hostile test server run with /usr/bin/python3;
#     pip fetches the wheels (scripts/ci-mcp-servers-setup.sh)
# Sourced by scripts/test.sh (appends to need_pkgs), or run directly (installs them).
mcp_pkgs=()
[ -x /usr/bin/node ] || mcp_pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || mcp_pkgs+=(npm)
[ -x /usr/bin/python3 ] || mcp_pkgs+=(python3)
python3 -m pip --version >/dev/null 2>&1 || /usr/bin/python3 -m pip --version >/dev/null 2>&1 || mcp_pkgs+=(python3-pip)

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  need_pkgs+=(${mcp_pkgs[@]+"${mcp_pkgs[@]}"})
elif [ ${#mcp_pkgs[@]} -gt 0 ]; then
  set -euo pipefail
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${mcp_pkgs[@]}"
fi
