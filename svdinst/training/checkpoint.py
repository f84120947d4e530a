"""Atomic training checkpoints that let ``--resume`` continue *exactly*, and ``log.csv``.

A checkpoint is ``RUN/checkpoints/step-NNNNNN/state.pt`` holding only what changes during
training: the trainable parameters (by name), the optimizer and lr-scheduler states, the data
generator's state and every RNG state (Python, torch CPU, CUDA) — the frozen base model is
never copied. It is written into a temporary folder and renamed with ``os.replace``, so a crash
mid-write leaves the previous checkpoint intact and never a half-written one.
"""

from __future__ import annotations

import csv
import os
import random
import re
import shutil
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from svdinst.errors import RunFolderError
from svdinst.training.config import RESUMABLE_FIELDS, TrainConfig, read_config_json

_STEP_DIR = re.compile(r"^step-(\d{6,})$")
# What train() writes into a run folder besides checkpoints/ (removed by --overwrite).
RUN_FILES = (
    "config.json",
    "log.csv",
    "learned_embeds.safetensors",
    "image_to_token.safetensors",
    "spectral_shifts.safetensors",
)


def rng_state() -> dict:
    """Python, torch-CPU and (when present) CUDA RNG states."""
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` captured."""
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(step, folder)`` of every complete checkpoint, oldest first."""
    folder = Path(run_dir) / "checkpoints"
    found = []
    if folder.is_dir():
        for child in folder.iterdir():
            match = _STEP_DIR.match(child.name)
            if match and (child / "state.pt").exists():
                found.append((int(match.group(1)), child))
    return sorted(found)


def save_checkpoint(run_dir: str | os.PathLike, step: int, state: dict, keep: int = 2) -> Path:
    """Write ``state`` as checkpoint ``step`` atomically; keep only the ``keep`` newest.

    Args:
        run_dir (`str` or `os.PathLike`): the run folder.
        step (`int`): optimizer steps done.
        state (`dict`): picklable training state (tensors are moved to the CPU by the caller).
        keep (`int`, defaults to 2): checkpoints kept (≥ 1); older ones are deleted.
    """
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:06d}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".step-{step:06d}."))
    try:
        with (tmp / "state.pt").open("wb") as fh:
            torch.save({**state, "step": step}, fh)
            fh.flush()
            os.fsync(fh.fileno())  # on disk before the rename: a power cut never leaves it empty
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)  # the rename itself is durable
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    for _, old in list_checkpoints(run_dir)[: -max(keep, 1)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (renames) to disk where the OS allows it (not on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_latest_checkpoint(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The newest complete checkpoint's state, or a :class:`RunFolderError` saying why not."""
    found = list_checkpoints(run_dir)
    if not found:
        raise RunFolderError(
            f"--resume: '{run_dir}' has no checkpoints/step-*/state.pt; start the run without "
            "--resume (or give --checkpoint-every K so runs can be resumed)."
        )
    _, folder = found[-1]
    try:
        return torch.load(folder / "state.pt", map_location="cpu", weights_only=False)
    except Exception as err:
        raise RunFolderError(
            f"Checkpoint '{folder}' is unreadable ({err}); delete it to resume from an older one."
        ) from err


class LossLog:
    """``log.csv`` (step, loss, lr, seconds), truncated to the resumed step, flushed each row.

    ``lr`` is the first parameter group's (the image→token module, or the shifts in ``svdiff``);
    every group follows the same warm-up factor, so the others are their base lr times lr/lr₀.
    """

    def __init__(self, path: Path, start: int) -> None:
        rows = []
        if start and path.exists():
            with path.open() as fh:
                rows = [r for r in csv.reader(fh)][1:]
            rows = [r for r in rows if int(r[0]) <= start]
        self.fh = path.open("w", newline="")
        self.writer = csv.writer(self.fh)
        self.writer.writerow(["step", "loss", "lr", "seconds"])
        self.writer.writerows(rows)
        self.fh.flush()

    def write(self, step: int, loss: float, lr: float, seconds: float) -> None:
        self.writer.writerow([step, f"{loss:.6g}", f"{lr:.6g}", f"{seconds:.3f}"])
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def _comparable(name: str, value: Any) -> Any:
    """Style paths compare as normalised paths: ``data/style/`` and ``./data/style`` are one."""
    if name == "style" and isinstance(value, list):
        return [os.path.normpath(v) for v in value]
    return value


def _check_resume(config: TrainConfig, run: Path) -> None:
    saved = read_config_json(run)
    now = config.to_json()
    diffs = [
        f"{f.name}: {saved.get(f.name)!r} → {getattr(config, f.name)!r}"
        for f in fields(TrainConfig)
        if f.name not in RESUMABLE_FIELDS
        and _comparable(f.name, saved.get(f.name)) != _comparable(f.name, now[f.name])
    ]
    if diffs:
        raise RunFolderError(
            f"--resume: settings differ from '{run / 'config.json'}' ({'; '.join(diffs)}); "
            "resume with the original settings (only --steps may change) or use a new --out."
        )


def prepare_run_dir(config: TrainConfig, resume: bool, overwrite: bool) -> Path:
    """Create the run folder; refuse to clobber a run, or check a resumed run's settings."""
    run = Path(config.out)
    if resume:
        _check_resume(config, run)
    elif (run / "config.json").exists() and not overwrite:
        raise RunFolderError(
            f"Run folder '{run}' already holds a run; pass --resume to continue it, "
            "--overwrite to replace it, or another --out."
        )
    elif overwrite:  # the old run's checkpoints and files must not outlive it
        shutil.rmtree(run / "checkpoints", ignore_errors=True)
        for name in RUN_FILES:
            (run / name).unlink(missing_ok=True)
    run.mkdir(parents=True, exist_ok=True)
    return run
