"""FID against N: the small-sample bias that chapter 07 draws on the real Inception."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from svdinst.evaluation import small_n
from svdinst.evaluation.metrics import frechet_distance


def _gaussians(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_same_distribution_fid_is_positive_and_shrinks_with_n() -> None:
    a, b = _gaussians(400, 8, 0), _gaussians(400, 8, 1)  # one distribution: true FID 0
    curves = small_n.fid_against_n(a, b, [10, 40, 200], repeats=8)
    means = {n: float(np.mean(v)) for n, v in curves.items()}
    assert all(len(v) == 8 for v in curves.values())
    assert means[10] > means[40] > means[200] > 0
    # The bias of the trace term is about d·(1/N + 1/N)-ish: at N = 10 it dwarfs N = 200's.
    assert means[10] > 5 * means[200]


def test_a_subset_of_all_rows_is_the_full_fid() -> None:
    a, b = _gaussians(30, 5, 2), _gaussians(30, 5, 3) + 1.0
    (values,) = small_n.fid_against_n(a, b, [30], repeats=3).values()
    assert values == pytest.approx([frechet_distance(a, b)] * 3, rel=1e-9)


def test_bad_sizes_are_refused() -> None:
    a = _gaussians(10, 3, 0)
    with pytest.raises(ValueError, match=r"sizes must lie in \[2, 10\]"):
        small_n.fid_against_n(a, a, [1, 11])


def test_bias_curves_use_three_disjoint_crop_sets(monkeypatch) -> None:
    seen = []

    def fake_features(images, device="cpu"):
        seen.append([np.asarray(im).tobytes() for im in images])
        return torch.stack(
            [torch.tensor(np.asarray(im), dtype=torch.float64).mean((0, 1)) for im in images]
        )

    monkeypatch.setattr(small_n, "inception_features", fake_features)
    rng = np.random.default_rng(0)
    style = [Image.fromarray((rng.random((64, 80, 3)) * 255).astype(np.uint8)) for _ in range(2)]
    photos = [Image.fromarray((rng.random((70, 60, 3)) * 255).astype(np.uint8))]
    curves = small_n.fid_bias_curves(style, photos, [4, 8], per_set=8, crop=32, repeats=2)
    assert set(curves) == {"style vs style", "style vs photos"}
    assert len(seen) == 3 and all(len(s) == 8 for s in seen)
    assert not set(seen[0]) & set(seen[1])  # A and A' are different crops


def test_plot_says_what_it_shows() -> None:
    fig = small_n.plot_fid_against_n(
        {"x": {4: [3.0, 5.0], 8: [2.0, 2.5]}, "y": {4: [9.0], 8: [8.0]}}
    )
    ax = fig.axes[0]
    assert ax.get_title() and "N" in ax.get_xlabel() and "FID" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["x", "y"]
    caption = [t.get_text() for t in fig.texts]  # 4 → 2.25 is −44 %, 9 → 8 is −11 %
    assert caption == ["x: 4 at N = 4 → 2 at N = 8 (-44%); y: 9 at N = 4 → 8 at N = 8 (-11%)."]
