"""The baselines at pocket scale: reduced widths, and training budgets scaled from each paper's.

The pocket profile compares SVD-InST with the baselines on the offline data set (four training
photos, their four mural proxies) at 128 px on a CPU. Training the papers' recipes for their
published iterations would take GPU-days; training for 2 steps (what the CPU profiles did)
outputs black or grey noise. Here each method trains on one GPU for

    steps = round(paper iterations × SCALE)                  (SCALE = 1/100)

at the paper's batch (capped at :data:`BATCH_CAP`) on 128-px crops (the papers: 256 px, so each
step sees a quarter of the pixels). Every step-indexed schedule is scaled by the same factor so
its *shape* is the paper's: the inverse lr decays of AdaIN and StyTr² (``lr_decay / SCALE``), the
StyTr² warm-up (``warmup_steps × SCALE``); CycleGAN's and StarGAN's linear decays already span
the run's own ``steps``. The widths are reduced (stated per method in :data:`WIDTHS`) so all
shipped networks fit :data:`SHIPPED_MB_CAP` in fp16. ``tests/baselines/test_pocket_scale.py``
recomputes the budgets and sizes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from svdinst.baselines.base import Baseline
from svdinst.errors import SvdinstError

SCALE = 1 / 100  # of each paper's optimizer iterations (see the module docstring)
BATCH_CAP = 16  # the papers' batches up to this (BalaGAN's 64 would not train 3 nets in 3 min)
SHIPPED_MB_CAP = 25.0  # all shipped baselines together, fp16 (issue 17)
RESOLUTION = 128  # the pocket profile's size (pocket-v2); a parameter everywhere

# Published optimizer iterations, and where the number comes from.
PAPER_ITERATIONS: dict[str, tuple[int, str]] = {
    "adain": (160_000, "train.lua -maxIter 160000 (batch 8)"),
    "stytr2": (160_000, "train.py --max_iter 160000 (batch 8)"),
    "fast_style": (40_000, "Johnson et al. §4.1: 40k iterations, batch 4 (≈2 COCO epochs)"),
    "cyclegan": (
        266_800,
        "200 epochs × 1,334 images of horse2zebra (the larger domain), batch 1",
    ),
    "stargan": (200_000, "main.py --num_iters 200000 (batch 16, n_critic 5)"),
    "balagan": (100_000, "FUNIT funit_animals.yaml max_iter 100000 (batch 64)"),
}
# Reduced widths at pocket scale (fields of each config), with the paper's value in the comment.
WIDTHS: dict[str, dict[str, Any]] = {
    "adain": {"decoder_widths": (128, 64, 32)},  # paper (256, 128, 64)
    "stytr2": {  # paper d_model 512, 8 heads, FFN 2048, decoder (256, 128, 64)
        "d_model": 128,
        "n_heads": 4,
        "dim_feedforward": 512,
        "decoder_widths": (64, 32, 16),
    },
    "fast_style": {},  # the paper's widths (32, 64, 128): 1.7 M parameters
    "cyclegan": {"ngf": 24, "ndf": 32, "n_blocks": 6},  # paper 64, 64, 9 (6 at 128 px)
    "stargan": {"g_conv_dim": 32, "d_conv_dim": 32},  # paper 64, 64
    "balagan": {"nf": 16, "nf_mlp": 64, "n_res_blocks_d": 6},  # paper 64, 256, 10
}


def pocket_steps(name: str, scale: float = SCALE) -> int:
    """Training steps of baseline ``name`` at pocket scale: the paper's iterations × ``scale``."""
    if name not in PAPER_ITERATIONS:
        raise SvdinstError(f"{name} has no published budget to scale (it is not trained here).")
    return max(1, round(PAPER_ITERATIONS[name][0] * scale))


def pocket_config(cls: type[Baseline], resolution: int = RESOLUTION, scale: float = SCALE) -> Any:
    """``cls``'s config at pocket scale: reduced widths, capped batch, schedules scaled.

    Args:
        cls (`type[Baseline]`): a trained baseline class.
        resolution (`int`, defaults to 128): training crop size in px.
        scale (`float`, defaults to :data:`SCALE`): the budget's fraction of the paper's.
    """
    if cls.name not in WIDTHS:
        raise SvdinstError(f"{cls.name} is not trained at pocket scale.")
    config = cls.config_class()
    fields = {f.name for f in dataclasses.fields(config)}
    changes: dict[str, Any] = {"resolution": resolution, **WIDTHS[cls.name]}
    if "batch_size" in fields:
        changes["batch_size"] = min(config.batch_size, BATCH_CAP)
    if "lr_decay" in fields:  # inverse decay lr / (1 + d·i): same shape over fewer steps
        changes["lr_decay"] = config.lr_decay / scale
    if "warmup_steps" in fields:
        changes["warmup_steps"] = max(1, round(config.warmup_steps * scale))
    return dataclasses.replace(config, **changes)


def budget_table(scale: float = SCALE) -> list[dict[str, Any]]:
    """One row per trained baseline: paper iterations and source, pocket steps, batch, widths."""
    from svdinst.baselines.registry import get_baseline

    rows = []
    for name, (iterations, source) in PAPER_ITERATIONS.items():
        config = pocket_config(get_baseline(name), scale=scale)
        rows.append(
            {
                "method": name,
                "paper_iterations": iterations,
                "paper_source": source,
                "pocket_steps": pocket_steps(name, scale),
                "batch_size": getattr(config, "batch_size", None),
                "widths": WIDTHS[name],
            }
        )
    return rows
