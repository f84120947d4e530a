#!/usr/bin/env bash
# On the GPU device (no network), after the calls that carried .whl, .inc_a and .inc_b
# (benchmarks/stage_device.sh): install the wheels into .site/ and rebuild the Inception file.
#   source benchmarks/device_setup.sh     # exports PYTHONPATH and SVDINST_CACHE
set -e
if [ -d .whl ] && [ ! -d .site/diffusers ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target .site .whl/*.whl
fi
if [ -d .inc_a ] && [ -d .inc_b ] && [ ! -d cache/inception ]; then
  mkdir -p cache/inception
  name=$(basename .inc_a/*.part0 .part0)
  cat ".inc_a/$name.part0" ".inc_b/$name.part1" > "cache/inception/$name"
  sha256sum -c .inc_b/SHA256SUMS
fi
export PYTHONPATH="$PWD:$PWD/.site${PYTHONPATH:+:$PYTHONPATH}"
export SVDINST_CACHE="$PWD/cache" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
set +e
