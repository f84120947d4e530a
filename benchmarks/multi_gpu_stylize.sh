#!/usr/bin/env bash
# On a 2-GPU device (kind nvidia-h200-x2 / nvidia-h100-x2), after `source benchmarks/device_setup.sh`:
# `svdinst stylize` on 1 GPU vs `accelerate launch --num_processes 2 --multi_gpu -m svdinst.cli
# stylize …` on the same work (sd14-random, a 2-step svd-inst run, 16 photos × 8 seeds at 512 px,
# 50 DDIM steps, batch auto): are the images bit-identical (sha256 per file), and the speed-up?
# The speed-up is of the stylize loop (settings.json "seconds": rank 0's loop, until every
# process's images exist); model loading is reported apart in the wall times. ~3 min on 2 H200s.
#   bash benchmarks/multi_gpu_stylize.sh [OUT_DIR] [--write-report]
# A CPU dry run of the script's plumbing (accelerate's CPU launcher runs ONE process):
#   MODEL=tiny STEPS=4 LAUNCH="--cpu" EXTRA="--device cpu" bash benchmarks/multi_gpu_stylize.sh
set -uo pipefail
model=${MODEL:-sd14-random}
steps=${STEPS:-50}
launch=${LAUNCH:---multi_gpu}
extra=${EXTRA:-}
out=${1:-/tmp/mgpu_stylize}
write=${2:-}
mkdir -p "$out"
work=$(mktemp -d /tmp/mgpu-stylize-XXXX)
python3 - "$work" <<'PY' || exit 1
import sys
from pathlib import Path

import numpy as np
from PIL import Image

work = Path(sys.argv[1])
(work / "content").mkdir()
for k in range(16):  # structured, distinct photos (their content does not change the cost)
    y, x = np.mgrid[0:512, 0:512]
    img = np.stack([(x * (0.5 + k / 10)) % 256, (y * 1.1 + 7 * k) % 256, ((x + y) // 40 % 2) * 200])
    Image.fromarray(img.transpose(1, 2, 0).astype(np.uint8)).save(work / "content" / f"p{k:02d}.png")
y, x = np.mgrid[0:512, 0:512]
style = np.stack([(x * 0.7) % 256, (y * 1.3) % 256, ((x // 32 + y // 32) % 2) * 180 + 40], -1)
Image.fromarray(style.astype(np.uint8)).save(work / "style.png")
PY
t0=$(date +%s)
python3 -m svdinst.cli train --model "$model" --style "$work/style.png" --mode svd-inst \
  --steps 2 --lr 1e-3 --resolution 256 --crop-pool 1 --out "$work/run" --no-progress \
  > "$out/train.log" 2>&1 || { tail -n 20 "$out/train.log"; exit 1; }
echo "run trained in $(( $(date +%s) - t0 )) s"
# shellcheck disable=SC2206  # EXTRA is a list of flags
args=(stylize --run "$work/run" --content "$work/content" --seeds 8 --steps "$steps" $extra)
t0=$(date +%s)
python3 -m svdinst.cli "${args[@]}" --out "$work/one" > "$out/one.log" 2>&1 \
  || { tail -n 20 "$out/one.log"; exit 1; }
wall1=$(( $(date +%s) - t0 ))
t0=$(date +%s)
accelerate launch --num_processes 2 "$launch" --num_machines 1 --mixed_precision no \
  --dynamo_backend no -m svdinst.cli "${args[@]}" --out "$work/two" > "$out/two.log" 2>&1 \
  || { tail -n 30 "$out/two.log"; exit 1; }
wall2=$(( $(date +%s) - t0 ))
for n in one two; do
  (cd "$work/$n" && find . -name '*.png' | sort | xargs sha256sum) > "$out/$n.sha256"
done
python3 - "$work" "$out" "$wall1" "$wall2" "$write" <<'PY'
import datetime
import json
import sys
from pathlib import Path

import torch

work, out, wall1, wall2, write = Path(sys.argv[1]), Path(sys.argv[2]), *sys.argv[3:6]
one, two = ((out / f"{n}.sha256").read_text().splitlines() for n in ("one", "two"))
s1, s2 = (json.loads((work / n / "settings.json").read_text()) for n in ("one", "two"))
same = one == two and len(one) == 16 * 8
cuda = torch.cuda.is_available()
card = f"{torch.cuda.device_count()} × {torch.cuda.get_device_name()}" if cuda else "CPU"
text = (
    f"Card: **{card}**, {datetime.date.today().isoformat()}; {s1['model']}, a 2-step svd-inst "
    f"run, 16 photos × 8 seeds, {s1['resolution']} px, {s1['steps']} DDIM steps, {s1['dtype']}, "
    f"batch auto ({s1['batch']} on 1 GPU, "
    f"{s2['batch']} on 2).\n\n"
    "| processes | stylize loop s | s/img | wall s (incl. loading) |\n|---|---|---|---|\n"
    f"| 1 | {s1['seconds']:.1f} | {s1['seconds'] / len(one):.3f} | {wall1} |\n"
    f"| 2 (`accelerate launch --multi_gpu`) | {s2['seconds']:.1f} | "
    f"{s2['seconds'] / len(two):.3f} | {wall2} |\n\n"
    f"Speed-up of the loop: **{s1['seconds'] / s2['seconds']:.2f}×**. Images bit-identical "
    f"(sha256 of all {len(one)} files): **{'yes' if same else 'NO'}**."
)
print(text)
(out / "result.md").write_text(text + "\n")
if write == "--write-report" and cuda:
    sys.path.insert(0, "benchmarks")
    from report_md import write_block

    heading = "Stylize on 2 GPUs (benchmarks/multi_gpu_stylize.sh)"
    write_block(Path("reports/benchmarks.md"), "multi_gpu_stylize", heading, text)
sys.exit(0 if same else 1)
PY
rc=$?
rm -rf "$work"
exit $rc
