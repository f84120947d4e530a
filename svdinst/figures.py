"""Every figure of the kit goes through :func:`save_figure` into ``reports/figures/``.

PNGs are written without the matplotlib version or a timestamp in their metadata, so rerunning
a notebook that draws the same thing creates no diff. :func:`save_figure` refuses a resolution
below :data:`MIN_DPI` and warns (:class:`FigureWarning`) about a figure a reader cannot decode:
no title, a plot axis without labels, several series without a legend (:func:`figure_problems`).
:func:`add_caption` writes a sentence under a figure — the plotting helpers use it when the data
say the figure shows nothing (:mod:`svdinst.captions`).
"""

from __future__ import annotations

import os
import textwrap
import warnings
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt  # headless: matplotlib falls back to Agg by itself
import numpy as np
from PIL import Image

from svdinst.captions import degenerate_caption

DEFAULT_FIGURES_DIR = Path("reports") / "figures"
MIN_DPI = 100  # below this, 2 px per tile line: Fig. 3 at 80 dpi was unreadable (issue 16)
_CAPTIONS = "_svdinst_captions"  # the figure attribute holding its captions, in order


class FigureWarning(UserWarning):
    """A saved figure lacks what a reader needs to decode it (title, axis labels, legend)."""


def add_caption(fig: matplotlib.figure.Figure, text: str, *, width: int = 110) -> None:
    """Write ``text`` under ``fig`` (in the PNG and the inline view) and remember it.

    Several calls stack their sentences. :func:`figure_caption` returns them, so a report can
    print the same words under the image.

    Args:
        fig (`matplotlib.figure.Figure`): the figure.
        text (`str`): one or more sentences; empty text adds nothing.
        width (`int`, defaults to 110): characters per line of the drawn text.
    """
    if not text:
        return
    captions = [*getattr(fig, _CAPTIONS, []), text]
    setattr(fig, _CAPTIONS, captions)
    for artist in [t for t in fig.texts if t.get_gid() == _CAPTIONS]:
        artist.remove()
    body = "\n".join(textwrap.fill(c, width) for c in captions)
    # y = 0, va = top: below every axes; bbox_inches="tight" (save and inline) keeps it in view.
    fig.text(0.01, -0.01, body, ha="left", va="top", fontsize=9, style="italic", gid=_CAPTIONS)


def figure_caption(fig: matplotlib.figure.Figure) -> str:
    """The captions :func:`add_caption` put on ``fig``, joined by spaces (``""`` when none)."""
    return " ".join(getattr(fig, _CAPTIONS, []))


def _is_image_axes(ax: matplotlib.axes.Axes) -> bool:
    return bool(ax.images) and not ax.lines and not ax.collections and not ax.patches


def _named_ticks(ax: matplotlib.axes.Axes) -> bool:
    """Whether the y tick labels name categories (words, not numbers): they label the axis."""
    for tick in ax.get_yticklabels():
        text = tick.get_text().replace("\u2212", "-").strip("$")
        if not text:
            continue
        try:
            float(text)
        except ValueError:
            return True
    return False


def figure_problems(fig: matplotlib.figure.Figure) -> list[str]:
    """What a reader would miss in ``fig``: a title, axis labels, a legend (empty when fine).

    A figure needs a title (a suptitle, or a title on some axes); if it plots data (lines,
    markers, bars — not only image tiles), an x label and a y label (or y tick labels that
    name categories) on some panel; each panel with two or more labelled series, a legend.
    """
    problems = []
    axes = [ax for ax in fig.get_axes() if ax.get_visible() and ax.has_data()]
    suptitle = getattr(fig, "_suptitle", None)
    titled = (suptitle is not None and suptitle.get_text()) or any(
        ax.get_title() or ax.get_title("left") for ax in fig.get_axes()
    )
    if not titled:
        problems.append("no title (fig.suptitle or ax.set_title)")
    legends = bool(fig.legends)
    plots = [ax for ax in axes if not _is_image_axes(ax)]
    # Panels in a row often share one y label (and columns one x label): one per figure is enough.
    if plots and not any(ax.get_xlabel() for ax in plots):
        problems.append("no x label on any plot")
    categorical = any(_named_ticks(ax) for ax in plots)
    if plots and not any(ax.get_ylabel() for ax in plots) and not categorical:
        problems.append("no y label on any plot")
    for i, ax in enumerate(plots):
        handles, _ = ax.get_legend_handles_labels()
        if len(handles) >= 2 and ax.get_legend() is None and not legends:
            name = ax.get_title() or f"axes {i}"
            problems.append(f"{name}: {len(handles)} labelled series but no legend")
    return problems


def save_figure(
    fig: matplotlib.figure.Figure,
    name: str,
    out_dir: str | os.PathLike | None = None,
    *,
    dpi: int = 120,
    close: bool = False,
) -> Path:
    """Save ``fig`` as ``<out_dir>/<name>.png`` with deterministic metadata.

    Warns (:class:`FigureWarning`) when :func:`figure_problems` finds something missing.

    Args:
        fig (`matplotlib.figure.Figure`): the figure to save.
        name (`str`): file stem, e.g. ``"01_mural_proxy"`` (a ``.png`` suffix is accepted).
        out_dir (`str` or `os.PathLike`, *optional*): defaults to ``reports/figures`` under the
            current folder; notebooks pass ``ctx.figures_dir``.
        dpi (`int`, defaults to 120): resolution; at least :data:`MIN_DPI`.
        close (`bool`, defaults to `False`): close the figure after saving (scripts); notebooks
            keep it open so it also shows inline.

    Returns:
        `Path`: the written file.
    """
    if not name or "/" in name or "\\" in name:
        raise ValueError(f"Figure name must be a plain file stem, got {name!r}.")
    if dpi < MIN_DPI:
        raise ValueError(
            f"Figure {name!r}: dpi={dpi} is below the kit's floor of {MIN_DPI}; make tiles "
            "larger (figsize) instead of lowering the resolution."
        )
    problems = figure_problems(fig)
    if problems:
        warnings.warn(f"Figure {name!r}: {'; '.join(problems)}.", FigureWarning, stacklevel=2)
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
    flag_degenerate: bool = False,
) -> matplotlib.figure.Figure:
    """Lay images out in a grid, row-major, with optional column titles and row labels.

    Args:
        images: PIL images or arrays (uint8, or float in [0, 1]), all shown without axes.
        ncols (`int`, *optional*): columns; defaults to ``len(images)`` (one row).
        titles (*optional*): one title per image, or one per column when the grid has rows.
        row_labels (*optional*): one label per row, drawn as the first column's y-label.
        cell_size (`float`, defaults to 2.0): inches per cell.
        suptitle (`str`, *optional*): a title over the whole grid.
        flag_degenerate (`bool`, defaults to `False`): the images are a method's outputs: caption
            the black, constant or noise ones (:func:`svdinst.captions.degenerate_caption`).
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
    if flag_degenerate:
        add_caption(fig, degenerate_caption(dict(zip(_tile_labels(len(images), ncols, titles,
                                                                  row_labels), images))))  # fmt: skip
    return fig


def _tile_labels(
    n: int, ncols: int, titles: Sequence[str] | None, row_labels: Sequence[str] | None
) -> list[str]:
    """A name per tile for captions: "row label, column title", else its position."""
    labels = []
    for i in range(n):
        r, c = divmod(i, ncols)
        parts = []
        if row_labels is not None and r < len(row_labels):
            parts.append(row_labels[r])
        if titles is not None:
            per_image = len(titles) == n
            j = i if per_image else c
            if j < len(titles):
                parts.append(titles[j])
        labels.append(", ".join(parts) if parts else f"row {r + 1}, column {c + 1}")
    return labels
