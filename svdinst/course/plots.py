"""Figures of training runs for the course notebooks: loss curves and spectral-shift magnitudes."""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from svdinst.training.runs import read_loss_log, shift_magnitudes


def plot_loss_curves(runs: dict[str, str | os.PathLike], smooth: int = 10) -> Figure:
    """One figure with the loss of several runs (raw, faint) and a running mean (bold).

    Args:
        runs (`dict[str, path]`): label → run folder.
        smooth (`int`, defaults to 10): window of the running mean (steps).
    """
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for i, (label, run) in enumerate(runs.items()):
        log = read_loss_log(run)
        steps, loss = np.array(log["step"]), np.array(log["loss"])
        color = f"C{i}"
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
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_shift_magnitudes(run_dir: str | os.PathLike, top: int = 15) -> Figure:
    """Bar chart of the ``top`` layers with the largest ‖δ‖₂, coloured by UNet part."""

    norms = list(shift_magnitudes(run_dir).items())[:top]
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(norms) + 1.2))
    parts = ("down_blocks", "mid_block", "up_blocks")
    colors = [f"C{next((i for i, p in enumerate(parts) if n.startswith(p)), 3)}" for n, _ in norms]
    ax.barh(range(len(norms)), [v for _, v in norms], color=colors)
    ax.set_yticks(range(len(norms)), [n for n, _ in norms], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("‖δ‖₂ (blue: down, orange: mid, green: up, red: other)")
    fig.tight_layout()
    return fig
