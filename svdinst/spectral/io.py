"""Spectral-shift files: δ per layer in safetensors, with the base model and layer shapes.

A file holds ``{layer name: δ}`` (float32, 222,696 values for SD-1.4: < 1 MB) and metadata
``format``, ``base_model``, ``svdinst_version`` and ``layers`` (JSON ``{name: weight shape}``), so
loading it into a model of other layers or shapes fails with a message naming the file and the
first mismatch. Files are written to a temporary name and renamed.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

import svdinst
from svdinst.errors import ShiftFileError
from svdinst.spectral.model import require_spectral_layers, spectral_base_model, spectral_layers

FILE_FORMAT = "svdinst-spectral-shifts-v1"


def spectral_shifts_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``{layer name: δ}`` (detached CPU copies) — everything a trained SVDiff adds to the base."""
    return {
        n: m.delta.detach().to("cpu", copy=True) for n, m in require_spectral_layers(model).items()
    }


def save_spectral_shifts(
    model: nn.Module, path: str | os.PathLike, base_model: str | None = None
) -> Path:
    """Write δ of every layer to a safetensors file with the base model and layer shapes.

    Args:
        model (`nn.Module`): a model with spectral shifts.
        path (`str` or `os.PathLike`): the file to write (written to a temporary name, then renamed).
        base_model (`str`, *optional*): defaults to the id given to :func:`add_spectral_shifts`.
    """
    layers = require_spectral_layers(model)
    base = base_model if base_model is not None else spectral_base_model(model)
    metadata = {
        "format": FILE_FORMAT,
        "base_model": str(base or ""),
        "svdinst_version": svdinst.__version__,
        "layers": json.dumps({n: list(m.base_layer.weight.shape) for n, m in layers.items()}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(
        {n: t.contiguous() for n, t in spectral_shifts_state_dict(model).items()}, tmp, metadata
    )
    os.replace(tmp, path)
    return path


def read_spectral_shift_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a shift file: ``(δ by layer, metadata with 'layers' parsed)``; ShiftFileError if bad."""
    path = Path(path)
    if not path.is_file():
        raise ShiftFileError(
            f"Spectral-shift file '{path}' does not exist; train a run with --mode svdiff or "
            "svd-inst, or pass that run's spectral-shift file."
        )
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    except Exception as err:  # safetensors raises its own error types for corrupt files
        raise ShiftFileError(
            f"'{path}' is not a readable safetensors file ({err}); retrain the run "
            "(`svdinst train … --overwrite`) or re-save it with save_spectral_shifts()."
        ) from err
    if meta.get("format") != FILE_FORMAT or "layers" not in meta:
        raise ShiftFileError(
            f"'{path}' is not an svdinst spectral-shift file (metadata format "
            f"{meta.get('format')!r}, expected {FILE_FORMAT!r}); it is written by `svdinst train` "
            "(or save_spectral_shifts())."
        )
    meta["layers"] = {k: tuple(v) for k, v in json.loads(meta["layers"]).items()}
    return tensors, meta


def load_spectral_shifts(model: nn.Module, path: str | os.PathLike) -> dict:
    """Load δ from ``path`` into a model with spectral shifts; the layer sets must match exactly.

    Args:
        model (`nn.Module`): wrapped with :func:`add_spectral_shifts` (same include/exclude).
        path (`str` or `os.PathLike`): a file written by :func:`save_spectral_shifts`.

    Returns:
        `dict`: the file's metadata (``base_model``, ``svdinst_version``, ``layers``).

    Raises:
        ShiftFileError: the file is missing, unreadable, or made for a model of other layers/shapes.
    """
    tensors, meta = read_spectral_shift_file(path)
    layers = spectral_layers(model)
    if not layers:
        raise ShiftFileError(
            f"Cannot load '{path}': the model has no spectral shifts; call add_spectral_shifts first."
        )
    missing, extra = sorted(set(layers) - set(tensors)), sorted(set(tensors) - set(layers))
    if missing or extra:
        raise ShiftFileError(
            f"'{path}' does not fit this model: {len(missing)} of its {len(layers)} shifted layers "
            f"are not in the file (e.g. {missing[:2]}) and {len(extra)} file entries are not in the "
            f"model (e.g. {extra[:2]}). Load it into the base model "
            f"'{meta.get('base_model') or 'unknown'}' wrapped with the same include/exclude."
        )
    for name, layer in layers.items():
        shape = tuple(layer.base_layer.weight.shape)
        if meta["layers"].get(name) != shape or tensors[name].shape != layer.delta.shape:
            raise ShiftFileError(
                f"'{path}' does not fit this model: layer '{name}' has weight shape "
                f"{meta['layers'].get(name)} in the file but {shape} in the model. Load it into "
                f"its base model '{meta.get('base_model') or 'unknown'}'."
            )
    own = spectral_base_model(model)
    if own and meta.get("base_model") and own != meta["base_model"]:
        warnings.warn(
            f"'{path}' was trained on '{meta['base_model']}' but is loaded into '{own}' "
            "(same layer shapes, so it loads; check this is the same model).",
            stacklevel=2,
        )
    with torch.no_grad():
        for name, layer in layers.items():
            merged = layer.merged
            layer.unmerge()
            layer.delta.copy_(tensors[name])
            if merged:
                layer.merge()
    return meta
