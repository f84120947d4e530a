"""Evaluation: the metrics that score stylized outputs, and the reports built from them.

:mod:`~svdinst.evaluation.inception` provides the FID Inception network offline;
:mod:`~svdinst.evaluation.lpips` LPIPS (diversity, content distance); :mod:`~svdinst.evaluation.oracle`
the paired distance to the mural-proxy target; :mod:`~svdinst.evaluation.content` the content
identification test and the strength sweep; :mod:`~svdinst.evaluation.metrics` and
:mod:`~svdinst.evaluation.report` the full metric table and report; :mod:`~svdinst.evaluation.cli`
is ``svdinst evaluate``. Names are imported from their sub-module on first use (:mod:`svdinst.lazy`).
"""

from svdinst.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(
        ["inception_weights_path", "load_torchscript_inception", "torchscript_inception_path"],
        "inception",
    ),
    **dict.fromkeys(
        ["UNAVAILABLE", "LpipsScorer", "content_lpips", "load_lpips", "lpips_diversity"], "lpips"
    ),
    **dict.fromkeys(["oracle_distance"], "oracle"),
    **dict.fromkeys(
        [
            "ContentPreservation",
            "content_preservation",
            "pick_strength",
            "plot_strength_sweep",
            "save_sweep",
            "strength_sweep",
        ],
        "content",
    ),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
