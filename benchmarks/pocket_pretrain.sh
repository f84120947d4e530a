#!/usr/bin/env bash
# Pretrain a pocket model (svdinst pocket pretrain --preset $PRESET, default pocket-v2) and check
# its VAE on held-out mural-proxy crops; everything the lead commits comes back under $OUT.
#   bash benchmarks/pocket_pretrain.sh            # GPU: the full recipe (~7 min on one H100/H200)
#   bash benchmarks/pocket_pretrain.sh --smoke    # CPU: the same path at 4 + 4 steps (a minute)
#   PRESET=pocket-v3 UNET_MINUTES=6.5 bash benchmarks/pocket_pretrain.sh
#       pocket-v3 continues pocket-v2 (svdinst/weights/pocket-v2 must be in the tree); with
#       UNET_MINUTES, benchmarks/pocket_step_time.py first times a step and sets --unet-steps so
#       the UNet stage fills that budget (the card records the steps run).
#   PRESET=pocket-v5 UNET_MINUTES=15 bash benchmarks/pocket_pretrain.sh   # twice: it resumes
#       a new, wider UNet on pocket-v2's VAE (whose 4.0 min make the 20-min budget's rest)
# The run stops itself with a checkpoint after $MAX_MINUTES (default 8.5, inside a 10-min device
# call) and exits 3; the same command in the next call on the still-warm machine resumes from
# $WORK (git-ignored build/, kept between calls) and finishes.
# $OUT gets (≤ 10 files, each ≤ 16 MB): $PRESET.tar.part-a* (the model folder, split),
# pretrain_log.csv, pretrain.txt (stdout), pocket_vae_texture.{json,png},
# pocket_style_check.{json,png} (with the real Inception only), README.md (the card).
# Commit it with:  cat $PRESET.tar.part-* | tar -x -C svdinst/weights/
#                  svdinst pocket verify svdinst/weights/$PRESET
#                  then POCKET_VERSION = "$PRESET" in svdinst/models/layout_config.py
set -uo pipefail
cd "$(dirname "$0")/.."
PRESET=${PRESET:-pocket-v2}
OUT=${OUT:-build/$PRESET-out}
WORK=${WORK:-build/$PRESET-work}
MODEL=${MODEL:-build/$PRESET}
MAX_MINUTES=${MAX_MINUTES:-8.5}
UNET_MINUTES=${UNET_MINUTES:-}
mkdir -p "$OUT"
[ -f benchmarks/device_setup.sh ] && [ -d .whl ] && source benchmarks/device_setup.sh
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PY:-python3}
args=(pocket pretrain --preset "$PRESET" --out "$MODEL" --work "$WORK" --no-progress
  --max-minutes "$MAX_MINUTES" --checkpoint-every 500)
if [ "${1:-}" = "--smoke" ]; then
  # 4 VAE steps, or none where the preset keeps an earlier model's VAE (init_from)
  vae=$("$PY" -c "from svdinst.pocket.config import PocketConfig as C; print(min(4, C.preset('$PRESET').vae_steps))")
  args+=(--vae-steps "$vae" --unet-steps 4 --batch-size 4 --device cpu)
  rm -rf "$WORK" "$MODEL"
elif [ -n "$UNET_MINUTES" ] && [ ! -d "$WORK/checkpoints" ]; then
  "$PY" benchmarks/pocket_step_time.py --preset "$PRESET" --minutes "$UNET_MINUTES" 2>&1 |
    tee "$OUT/step_time.txt"
  steps=$(sed -n 's/^STEPS //p' "$OUT/step_time.txt")
  [ -n "$steps" ] || { echo "pocket: step timing failed" >&2; exit 1; }
  args+=(--unet-steps "$steps")
fi
if [ -d "$WORK/checkpoints" ] && [ ! -f "$MODEL/model_index.json" ]; then
  args+=(--resume)  # an earlier call stopped at its time limit
elif [ -f "$MODEL/model_index.json" ]; then
  echo "$PRESET: $MODEL is already trained; delete it and $WORK to train again" >&2
fi
"$PY" -c "import torch; print('device:', torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU')" | tee "$OUT/pretrain.txt"
if [ ! -f "$MODEL/model_index.json" ]; then
  start=$SECONDS
  "$PY" -m svdinst.cli "${args[@]}" 2>&1 | tee -a "$OUT/pretrain.txt"
  rc=${PIPESTATUS[0]}
  echo "pretrain wall $((SECONDS - start)) s (exit $rc)" | tee -a "$OUT/pretrain.txt"
  cp "$WORK/log.csv" "$OUT/pretrain_log.csv" 2>/dev/null
  if [ "$rc" = 3 ]; then
    echo "$PRESET: stopped at the time limit; run this script again (it resumes)" | tee -a "$OUT/pretrain.txt"
    exit 3
  elif [ "$rc" != 0 ]; then
    exit "$rc"
  fi
fi
"$PY" -m svdinst.cli pocket verify "$MODEL" 2>&1 | tee -a "$OUT/pretrain.txt"
"$PY" -m svdinst.cli pocket vae-check "$MODEL" --out "$OUT" 2>&1 | tee -a "$OUT/pretrain.txt"
# Does the new UNet draw the style each caption names? (pocket-v3: 27 %, chance 12 %) It names
# styles with Inception features: not with the random stand-in device_setup.sh builds when the
# real weights were not carried (its marker file), which would give a meaningless table.
if [ -f "${SVDINST_CACHE:-cache}/inception/RANDOM_WEIGHTS_TIMING_ONLY" ]; then
  echo "style check skipped: random Inception weights here; run it where the real ones are:" \
    "svdinst pocket style-check svdinst/weights/$PRESET --out DIR" | tee -a "$OUT/pretrain.txt"
else
  "$PY" -m svdinst.cli pocket style-check "$MODEL" --out "$OUT" 2>&1 | tee -a "$OUT/pretrain.txt"
fi
cp "$MODEL/README.md" "$OUT/README.md"
parent=$(dirname "$MODEL")
tar -C "$parent" --transform "s|^$(basename "$MODEL")|$PRESET|" -cf - "$(basename "$MODEL")" |
  split -b 15M - "$OUT/$PRESET.tar.part-"
ls -la "$OUT"
