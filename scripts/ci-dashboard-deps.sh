# The dashboard's browser tests (crates/slovo-dashboard/tests/browser.rs) drive a headless
# Chromium through chromedriver, both from Debian. Sourced by scripts/test.sh.
need_pkgs+=(chromium chromium-driver)
