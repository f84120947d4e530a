"""What a wider pocket UNet would cost `make reproduce` on this CPU, and its fp16 size.

A larger pocket world is the lever issue 17 has not tried (it needs GPU pretraining). Two limits
bound it before any GPU time is spent: the shipped weights (≤ 30 MB in fp16 with the VAE, text
and image towers: ~10 MB of them are not the UNet) and the CPU cost of the 15 training runs and
16 stylizations `make reproduce` pays for. This times the UNet's forward (stylizing, batch 2
for guidance) and forward + backward (a training step at the profile's batch 2) for several
widths at pocket-v3's 32² latents, side by side in one process with the same threads, and
prints each width's cost as a ratio to pocket-v3's. Random weights cost what trained ones do.

    python benchmarks/pocket_width_cost.py [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from svdinst.models.layout_config import SDLayoutConfig
from svdinst.models.layouts import sd_layout_modules

# (channels, layers per block): pocket-v3's first, then wider and deeper candidates
WIDTHS = (((48, 96, 144), 1), ((64, 128, 192), 1), ((64, 128, 192), 2), ((96, 192, 288), 1),
          ((128, 256, 384), 1))  # fmt: skip


def other_bytes() -> int:
    """pocket-v3's folder less its UNet weights: VAE, towers, tokenizer, configs, card."""
    from svdinst.models.loading import pocket_model_path

    folder = pocket_model_path("pocket-v3")
    files = [f for f in folder.rglob("*") if f.is_file()]
    return sum(f.stat().st_size for f in files if f.parent.name != "unet" or f.suffix == ".json")


def _seconds(fn, repeats: int) -> float:
    fn(), fn()  # warm-up: allocator, oneDNN primitives
    tic = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - tic) / repeats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (the notebooks': 2)")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    base = SDLayoutConfig.pocket_v3()
    x, t = torch.randn(2, 4, 32, 32), torch.tensor([500, 500])
    ctx = torch.randn(2, 77, base.text_dim)
    rows, ref, other = [], None, other_bytes()
    for channels, layers in WIDTHS:
        cfg = replace(base, unet_channels=channels, unet_layers_per_block=layers)
        unet = sd_layout_modules(cfg)["unet"]
        params = sum(q.numel() for q in unet.parameters())

        def forward(unet: torch.nn.Module = unet) -> None:
            with torch.no_grad():
                unet(x, t, ctx)

        def train_step(unet: torch.nn.Module = unet) -> None:
            unet(x, t, ctx).sample.square().mean().backward()

        fwd, step = _seconds(forward, args.repeats), _seconds(train_step, args.repeats)
        ref = ref or (fwd, step)
        mb = (params * 2 + other) / 1e6  # the folder with this UNet in fp16
        rows.append((channels, layers, params, mb, fwd, step, fwd / ref[0], step / ref[1]))
        print(f"{channels} × {layers}: done", flush=True)
    print(f"\nCPU, {args.threads} threads, 32² latents, batch 2 (ratios to pocket-v3's width)\n")
    print("| UNet channels × layers | parameters | folder, MB (fp16) | forward, ms | ratio "
          "| train step, ms | ratio |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for ch, ly, n, mb, fwd, step, rf, rs in rows:
        print(f"| {ch} × {ly} | {n / 1e6:.1f} M | {mb:.0f} | {fwd * 1e3:.0f} | {rf:.2f}× "
              f"| {step * 1e3:.0f} | {rs:.2f}× |")  # fmt: skip


if __name__ == "__main__":
    main()
