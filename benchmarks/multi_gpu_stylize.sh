#!/usr/bin/env bash
# On a 2-GPU device (kind nvidia-h200-x2 / nvidia-h100-x2), after `source benchmarks/device_setup.sh`:
# `svdinst stylize` on 1 GPU vs `accelerate launch --num_processes 2 --multi_gpu -m svdinst.cli
# stylize …` on the same work (sd14-random, a 2-step svd-inst run, 16 photos × 8 seeds at 512 px,
# 50 DDIM steps, batch auto): are the images bit-identical (sha256 per file), and the speed-up?
# The speed-up is of the stylize loop (settings.json "seconds": rank 0's loop, until every
# process's images exist); model loading is reported apart in the wall times. ~3 min on 2 H200s.
#   bash benchmarks/multi_gpu_stylize.sh [OUT_DIR] [--write-report]
set -uo pipefail
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
Image.fromarray(np.full((512, 512, 3), 128, np.uint8)).save(work / "style.png")
PY
t0=$(date +%s)
python3 -m svdinst.cli train --model sd14-random --style "$work/style.png" --mode svd-inst \
  --steps 2 --lr 1e-3 --resolution 256 --crop-pool 1 --out "$work/run" --no-progress \
  > "$out/train.log" 2>&1 || { tail -n 20 "$out/train.log"; exit 1; }
echo "run trained in $(( $(date +%s) - t0 )) s"
args=(stylize --run "$work/run" --content "$work/content" --seeds 8)
t0=$(date +%s)
python3 -m svdinst.cli "${args[@]}" --out "$work/one" > "$out/one.log" 2>&1 \
  || { tail -n 20 "$out/one.log"; exit 1; }
wall1=$(( $(date +%s) - t0 ))
t0=$(date +%s)
accelerate launch --num_processes 2 --multi_gpu --num_machines 1 --mixed_precision no \
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
card = f"{torch.cuda.device_count()} × {torch.cuda.get_device_name()}"
text = (
    f"Card: **{card}**, {datetime.date.today().isoformat()}; sd14-random, a 2-step svd-inst run, "
    f"16 photos × 8 seeds, 512 px, 50 DDIM steps, fp16, batch auto ({s1['batch']} on 1 GPU, "
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
if write == "--write-report":
    sys.path.insert(0, "benchmarks")
    from report_md import write_block

    heading = "Stylize on 2 GPUs (benchmarks/multi_gpu_stylize.sh)"
    write_block(Path("reports/benchmarks.md"), "multi_gpu_stylize", heading, text)
sys.exit(0 if same else 1)
PY
