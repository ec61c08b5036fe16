#!/usr/bin/env bash
# The first run of Slovo Tools, in a fresh private data directory: import a tool, approve it with
# less than it asked for, call it in its sandbox, look at the call's record and verify the audit
# trail. Uses only files of this repository and works without root (the tool is WebAssembly).
#
#   bash examples/quickstart.sh                 # builds `slovo` (release) first
#   SLOVO_BIN=target/debug/slovo bash examples/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${SLOVO_BIN:-}" ]; then
  slovo=$SLOVO_BIN
else
  echo "building slovo (cargo build --release -p slovo-cli; the first build takes a few minutes)…"
  cargo build --release --quiet -p slovo-cli
  slovo=target/release/slovo
fi

# A data directory of its own (mktemp makes it 0700): nothing of an existing installation is
# touched, and the configuration of the invoking shell does not leak in.
data=$(mktemp -d "${TMPDIR:-/tmp}/slovo-quickstart.XXXXXX")
unset SLOVO_DATABASE_URL
export SLOVO_DATA_DIR=$data

if [ -t 1 ]; then bold=$'\e[1m' plain=$'\e[0m'; else bold='' plain=''; fi
run() {
  local shown=''
  for arg in "$@"; do
    if [[ $arg =~ [^A-Za-z0-9_./:=-] ]]; then shown+=" '$arg'"; else shown+=" $arg"; fi
  done
  printf '\n%s$ slovo%s%s\n' "$bold" "$shown" "$plain"
  "$slovo" "$@"
}

run tool import examples/text-stats
run tool approve text-stats --memory 32M --timeout 2 --no-network
run call text-stats stats --args '{"text": "The quick brown fox jumps over the lazy dog. The dog sleeps.", "top": 2}'
run executions --tool text-stats
run audit verify

cat <<MSG

${bold}That was one tool, approved with 32 MB instead of the 64 MB it asked for, run in a
WebAssembly sandbox and recorded on a hash-chained audit trail.${plain}

Its data directory is $data (the SQLite database and the tool's bundle; rm -rf removes it).
Next:
  export SLOVO_DATA_DIR=$data
  $slovo tool show text-stats          # requested versus granted
  $slovo doctor                        # what this host gives each sandbox backend
  $slovo tool import examples/unit-converter   # a process tool (Linux sandbox; as root)
  $slovo resolve "count the words of this text"
The README's "A session" walks through every kind of tool.
MSG
