#!/usr/bin/env bash
# Every GPU benchmark of the kit, in the order reports/benchmarks.md presents them.
#   bash benchmarks/gpu_suite.sh [spectral] [baselines] [train] [loop] [profile] [eval] [stylize]
#                                [ddp] [estimate]    (default: all, in this order)
# Needs a CUDA machine (ddp: two GPUs). One H100: ~25 min without ddp; on the lent device
# (≤ 10 min a call) split it, e.g. `loop eval`, then `stylize profile`, then `estimate` here.
# Logs go to $LOG_DIR (default benchmarks/logs); results are written into
# reports/benchmarks.md, each script in its own section.
set -uo pipefail
cd "$(dirname "$0")/.."
LOG_DIR=${LOG_DIR:-benchmarks/logs}
mkdir -p "$LOG_DIR"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(spectral baselines train loop profile eval stylize ddp estimate)
status=0
step() {  # step NAME CMD...: run, tee the log, remember failures but go on
  local name=$1
  shift
  echo "=== $name: $*"
  "$@" 2>&1 | tee "$LOG_DIR/$name.log" || status=1
}
for part in "${parts[@]}"; do
  case $part in
    spectral) step spectral python3 benchmarks/spectral_step.py --report reports/benchmarks.md ;;
    baselines) step baselines python3 benchmarks/baselines_throughput.py --write-report ;;
    train)
      step train-modes python3 benchmarks/train_step.py --write-report
      step train-t4 python3 benchmarks/train_step.py --modes svd-inst inst --memory-fraction t4 --write-report
      ;;
    loop) step train-loop python3 benchmarks/train_loop.py --write-report ;;
    profile) step train-profile python3 benchmarks/train_profile.py --write-report ;;
    eval) step eval-speed python3 benchmarks/eval_speed.py --write-report ;;
    stylize) step stylize-speed python3 benchmarks/stylize_speed.py --write-report ;;
    estimate) step full-estimate python3 benchmarks/full_estimate.py --write-report ;;
    ddp)
      # A fixed global batch of 8 at 512 px (4 per GPU on two): enough work per step for the
      # speed-up to mean something; 1 process first so the 2-process run can compare.
      ddp_args=(--ddp --ddp-batch 8 --ddp-resolution 512 --steps 15 --write-report)
      for mode in svdiff svd-inst; do
        step "ddp1-$mode" python3 benchmarks/train_step.py "${ddp_args[@]}" --ddp-mode "$mode"
        step "ddp2-$mode" accelerate launch --num_processes 2 --multi_gpu \
          benchmarks/train_step.py "${ddp_args[@]}" --ddp-mode "$mode"
      done
      ;;
    *) echo "unknown part '$part' (spectral baselines train loop profile eval stylize ddp estimate)" >&2; exit 2 ;;
  esac
done
exit $status
