"""Training: one loop for the three modes (``inst``, ``svdiff``, ``svd-inst``) that writes a run
folder (:class:`svdinst.formats.run_folder.RunFolder`), its configuration, InST's image→token
module, and using a finished run (apply it to loaded components, or train it when missing).
Names load on first use, so ``svdinst --help`` does not import accelerate.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "config",
    "prepare_run_dir": "config",
    "read_config_json": "config",
    "train": "loop",
    "TrainResult": "loop",
    "TrainingDivergedError": "loop",
    "RunInfo": "runs",
    "check_run": "runs",
    "ensure_run": "runs",
    "load_run": "runs",
    "read_loss_log": "runs",
    "shift_magnitudes": "runs",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"svdinst.training.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'svdinst.training' has no attribute {name!r}")
