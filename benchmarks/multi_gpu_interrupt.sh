#!/usr/bin/env bash
# On a 2-GPU device (kind nvidia-h200-x2), after `source benchmarks/device_setup.sh`:
# does Ctrl-C reaching ONE process of a 2-process `accelerate launch` stop both at the same step
# with a checkpoint, instead of leaving the other waiting forever in a collective?
#   bash benchmarks/multi_gpu_interrupt.sh OUT_DIR
set -u
out=${1:-/tmp/mgpu}; mkdir -p "$out"; rm -rf /tmp/mgpu_run
python3 -m svdinst.cli data prepare /tmp/mgpu_data > /dev/null || exit 1
timeout 300 accelerate launch --num_processes 2 --multi_gpu -m svdinst.cli train --model tiny \
  --style /tmp/mgpu_data/style --mode svd-inst --steps 3000 --batch-size 2 \
  --out /tmp/mgpu_run > "$out/train.log" 2>&1 &
launcher=$!
for _ in $(seq 120); do grep -q "^1[0-9]," /tmp/mgpu_run/log.csv 2>/dev/null && break; sleep 1; done
for p in $(pgrep -f "svdinst.cli train"); do
  if tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx "LOCAL_RANK=1"; then
    echo "SIGINT to rank 1 (pid $p) at $(tail -n 1 /tmp/mgpu_run/log.csv | cut -d, -f1)" | tee -a "$out/result.txt"
    kill -INT "$p"
  fi
done
wait "$launcher"; rc=$?
echo "launcher exit $rc (124 = hung until the timeout)" | tee -a "$out/result.txt"
ls /tmp/mgpu_run/checkpoints | tee -a "$out/result.txt"
tail -n 3 "$out/train.log" | tee -a "$out/result.txt"
