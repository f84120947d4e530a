"""Figures of training runs for the course notebooks: loss curves and spectral-shift magnitudes.

Both carry a title and labels, and a caption when the data say the figure shows nothing
(:mod:`svdinst.captions`): a log too short to be a curve, curves overlapping within noise.
"""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from svdinst.captions import FEW_POINTS, series_caption
from svdinst.figures import add_caption
from svdinst.training.runs import read_loss_log, shift_magnitudes


def plot_loss_curves(
    runs: dict[str, str | os.PathLike], smooth: int = 10, *, title: str = "Training loss"
) -> Figure:
    """One figure with the loss of several runs (raw, faint) and a running mean (bold).

    A log of fewer than :data:`~svdinst.captions.FEW_POINTS` points is drawn as points; the
    caption says so, and names curves whose last halves overlap within their spread.

    Args:
        runs (`dict[str, path]`): label → run folder.
        smooth (`int`, defaults to 10): window of the running mean (steps).
        title (`str`, defaults to ``"Training loss"``): the figure's title.
    """
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    series = {}
    for i, (label, run) in enumerate(runs.items()):
        log = read_loss_log(run)
        steps, loss = np.array(log["step"]), np.array(log["loss"])
        series[label] = (steps, loss)
        color = f"C{i}"
        if len(loss) < FEW_POINTS:
            ax.plot(steps, loss, "o", color=color, ms=6, label=f"{label} ({len(loss)} points)")
            continue
        ax.plot(steps, loss, color=color, alpha=0.25, lw=0.8)
        if len(loss) >= smooth:
            mean = np.convolve(loss, np.ones(smooth) / smooth, mode="valid")
            ax.plot(
                steps[smooth - 1 :], mean, color=color, lw=2, label=f"{label} ({smooth}-step mean)"
            )
        else:
            ax.plot(steps, loss, color=color, lw=2, label=label)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("noise-prediction MSE")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    add_caption(fig, series_caption(series))
    return fig


def plot_shift_magnitudes(
    run_dir: str | os.PathLike, top: int = 15, *, title: str = "Largest spectral shifts"
) -> Figure:
    """Bar chart of the ``top`` layers with the largest ‖δ‖₂, coloured by UNet part (legend).

    Args:
        run_dir (`str` or `os.PathLike`): a run folder with spectral shifts.
        top (`int`, defaults to 15): how many layers.
        title (`str`, defaults to ``"Largest spectral shifts"``): the figure's title.
    """
    norms = list(shift_magnitudes(run_dir).items())[:top]
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(norms) + 1.2))
    parts = ("down_blocks", "mid_block", "up_blocks", "other")
    part_of = [next((p for p in parts[:3] if n.startswith(p)), "other") for n, _ in norms]
    bars = ax.barh(range(len(norms)), [v for _, v in norms],
                   color=[f"C{parts.index(p)}" for p in part_of])  # fmt: skip
    seen: set[str] = set()
    for bar, part in zip(bars, part_of):  # one legend entry per UNet part present
        bar.set_label("_nolegend_" if part in seen else part)
        seen.add(part)
    ax.set_yticks(range(len(norms)), [n for n, _ in norms], fontsize=7)
    ax.invert_yaxis()
    ax.set(xlabel="‖δ‖₂ (spectral shift of the layer)", ylabel="UNet layer", title=title)
    ax.legend(fontsize=8, title="UNet part")
    fig.tight_layout()
    if norms and max(v for _, v in norms) == 0:
        add_caption(fig, "Every shift is exactly zero: this run did not move any singular value.")
    return fig
