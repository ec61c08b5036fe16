#!/usr/bin/env bash
# Debian packages the dashboard's browser tests need (crates/slovo-dashboard/tests/browser.rs):
#   chromium: the headless browser the tests drive
#   chromium-driver: chromedriver, the WebDriver server the tests talk to
# Sourced by scripts/test.sh (appends to need_pkgs), or run directly (installs them).
dashboard_pkgs=()
[ -x /usr/bin/chromium ] || dashboard_pkgs+=(chromium)
[ -x /usr/bin/chromedriver ] || dashboard_pkgs+=(chromium-driver)

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  need_pkgs+=(${dashboard_pkgs[@]+"${dashboard_pkgs[@]}"})
elif [ ${#dashboard_pkgs[@]} -gt 0 ]; then
  set -euo pipefail
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${dashboard_pkgs[@]}"
fi
