"""Train-if-missing + stylize, for every mode × training seed: the loop of notebook 05, of the short
stand-in runs that notebook 07 makes when opened alone, and of the pocket experiment.

Each run's images go to one :class:`~svdinst.formats.outputs.OutputsFolder` ``<out_root>/<name>``,
where ``<name>`` is the run's folder name (:func:`svdinst.formats.outputs.method_folder_name`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from svdinst.course.context import CourseContext
from svdinst.formats.outputs import OutputsFolder
from svdinst.stylize.stylizer import StylizeConfig, stylize_folder

DIFFUSION_METHODS = ("svd-inst", "inst", "svdiff")
BASE = "base"  # the untrained model's output folder (train_and_stylize's base_prompt)


def train_and_stylize(
    ctx: CourseContext,
    modes: Sequence[str],
    seeds: Sequence[int] | str = "auto",
    *,
    content: str | os.PathLike | None = None,
    out_root: str | os.PathLike | None = None,
    config: StylizeConfig | None = None,
    base_prompt: str | None = None,
    make_missing: bool = True,
    same_settings: bool = True,
    **train_overrides: Any,
) -> dict[str, Path | None]:
    """Find or train each mode × seed run, then stylize ``content`` with each, one model at a time.

    Args:
        ctx (`CourseContext`): profile, device and folders.
        modes (`Sequence[str]`): run modes (``"inst"``, ``"svdiff"``, ``"svd-inst"``).
        seeds (`Sequence[int]` or ``"auto"``, defaults to ``"auto"``): training seeds;
            ``"auto"`` = the profile's ``training_seeds``.
        content (`str` or `os.PathLike`, *optional*): photos to stylize; defaults to
            ``ctx.test_dir``.
        out_root (`str` or `os.PathLike`, *optional*): where ``<name>/`` folders go; defaults to
            ``ctx.outputs_dir``.
        config (`StylizeConfig`, *optional*): defaults to ``ctx.stylize_config()``.
        base_prompt (`str`, *optional*): also stylize with the untrained model under this prompt
            (no token) into ``<out_root>/base`` — the pocket experiment's baseline; the returned
            mapping then starts with ``"base": None``.
        make_missing (`bool`, defaults to `True`): train missing runs (else RunFolderError).
        same_settings (`bool`, defaults to `True`): `False` uses any finished run of each mode
            (notebooks 05 and 07 stylize with the runs 03 and 04 trained, whatever their settings).
        train_overrides: passed to :meth:`CourseContext.train_config` (``steps``, ``lr``…).

    Returns:
        `dict[str, Path | None]`: folder name → run folder (`None` for the base model).
    """
    trained = ctx.ensure_runs(
        modes, seeds, make_missing=make_missing, same_settings=same_settings, **train_overrides
    )
    runs: dict[str, Path | None] = {BASE: None} if base_prompt is not None else {}
    runs.update(trained)
    config = config or ctx.stylize_config()
    content = Path(content) if content is not None else ctx.test_dir
    out_root = Path(out_root) if out_root is not None else ctx.outputs_dir
    for name, run in runs.items():
        settings = config if run is not None else replace(config, prompt=base_prompt)
        with ctx.stylizer(run) as stylizer:  # freed before the next: one model on a T4 at a time
            stylize_folder(  # keeps finished images; at most the profile's number of test photos
                stylizer, content, out_root / name, settings, max_photos=ctx.profile.test_photos
            )
    return runs


def ensure_diffusion_outputs(
    ctx: CourseContext,
    methods: Sequence[str] = DIFFUSION_METHODS,
    *,
    train_steps: int = 2,
    make_missing: bool = True,
    init: str = "img2img",
) -> list[str]:
    """Make sure ``outputs/<method>`` exists for each diffusion method (stylizing if needed).

    Notebook 07 reads what notebook 05 wrote; opened alone (on Colab from its badge, or in CI) it
    says what is missing and, with ``make_missing``, makes a short version: a run of
    ``train_steps`` steps on ``tiny`` (the profile's steps elsewhere), then the profile's
    stylization settings.

    Args:
        ctx (`CourseContext`): from :func:`svdinst.course.notebook.setup`.
        methods (`Sequence[str]`): run modes to look for.
        train_steps (`int`, defaults to 2): steps of a short run trained on ``tiny``.
        make_missing (`bool`, defaults to `True`): `False` only reports what is missing.
        init (`str`, defaults to ``"img2img"``): the stylization init mode when stylizing here.

    Returns:
        `list[str]`: the methods that have outputs now.
    """
    missing = [m for m in methods if not OutputsFolder(ctx.outputs_dir / m).has_images()]
    if missing and not make_missing:
        for mode in missing:
            print(f"{mode}: no outputs in {ctx.outputs_dir / mode} (run notebook 05, "
                  "or set MAKE_MISSING = True).")  # fmt: skip
        return [mode for mode in methods if mode not in missing]
    if missing:
        config = ctx.stylize_config(init=init)
        train_and_stylize(ctx, missing, (0,), config=config, same_settings=False,
                          steps=ctx.train_steps(train_steps))  # fmt: skip
    return list(methods)
