#!/usr/bin/env bash
# Pretrain pocket-v2 (svdinst pocket pretrain --preset pocket-v2) and check its VAE on held-out
# mural-proxy crops; everything the lead commits comes back under $OUT.
#   bash benchmarks/pocket_v2_pretrain.sh            # GPU: the full recipe (~7 min on one H100/H200)
#   bash benchmarks/pocket_v2_pretrain.sh --smoke    # CPU: the same path at 4 + 4 steps (a minute)
# The run stops itself with a checkpoint after $MAX_MINUTES (default 8.5, inside a 10-min device
# call) and exits 3; the same command in the next call on the still-warm machine resumes from
# $WORK (git-ignored build/, kept between calls) and finishes.
# $OUT gets (≤ 8 files, each ≤ 16 MB): pocket-v2.tar.part-a* (the model folder, split),
# pretrain_log.csv, pretrain.txt (stdout), pocket_vae_texture.{json,png}, README.md (the card).
# Commit it with:  cat pocket-v2.tar.part-* | tar -x -C svdinst/weights/
#                  svdinst pocket verify svdinst/weights/pocket-v2
#                  then POCKET_VERSION = "pocket-v2" in svdinst/models/layout_config.py
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build/pocket-v2-out}
WORK=${WORK:-build/pocket-v2-work}
MODEL=${MODEL:-build/pocket-v2}
MAX_MINUTES=${MAX_MINUTES:-8.5}
mkdir -p "$OUT"
[ -f benchmarks/device_setup.sh ] && [ -d .whl ] && source benchmarks/device_setup.sh
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PY:-python3}
args=(pocket pretrain --preset pocket-v2 --out "$MODEL" --work "$WORK" --no-progress
  --max-minutes "$MAX_MINUTES" --checkpoint-every 500)
if [ "${1:-}" = "--smoke" ]; then
  args+=(--vae-steps 4 --unet-steps 4 --batch-size 4 --device cpu)
  rm -rf "$WORK" "$MODEL"
fi
if [ -d "$WORK/checkpoints" ] && [ ! -f "$MODEL/model_index.json" ]; then
  args+=(--resume)  # an earlier call stopped at its time limit
elif [ -f "$MODEL/model_index.json" ]; then
  echo "pocket-v2: $MODEL is already trained; delete it and $WORK to train again" >&2
fi
"$PY" -c "import torch; print('device:', torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU')" | tee "$OUT/pretrain.txt"
if [ ! -f "$MODEL/model_index.json" ]; then
  start=$SECONDS
  "$PY" -m svdinst.cli "${args[@]}" 2>&1 | tee -a "$OUT/pretrain.txt"
  rc=${PIPESTATUS[0]}
  echo "pretrain wall $((SECONDS - start)) s (exit $rc)" | tee -a "$OUT/pretrain.txt"
  cp "$WORK/log.csv" "$OUT/pretrain_log.csv" 2>/dev/null
  if [ "$rc" = 3 ]; then
    echo "pocket-v2: stopped at the time limit; run this script again (it resumes)" | tee -a "$OUT/pretrain.txt"
    exit 3
  elif [ "$rc" != 0 ]; then
    exit "$rc"
  fi
fi
"$PY" -m svdinst.cli pocket verify "$MODEL" 2>&1 | tee -a "$OUT/pretrain.txt"
"$PY" -m svdinst.cli pocket vae-check "$MODEL" --out "$OUT" 2>&1 | tee -a "$OUT/pretrain.txt"
cp "$MODEL/README.md" "$OUT/README.md"
parent=$(dirname "$MODEL")
tar -C "$parent" --transform "s|^$(basename "$MODEL")|pocket-v2|" -cf - "$(basename "$MODEL")" |
  split -b 15M - "$OUT/pocket-v2.tar.part-"
ls -la "$OUT"
