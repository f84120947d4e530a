"""Trained baselines shipped with the kit (``svdinst/weights/baselines-v1/<name>/``), and the
check that a baseline's outputs are images rather than black frames or noise.

Each method's folder is a run folder (:class:`~svdinst.formats.run_folder.RunFolder`: the
settings with ``backbone`` and ``train_steps``, the network in fp16, the loss log) plus a card
(``README.md``); ``SHA256SUMS`` covers the whole version folder
(:mod:`svdinst.formats.checksums`). They are written by ``benchmarks/train_baselines.py`` on one
GPU and loaded by default on the pocket profile (notebook 06), so ``make reproduce`` compares
trained methods instead of two CPU steps.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from svdinst.baselines.base import Baseline
from svdinst.formats.atomic import atomic_path
from svdinst.formats.run_folder import RunFolder

VERSION = "baselines-v1"
CARD = "README.md"
MIN_STD = 0.02  # pixel std in [0, 1] below which an output is a flat (e.g. black) frame
MIN_NEIGHBOUR_CORR = 0.5  # photos' adjacent pixels correlate > 0.9; white noise ≈ 0


def shipped_root() -> Path:
    """The package folder of the shipped baselines (it may not exist yet)."""
    return Path(__file__).resolve().parents[1] / "weights" / VERSION


def shipped_run(name: str, root: str | os.PathLike | None = None) -> Path | None:
    """The shipped run folder of baseline ``name``, or `None` when none is installed."""
    run = RunFolder((Path(root) if root is not None else shipped_root()) / name)
    return run.path if run.model.is_file() and run.has_config() else None


def export_shipped(
    model: Baseline, run_dir: str | os.PathLike, out_root: str | os.PathLike, card: str
) -> Path:
    """Write ``model`` as a shipped run: settings, fp16 network, the run's loss log, a card.

    Args:
        model: the trained baseline (its ``train_steps`` set).
        run_dir: the run folder it was trained in (its loss log is copied).
        out_root: the version folder (``…/baselines-v1``); the run goes to ``out_root/<name>``.
        card (`str`): the card's Markdown.
    """
    out = RunFolder(Path(out_root) / model.name)
    out.path.mkdir(parents=True, exist_ok=True)
    model.save_config(out.path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    with atomic_path(out.model) as tmp:
        save_file(state, str(tmp))
    log = RunFolder(run_dir).log_path
    if log.is_file():
        shutil.copyfile(log, out.log_path)
    (out.path / CARD).write_text(card)
    return out.path


def degenerate_reason(image: Image.Image) -> str | None:
    """Why ``image`` is not a usable output (a flat frame, or noise), or `None` when it is fine.

    Flat: pixel std (values in [0, 1]) below :data:`MIN_STD` — what 2 CPU training steps of AdaIN
    gave (black). Noise: horizontally adjacent pixels correlate below
    :data:`MIN_NEIGHBOUR_CORR` — what 2 steps of CycleGAN gave (grey noise); photos and
    paintings have neighbour correlations above 0.9.
    """
    x = np.asarray(image.convert("L"), dtype=np.float64) / 255.0
    if x.std() < MIN_STD:
        return f"flat (std {x.std():.4f} < {MIN_STD})"
    left, right = x[:, :-1].ravel(), x[:, 1:].ravel()
    corr = float(np.corrcoef(left, right)[0, 1])
    if not corr >= MIN_NEIGHBOUR_CORR:
        return f"noise-like (neighbour correlation {corr:.2f} < {MIN_NEIGHBOUR_CORR})"
    return None


def state_megabytes(model: Baseline) -> float:
    """Size of the shipped (fp16) network in MB (2 bytes per floating-point value)."""
    return (
        sum(
            v.numel() * (2 if v.is_floating_point() else v.element_size())
            for v in model.state_dict().values()
            if isinstance(v, torch.Tensor)
        )
        / 2**20
    )


def card_markdown(name: str, fields: dict[str, Any]) -> str:
    """A short model card: one ``| key | value |`` row per field (budget, widths, backbone…)."""
    rows = "".join(f"| {k} | {v} |\n" for k, v in fields.items())
    return (
        f"# {name} — trained at pocket scale ({VERSION})\n\n"
        "Trained by `benchmarks/train_baselines.py` on the offline default data set's training "
        "split only (content photos and their mural proxies; never the test photos). Weights are "
        "fp16; see `svdinst/baselines/pocket_scale.py` for the budget rule.\n\n"
        f"| field | value |\n|---|---|\n{rows}"
    )
