"""The pocket model: a small SD-layout model the kit pretrains on its offline photos, and the
experiment that asks whether style training is measurable on it.

:func:`pretrain` (``svdinst pocket pretrain``) writes the model folder with its card and
checksums; :func:`run_pocket_experiment` compares the base model with InST, SVD-InST and SVDiff
over several training seeds (FID/KID, oracle distance, content preservation) and
:func:`pocket_section` writes its part of REPORT.md. Names load on first use, so the CLI, which
imports :mod:`svdinst.pocket.cli`, stays quick.
"""

from svdinst.lazy import lazy_exports

_EXPORTS = {
    "PocketConfig": "config",
    "pretrain": "pretrain",
    "PocketExperimentConfig": "experiment",
    "run_pocket_experiment": "experiment",
    "pocket_figure": "experiment",
    "pocket_section": "report",
    "pocket_table_markdown": "report",
    "verdict": "report",
    "targets": "report",
    "select_settings": "select",
    "run_vae_check": "vae_check",
    "verify_checksums": "card",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
