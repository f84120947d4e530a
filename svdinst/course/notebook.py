"""The set-up every notebook runs after its ``parameters`` cell.

A notebook opened from its Colab badge has only the installed package: :func:`setup` finds or
creates everything under ``WORKDIR`` (data, runs, reports) and never reads the repository.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

import svdinst
from svdinst.course.profiles import Profile, get_profile


@dataclass
class NotebookContext:
    """Where a notebook reads and writes, and the profile it runs with."""

    profile: Profile
    workdir: Path
    device: str

    @property
    def data_dir(self) -> Path:
        """``WORKDIR/data``: content/, style/, test/ as written by ``svdinst data prepare``."""
        return self.workdir / "data"

    @property
    def runs_dir(self) -> Path:
        """``WORKDIR/runs``: one folder per training run (see DESIGN.md's run-folder contract)."""
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


def gpu_check() -> str:
    """Describe the accelerator and, without one, how to get one on Colab. Returns ``"cuda"``/``"cpu"``."""
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        print(f"GPU: {props.name}, {props.total_memory / 2**30:.1f} GiB.")
        return "cuda"
    print(
        "No GPU: this notebook will use the CPU (PROFILE='auto' → pocket, or tiny without the "
        "pocket weights). On Colab choose "
        "Runtime → Change runtime type → T4 GPU, then Runtime → Run all."
    )
    return "cpu"


def setup(profile: str = "auto", workdir: str | os.PathLike = ".") -> NotebookContext:
    """Resolve the profile, create ``WORKDIR``'s folders and print what was chosen.

    Args:
        profile (`str`, defaults to ``"auto"``): see :func:`svdinst.course.profiles.get_profile`.
        workdir (`str` or `os.PathLike`, defaults to ``"."``): where data, runs and reports live
            (the repository root locally; e.g. ``/content/svdinst`` or a Drive folder on Colab).
    """
    device = gpu_check()
    ctx = NotebookContext(get_profile(profile), Path(workdir).expanduser().resolve(), device)
    for folder in (ctx.data_dir, ctx.runs_dir, ctx.outputs_dir, ctx.figures_dir):
        folder.mkdir(parents=True, exist_ok=True)
    if device == "cpu" and ctx.profile.resolution <= 128:
        # Toy-sized tensors: extra CPU threads cost more in synchronisation than they give (and
        # under load, 2 threads were measured >10× slower than 1 for the tiny UNet).
        torch.set_num_threads(1)
    label = f"; {ctx.profile.note}" if ctx.profile.note else ""
    print(
        f"svdinst {svdinst.__version__} (from {Path(svdinst.__file__).parent}), "
        f"torch {torch.__version__}, Python {platform.python_version()}; "
        f"profile '{ctx.profile.name}' (model {ctx.profile.model}{label}); WORKDIR {ctx.workdir}"
    )
    return ctx
