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
    batch_size: int = 4  # seeds per UNet batch; 4 with CFG fits SD-1.4 fp16 on a 16 GB T4
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
            (self.batch_size >= 1, f"`batch_size` must be ≥ 1, got {self.batch_size}"),
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
