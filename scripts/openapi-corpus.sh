#!/usr/bin/env bash
# The OpenAPI corpus check: every document of ../shared/corpus/openapi (see its README.md)
# imports with its operations. Runs the corpus tests of slovo-openapi (ignored by default,
# since the corpus is not part of the repository) and prints the corpus summary (documents,
# operations, capabilities, tools, repairs, failed operations) that docs/openapi.md quotes.
# Usage: scripts/openapi-corpus.sh [CORPUS_DIR]   (a missing corpus is reported, not an error)
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS="${1:-../shared/corpus/openapi}"
if [ ! -d "$CORPUS" ]; then
  echo "no OpenAPI corpus at $CORPUS: nothing to check (the in-repo fixtures run with cargo test)"
  exit 0
fi
CORPUS="$(cd "$CORPUS" && pwd)"
if [ "$CORPUS" = "$(cd ../shared/corpus/openapi 2>/dev/null && pwd)" ]; then
  cargo test -q -p slovo-openapi --test corpus -- --ignored --nocapture
else
  echo "(corpus tests skipped: they read ../shared/corpus/openapi only)"
fi
cargo run -q --release -p slovo-openapi --example corpus_report -- "$CORPUS" --quiet
