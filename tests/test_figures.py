"""Figures say what they show: dpi floor, title/label/legend checks, captions from the data."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image


def _smooth_image(seed: int = 0, size: int = 64) -> np.ndarray:
    """A photo-like image: gradients plus blurred blobs (neighbours strongly correlated)."""
    rng = np.random.default_rng(seed)
    _, x = np.mgrid[0:size, 0:size] / size
    blobs = rng.normal(size=(size // 8, size // 8, 3))
    blobs = np.kron(blobs, np.ones((8, 8, 1)))
    kernel = np.ones(5) / 5
    for axis in (0, 1):
        blobs = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), axis, blobs)
    img = 0.4 + 0.3 * x[..., None] * np.array([1, 0.5, 0.2]) + 0.1 * blobs
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("image", "kind"),
    [
        (np.zeros((32, 32, 3), np.uint8), "black"),
        (np.full((32, 32, 3), 3, np.uint8), "black"),  # 3/255 < 0.02: dark enough to read as black
        (np.full((32, 32, 3), 128, np.uint8), "constant"),
        (np.full((32, 32, 3), [120, 10, 40], np.uint8), "constant"),  # a solid colour
        (np.full((32, 32), 0.5), "constant"),
        (np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8), "noise"),
        (np.random.default_rng(1).random((48, 48)), "noise"),
        (_smooth_image(0), None),
        (_smooth_image(3), None),
    ],
)
def test_degenerate_output_detects_black_constant_and_noise(image: np.ndarray, kind) -> None:
    from svdinst.captions import degenerate_output

    assert degenerate_output(image) == kind
    assert degenerate_output(Image.fromarray(image) if image.dtype == np.uint8 else image) == kind


def test_degenerate_output_near_constant_and_checkerboard() -> None:
    from svdinst.captions import degenerate_output

    near = np.full((32, 32, 3), 0.5)
    near[0, 0] = 0.5 + 0.5 / 255  # std far below one grey level
    assert degenerate_output(near) == "constant"
    # A checkerboard is the limit of high-frequency energy with perfect anti-correlation.
    checker = (np.indices((32, 32)).sum(axis=0) % 2).astype(float)
    assert degenerate_output(checker) == "noise"
    # Coarse tiles (8 px) are an image, not noise.
    coarse = ((np.indices((32, 32)) // 8).sum(axis=0) % 2).astype(float) * 0.8 + 0.1
    assert degenerate_output(coarse) is None


def test_degenerate_caption_names_the_failed_tiles() -> None:
    from svdinst.captions import degenerate_caption

    noise = np.random.default_rng(0).random((32, 32, 3))
    caption = degenerate_caption(
        {"InST, a": np.zeros((8, 8, 3)), "base, a": noise, "SVD-InST, a": _smooth_image()}
    )
    assert "2 of 3" in caption and "black: InST, a" in caption and "noise: base, a" in caption
    assert "SVD-InST" not in caption
    assert degenerate_caption({"ok": _smooth_image()}) == ""


def test_knob_caption_only_below_one_grey_level() -> None:
    from svdinst.captions import knob_caption

    base = _smooth_image().astype(float) / 255
    tiny = [base, base + 0.3 / 255, base + 0.6 / 255]
    text = knob_caption(tiny, [0.0, 1.0, 2.0], "shift scale")
    assert "shift scale from 0.0 to 2.0" in text and "0.60 / 255" in text
    visible = [base, base + 2 / 255]
    assert knob_caption(visible, [0, 1], "shift scale") == ""
    assert knob_caption([base], [0], "x") == ""


def test_curves_overlap_against_their_spread() -> None:
    from svdinst.captions import curves_overlap, series_caption

    rng = np.random.default_rng(0)
    a = 0.5 + 0.05 * rng.normal(size=200)
    b = 0.505 + 0.05 * rng.normal(size=200)  # gap 0.005, spread 0.05
    c = 0.3 + 0.05 * rng.normal(size=200)  # gap 0.2: clearly lower
    overlap, gap, spread = curves_overlap(a, b)
    assert overlap and gap < spread and spread == pytest.approx(0.05, rel=0.2)
    assert not curves_overlap(a, c)[0]
    steps = np.arange(200)
    text = series_caption({"inst": (steps, a), "svd-inst": (steps, b), "svdiff": (steps, c)})
    assert "inst vs svd-inst" in text and "svdiff" not in text
    short = series_caption({"cyclegan": ([1, 2], [0.9, 0.8]), "inst": (steps, a)})
    assert "cyclegan (2)" in short and "same level" not in short
    assert series_caption({"inst": (steps, a), "svdiff": (steps, c)}) == ""


def test_save_figure_enforces_the_dpi_floor(tmp_path: Path) -> None:
    from svdinst.figures import MIN_DPI, save_figure

    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [0, 1])
    ax.set(title="t", xlabel="x", ylabel="y")
    with pytest.raises(ValueError, match="below the kit's floor"):
        save_figure(fig, "low", tmp_path, dpi=MIN_DPI - 20)
    path = save_figure(fig, "ok", tmp_path, close=True)
    dpi = Image.open(path).info["dpi"]
    assert min(dpi) >= MIN_DPI - 0.5  # PNG stores pixels per metre: 120 dpi reads 119.99


def test_figure_problems_and_warning(tmp_path: Path) -> None:
    from svdinst.figures import FigureWarning, figure_problems, image_grid, save_figure

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], label="a")
    ax.plot([0, 1], [1, 0], label="b")
    problems = figure_problems(fig)
    assert any("title" in p for p in problems)
    assert any("x label" in p for p in problems) and any("y label" in p for p in problems)
    assert any("no legend" in p for p in problems)
    with pytest.warns(FigureWarning, match="no title"):
        save_figure(fig, "bad", tmp_path)
    ax.set(title="t", xlabel="x", ylabel="y")
    ax.legend()
    assert figure_problems(fig) == []
    plt.close(fig)
    grid = image_grid([np.zeros((4, 4, 3))] * 2, titles=["a", "b"])  # image tiles need no labels
    assert figure_problems(grid) == []
    assert figure_problems(image_grid([np.zeros((4, 4, 3))])) == [
        "no title (fig.suptitle or ax.set_title)"
    ]
    plt.close("all")


def test_add_caption_draws_under_the_figure_and_stacks(tmp_path: Path) -> None:
    from svdinst.figures import add_caption, figure_caption, image_grid, save_figure

    noise = np.random.default_rng(0).random((16, 16, 3))
    fig = image_grid([_smooth_image(), noise], titles=["ok", "bad"], flag_degenerate=True,
                     suptitle="outputs")  # fmt: skip
    assert "noise: bad" in figure_caption(fig) and "ok" not in figure_caption(fig)
    add_caption(fig, "Second note.")
    assert figure_caption(fig).endswith("Second note.")
    drawn = [t.get_text() for t in fig.texts if "Second note." in t.get_text()]
    assert len(drawn) == 1 and "noise: bad" in drawn[0]  # one text artist, redrawn
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = save_figure(fig, "captioned", tmp_path, close=True)
    # the caption is drawn below the tiles, so the tight bounding box grows downwards
    assert Image.open(path).size[1] > 120 * 2.0


def test_sameness_caption_names_input_independent_and_identical_methods() -> None:
    from svdinst.captions import sameness_caption

    a, b = _smooth_image(0).astype(float) / 255, _smooth_image(5).astype(float) / 255
    same = [a, a + 0.5 / 255]  # one image for both photos
    text = sameness_caption({"InST": same, "SVD-InST": [a, a + 0.2 / 255], "CycleGAN": [a, b]})
    assert "InST, SVD-InST: the same image for every photo" in text
    assert "InST = SVD-InST" in text and "CycleGAN" not in text
    assert sameness_caption({"A": [a, b], "B": [b, a]}) == ""
    assert sameness_caption({"A": [a], "B": [np.zeros((8, 8, 3))]}) == ""  # sizes differ


def test_categorical_y_ticks_count_as_a_y_label() -> None:
    from svdinst.figures import figure_problems

    fig, ax = plt.subplots()
    ax.scatter([1, 2], [0, 1])
    ax.set_yticks(range(2), ["attn", "conv"])
    ax.set(xlabel="error", title="per layer")
    assert figure_problems(fig) == []
    fig2, ax2 = plt.subplots()
    ax2.plot([1, 2], [-3, 4])  # numeric ticks (with a unicode minus) are no label
    ax2.set(xlabel="x", title="t")
    assert figure_problems(fig2) == ["no y label on any plot"]
    plt.close("all")


def test_difference_caption_says_when_training_moved_nothing() -> None:
    from svdinst.captions import difference_caption

    rng = np.random.default_rng(0)
    base = [rng.uniform(0.2, 0.8, (16, 16, 3)) for _ in range(2)]
    oracle = [np.clip(b + 0.3, 0, 1) for b in base]  # far from the base: ~0.2–0.3 per pixel
    nudged = [b + 2 / 255 for b in base]  # two grey levels: nothing a viewer can call a style
    text = difference_caption({"base": base, "trained": nudged, "oracle": oracle}, "base", "oracle")
    assert "trained 2.0" in text and "within a tenth" in text
    learned = [0.5 * (b + o) for b, o in zip(base, oracle, strict=True)]  # half way to the oracle
    text = difference_caption(
        {"base": base, "trained": learned, "oracle": oracle}, "base", "oracle"
    )
    assert "trained" in text and "within a tenth" not in text
    assert difference_caption({"base": base, "oracle": oracle}, "base", "oracle") == ""
