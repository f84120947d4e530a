"""How to stylize: :class:`StylizeConfig` (``svdinst stylize`` flags map one to one).

Kept apart from :mod:`svdinst.stylize.stylizer` so the command line and the course settings can
build and validate a config without importing torch or diffusers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from svdinst.errors import SvdinstError

INIT_MODES = ("img2img", "inst")
DEFAULT_GUIDANCE = {"img2img": 7.5, "inst": 10.0}  # diffusers' img2img default; InST's scale
AUTO = "auto"  # batch_size: chosen from the GPU's free memory (:func:`auto_batch_size`)
CPU_BATCH = 4  # "auto" on a CPU: memory is not the limit there, and 4 was the old default
# Peak memory per image of a batch at 512 px, fp16, CFG, SDPA: stock diffusers img2img on an
# H200 grew 4.6 → 6.6 → 10.6 → 18.6 GiB at batch 4 → 8 → 16 → 32 (issue 15), i.e. 0.50 GiB
# per image, most of it the VAE decoder's full-resolution activations (so it scales with the
# pixel count). benchmarks/stylize_speed.py measures the kit's own slope beside stock's.
GIB_PER_IMAGE_512 = 0.5
AUTO_MARGIN = 1.2  # × the per-image model: allocator fragmentation, cuDNN workspaces
AUTO_RESERVE_GIB = 1.0  # kept free beside the batch (CUDA context growth, other tensors)
AUTO_MAX_BATCH = 32  # stock's s/img is flat past 32 (281 → 273 ms from 16 to 32); bigger
# batches only make the last, partial batch of a process longer.


def auto_batch_size(free_bytes: int, resolution: int = 512) -> int:
    """The largest power-of-two batch whose modelled peak fits ``free_bytes`` (1 … 32).

    Powers of two keep the choice stable when free memory differs a little between runs or
    GPUs (a resumed or multi-GPU run batches the same way), and match the GEMM tile sizes.
    A 16 GB T4 (14.75 GiB, ~12 GiB free with SD-1.4 loaded) gets 16; an 80 GB card 32.

    Args:
        free_bytes (`int`): free GPU memory with the model loaded (``torch.cuda.mem_get_info``).
        resolution (`int`, defaults to 512): image side in pixels; memory grows with its square.
    """
    per_image = GIB_PER_IMAGE_512 * AUTO_MARGIN * (resolution / 512) ** 2 * 2**30
    fits = int((free_bytes - AUTO_RESERVE_GIB * 2**30) // per_image)
    batch = 1
    while batch * 2 <= min(fits, AUTO_MAX_BATCH):
        batch *= 2
    return batch


@dataclass
class StylizeConfig:
    """How to stylize (``svdinst stylize`` flags map one to one)."""

    strength: float = 0.8  # the report's setting: keeps the layout, repaints the surface
    seeds: int = 10  # outputs per photo, seeds 0…N−1 (the report: 10, for LPIPS diversity)
    steps: int = 50  # DDIM steps over the full schedule (report and InST: 50)
    guidance: float | None = None  # CFG scale; None → 7.5 (img2img) or 10 (inst, as InST)
    init: str = "img2img"  # "img2img" (SDEdit) or "inst" (InST's stochastic inversion)
    adain_style: str | None = None  # inst only: AdaIN the content latent toward this image
    resolution: int | None = None  # None → the UNet's native size (512 SD-1.4, 64 tiny)
    # (photo, seed) images per UNet batch, across photos; "auto": from the GPU's free memory
    # (auto_batch_size), 4 on a CPU. Results depend on the batch by float round-off only.
    batch_size: int | str = AUTO
    prompt: str | None = None  # None → the run's prompt (its template with the learned token)

    def __post_init__(self) -> None:
        # NaN slips through every comparison below (and int(nan × steps) raises): check first.
        if not all(v is None or math.isfinite(v) for v in (self.strength, self.guidance)):
            raise SvdinstError(
                f"Stylize setting: strength and guidance must be finite numbers, got "
                f"{self.strength}, {self.guidance}."
            )
        checks = [
            (0.0 < self.strength <= 1.0, f"`strength` must be in (0, 1], got {self.strength}"),
            (self.seeds >= 1, f"`seeds` must be ≥ 1, got {self.seeds}"),
            (self.steps >= 1, f"`steps` must be ≥ 1, got {self.steps}"),
            (
                self.init in INIT_MODES,
                f"`init` must be one of {list(INIT_MODES)}, got {self.init!r}",
            ),
            (self.guidance is None or self.guidance >= 0, "`guidance` must be ≥ 0"),
            (
                self.batch_size == AUTO
                or (isinstance(self.batch_size, int) and self.batch_size >= 1),
                f"`batch_size` must be 'auto' or an integer ≥ 1, got {self.batch_size!r}",
            ),
            (
                self.resolution is None or (self.resolution % 8 == 0 and self.resolution > 0),
                f"`resolution` must be a positive multiple of 8 (e.g. 512), got {self.resolution}",
            ),
            (self.adain_style is None or self.init == "inst", "AdaIN is part of --init inst"),
            (int(self.strength * self.steps) >= 1, "strength × steps must be ≥ 1 denoising step"),
        ]
        for ok, message in checks:
            if not ok:
                raise SvdinstError(f"Stylize setting: {message}.")

    @property
    def guidance_scale(self) -> float:
        """The CFG scale actually used."""
        return DEFAULT_GUIDANCE[self.init] if self.guidance is None else float(self.guidance)
