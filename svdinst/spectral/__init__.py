"""SVDiff spectral shifts as a peft-style tuner: W = U·diag(relu(σ + s·δ))·Vᵀ per Linear/Conv2d.

:func:`add_spectral_shifts` wraps a model's layers in :class:`SpectralShiftLayer` (configured by
:class:`SpectralShiftConfig`); the model-level functions merge, rescale, switch paths and remove
them; shift files (a run folder's spectral shifts) are written and read by the ``save_`` /
``load_`` functions, and :func:`export_lora` turns the shifts into an exact low-rank LoRA. The
modules form a DAG: config, aside ← factored ← fast ← layer ← svd ← model ← io, lora.
"""

from svdinst.spectral.config import SpectralShiftConfig
from svdinst.spectral.io import (
    FILE_FORMAT,
    load_spectral_shifts,
    read_spectral_shift_file,
    save_spectral_shifts,
    spectral_shifts_state_dict,
)
from svdinst.spectral.layer import SpectralShiftLayer
from svdinst.spectral.lora import LoraExport, export_lora, save_lora
from svdinst.spectral.model import (
    add_spectral_shifts,
    merge_spectral_shifts,
    refresh_spectral_weights,
    remove_spectral_shifts,
    set_fast_path,
    set_shift_scale,
    shift_grads_aside,
    spectral_layers,
    spectral_shift_layout,
    unmerge_spectral_shifts,
)

__all__ = [
    "FILE_FORMAT",
    "LoraExport",
    "SpectralShiftConfig",
    "SpectralShiftLayer",
    "add_spectral_shifts",
    "export_lora",
    "load_spectral_shifts",
    "merge_spectral_shifts",
    "read_spectral_shift_file",
    "refresh_spectral_weights",
    "remove_spectral_shifts",
    "save_lora",
    "save_spectral_shifts",
    "set_fast_path",
    "set_shift_scale",
    "shift_grads_aside",
    "spectral_layers",
    "spectral_shift_layout",
    "spectral_shifts_state_dict",
    "unmerge_spectral_shifts",
]
