#!/usr/bin/env bash
# Builds text_stats.wasm reproducibly: the same toolchain gives the same bytes on any machine
# and in any checkout folder (paths in the binary are remapped). Needs the wasm32-wasip1 target
# (`rustup target add wasm32-wasip1`).
set -euo pipefail
cd "$(dirname "$0")"
cargo_home=${CARGO_HOME:-$HOME/.cargo}
RUSTFLAGS="--remap-path-prefix=$(pwd)=/text-stats --remap-path-prefix=$cargo_home=/cargo" \
  cargo build --quiet --locked --release --target wasm32-wasip1 --target-dir target
cp target/wasm32-wasip1/release/text-stats.wasm text_stats.wasm
sha256sum text_stats.wasm
