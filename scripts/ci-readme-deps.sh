#!/usr/bin/env bash
# Debian packages the README's walk-through uses (crates/slovo-cli/tests/readme.rs runs it):
#   curl: the REST call; python3: the stand-in light controller of examples/home-lights
# Sourced by scripts/test.sh (appends to need_pkgs), or run directly (installs them).
readme_pkgs=()
command -v curl >/dev/null 2>&1 || readme_pkgs+=(curl)
[ -x /usr/bin/python3 ] || command -v python3 >/dev/null 2>&1 || readme_pkgs+=(python3)

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  need_pkgs+=(${readme_pkgs[@]+"${readme_pkgs[@]}"})
elif [ ${#readme_pkgs[@]} -gt 0 ]; then
  set -euo pipefail
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${readme_pkgs[@]}"
fi
