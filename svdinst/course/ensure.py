"""Find what an earlier notebook should have made, or make a short version of it (standalone runs).

Notebooks 05 and 07 read runs (``WORKDIR/runs/<mode>``) and stylized outputs
(``WORKDIR/outputs/<method>``) written by the notebooks before them. Opened alone — on Colab from
the badge, or in CI — they say what is missing and, with ``MAKE_MISSING = True``, make a short
version: a few training steps, then the profile's stylization settings.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

DIFFUSION_METHODS = ("svd-inst", "inst", "svdiff")


def profile_run_config(
    mode: str,
    out: str | os.PathLike,
    *,
    profile: Any,
    style_dir: str | os.PathLike,
    steps: int | str = "auto",
    seed: int = 0,
    lr: float | str = "auto",
    prompt_template: str | None = None,
) -> Any:
    """The :class:`~svdinst.training.config.TrainConfig` notebooks train with, sized for a profile.

    One place for the notebooks' training settings, so 03, 04 and the short runs that 05/07 make
    when a run is missing all train the same way. Pass it to :func:`svdinst.training.runs.ensure_run`,
    which reuses a finished run of the same mode and model in ``out`` and trains only when there
    is none.

    Args:
        mode (`str`): ``"inst"``, ``"svdiff"`` or ``"svd-inst"``.
        out (`str` or `os.PathLike`): the run folder, e.g. ``ctx.runs_dir / "svd-inst"``.
        profile (`Profile`): model, resolution, steps and mixed precision of the run.
        style_dir (`str` or `os.PathLike`): the style images.
        steps (`int` or ``"auto"``): training steps; ``"auto"`` = ``profile.train_steps``.
        seed (`int`, defaults to 0): the training seed (repeat runs with seeds 1, 2… measure
            training noise; Table I then shows mean ± std).
        lr (`float` or ``"auto"``): ``"auto"`` is the report's AdamW 1e-3 for the token part and
            ``profile.lr_shifts`` for the shifts (1e-2 on random tiny weights, so a few dozen
            steps show a falling curve).
        prompt_template (`str`, *optional*): e.g. ``"{}"`` (InST's bare placeholder); defaults to
            the training config's.
    """
    from svdinst.training.config import TrainConfig

    extra = {} if prompt_template is None else {"prompt_template": prompt_template}
    return TrainConfig(
        model=profile.model,
        style=[str(style_dir)],
        out=str(out),
        mode=mode,
        steps=profile.train_steps if steps == "auto" else int(steps),
        seed=seed,
        lr=1e-3 if lr == "auto" else float(lr),
        lr_shifts=profile.lr_shifts if lr == "auto" else float(lr),
        batch_size=profile.train_batch_size,  # sized by the profile (SD-1.4: 1 on a 16 GB T4)
        resolution=profile.resolution,
        mixed_precision=profile.mixed_precision,
        gradient_checkpointing=profile.gradient_checkpointing,
        **extra,
    )


def baseline_batch_size(cls: Any, profile: Any, requested: int | str | None = "auto") -> int | None:
    """The training batch of a baseline for a profile: the paper's, at most the profile's cap.

    Published batches assume large cards (StyTr² at its batch 8 peaked at 17 GiB on an H100 at
    256 px, BalaGAN at 32 at 77 GiB; see ``reports/benchmarks.md``), so the ``sd14`` profiles cap
    them at ``profile.baseline_batch_cap`` to fit a 16 GB T4; smaller published batches (CycleGAN's
    1) are kept.

    Args:
        cls: a registered baseline class (``svdinst.baselines.get_baseline(name)``).
        profile (`Profile`): gives ``baseline_batch_cap``.
        requested (`int`, ``"auto"`` or `None`, defaults to ``"auto"``): an explicit batch wins;
            `None` keeps the paper's.

    Returns:
        `int` or `None`: the batch, or `None` (the config's own) for a method without a batch
        size or when ``requested`` is `None`.
    """
    fields = cls.config_class.__dataclass_fields__
    if "batch_size" not in fields or requested is None:
        return None
    if requested != "auto":
        return int(requested)
    return min(int(fields["batch_size"].default), profile.baseline_batch_cap)


def seed_name(mode: str, seed: int) -> str:
    """Folder name of a method's training seed: ``mode`` for seed 0, else ``<mode>-seed<k>``.

    Seed 0 keeps the plain name notebooks 03/04 write; :func:`svdinst.evaluation.report.method_folders`
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
        ctx (`NotebookContext`): from :func:`svdinst.course.notebook.setup`.
        methods (`Sequence[str]`): run modes to look for.
        train_steps (`int`, defaults to 2): steps of a short run trained when one is missing.
        make_missing (`bool`, defaults to `True`): `False` only reports what is missing.
        init (`str`, defaults to ``"img2img"``): the stylization init mode when stylizing here.

    Returns:
        `list[str]`: the methods that have outputs now.
    """
    import torch

    from svdinst.training.runs import ensure_run
    from svdinst.stylize.stylizer import StylizeConfig, Stylizer, stylize_folder

    ready = []
    for mode in methods:
        out = ctx.outputs_dir / mode
        if any(out.glob("*/seed-*.png")):
            ready.append(mode)
            continue
        if not make_missing:
            print(f"{mode}: no outputs in {out} (run notebook 05, or set MAKE_MISSING = True).")
            continue
        config = profile_run_config(
            mode,
            ctx.runs_dir / mode,
            profile=ctx.profile,
            style_dir=ctx.data_dir / "style",
            steps=train_steps if ctx.profile.name == "tiny" else ctx.profile.train_steps,
        )
        run = ensure_run(config, make_missing=True)
        dtype = torch.float16 if ctx.device == "cuda" else torch.float32
        stylizer = Stylizer(ctx.profile.model, run, device=ctx.device, dtype=dtype)
        config = StylizeConfig(
            strength=ctx.profile.strength,
            seeds=ctx.profile.stylize_seeds,
            steps=ctx.profile.inference_steps,
            guidance=getattr(ctx.profile, "guidance", None),
            init=init,
        )
        stylize_folder(stylizer, ctx.data_dir / "test", out, config)
        ready.append(mode)
    return ready
