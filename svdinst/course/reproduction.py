"""How long the report's full reproduction takes on one or several GPUs, from measured unit times.

The full settings (``sd14`` profile): 711 test photos × 10 seeds stylized by each of the three
diffusion methods after one training run each, six baselines trained and applied, and every
metric over the 3 × 7110 diffusion outputs and the 6 × 711 baseline outputs. The per-unit
seconds come from the benchmarks' measured JSON files (``benchmarks/results/``; read by
``benchmarks/full_estimate.py``), never from here: this module only multiplies and schedules.

On G GPUs: the training runs and the baselines are independent jobs, placed longest first on
the least loaded GPU; stylizing and evaluating split their (photo, seed) pairs over the GPUs
(``accelerate launch``), so their time is divided by the measured G-GPU speed-up of each
(``speedup``; G itself when not measured, and the table says so).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from svdinst.course.profiles import PROFILES, Profile

MODES = ("inst", "svdiff", "svd-inst")
BASELINES = 6  # methods notebook 06 trains or applies, and 07 evaluates
FULL_PHOTOS = 711  # the report's test photos


@dataclass(frozen=True)
class Stage:
    """One row of the estimate: ``units`` × ``s_per_unit`` seconds on one GPU."""

    name: str
    unit: str  # its key in the per-unit seconds ("train inst", "stylize", …)
    s_per_unit: float
    units: int
    kind: str  # "job" (runs whole on one GPU) or "split" (shared by every GPU)

    @property
    def seconds(self) -> float:
        return self.s_per_unit * self.units


def full_stages(per_unit: Mapping[str, float], profile: Profile | None = None) -> list[Stage]:
    """The full reproduction's work, from per-unit seconds.

    Args:
        per_unit (`Mapping[str, float]`): ``train {mode}`` (s/step), ``stylize`` (s/image at the
            best batch), ``baselines`` (s per step of all six, their stylizing included),
            ``metrics`` (s/image, streaming evaluation).
        profile (`Profile`, *optional*): the counts; the ``sd14`` profile by default.
    """
    p = profile or PROFILES["sd14"]
    photos = min(FULL_PHOTOS, p.test_photos or FULL_PHOTOS)
    images = photos * p.stylize_seeds * len(p.training_seeds)
    stages = [
        Stage(
            f"train {m}, {p.train_steps} steps",
            f"train {m}",
            per_unit[f"train {m}"],
            p.train_steps,
            "job",
        )
        for m in MODES
        for _ in p.training_seeds
    ]
    stages.append(
        Stage(f"baselines (all six), {p.baseline_steps} steps", "baselines", per_unit["baselines"],
              p.baseline_steps, "job")
    )  # fmt: skip
    stages += [
        Stage(f"stylize {m}, {photos} photos × {p.stylize_seeds} seeds", "stylize", per_unit["stylize"],
              images, "split")
        for m in MODES
    ]  # fmt: skip
    stages.append(
        Stage(f"metrics over {len(MODES)} × {images} + {BASELINES} × {photos} images",
              "metrics", per_unit["metrics"], len(MODES) * images + BASELINES * photos, "split")
    )  # fmt: skip
    return stages


def makespan(stages: list[Stage], gpus: int, speedup: Mapping[str, float] | None = None) -> float:
    """Wall seconds on ``gpus`` GPUs (module docstring): jobs scheduled longest first, then the
    split stages divided by their speed-up (``speedup["stylize"]``, ``speedup["metrics"]``).

    Args:
        stages (`list[Stage]`): from :func:`full_stages`.
        gpus (`int`): GPUs of one host.
        speedup (`Mapping[str, float]`, *optional*): measured G-GPU speed-ups; G when missing.
    """
    if gpus < 1:
        raise ValueError(f"gpus must be ≥ 1, got {gpus}")
    load = [0.0] * gpus
    for job in sorted((s for s in stages if s.kind == "job"), key=lambda s: -s.seconds):
        load[load.index(min(load))] += job.seconds
    split = 0.0
    for s in stages:
        if s.kind == "split":
            split += s.seconds / (1.0 if gpus == 1 else (speedup or {}).get(s.unit, float(gpus)))
    return max(load) + split
