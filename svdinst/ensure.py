"""Find what an earlier notebook should have made, or make a short version of it (standalone runs).

Notebooks 05 and 07 read runs (``WORKDIR/runs/<mode>``) and stylized outputs
(``WORKDIR/outputs/<method>``) written by the notebooks before them. Opened alone — on Colab from
the badge, or in CI — they say what is missing and, with ``MAKE_MISSING = True``, make a short
version: a few training steps, then the profile's stylization settings.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from svdinst.errors import RunFolderError

DIFFUSION_METHODS = ("svd-inst", "inst", "svdiff")


def ensure_run(
    run_dir: str | os.PathLike,
    mode: str,
    *,
    profile: Any,
    style_dir: str | os.PathLike,
    steps: int,
    seed: int = 0,
    make_missing: bool = True,
) -> Path:
    """Return ``run_dir`` if it holds a finished run, else train a short one (or raise).

    Args:
        run_dir (`str` or `os.PathLike`): e.g. ``ctx.runs_dir / "svd-inst"``.
        mode (`str`): ``"inst"``, ``"svdiff"`` or ``"svd-inst"``.
        profile (`Profile`): model, resolution and mixed precision of the short run.
        style_dir (`str` or `os.PathLike`): the style images.
        steps (`int`): training steps of the short run.
        seed (`int`, defaults to 0): the training seed (repeat runs with seeds 1, 2… measure
            training noise; Table I then shows mean ± std).
        make_missing (`bool`, defaults to `True`): train when missing; `False` raises instead.
    """
    from svdinst.runs import check_run

    run = Path(run_dir)
    try:
        check_run(run)
        print(f"{mode}: using {run}")
        return run
    except RunFolderError as err:
        if not make_missing:
            raise RunFolderError(
                f"{err} Run notebooks 03/04 first, or set MAKE_MISSING = True."
            ) from None
        print(f"{mode}: no finished run at {run}; training a short one ({steps} steps).")
    from svdinst.train import train
    from svdinst.train_config import TrainConfig

    config = TrainConfig(
        model=profile.model,
        style=[str(style_dir)],
        out=str(run),
        mode=mode,
        steps=steps,
        seed=seed,
        resolution=profile.resolution,
        mixed_precision=profile.mixed_precision,
    )
    train(config, overwrite=True)
    return run


def seed_name(mode: str, seed: int) -> str:
    """Folder name of a method's training seed: ``mode`` for seed 0, else ``<mode>-seed<k>``.

    Seed 0 keeps the plain name notebooks 03/04 write; :func:`svdinst.report.method_folders`
    groups ``<mode>-seed<k>`` folders with ``<mode>`` as repeated training runs.
    """
    return mode if seed == 0 else f"{mode}-seed{seed}"


def ensure_diffusion_outputs(
    ctx: Any,
    methods: Sequence[str] = DIFFUSION_METHODS,
    *,
    train_steps: int = 2,
    make_missing: bool = True,
    init: str = "img2img",
) -> list[str]:
    """Make sure ``outputs/<method>`` exists for each diffusion method (stylizing if needed).

    Args:
        ctx (`NotebookContext`): from :func:`svdinst.notebook.setup`.
        methods (`Sequence[str]`): run modes to look for.
        train_steps (`int`, defaults to 2): steps of a short run trained when one is missing.
        make_missing (`bool`, defaults to `True`): `False` only reports what is missing.
        init (`str`, defaults to ``"img2img"``): the stylization init mode when stylizing here.

    Returns:
        `list[str]`: the methods that have outputs now.
    """
    import torch

    from svdinst.stylize import StylizeConfig, Stylizer, stylize_folder

    ready = []
    for mode in methods:
        out = ctx.outputs_dir / mode
        if any(out.glob("*/seed-*.png")):
            ready.append(mode)
            continue
        if not make_missing:
            print(f"{mode}: no outputs in {out} (run notebook 05, or set MAKE_MISSING = True).")
            continue
        run = ensure_run(
            ctx.runs_dir / mode,
            mode,
            profile=ctx.profile,
            style_dir=ctx.data_dir / "style",
            steps=train_steps if ctx.profile.name == "tiny" else ctx.profile.train_steps,
        )
        dtype = torch.float16 if ctx.device == "cuda" else torch.float32
        stylizer = Stylizer(ctx.profile.model, run, device=ctx.device, dtype=dtype)
        config = StylizeConfig(
            strength=ctx.profile.strength,
            seeds=ctx.profile.stylize_seeds,
            steps=ctx.profile.inference_steps,
            init=init,
        )
        stylize_folder(stylizer, ctx.data_dir / "test", out, config)
        ready.append(mode)
    return ready
