#!/usr/bin/env bash
# Builds the image slovo-example/echo:1.0 locally (no registry is contacted): a static C
# binary in a FROM-scratch image. Needs gcc with a static C library (Debian: gcc, libc6-dev)
# and a running Docker daemon.
set -euo pipefail
cd "$(dirname "$0")"
gcc -static -Os -o echo echo.c
log=$(mktemp)
trap 'rm -f "$log" echo' EXIT
# The classic builder: BuildKit would try to fetch its front end.
if ! DOCKER_BUILDKIT=0 docker build --quiet -t slovo-example/echo:1.0 . >"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi
echo "built slovo-example/echo:1.0"
