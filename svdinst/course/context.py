"""The course context: where a notebook reads and writes, and every setting its profile implies.

:func:`svdinst.course.notebook.setup` returns a :class:`CourseContext`; notebooks 01–07,
:mod:`svdinst.course.outputs` and :mod:`svdinst.pocket.experiment` ask it for folders, configs and
stylizers instead of building them from the profile themselves.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from svdinst.baselines import get_baseline
from svdinst.course.profiles import Profile
from svdinst.course.settings import (
    BaselineSettings,
    profile_baseline_settings,
    profile_run_config,
    profile_stylize_config,
)
from svdinst.device import inference_dtype
from svdinst.formats.outputs import method_folder_name
from svdinst.stylize.stylizer import StylizeConfig, Stylizer
from svdinst.training.config import TrainConfig
from svdinst.training.runs import ensure_run

CHECKPOINTS_PER_RUN = 10  # course runs checkpoint every steps/10: a disconnect loses ≤ 10 %


@dataclass
class CourseContext:
    """Where a notebook reads and writes, and the profile it runs with.

    Args:
        profile (`Profile`): from :func:`svdinst.course.profiles.get_profile`.
        workdir (`Path`): the root of ``data/``, ``runs/``, ``outputs/``, ``reports/``.
        device (`str`): ``"cuda"`` or ``"cpu"`` (:func:`svdinst.device.default_device`).
    """

    profile: Profile
    workdir: Path
    device: str

    # --- folders ---------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        """``WORKDIR/data``: content/, style/, test/ as written by ``svdinst data prepare``."""
        return self.workdir / "data"

    @property
    def style_dir(self) -> Path:
        """``WORKDIR/data/style``: what every diffusion run trains on."""
        return self.data_dir / "style"

    @property
    def test_dir(self) -> Path:
        """``WORKDIR/data/test``: the held-out photos every method stylizes."""
        return self.data_dir / "test"

    @property
    def runs_dir(self) -> Path:
        """``WORKDIR/runs``: one folder per training run (docs/DESIGN.md, "Run folder")."""
        return self.workdir / "runs"

    @property
    def outputs_dir(self) -> Path:
        """``WORKDIR/outputs``: stylized images, one folder per method."""
        return self.workdir / "outputs"

    @property
    def reports_dir(self) -> Path:
        """``WORKDIR/reports``: REPORT.md, metrics and benchmarks."""
        return self.workdir / "reports"

    @property
    def figures_dir(self) -> Path:
        """``WORKDIR/reports/figures``: every figure, through ``save_figure``."""
        return self.reports_dir / "figures"

    def run_dir(self, mode: str, seed: int = 0) -> Path:
        """``runs/<mode>`` for seed 0, else the seed-suffixed name of the outputs folders
        (:func:`svdinst.formats.outputs.method_folder_name`)."""
        return self.runs_dir / method_folder_name(mode, seed)

    def baseline_run_dir(self, name: str) -> Path:
        """``runs/baselines/<name>``: a baseline's run folder (notebook 06)."""
        return self.runs_dir / "baselines" / name

    # --- device -----------------------------------------------------------------------------

    @property
    def dtype(self) -> torch.dtype:
        """Inference dtype on this device (:func:`svdinst.device.inference_dtype`)."""
        return inference_dtype(self.device)

    # --- training ---------------------------------------------------------------------------

    def training_seeds(self, seeds: Sequence[int] | str = "auto") -> tuple[int, ...]:
        """``seeds``, or the profile's ``training_seeds`` for ``"auto"``."""
        return tuple(self.profile.training_seeds if seeds == "auto" else seeds)

    def train_steps(self, tiny_steps: int | None = None) -> int:
        """The profile's training steps; ``tiny_steps`` instead on ``tiny`` (a quick stand-in
        run for a notebook opened alone), when given."""
        if tiny_steps is not None and self.profile.name == "tiny":
            return int(tiny_steps)
        return self.profile.train_steps

    def train_config(self, mode: str, seed: int = 0, **overrides: Any) -> TrainConfig:
        """The profile's :class:`TrainConfig` for ``mode`` and ``seed`` into :meth:`run_dir`.

        Args:
            mode (`str`): ``"inst"``, ``"svdiff"`` or ``"svd-inst"``.
            seed (`int`, defaults to 0): the training seed.
            overrides: ``steps``, ``lr``, ``prompt_template`` (``"auto"`` keeps the profile's) or
                any other TrainConfig field; see :func:`svdinst.course.settings.profile_run_config`.
        """
        out = overrides.pop("out", self.run_dir(mode, seed))
        every = overrides.pop("checkpoint_every", None)
        config = profile_run_config(
            mode, out, profile=self.profile, style_dir=self.style_dir, seed=seed, **overrides
        )
        # A Colab disconnect then costs at most one interval: ensure_run resumes from there.
        config.checkpoint_every = (
            every if every is not None else math.ceil(config.steps / CHECKPOINTS_PER_RUN)
        )
        return config

    def ensure_run(
        self,
        mode: str,
        seed: int = 0,
        *,
        make_missing: bool = True,
        same_settings: bool = True,
        **overrides: Any,
    ) -> Path:
        """Reuse ``run_dir(mode, seed)`` when it holds this run (same settings), resume it when it
        was interrupted, else train it (:func:`svdinst.training.runs.ensure_run`, which also
        explains ``same_settings``); ``overrides`` as :meth:`train_config`."""
        config = self.train_config(mode, seed, **overrides)
        return ensure_run(config, make_missing=make_missing, same_settings=same_settings)

    def ensure_runs(
        self,
        modes: Iterable[str],
        seeds: Sequence[int] | str = (0,),
        *,
        make_missing: bool = True,
        same_settings: bool = True,
        **overrides: Any,
    ) -> dict[str, Path]:
        """The mode × seed loop: :meth:`ensure_run` for each pair.

        Args:
            modes (`Iterable[str]`): run modes.
            seeds (`Sequence[int]` or ``"auto"``, defaults to ``(0,)``): training seeds;
                ``"auto"`` = the profile's ``training_seeds``.
            make_missing (`bool`, defaults to `True`): train missing runs (else RunFolderError).
            same_settings (`bool`, defaults to `True`): `False` reuses any finished run of the
                mode (see :func:`svdinst.training.runs.ensure_run`).
            overrides: as :meth:`train_config`.

        Returns:
            `dict[str, Path]`: folder name (``method_folder_name``) → run folder, modes outermost.
        """
        return {
            method_folder_name(mode, seed): self.ensure_run(
                mode, seed, make_missing=make_missing, same_settings=same_settings, **overrides
            )
            for mode in modes
            for seed in self.training_seeds(seeds)
        }

    # --- stylizing --------------------------------------------------------------------------

    def stylize_config(self, **overrides: Any) -> StylizeConfig:
        """The profile's :class:`StylizeConfig` (strength, seeds, steps, guidance) + ``overrides``."""
        return profile_stylize_config(self.profile, **overrides)

    def stylizer(self, run: str | Path | None = None, **kwargs: Any) -> Stylizer:
        """A :class:`Stylizer` of the profile's model with ``run`` applied (`None`: the bare model),
        on this device in :attr:`dtype`; ``kwargs`` such as ``shift_scale`` or ``merge``. Use it
        as ``with ctx.stylizer(run) as st:`` (or call ``st.close()``) so two models are never
        on the GPU at once."""
        return Stylizer(self.profile.model, run, device=self.device, dtype=self.dtype, **kwargs)

    # --- baselines --------------------------------------------------------------------------

    def baseline_settings(self, name: str, **kwargs: Any) -> BaselineSettings:
        """Training settings of baseline ``name`` on this profile; ``kwargs`` (``tiny_steps``,
        ``gpu_steps``, ``gpu_batch_size``, ``checkpoint_every``) as
        :func:`svdinst.course.settings.profile_baseline_settings`."""
        return profile_baseline_settings(get_baseline(name), self.profile, **kwargs)
