"""The set-up every notebook runs after its ``parameters`` cell.

A notebook opened from its Colab badge has only the installed package: :func:`setup` finds or
creates everything under ``WORKDIR`` (data, runs, reports) and never reads the repository.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

import svdinst
from svdinst.course.context import CourseContext
from svdinst.course.profiles import get_profile
from svdinst.device import default_device


def gpu_check() -> str:
    """Describe the accelerator and, without one, how to get one on Colab. Returns ``"cuda"``/``"cpu"``."""
    if default_device() == "cuda":
        props = torch.cuda.get_device_properties(0)
        print(f"GPU: {props.name}, {props.total_memory / 2**30:.1f} GiB.")
        return "cuda"
    print(
        "No GPU: this notebook will use the CPU (PROFILE='auto' → pocket, or tiny without the "
        "pocket weights). On Colab choose "
        "Runtime → Change runtime type → T4 GPU, then Runtime → Run all."
    )
    return "cpu"


def setup(profile: str = "auto", workdir: str | os.PathLike = ".") -> CourseContext:
    """Resolve the profile, create ``WORKDIR``'s folders and print what was chosen.

    Args:
        profile (`str`, defaults to ``"auto"``): see :func:`svdinst.course.profiles.get_profile`.
        workdir (`str` or `os.PathLike`, defaults to ``"."``): where data, runs and reports live
            (the repository root locally; e.g. ``/content/svdinst`` or a Drive folder on Colab).

    Returns:
        `CourseContext`: folders, device and every setting the profile implies.
    """
    device = gpu_check()
    ctx = CourseContext(get_profile(profile), Path(workdir).expanduser().resolve(), device)
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
