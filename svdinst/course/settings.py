"""Profile → settings: the one place that turns a :class:`~svdinst.course.profiles.Profile` into
the configs of training, stylization and the baselines.

Notebooks, :mod:`svdinst.course.outputs` and :mod:`svdinst.pocket.experiment` reach these through
:class:`svdinst.course.context.CourseContext`; the functions here take a profile (not a context) so
tests and scripts can size a config without a working folder.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from svdinst.baselines.base import Baseline
from svdinst.baselines.shipped import shipped_run
from svdinst.course.profiles import Profile
from svdinst.stylize.config import StylizeConfig
from svdinst.training.config import TrainConfig

CPU_PROFILES = ("tiny", "pocket")  # baselines: small networks, few steps, no checkpoints


def profile_run_config(
    mode: str,
    out: str | os.PathLike,
    *,
    profile: Profile,
    style_dir: str | os.PathLike,
    steps: int | str = "auto",
    seed: int = 0,
    lr: float | str = "auto",
    prompt_template: str | None = None,
    **overrides: Any,
) -> TrainConfig:
    """The :class:`~svdinst.training.config.TrainConfig` notebooks train with, sized for a profile.

    One place for the notebooks' training settings, so 03, 04, 05, the short runs that 07 makes
    when a run is missing and the pocket experiment all train the same way. Pass it to
    :func:`svdinst.training.runs.ensure_run`, which reuses a finished run of the same mode and
    model in ``out`` and trains only when there is none.

    Args:
        mode (`str`): ``"inst"``, ``"svdiff"`` or ``"svd-inst"``.
        out (`str` or `os.PathLike`): the run folder, e.g. ``ctx.run_dir("svd-inst")``.
        profile (`Profile`): model, resolution, steps and mixed precision of the run.
        style_dir (`str` or `os.PathLike`): the style images.
        steps (`int` or ``"auto"``): training steps; ``"auto"`` = ``profile.train_steps``.
        seed (`int`, defaults to 0): the training seed (repeat runs with seeds 1, 2… measure
            training noise; Table I then shows mean ± std).
        lr (`float` or ``"auto"``): ``"auto"`` is ``profile.lr_token`` for the image→token
            module (None: InST's 1e-4, the training config's default,
            ``svdinst.training.config.INST_LR``) and ``profile.lr_shifts`` for the shifts (1e-2
            on random tiny weights, so a few dozen steps show a falling curve); a number sets
            both.
        prompt_template (`str`, *optional*): e.g. ``"{}"`` (InST's bare placeholder); defaults to
            the training config's.
        overrides: any other :class:`TrainConfig` field (e.g. ``image_tokens="patches"``).
    """
    if prompt_template is not None:
        overrides["prompt_template"] = prompt_template
    lr_token = profile.lr_token if lr == "auto" else None  # a number sets both (lr below)
    return TrainConfig(
        model=profile.model,
        style=[str(style_dir)],
        out=str(out),
        mode=mode,
        steps=profile.train_steps if steps == "auto" else int(steps),
        seed=seed,
        lr=None if lr == "auto" else float(lr),  # None: each part's own lr (below, or InST's)
        lr_shifts=profile.lr_shifts if lr == "auto" else float(lr),
        batch_size=profile.train_batch_size,  # sized by the profile (SD-1.4: 1 on a 16 GB T4)
        resolution=profile.resolution,
        mixed_precision=profile.mixed_precision,
        gradient_checkpointing=profile.gradient_checkpointing,
        **{"image_encoder": profile.image_encoder, "lr_token": lr_token, **overrides},
    )


def profile_stylize_config(profile: Profile, **overrides: Any) -> StylizeConfig:
    """The profile's stylization settings (strength, seeds, steps, guidance, init) + ``overrides``.

    Args:
        profile (`Profile`): gives ``strength``, ``stylize_seeds``, ``inference_steps``,
            ``guidance`` (None → 7.5 img2img / 10 inst; pocket: 3) and ``init``.
        overrides: any :class:`~svdinst.stylize.stylizer.StylizeConfig` field, e.g. ``init="inst"``;
            ``init="auto"`` keeps the profile's start (a notebook's ``INIT = "auto"``).
    """
    if overrides.get("init") == "auto":
        overrides = {k: v for k, v in overrides.items() if k != "init"}
    settings: dict[str, Any] = {
        "strength": profile.strength,
        "seeds": profile.stylize_seeds,
        "steps": profile.inference_steps,
        "guidance": profile.guidance,
        "init": profile.init,
    }
    return StylizeConfig(**{**settings, **overrides})


def baseline_batch_size(
    cls: type[Baseline], profile: Profile, requested: int | str | None = "auto"
) -> int | None:
    """The training batch of a baseline for a profile: the paper's, at most the profile's cap.

    Published batches assume large cards (StyTr² at its batch 8 peaked at 17 GiB on an H100 at
    256 px, BalaGAN at 32 at 77 GiB; see ``reports/benchmarks.md``), so the ``sd14`` profiles cap
    them at ``profile.baseline_batch_cap`` to fit a 16 GB T4; smaller published batches (CycleGAN's
    1) are kept.

    Args:
        cls (`type[Baseline]`): a registered baseline class (``svdinst.baselines.get_baseline``).
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


@dataclass(frozen=True)
class BaselineSettings:
    """How notebook 06 trains one baseline on a profile (keyword arguments of ``train_baseline``)."""

    steps: int
    size: str  # "tiny" networks on the CPU profiles, the papers' "full" ones on a GPU
    resolution: int  # training crops (px)
    batch_size: int | None  # None: the method's own (or the tiny config's)
    checkpoint_every: int  # 0: no checkpoints (a CPU run takes seconds)
    shipped: str | None = None  # pocket: the GPU-trained run shipped with the kit, used as is

    def as_kwargs(self) -> dict[str, Any]:
        """The training fields as keyword arguments of :func:`svdinst.baselines.cli.train_baseline`."""
        kwargs = asdict(self)
        kwargs.pop("shipped")
        return kwargs


def profile_baseline_settings(
    cls: type[Baseline],
    profile: Profile,
    *,
    tiny_steps: int = 2,
    gpu_steps: int | str = "auto",
    gpu_batch_size: int | str | None = "auto",
    checkpoint_every: int = 250,
) -> BaselineSettings:
    """A baseline's training settings for a profile.

    The CPU profiles (``tiny``, ``pocket``) train the small networks for ``tiny_steps`` at the
    profile's resolution rounded down to a multiple of 32 — except that on ``pocket`` a baseline
    shipped with the kit (:func:`svdinst.baselines.shipped.shipped_run`: trained on a GPU at a
    budget scaled from its paper's) is named in ``shipped`` and notebook 06 loads it instead; a GPU profile trains the papers'
    networks for ``gpu_steps`` on 256 px crops (the papers' size) with :func:`baseline_batch_size`.

    Args:
        cls (`type[Baseline]`): the baseline class.
        profile (`Profile`): the course profile.
        tiny_steps (`int`, defaults to 2): training steps on the CPU profiles.
        gpu_steps (`int` or ``"auto"``): training steps on a GPU profile; ``"auto"`` =
            ``profile.baseline_steps`` (``course``: 120, ``sd14``: 1000).
        gpu_batch_size (`int`, ``"auto"`` or `None`): see :func:`baseline_batch_size`.
        checkpoint_every (`int`, defaults to 250): GPU runs only; lets an interrupted run resume.
    """
    if profile.name in CPU_PROFILES:
        shipped = shipped_run(cls.name) if profile.name == "pocket" else None
        return BaselineSettings(
            tiny_steps, "tiny", 32 * (profile.resolution // 32), None, 0,
            shipped=str(shipped) if shipped else None,
        )  # fmt: skip
    batch = baseline_batch_size(cls, profile, gpu_batch_size)
    steps = profile.baseline_steps if gpu_steps == "auto" else int(gpu_steps)
    return BaselineSettings(steps, "full", 256, batch, checkpoint_every)
