"""The evaluation and baselines packages name their public API (imported on first use)."""

from __future__ import annotations

import pytest

import svdinst.baselines
import svdinst.evaluation


def test_evaluation_public_api() -> None:
    from svdinst.evaluation import content, lpips, oracle

    assert svdinst.evaluation.LpipsScorer is lpips.LpipsScorer
    assert svdinst.evaluation.oracle_distance is oracle.oracle_distance
    assert svdinst.evaluation.strength_sweep is content.strength_sweep
    for name in svdinst.evaluation.__all__:
        assert getattr(svdinst.evaluation, name) is not None, name
    with pytest.raises(AttributeError):
        svdinst.evaluation.nope  # noqa: B018


def test_baselines_public_api_includes_the_comparison_figures() -> None:
    from svdinst.baselines import compare

    assert svdinst.baselines.comparison_grid is compare.comparison_grid
    assert svdinst.baselines.loss_curves is compare.loss_curves
    assert "adain" in svdinst.baselines.REGISTRY
