#!/usr/bin/env bash
# Train the six trained baselines at pocket scale on one GPU (≤ 3 min on an H100/H200) and write
# the shipped weights: $OUT/baselines-v1/ (copy to svdinst/weights/baselines-v1/ and commit),
# $OUT/preview/, $OUT/summary.json, $OUT/logs/. Run from the repository root:
#   svdinst inception-trunk --out .cache/tf-fid-inception-trunk-fp16.safetensors   # here, once
#   svdinst data prepare .cache/baseline-data       # here, once: the offline set (3.5 MB)
#   bash benchmarks/train_baselines.sh        # on the device, carrying both .cache/ paths
#   bash benchmarks/train_baselines.sh --smoke --out /tmp/bt   # CPU rehearsal, ~1.5 min
# Extra arguments go to benchmarks/train_baselines.py (--resolution, --scale, --time-limit …).
set -euo pipefail
cd "$(dirname "$0")/.."
TRUNK=${TRUNK:-.cache/tf-fid-inception-trunk-fp16.safetensors}
PY=${PY:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
DATA=${DATA:-.cache/baseline-data}
ARGS=()
if [ -f "$TRUNK" ]; then ARGS+=(--trunk "$TRUNK"); fi
# Without a carried data folder the script builds the offline set itself (scikit-image etc.).
if [ -d "$DATA/content" ]; then ARGS+=(--data "$DATA"); fi
"$PY" benchmarks/train_baselines.py --out "${OUT:-baselines-out}" "${ARGS[@]}" "$@"
