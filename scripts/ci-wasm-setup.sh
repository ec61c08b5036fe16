#!/usr/bin/env bash
# The WebAssembly backend's tests compile their test tools for wasm32-wasip1
# (crates/slovo-sandbox/tests/wasm-tools); make sure the target's standard library is installed.
set -euo pipefail
if command -v rustup >/dev/null 2>&1; then
  if ! rustup target list --installed | grep -qx wasm32-wasip1; then
    printf '==> %s\n' "rustup target add wasm32-wasip1" >&2
    rustup target add wasm32-wasip1
  fi
else
  printf '==> %s\n' "no rustup: the wasm32-wasip1 target must already be installed for the wasm tests" >&2
fi
