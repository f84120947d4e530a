"""Figures for notebook 06: every baseline's output side by side, and their training losses.

Both read what the CLI / :func:`svdinst.baselines.cli.stylize_folder` wrote (an
:class:`~svdinst.formats.outputs.OutputsFolder` per method, seed 0) and what training wrote (the
loss log of a :class:`~svdinst.formats.run_folder.RunFolder`), so they work on runs made from the
command line too. Save them with :func:`svdinst.figures.save_figure`.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from PIL import Image

from svdinst.captions import FEW_POINTS
from svdinst.data.io import list_images, load_image
from svdinst.data.mural import mural_proxy
from svdinst.data.transforms import center_crop_resize
from svdinst.errors import DataError
from svdinst.figures import image_grid
from svdinst.formats.outputs import OutputsFolder
from svdinst.formats.run_folder import RunFolder


def comparison_grid(
    content_dir: str | os.PathLike,
    outputs_dir: str | os.PathLike,
    methods: Sequence[str],
    *,
    resolution: int | None = None,
    with_proxy: bool = True,
    max_photos: int = 4,
) -> Figure:
    """A grid: one row per test photo; columns photo, (mural proxy), then each method.

    Args:
        content_dir: the stylized photos (``data/test``).
        outputs_dir: ``WORKDIR/outputs``, one outputs folder per method (seed 0 is shown).
        methods: method names (columns), e.g. the baseline registry names.
        resolution (`int`, *optional*): center-crop photos to this size (as they were stylized).
        with_proxy (`bool`, defaults to `True`): add the mural-proxy filter of each photo — the
            oracle target the metrics compare against (:func:`svdinst.data.mural.mural_proxy`).
        max_photos (`int`, defaults to 4): rows.

    Returns:
        `matplotlib.figure.Figure`
    """
    paths = list_images(content_dir)[:max_photos]
    cells: list[Image.Image] = []
    for path in paths:
        photo = load_image(path)
        if resolution:
            photo = center_crop_resize(photo, resolution)
        row = [photo, *([mural_proxy(photo)] if with_proxy else [])]
        for method in methods:
            out = OutputsFolder(Path(outputs_dir) / method).image_path(path.stem, 0)
            if not out.is_file():
                raise DataError(f"{out} is missing: stylize {path.name} with {method} first.")
            row.append(load_image(out))
        cells.extend(row)
    titles = ["photo", *(["mural proxy (oracle)"] if with_proxy else []), *methods]
    return image_grid(cells, ncols=len(titles), titles=titles,
                      row_labels=[p.stem for p in paths], flag_degenerate=True)  # fmt: skip


def read_log(run_dir: str | os.PathLike) -> tuple[list[int], list[float]]:
    """Steps and total losses from a run's loss log (empty for methods that do not train)."""
    log = RunFolder(run_dir).log_path
    if not log.is_file():
        return [], []
    with log.open() as fh:
        rows = list(csv.DictReader(fh))
    return [int(r["step"]) for r in rows], [float(r["loss"]) for r in rows]


def loss_curves(run_dirs: dict[str, str | os.PathLike]) -> Figure:
    """One small panel per trained baseline: total loss against step (from its loss log).

    Args:
        run_dirs: method name → run folder; methods without a log (Magenta) are left out.
    """
    logs = {name: read_log(d) for name, d in run_dirs.items()}
    logs = {name: log for name, log in logs.items() if log[0]}
    if not logs:
        raise DataError(f"No {RunFolder.LOG} in any run folder: train a baseline first.")
    fig, axes = plt.subplots(1, len(logs), figsize=(2.6 * len(logs), 2.2), squeeze=False)
    for ax, (name, (steps, losses)) in zip(axes[0], logs.items(), strict=True):
        # A log of a few points is no curve: points only (the notebook's caption says so).
        few = len(steps) < FEW_POINTS
        ax.plot(steps, losses, marker="o" if len(steps) < 20 else None, lw=0 if few else 1)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("total loss", fontsize=8)
    fig.tight_layout()
    return fig
