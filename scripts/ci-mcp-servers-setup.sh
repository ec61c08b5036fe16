#!/usr/bin/env bash
# The MCP server tests (crates/slovo-runtime/tests/mcp_servers.rs) run real reference servers
# from npm and PyPI without touching the internet: this script fetches them once, at pinned
# versions, into a cache, and installs each offline (npm with install scripts disabled, PyPI
# wheels only) into a bundle directory the tests import.
#
#   ${XDG_CACHE_HOME:-$HOME/.cache}/slovo-test/mcp/
#     npm-cache/             npm's cache (tarballs with their integrity)
#     wheelhouse/            the PyPI wheels (no source distribution)
#     bundles/<name>/        one installed server each: node_modules/ or site-packages/
#     bundles/<name>/.ready  written last: the bundle is complete
#
# Idempotent: a bundle whose .ready names the same pinned version is left alone.
set -euo pipefail

root="${XDG_CACHE_HOME:-$HOME/.cache}/slovo-test/mcp"
npm_cache="$root/npm-cache"
wheelhouse="$root/wheelhouse"
bundles="$root/bundles"
mkdir -p "$npm_cache" "$wheelhouse" "$bundles"

# The pinned versions (the tests read the same names from the .ready files).
npm_packages=(
  "everything @modelcontextprotocol/server-everything@2026.8.31"
  "filesystem @modelcontextprotocol/server-filesystem@2026.8.31"
  "memory @modelcontextprotocol/server-memory@2026.8.31"
)
pypi_packages=(
  "time mcp-server-time==2026.10.19"
  "fetch mcp-server-fetch==2026.10.24"
)

say() { printf '==> %s\n' "$*" >&2; }

need() {
  command -v "$1" >/dev/null 2>&1 || { say "$1 is needed for the MCP server tests"; exit 1; }
}
need npm
need /usr/bin/node
need /usr/bin/python3

# pip for the wheels: any pip works, the target is the system's python3 (the one sandboxes see).
pip_cmd=()
if python3 -m pip --version >/dev/null 2>&1; then
  pip_cmd=(python3 -m pip)
elif /usr/bin/python3 -m pip --version >/dev/null 2>&1; then
  pip_cmd=(/usr/bin/python3 -m pip)
else
  say "pip is needed for the MCP server tests (apt-get install python3-pip)"; exit 1
fi
pyver="$(/usr/bin/python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
pyabi="cp${pyver/./}"
platforms=(--platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --platform linux_x86_64)
case "$(uname -m)" in
  aarch64) platforms=(--platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 --platform manylinux_2_28_aarch64) ;;
esac

for entry in "${npm_packages[@]}"; do
  name="${entry%% *}"; spec="${entry#* }"
  dir="$bundles/$name"
  if [[ -f "$dir/.ready" && "$(cat "$dir/.ready")" == "npm:$spec" ]]; then continue; fi
  say "npm: $spec"
  rm -rf "$dir"; mkdir -p "$dir"
  # Fetch into the cache (no install scripts), then install offline from it alone.
  npm install --ignore-scripts --no-audit --no-fund --cache "$npm_cache" --prefix "$root/npm-fetch-$name" "$spec" >/dev/null
  rm -rf "$root/npm-fetch-$name"
  npm install --ignore-scripts --offline --no-audit --no-fund --no-bin-links --cache "$npm_cache" --prefix "$dir" "$spec" >/dev/null
  chmod -R a+rX "$dir"
  printf '%s' "npm:$spec" >"$dir/.ready"
done

for entry in "${pypi_packages[@]}"; do
  name="${entry%% *}"; spec="${entry#* }"
  dir="$bundles/$name"
  if [[ -f "$dir/.ready" && "$(cat "$dir/.ready")" == "pypi:$spec" ]]; then continue; fi
  say "pypi: $spec (wheels only, for python $pyver)"
  rm -rf "$dir"; mkdir -p "$dir/site-packages"
  "${pip_cmd[@]}" download --quiet --disable-pip-version-check --only-binary=:all: --python-version "$pyver" --implementation cp \
    --abi "$pyabi" --abi abi3 --abi none "${platforms[@]}" --platform any \
    --dest "$wheelhouse" "$spec"
  "${pip_cmd[@]}" install --quiet --disable-pip-version-check --no-warn-conflicts --no-index --find-links "$wheelhouse" --only-binary=:all: \
    --python-version "$pyver" --implementation cp --abi "$pyabi" --abi abi3 --abi none "${platforms[@]}" --platform any \
    --no-compile --target "$dir/site-packages" "$spec" 2> >(grep -v "Running pip as the 'root' user" >&2)
  chmod -R a+rX "$dir"
  printf '%s' "pypi:$spec" >"$dir/.ready"
done
say "MCP servers ready under $bundles"
