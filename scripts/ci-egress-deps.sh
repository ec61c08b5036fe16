#!/usr/bin/env bash
# Debian packages the egress (network grant) tests need on a fresh machine.
#   iproute2: `ip netns` and veth pairs for the test hosts "outside" (198.51.100.0/24)
#   python3: a test tool that follows a redirect through the proxy with urllib
#   gcc, libc6-dev: the hostile tool (raw TCP/UDP attempts, raw proxy requests)
# Sourced by scripts/test.sh (appends to need_pkgs), or run directly (installs them).
egress_pkgs=()
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || egress_pkgs+=(iproute2)
[ -x /usr/bin/python3 ] || egress_pkgs+=(python3)
[ -x /usr/bin/gcc ] || egress_pkgs+=(gcc)
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || [ -f /usr/lib/aarch64-linux-gnu/libc.a ] || egress_pkgs+=(libc6-dev)

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  need_pkgs+=(${egress_pkgs[@]+"${egress_pkgs[@]}"})
elif [ ${#egress_pkgs[@]} -gt 0 ]; then
  set -euo pipefail
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${egress_pkgs[@]}"
fi
