"""Course plots: titled, labelled, and captioned when the data show nothing."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from safetensors.torch import save_file


def _run(root: Path, name: str, losses: list[float]) -> Path:
    from svdinst.formats.run_folder import LossLog, RunFolder

    run = RunFolder(root / name)
    run.path.mkdir(parents=True)
    log = LossLog(run.log_path, 0)
    for step, loss in enumerate(losses, 1):
        log.write(step, loss, 1e-3, float(step))
    log.close()
    return run.path


def test_loss_curves_draw_short_logs_as_points_and_caption_overlap(tmp_path: Path) -> None:
    from svdinst.course.plots import plot_loss_curves
    from svdinst.figures import figure_caption, figure_problems

    rng = np.random.default_rng(0)
    a = _run(tmp_path, "a", list(0.5 + 0.05 * rng.normal(size=60)))
    b = _run(tmp_path, "b", list(0.5 + 0.05 * rng.normal(size=60)))
    short = _run(tmp_path, "short", [0.9, 0.7])
    fig = plot_loss_curves({"inst": a, "svd-inst": b, "cyclegan": short}, title="three")
    assert figure_problems(fig) == []
    points = [ln for ln in fig.axes[0].lines if ln.get_linestyle() == "None"]
    assert len(points) == 1 and len(points[0].get_xdata()) == 2
    caption = figure_caption(fig)
    assert "cyclegan (2)" in caption and "inst vs svd-inst" in caption
    c = _run(tmp_path, "c", list(0.2 + 0.05 * rng.normal(size=60)))
    fig2 = plot_loss_curves({"inst": a, "svdiff": c})
    assert figure_caption(fig2) == ""  # clearly different curves need no caption
    plt.close("all")


def test_shift_magnitudes_have_a_legend_per_unet_part(tmp_path: Path) -> None:
    from svdinst.course.plots import plot_shift_magnitudes
    from svdinst.figures import figure_caption, figure_problems
    from svdinst.formats.run_folder import RunFolder

    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    shifts = {
        "down_blocks.0.conv": torch.ones(4),
        "mid_block.attn.to_q": 2 * torch.ones(4),
        "up_blocks.1.conv": 3 * torch.ones(4),
        "conv_in": 0.5 * torch.ones(4),
    }
    save_file(shifts, run.spectral_shifts)
    fig = plot_shift_magnitudes(run.path)
    assert figure_problems(fig) == []
    _, labels = fig.axes[0].get_legend_handles_labels()
    assert sorted(labels) == ["down_blocks", "mid_block", "other", "up_blocks"]
    assert figure_caption(fig) == ""
    save_file({k: torch.zeros(4) for k in shifts}, run.spectral_shifts)
    assert "exactly zero" in figure_caption(plot_shift_magnitudes(run.path))
    plt.close("all")
