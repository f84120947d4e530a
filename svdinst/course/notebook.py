"""The set-up every notebook runs after its ``parameters`` cell.

A notebook opened from its Colab badge has only the installed package: :func:`setup` finds or
creates everything under ``WORKDIR`` (data, runs, reports) and never reads the repository.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import warnings
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


_SHOWN: set[tuple[type, str, int]] = set()  # warnings already printed: (category, file, line)
QUIET_LOGGERS = ("diffusers", "transformers", "huggingface_hub", "accelerate", "torch_fidelity")


def _show_once(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a warning the first time its (category, file, line) fires; later ones are dropped.

    ``warnings.simplefilter("once")`` keys on the message text, so a warning that names a file
    (one per output image) still printed once per file; this keys on where it was raised.
    """
    key = (category, str(filename), int(lineno))
    if key in _SHOWN:
        return
    _SHOWN.add(key)
    where = f"{Path(filename).name}:{lineno}"
    print(f"{category.__name__} ({where}): {message} [repeats of this warning are hidden]",
          file=file or sys.stderr)  # fmt: skip


def quiet_outputs() -> None:
    """Keep notebook outputs readable: no loading bars, info logs off, each warning once.

    Turns off diffusers' / transformers' / huggingface_hub's progress bars and their info logs
    (errors and warnings still show), and prints each warning once per place it is raised.
    The kit's own tqdm bars stay (one per long loop).
    """
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:  # the libraries' own switches (they keep their own handlers and bar flags)
        import diffusers.utils.logging as dlog

        dlog.set_verbosity_error()
        dlog.disable_progress_bar()
    except ImportError:
        pass
    try:
        import transformers.utils.logging as tlog

        tlog.set_verbosity_error()
        tlog.disable_progress_bar()
    except ImportError:
        pass
    try:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:
        pass
    warnings.showwarning = _show_once


def cpu_threads(resolution: int, cpus: int | None = None) -> int:
    """Torch threads for a notebook on a CPU with a toy-sized model at ``resolution`` px.

    The tiny model (≤ 64 px) runs fastest on one thread: extra threads cost more in
    synchronisation than they give (under load, 2 were measured >10× slower than 1). The pocket
    model (128 px) gains from two on the 2-core box (stylizing 1.7×, training 1.5×, 2026-12-07),
    and exactly two everywhere keeps its numbers the same on bigger machines (a float sum's
    order, hence the last bits, depends on the thread count).
    """
    cpus = os.cpu_count() if cpus is None else cpus
    return 1 if resolution <= 64 else min(2, cpus or 1)


def setup(profile: str = "auto", workdir: str | os.PathLike = ".") -> CourseContext:
    """Resolve the profile, create ``WORKDIR``'s folders and print what was chosen.

    Also quiets the outputs (:func:`quiet_outputs`): no library loading bars, each warning once.

    Args:
        profile (`str`, defaults to ``"auto"``): see :func:`svdinst.course.profiles.get_profile`.
        workdir (`str` or `os.PathLike`, defaults to ``"."``): where data, runs and reports live
            (the repository root locally; e.g. ``/content/svdinst`` or a Drive folder on Colab).

    Returns:
        `CourseContext`: folders, device and every setting the profile implies.
    """
    quiet_outputs()
    device = gpu_check()
    ctx = CourseContext(get_profile(profile), Path(workdir).expanduser().resolve(), device)
    for folder in (ctx.data_dir, ctx.runs_dir, ctx.outputs_dir, ctx.figures_dir):
        folder.mkdir(parents=True, exist_ok=True)
    if device == "cpu" and ctx.profile.resolution <= 128:
        torch.set_num_threads(cpu_threads(ctx.profile.resolution))
    label = f"; {ctx.profile.note}" if ctx.profile.note else ""
    print(
        f"svdinst {svdinst.__version__} (from {Path(svdinst.__file__).parent}), "
        f"torch {torch.__version__}, Python {platform.python_version()}; "
        f"profile '{ctx.profile.name}' (model {ctx.profile.model}{label}); WORKDIR {ctx.workdir}"
    )
    return ctx
