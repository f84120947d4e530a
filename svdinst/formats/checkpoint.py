"""The one training-checkpoint format: ``RUN/checkpoints/step-NNNNNN/state.pt``.

``svdinst train``, ``svdinst pocket pretrain`` and every baseline write the same thing: a pickled
``dict`` holding the caller's state (trainable parameters, optimizer, scheduler, samplers…), the
step and every global RNG state (Python, NumPy, torch CPU, CUDA) — so ``--resume`` continues
*exactly*. It is written into a temporary folder, fsynced, renamed with ``os.replace`` and the
rename fsynced: a crash mid-write leaves the previous checkpoint intact and never a half-written
one that a resume would pick. Only the newest ``keep`` checkpoints are kept.

torch is imported by the four functions that need it, not at the top: the run folder and every
command-line module import this module for its names, and importing torch takes ~2 s, which
``svdinst --help`` must not pay (``tests/packaging/test_packaging.py`` checks it).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from svdinst.errors import RunFolderError
from svdinst.formats.atomic import fsync_dir

CHECKPOINTS_DIR = "checkpoints"
STATE_FILE = "state.pt"
STEP_PREFIX = "step-"
_STEP_DIR = re.compile(rf"^{STEP_PREFIX}(\d{{6,}})$")


def step_dir_name(step: int) -> str:
    """``step-NNNNNN``: the folder name of checkpoint ``step`` (zero-padded, so names sort)."""
    return f"{STEP_PREFIX}{step:06d}"


def checkpoints_dir(run_dir: str | os.PathLike) -> Path:
    """``RUN/checkpoints``."""
    return Path(run_dir) / CHECKPOINTS_DIR


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch-CPU and (when present) CUDA RNG states."""
    import torch

    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (a state without ``numpy`` leaves NumPy as is)."""
    import torch

    random.setstate(state["python"])
    if "numpy" in state:
        np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(step, folder)`` of every complete checkpoint (one with its state file), oldest first."""
    root = checkpoints_dir(run_dir)
    found = []
    if root.is_dir():
        for child in root.iterdir():
            match = _STEP_DIR.match(child.name)
            if match and (child / STATE_FILE).is_file():
                found.append((int(match.group(1)), child))
    return sorted(found)


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint folder of ``run_dir``, or ``None``."""
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def save_checkpoint(
    run_dir: str | os.PathLike, step: int, state: dict[str, Any], keep: int | None = 2
) -> Path:
    """Write ``state`` (plus ``step`` and ``rng``) as checkpoint ``step`` atomically.

    Args:
        run_dir (`str` or `os.PathLike`): the run folder.
        step (`int`): optimizer steps done.
        state (`dict`): picklable training state (tensors best on the CPU); the keys ``step``
            and ``rng`` are set here (the RNG states at this moment, see :func:`rng_state`).
        keep (`int` or `None`, defaults to 2): checkpoints kept (≥ 1); older ones are deleted.
            `None` keeps all.

    Returns:
        `Path`: the checkpoint folder.
    """
    import torch

    root = checkpoints_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_dir_name(step)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{final.name}."))
    try:
        with (tmp / STATE_FILE).open("wb") as fh:
            torch.save({**state, "step": step, "rng": rng_state()}, fh)
            fh.flush()
            os.fsync(fh.fileno())  # on disk before the rename: a power cut never leaves it empty
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(root)  # the rename itself is durable
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if keep is not None:
        for _, old in list_checkpoints(run_dir)[: -max(keep, 1)]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(folder: str | os.PathLike) -> dict[str, Any]:
    """The state of one checkpoint folder (RNG states are *not* restored: see ``state["rng"]``)."""
    import torch

    file = Path(folder) / STATE_FILE
    if not file.is_file():
        raise RunFolderError(f"Checkpoint '{folder}' has no {STATE_FILE}; delete it and resume.")
    try:
        # Our own file (written by save_checkpoint): it holds RNG tuples, so not weights_only.
        return torch.load(file, map_location="cpu", weights_only=False)
    except Exception as err:
        raise RunFolderError(
            f"Checkpoint '{folder}' is unreadable ({err}); delete it to resume from an older one."
        ) from err


def load_latest_checkpoint(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The newest complete checkpoint's state, or a :class:`RunFolderError` saying why not."""
    folder = latest_checkpoint(run_dir)
    if folder is None:
        raise RunFolderError(
            f"--resume: '{run_dir}' has no {CHECKPOINTS_DIR}/{STEP_PREFIX}*/{STATE_FILE} to "
            "continue from: start it over with the same command plus --overwrite (without "
            "--resume)."
        )
    return load_checkpoint(folder)


def remove_checkpoints(run_dir: str | os.PathLike) -> None:
    """Delete ``RUN/checkpoints`` (an overwritten run's checkpoints must not outlive it)."""
    shutil.rmtree(checkpoints_dir(run_dir), ignore_errors=True)


def check_finite(tensors: dict[str, Any], path: str | os.PathLike, *, saving: bool = True) -> None:
    """Raise :class:`RunFolderError` when a tensor holds NaN or ±inf (it stylizes black images).

    Args:
        tensors (`dict[str, torch.Tensor]`): what is about to be saved, or was just read.
        path (`str` or `os.PathLike`): the file, for the message.
        saving (`bool`, defaults to `True`): the tensors are about to be written to ``path``
            (refused), else they were read from it.
    """
    bad = [name for name, t in tensors.items() if not bool(t.detach().isfinite().all())]
    if bad:
        what = f"Not writing '{path}'" if saving else f"'{path}' is unusable"
        raise RunFolderError(
            f"{what}: {len(bad)} tensor(s) are not finite (NaN or inf), e.g. {bad[0]!r}; "
            "training diverged: train again with a smaller --lr (and --overwrite)."
        )
