#!/usr/bin/env bash
# A reduced-count reproduction (stylize, then evaluate) on 1 GPU and on 2, through
# `accelerate launch` (issue 15, deliverables 4–5). On a 2-GPU device (kind nvidia-h200-x2 or
# nvidia-h100-x2), after `source benchmarks/device_setup.sh`:
#   bash benchmarks/multi_gpu_repro.sh OUT_DIR [PHOTOS] [SEEDS]      # ~3 min on 2 H200s
# Model: SD-1.4-shaped random weights in the hub layout (timing only, no quality claim). Wall time
# of each command as a user runs it (model loading included: the speed-ups are conservative at
# these counts). Checks that the 2-GPU images are byte-identical to the 1-GPU ones, and writes
# benchmarks/results/multi_gpu.json (speedup_stylize, speedup_metrics, card, date; read by
# benchmarks/full_estimate.py) and a copy in OUT_DIR.
set -u
out=${1:-/tmp/mgr-out}; photos=${2:-16}; seeds=${3:-4}
work=/tmp/mgr; mkdir -p "$out" "$work"; rm -rf "$work"/out* "$work"/m*.json "$work"/eval*
py=python3
$py - "$work" "$photos" <<'PY' || exit 1
import sys
from pathlib import Path
import numpy as np
from PIL import Image
sys.path.insert(0, "benchmarks")
from rehearsal_env import build_models
work, photos = Path(sys.argv[1]), int(sys.argv[2])
build_models(work, small=False)  # models/stable-diffusion-v1-4, random weights, built once
rng = np.random.default_rng(0)
for name, n, size in (("photos", photos, (768, 576)), ("style", 8, (512, 512))):
    (work / name).mkdir(exist_ok=True)
    for k in range(n):
        small = rng.integers(0, 255, size=(6, 8, 3)).astype(np.uint8)
        Image.fromarray(small).resize(size, Image.BICUBIC).save(work / name / f"{name[0]}{k:03d}.jpg")
PY
model="$work/models/stable-diffusion-v1-4"
common=(--model "$model" --prompt "a mural painting" --content "$work/photos" --seeds "$seeds" --batch-size 8 --device cuda)
# t CMD…: run CMD, its output in OUT_DIR/<start ns>.log; print its wall time in ms (empty when it
# failed, with the log's tail on stderr).
t() { local s; s=$(date +%s%N); local log="$out/$s.log"
  if "$@" > "$log" 2>&1; then echo $(( ($(date +%s%N) - s) / 1000000 )); else tail -n 20 "$log" >&2; fi; }
s1=$(CUDA_VISIBLE_DEVICES=0 t $py -m svdinst.cli stylize "${common[@]}" --out "$work/out1")
s2=$(t accelerate launch --num_processes 2 --multi_gpu -m svdinst.cli stylize "${common[@]}" --out "$work/out2")
[ -n "$s1" ] && [ -n "$s2" ] || { echo "stylize FAILED (logs in $out)"; exit 1; }
same=0; diff=0
for f in $(cd "$work/out1" && find . -name '*.png'); do
  if cmp -s "$work/out1/$f" "$work/out2/$f"; then same=$((same+1)); else diff=$((diff+1)); fi
done
# Evaluate a larger set (the stylized images repeated under 20 stems each) so the split work, not
# the start-up, is timed; content photos linked under the same stems; mural oracle on.
mkdir -p "$work/eval/gen" "$work/eval/content"
for d in "$work"/out1/*/; do stem=$(basename "$d")
  for j in $(seq -w 0 19); do ln -s "$d" "$work/eval/gen/${stem}_$j"; ln -s "$work/photos/$stem.jpg" "$work/eval/content/${stem}_$j.jpg"; done
done
ev=(--generated "$work/eval/gen" --style "$work/style" --content "$work/eval/content" --mural-oracle --device cuda)
e1=$(CUDA_VISIBLE_DEVICES=0 t $py -m svdinst.cli evaluate "${ev[@]}" --out "$work/m1.json")
e2=$(t accelerate launch --num_processes 2 --multi_gpu -m svdinst.cli evaluate "${ev[@]}" --out "$work/m2.json")
[ -n "$e1" ] && [ -n "$e2" ] || { echo "evaluate FAILED (logs in $out)"; exit 1; }
$py - "$work" "$out" "$s1" "$s2" "$e1" "$e2" "$same" "$diff" "$photos" "$seeds" <<'PY'
import json, sys, time
from pathlib import Path
import torch
work, out = Path(sys.argv[1]), Path(sys.argv[2])
s1, s2, e1, e2 = (float(v) / 1000 for v in sys.argv[3:7])  # ms → s; same, diff, photos, seeds = map(int, sys.argv[7:11])
m1, m2 = (json.loads((work / f"m{k}.json").read_text()) for k in (1, 2))
res = {"card": torch.cuda.get_device_name(), "gpus": 2, "date": time.strftime("%Y-%m-%d"),
       "stylize_images": photos * seeds, "stylize_s_1gpu": s1, "stylize_s_2gpu": s2,
       "speedup_stylize": s1 / s2, "images_identical": same, "images_different": diff,
       "evaluate_images": m1["N"], "evaluate_s_1gpu": e1, "evaluate_s_2gpu": e2,
       "speedup_metrics": e1 / e2, "fid_1gpu": m1["fid"], "fid_2gpu": m2["fid"]}
text = json.dumps(res, indent=2) + "\n"
Path("benchmarks/results/multi_gpu.json").write_text(text)
(out / "multi_gpu.json").write_text(text)
print(text)
print(f"stylize {photos}×{seeds} images: 1 GPU {s1:.1f} s, 2 GPUs {s2:.1f} s → {s1 / s2:.2f}×; "
      f"identical {same}, different {diff}")
print(f"evaluate {m1['N']} images: 1 GPU {e1:.1f} s, 2 GPUs {e2:.1f} s → {e1 / e2:.2f}×; "
      f"FID {m1['fid']:.6f} vs {m2['fid']:.6f}")
PY
