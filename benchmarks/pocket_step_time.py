"""Time a pocket preset's UNet step on this device and print the steps that fill a time budget.

``benchmarks/pocket_pretrain.sh`` asks it before pretraining so one device call (≤ 10 min) holds
the whole UNet stage: the step count is fixed before the run (the cosine schedule needs it) and
then written into the card's reproduce command.

    python benchmarks/pocket_step_time.py --preset pocket-v3 --minutes 6.5   # → "STEPS 4100"
"""

from __future__ import annotations

import argparse
import time

import torch

from svdinst.pocket.config import PocketConfig
from svdinst.pocket.pretrain import _Trainer, resolve_device


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="pocket-v3")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--minutes", type=float, required=True, help="UNet stage budget")
    p.add_argument("--steps", type=int, default=30, help="timed steps (after 5 warm-up steps)")
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    over = {"batch_size": args.batch_size} if args.batch_size else {}
    cfg = PocketConfig.preset(args.preset, **over)
    dev = resolve_device(args.device)
    t0 = time.perf_counter()
    trainer = _Trainer(cfg, dev)
    if trainer.scaling_factor is None:
        trainer.measure_scaling_factor()  # a from-scratch preset: an untrained VAE is fine here
    print(f"trainer ready in {time.perf_counter() - t0:.1f} s on {dev}")
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    for k in range(5):
        trainer.unet_step(k)
    sync()
    tic = time.perf_counter()
    for k in range(args.steps):
        trainer.unet_step(5 + k)
    sync()
    per_step = (time.perf_counter() - tic) / args.steps
    steps = max(100, int(args.minutes * 60 / per_step) // 100 * 100)
    print(f"{args.preset} batch {cfg.batch_size}: {per_step * 1e3:.1f} ms per UNet step "
          f"({cfg.batch_size / per_step:,.0f} crops/s); {args.minutes} min → {steps} steps")  # fmt: skip
    print(f"STEPS {steps}")


if __name__ == "__main__":
    main()
