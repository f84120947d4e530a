"""FID against N: how far a small sample's FID sits above the large-sample value (its bias).

FID plugs *sample* means and covariances into the Fréchet distance between two Gaussians. The
sample covariance of N points has rank ≤ N − 1, and the estimate of Tr Σ₁ + Tr Σ₂ − 2 Tr (Σ₁Σ₂)^½
is biased upward by a term that shrinks roughly like 1/N (Chong & Forsyth, "Effectively Unbiased
FID and Inception Score and where to find them", CVPR 2020). Two samples of the *same* images
therefore get FID > 0, and an FID computed from N = 6 images cannot be compared with one from
N = 30. :func:`fid_against_n` measures this on features; :func:`fid_bias_curves` does it on the
real TF-FID Inception with random crops of the course's own images, and
:func:`plot_fid_against_n` draws it (chapter 07).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image
from tqdm.auto import tqdm

from svdinst.data.transforms import random_crop_flip
from svdinst.evaluation.metrics import frechet_distance, inception_features
from svdinst.figures import add_caption


def fid_against_n(
    f1: torch.Tensor, f2: torch.Tensor, sizes: Sequence[int], *, repeats: int = 5, seed: int = 0
) -> dict[int, list[float]]:
    """FID of random size-N subsets of two feature sets, ``repeats`` draws per N.

    Args:
        f1 (`torch.Tensor`), f2 (`torch.Tensor`): n1×d and n2×d features.
        sizes (`Sequence[int]`): the N values, each 2 ≤ N ≤ min(n1, n2).
        repeats (`int`, defaults to 5): subsets drawn per N (without replacement inside a subset).
        seed (`int`, defaults to 0): the subsets come from ``numpy.random.default_rng(seed)``.

    Returns:
        `dict[int, list[float]]`: N → the FID of each draw.
    """
    bad = [n for n in sizes if not 2 <= n <= min(len(f1), len(f2))]
    if bad or repeats < 1:
        raise ValueError(
            f"sizes must lie in [2, {min(len(f1), len(f2))}] (the smaller set) and repeats ≥ 1; "
            f"got sizes {list(sizes)}, repeats {repeats}."
        )
    rng = np.random.default_rng(seed)
    curves: dict[int, list[float]] = {}
    for n in sizes:
        curves[n] = [
            frechet_distance(
                f1[rng.choice(len(f1), n, replace=False)], f2[rng.choice(len(f2), n, replace=False)]
            )
            for _ in range(repeats)
        ]
    return curves


def random_crops(
    images: Sequence[Image.Image], count: int, size: int, seed: int
) -> list[Image.Image]:
    """``count`` random square crops (flipped at random), cycling over ``images``."""
    if not images:
        raise ValueError("random_crops needs at least one image.")
    rng = np.random.default_rng(seed)
    return [random_crop_flip(images[i % len(images)], size, rng) for i in range(count)]


def fid_bias_curves(
    style: Sequence[Image.Image],
    photos: Sequence[Image.Image],
    sizes: Sequence[int],
    *,
    per_set: int = 32,
    crop: int = 128,
    repeats: int = 5,
    device: str = "cpu",
    seed: int = 0,
) -> dict[str, dict[int, list[float]]]:
    """FID against N on the real Inception: style vs style (same images) and style vs photos.

    Three disjoint sets of ``per_set`` random crops: two of the style images (``A``, ``A'``: one
    distribution, so the true FID is 0 and all of theirs is bias) and one of the photos (``B``).

    Args:
        style (`Sequence[PIL.Image]`): the style images; photos (`Sequence[PIL.Image]`): photos.
        sizes (`Sequence[int]`): N values (≤ ``per_set``).
        per_set (`int`, defaults to 32): crops per set (3·per_set Inception forwards).
        crop (`int`, defaults to 128): crop side in px (Inception resizes to 299 itself).
        repeats (`int`, defaults to 5), seed (`int`, defaults to 0): see :func:`fid_against_n`.
        device (`str`, defaults to ``"cpu"``): where Inception runs.

    Returns:
        `dict[str, dict[int, list[float]]]`: ``"style vs style"`` and ``"style vs photos"`` curves.
    """
    sets = {
        "A": random_crops(style, per_set, crop, seed),
        "A'": random_crops(style, per_set, crop, seed + 1),
        "B": random_crops(photos, per_set, crop, seed + 2),
    }
    feats = {
        k: inception_features(v, device=device) for k, v in tqdm(sets.items(), desc="Inception")
    }
    return {
        "style vs style": fid_against_n(feats["A"], feats["A'"], sizes, repeats=repeats, seed=seed),
        "style vs photos": fid_against_n(feats["A"], feats["B"], sizes, repeats=repeats, seed=seed),
    }


def plot_fid_against_n(
    curves: Mapping[str, Mapping[int, Sequence[float]]], title: str = ""
) -> Figure:
    """Mean ± std of FID against N, one line per curve (:func:`fid_bias_curves`)."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, curve in curves.items():
        n = np.array(sorted(curve))
        values = [np.asarray(curve[k], dtype=float) for k in n]
        mean, std = np.array([v.mean() for v in values]), np.array([v.std() for v in values])
        ax.errorbar(n, mean, yerr=std, marker="o", capsize=3, label=label)
    ax.set(
        xscale="log",
        xlabel="N (images per set)",
        ylabel="FID (real TF-FID Inception)",
        title=title or "FID against N: the small-sample bias",
    )
    ax.set_xticks(sorted({k for c in curves.values() for k in c}))
    ax.xaxis.set_major_formatter(plt.ScalarFormatter())
    ax.xaxis.set_minor_locator(plt.NullLocator())  # only the N values measured
    ax.set_ylim(bottom=0)
    ax.legend(title="mean ± std over subsets")
    fig.tight_layout()
    add_caption(fig, bias_caption(curves))  # the kit's one caption mechanism: REPORT.md reads it
    return fig


def bias_caption(curves: Mapping[str, Mapping[int, Sequence[float]]]) -> str:
    """One line read off the curves: how much each falls from the smallest N to the largest."""
    parts = []
    for label, curve in curves.items():
        lo, hi = min(curve), max(curve)
        first, last = float(np.mean(curve[lo])), float(np.mean(curve[hi]))
        parts.append(
            f"{label}: {first:.0f} at N = {lo} → {last:.0f} at N = {hi} ({last / first - 1:+.0%})"
        )
    return "; ".join(parts) + "."
