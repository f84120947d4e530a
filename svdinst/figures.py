"""Every figure of the kit goes through :func:`save_figure` into ``reports/figures/``.

PNGs are written without the matplotlib version or a timestamp in their metadata, so rerunning
a notebook that draws the same thing creates no diff.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt  # headless: matplotlib falls back to Agg by itself
import numpy as np
from PIL import Image

DEFAULT_FIGURES_DIR = Path("reports") / "figures"


def save_figure(
    fig: matplotlib.figure.Figure,
    name: str,
    out_dir: str | os.PathLike | None = None,
    *,
    dpi: int = 120,
    close: bool = False,
) -> Path:
    """Save ``fig`` as ``<out_dir>/<name>.png`` with deterministic metadata.

    Args:
        fig (`matplotlib.figure.Figure`): the figure to save.
        name (`str`): file stem, e.g. ``"01_mural_proxy"`` (a ``.png`` suffix is accepted).
        out_dir (`str` or `os.PathLike`, *optional*): defaults to ``reports/figures`` under the
            current folder; notebooks pass ``ctx.figures_dir``.
        dpi (`int`, defaults to 120): resolution.
        close (`bool`, defaults to `False`): close the figure after saving (scripts); notebooks
            keep it open so it also shows inline.

    Returns:
        `Path`: the written file.
    """
    if not name or "/" in name or "\\" in name:
        raise ValueError(f"Figure name must be a plain file stem, got {name!r}.")
    folder = Path(out_dir) if out_dir is not None else DEFAULT_FIGURES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name if name.endswith(".png") else f"{name}.png")
    fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    if close:
        plt.close(fig)
    return path


def _to_array(image: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0.0, 1.0) * 255).round().astype(np.uint8)
    return arr


def image_grid(
    images: Sequence[Image.Image | np.ndarray],
    ncols: int | None = None,
    *,
    titles: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    cell_size: float = 2.0,
    suptitle: str | None = None,
) -> matplotlib.figure.Figure:
    """Lay images out in a grid, row-major, with optional column titles and row labels.

    Args:
        images: PIL images or arrays (uint8, or float in [0, 1]), all shown without axes.
        ncols (`int`, *optional*): columns; defaults to ``len(images)`` (one row).
        titles (*optional*): one title per image, or one per column when the grid has rows.
        row_labels (*optional*): one label per row, drawn as the first column's y-label.
        cell_size (`float`, defaults to 2.0): inches per cell.
        suptitle (`str`, *optional*): a title over the whole grid.
    """
    if len(images) == 0:
        raise ValueError("image_grid needs at least one image.")
    ncols = ncols or len(images)
    nrows = -(-len(images) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(cell_size * ncols, cell_size * nrows), squeeze=False
    )
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        if i < len(images):
            ax.imshow(_to_array(images[i]))
        # Titles are per image, or per column when there are several rows.
        per_image = titles is not None and len(titles) == len(images)
        if titles is not None and i < (len(images) if per_image else ncols):
            ax.set_title(titles[i], fontsize=8)
    if row_labels is not None:
        for r, label in enumerate(row_labels[:nrows]):
            axes[r, 0].set_ylabel(label, fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig
