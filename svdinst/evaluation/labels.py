"""How the report names its rows: methods, their equal-N (seed 0) rows and the reference rows."""

from __future__ import annotations

from svdinst.evaluation.references import REFERENCE_LABELS, SEED0

LABELS = {
    "base": "base model (untrained)",
    "svd-inst": "SVD-InST",
    "inst": "InST",
    "svdiff": "SVDiff only",
    "cyclegan": "CycleGAN",
    "stargan": "StarGAN",
    "balagan": "BalaGAN",
    "stytr2": "StyTr²",
    "fast_style": "fast-style-transfer",
    "adain": "AdaIN",
    "magenta": "Magenta",
}
ORDER = list(LABELS)  # table order: ours first, then the baselines


def label(method: str) -> str:
    """The display name of a results key (``"svd-inst@seed0"`` → ``"SVD-InST (seed 0 only)"``)."""
    if method in REFERENCE_LABELS:
        return REFERENCE_LABELS[method]
    if method.endswith(SEED0):
        core = method.removesuffix(SEED0)
        return f"{LABELS.get(core, core)} (seed 0 only)"
    return LABELS.get(method, method)
