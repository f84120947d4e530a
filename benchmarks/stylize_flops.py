"""The arithmetic floor of stylizing one image with SD-1.4 (issue 15's 0.15 s/image target).

Counts the FLOPs of the UNet (one classifier-free-guidance call: batch 2, 64×64 latents) and of
the VAE encoder and decoder (one 512-px image) with ``torch.utils.flop_counter`` on *meta*
tensors (shapes only: no weights, no GPU, a few seconds on a CPU), then the per-image total at
``steps × strength`` UNet calls, and what fraction of a card's dense half-precision peak a given
seconds-per-image rate means. A rate is only as fast as the fraction of peak it needs.

    python benchmarks/stylize_flops.py                      # SD-1.4, 50 steps × 0.8, H100/H200 peak
    python benchmarks/stylize_flops.py --rates 0.287 0.214 0.15
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

PEAK_TFLOPS = 989.0  # H100 SXM / H200: dense fp16/bf16 tensor-core peak (NVIDIA data sheets)


def flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def pipeline_flops(config=None, resolution: int = 512) -> dict[str, float]:
    """TFLOP of one CFG UNet call, the VAE encoder and decoder (``SDLayoutConfig``; SD-1.4)."""
    from svdinst.models.layout_config import SDLayoutConfig
    from svdinst.models.layouts import sd_layout_modules

    config = config or SDLayoutConfig.sd14()
    with torch.device("meta"):
        modules = sd_layout_modules(config)
        unet, vae = modules["unet"], modules["vae"]
        factor = 2 ** (len(vae.config.block_out_channels) - 1)
        side = resolution // factor
        latents = torch.randn(2, unet.config.in_channels, side, side)
        text = torch.randn(2, 77, unet.config.cross_attention_dim)
        image = torch.randn(1, 3, resolution, resolution)
        return {
            "unet_cfg": flops(lambda: unet(latents, torch.tensor([500, 500]), text)) / 1e12,
            "vae_encode": flops(lambda: vae.encode(image)) / 1e12,
            "vae_decode": flops(lambda: vae.decode(latents[:1])) / 1e12,
        }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--strength", type=float, default=0.8)
    p.add_argument("--peak", type=float, default=PEAK_TFLOPS, help="card's peak TFLOP/s")
    p.add_argument("--rates", type=float, nargs="*", default=[0.287, 0.214, 0.15],
                   help="seconds per image to express as a fraction of the peak")  # fmt: skip
    args = p.parse_args(argv)
    f = pipeline_flops()
    calls = int(args.steps * args.strength)
    total = calls * f["unet_cfg"] + f["vae_encode"] + f["vae_decode"]
    print(f"UNet, one CFG call: {f['unet_cfg']:.3f} TFLOP; VAE encode {f['vae_encode']:.3f}, "
          f"decode {f['vae_decode']:.3f} TFLOP")  # fmt: skip
    print(f"per image ({calls} UNet calls): {total:.1f} TFLOP; at {args.peak:g} TFLOP/s the "
          f"floor is {total / args.peak:.3f} s")  # fmt: skip
    for rate in args.rates:
        print(f"{rate:.3f} s/image = {100 * total / rate / args.peak:.0f} % of peak")
    return 0


if __name__ == "__main__":
    sys.exit(main())
