#!/usr/bin/env bash
# Debian packages the Docker backend's tests and benchmark need on a fresh machine.
#   docker.io: the Docker Engine (dockerd, containerd, runc) and CLI; the tests talk to the
#              daemon through its API, the benchmark's baseline is a bare `docker run --rm`
#   gcc, libc6-dev: the hostile test tool is compiled with `gcc -static` (FROM-scratch images)
#   e2fsprogs, mount: mkfs.ext4 and loop mounts for the /data quota (shared with the process
#              sandbox)
# Sourced by scripts/test.sh (appends to need_pkgs), or run directly (installs them).
# SLOVO_TEST_SKIP_DOCKER=1 skips the Docker tests, and with it this install.
docker_pkgs=()
if [ "${SLOVO_TEST_SKIP_DOCKER:-0}" != "1" ]; then
  command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ] || [ -x /usr/bin/dockerd ] || docker_pkgs+=(docker.io)
  [ -x /usr/bin/gcc ] || docker_pkgs+=(gcc)
  [ -f /usr/lib/x86_64-linux-gnu/libc.a ] || [ -f /usr/lib/aarch64-linux-gnu/libc.a ] || docker_pkgs+=(libc6-dev)
  command -v mkfs.ext4 >/dev/null 2>&1 || [ -x /usr/sbin/mkfs.ext4 ] || [ -x /sbin/mkfs.ext4 ] || docker_pkgs+=(e2fsprogs)
fi

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  need_pkgs+=(${docker_pkgs[@]+"${docker_pkgs[@]}"})
elif [ ${#docker_pkgs[@]} -gt 0 ]; then
  set -euo pipefail
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${docker_pkgs[@]}"
fi
