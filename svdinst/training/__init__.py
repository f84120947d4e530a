"""Training: one loop for the three modes (``inst``, ``svdiff``, ``svd-inst``) that writes a run
folder (:class:`svdinst.formats.run_folder.RunFolder`), its configuration, InST's image→token
module, and using a finished run (apply it to loaded components, or train it when missing).
Names load on first use, so ``svdinst --help`` does not import accelerate.
"""

from svdinst.lazy import lazy_exports

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

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
