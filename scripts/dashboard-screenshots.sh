#!/usr/bin/env bash
# Takes the screenshots in docs/screenshots/ from the dashboard's browser tests (headless
# Chromium; install it with scripts/ci-dashboard-deps.sh). Run from the repository root.
set -euo pipefail
out="$(pwd)/docs/screenshots"
mkdir -p "$out"
for test in browser browser_decisions; do
    SLOVO_DASHBOARD_SCREENSHOTS="$out" cargo test -p slovo-dashboard --test "$test" -- --test-threads=1
done
ls -1 "$out"
