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
# Without the carried halves (a 33 MB tree + 48 MB half is over one call's 64 MiB), a rehearsal
# of time and memory uses RANDOM weights in torch-fidelity's Inception layout: the same network,
# the same cost, meaningless FID values (the rehearsal reports no FID).
if [ ! -d cache/inception ]; then
  python3 - <<'PY'
import torch
from svdinst.cache import cache_dir
from svdinst.evaluation.inception import CONVERTED_NAME, _fidelity_template

out = cache_dir() / "inception"
out.mkdir(parents=True, exist_ok=True)
torch.save(_fidelity_template(), out / CONVERTED_NAME)
(out / "RANDOM_WEIGHTS_TIMING_ONLY").write_text("random Inception weights: timing and memory only\n")
print("wrote a RANDOM-weight Inception (timing only) to", out)
PY
fi
# The baselines' loss network (benchmarks/baselines_throughput.py): the 2 MB Inception trunk file,
# carried in .trunk/ (the baselines never fall back to random features).
if ls .trunk/*.safetensors > /dev/null 2>&1; then
  cp .trunk/*.safetensors cache/inception/
fi
set +e
