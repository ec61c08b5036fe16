#!/usr/bin/env bash
# Debian packages the process-sandbox tests and benchmark need on a fresh machine.
#   gcc, libc6-dev: the hostile test tool is compiled with `gcc -static` at test time
#   e2fsprogs, mount: mkfs.ext4 and loop mounts for the storage quota
#   iproute2: `ip netns` and veth pairs for the network containment test
#   python3: a test runs Debian's /usr/bin/python3 through the read-only system paths
#   bubblewrap: the baseline of `cargo bench -p slovo-sandbox --bench process_call`
# Sourced by scripts/test.sh (appends to need_pkgs), or run directly (installs them).
sandbox_pkgs=()
[ -x /usr/bin/gcc ] || sandbox_pkgs+=(gcc)
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || [ -f /usr/lib/aarch64-linux-gnu/libc.a ] || sandbox_pkgs+=(libc6-dev)
command -v mkfs.ext4 >/dev/null 2>&1 || [ -x /usr/sbin/mkfs.ext4 ] || [ -x /sbin/mkfs.ext4 ] || sandbox_pkgs+=(e2fsprogs)
command -v mount >/dev/null 2>&1 || [ -x /usr/bin/mount ] || sandbox_pkgs+=(mount)
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || sandbox_pkgs+=(iproute2)
[ -x /usr/bin/python3 ] || sandbox_pkgs+=(python3)
[ -x /usr/bin/bwrap ] || sandbox_pkgs+=(bubblewrap)

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  need_pkgs+=(${sandbox_pkgs[@]+"${sandbox_pkgs[@]}"})
elif [ ${#sandbox_pkgs[@]} -gt 0 ]; then
  set -euo pipefail
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${sandbox_pkgs[@]}"
fi
