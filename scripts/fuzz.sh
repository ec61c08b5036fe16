#!/usr/bin/env bash
# Fuzzes the parsers that read untrusted input (docs/fuzzing.md): builds the targets in fuzz/
# with cargo-fuzz (libFuzzer), runs each for a bounded time from its committed seed corpus, and
# fails if any target crashes, hangs or runs out of memory.
#
#   bash scripts/fuzz.sh                      # every target, 60 s each
#   SLOVO_FUZZ_SECONDS=600 bash scripts/fuzz.sh openapi   # one target, longer
#
# Works on the stable toolchain: the coverage instrumentation libFuzzer needs uses stable
# codegen flags only; no sanitizer is compiled in (AddressSanitizer needs a nightly flag, and
# the code under test has no `unsafe` of its own for it to watch).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

seconds=${SLOVO_FUZZ_SECONDS:-60}
all_targets=(manifest openapi egress_http egress_socks bundle_tar)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi
cargo_fuzz_version=0.13.2
# The same build options for `build` and `run`, so that `run` finds the build up to date.
build_opts=(--sanitizer none --debug-assertions)
start=$SECONDS

# --- a C++ compiler: libfuzzer-sys builds libFuzzer from source ----------------------------------
if ! command -v c++ >/dev/null 2>&1; then
  log "installing g++ (libFuzzer is C++)"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends g++ >/dev/null
fi

# --- cargo-fuzz (from crates.io; cached in ~/.cargo/bin on later runs) -----------------------------
if ! cargo fuzz --version 2>/dev/null | grep -qF "$cargo_fuzz_version"; then
  log "installing cargo-fuzz $cargo_fuzz_version"
  cargo install --locked --quiet cargo-fuzz --version "$cargo_fuzz_version"
fi

log "building the fuzz targets"
cargo fuzz build "${build_opts[@]}"
build_seconds=$((SECONDS - start))
log "built in ${build_seconds}s"

# New inputs go to a scratch corpus; the committed seeds are only read. The bundle target's
# own files live under TMPDIR, so it points into the scratch directory too.
scratch=$(mktemp -d /tmp/slovo-fuzz.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
passed=0
failed=0
summary=()
for t in "${targets[@]}"; do
  seeds="fuzz/corpus/$t"
  [ -d "$seeds" ] || { log "no seed corpus for $t ($seeds)"; exit 2; }
  corpus="$scratch/corpus/$t"
  mkdir -p "$corpus" "$scratch/tmp"
  seed_count=$(find "$seeds" -type f | wc -l)
  log "fuzzing $t for ${seconds}s ($seed_count seeds)"
  out="$scratch/$t.log"
  touch "$scratch/started-$t"
  status=0
  # -timeout: one input taking 10 s is a hang; -rss_limit_mb: 2 GiB is a memory blow-up.
  TMPDIR="$scratch/tmp" cargo fuzz run "${build_opts[@]}" "$t" "$corpus" "$seeds" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 >"$out" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -n 1)
  per_second=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out" | tail -n 1)
  corpus_after=$(grep -o 'corp: [0-9]*' "$out" | tail -n 1 | grep -o '[0-9]*' || true)
  new=$(find "$corpus" -type f | wc -l)
  if [ "$status" -eq 0 ]; then
    passed=$((passed + 1))
    line="$t: ok, ${runs:-?} runs in ${seconds}s (${per_second:-?} exec/s), corpus $seed_count seeds -> ${corpus_after:-?} entries ($new new files)"
  else
    failed=$((failed + 1))
    line="$t: FAILED (exit $status)"
    tail -n 60 "$out" >&2
    # The inputs this run saved (crash-*, timeout-*, oom-*), not those of earlier runs.
    find "fuzz/artifacts/$t" -type f -newer "$scratch/started-$t" 2>/dev/null | while read -r crash; do
      # The input itself, so that a failure in CI can be reproduced from its log alone:
      #   base64 -d > input && cargo fuzz run --sanitizer none TARGET input
      log "input $crash ($(wc -c <"$crash") bytes), base64:"
      head -c 65536 "$crash" | base64 -w 0 >&2
      echo >&2
    done
  fi
  log "$line"
  summary+=("$line")
done

log "fuzzing took $((SECONDS - start))s in all (build ${build_seconds}s)"
printf '%s\n' "${summary[@]}"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
