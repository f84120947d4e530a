"""Export trained spectral shifts as an exact low-rank LoRA that stock diffusers loads.

With W₀ = U·diag(σ)·Vᵀ, the shifted weight differs from the base by
ΔW = U·diag(Δσ)·Vᵀ, Δσ = relu(σ + s·δ) − σ — already a singular-value decomposition (up to
signs), so keeping the r largest |Δσᵢ| gives B = U_r·diag(Δσ_r), A = V_rᵀ, the best rank-r
approximation (Eckart–Young) with Frobenius error ‖ΔW − B·A‖_F = √(Σ dropped Δσᵢ²) exactly.
A conv layer's A becomes a kh×kw "down" conv to r channels and B a 1×1 "up" conv, as in
peft/diffusers LoRA. Keys follow the diffusers/peft layout (``unet.<module>.lora_A.weight``),
so ``pipe.load_lora_weights(FILE)`` applies it with scale 1 (alpha = rank).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from svdinst.spectral.layer import SpectralShiftLayer
from svdinst.spectral.model import require_spectral_layers

FORMAT = "svdinst-lora-from-spectral-shifts-v1"


class LoraExport(dict):
    """``{key: tensor}`` in diffusers' LoRA layout, plus the truncation errors.

    Attributes:
        rank (`int`): the requested r; a layer with k < r singular values gets rank k (its
            ΔW exactly; diffusers reads each layer's rank from its ``lora_B`` shape).
        errors (`dict[str, float]`): per layer ‖ΔW − B·A‖_F = √(Σ dropped Δσ²).
        norms (`dict[str, float]`): per layer ‖ΔW‖_F = √(Σ Δσ²).
    """

    rank: int
    errors: dict[str, float]
    norms: dict[str, float]

    @property
    def total_error(self) -> float:
        """‖ΔW − B·A‖_F over all layers (the square root of the summed squares)."""
        return math.sqrt(sum(e * e for e in self.errors.values()))

    @property
    def relative_error(self) -> float:
        """total error / ‖ΔW‖_F over all layers (0 when the shifts are all zero)."""
        total = math.sqrt(sum(n * n for n in self.norms.values()))
        return self.total_error / total if total > 0 else 0.0


def export_lora(model: nn.Module, rank: int, prefix: str = "unet") -> LoraExport:
    """Factor each layer's ΔW = U·diag(relu(σ + s·δ) − σ)·Vᵀ into a rank-r LoRA (exact top-r).

    Args:
        model (`nn.Module`): a model with spectral shifts (the current scale s is used).
        rank (`int`): r ≥ 1; a layer with k ≤ r singular values is exported at rank k, which
            reproduces its ΔW exactly.
        prefix (`str`, defaults to ``"unet"``): key prefix diffusers uses for the UNet.

    Returns:
        `LoraExport`: the state dict, with ``errors``/``norms`` per layer and the totals.
    """
    if not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank must be a positive integer, got {rank!r}.")
    out = LoraExport()
    out.rank, out.errors, out.norms = rank, {}, {}
    with torch.no_grad():
        for name, layer in require_spectral_layers(model).items():
            _export_layer(out, prefix, name, layer, rank)
    return out


def _export_layer(
    out: LoraExport, prefix: str, name: str, layer: SpectralShiftLayer, rank: int
) -> None:
    """Add one layer's A, B (rank min(r, k)) and errors to ``out`` (see :func:`export_lora`)."""
    rank = min(rank, layer.S.numel())  # more columns than singular values would be zeros
    dsig = (layer.shifted_singular_values() - layer.S).double()
    order = dsig.abs().argsort(descending=True)
    keep, drop = order[:rank], order[rank:]
    U, Vh = layer.U.double(), layer.Vh.double()
    up, down = U[:, keep] * dsig[keep], Vh[keep]
    weight = layer.base_layer.weight
    if weight.dim() == 4:  # A: (r, in/groups, kh, kw) conv; B: (out, r, 1, 1) conv
        down = down.view(rank, *weight.shape[1:])
        up = up.view(*up.shape, 1, 1)
    dtype = torch.float64 if layer.U.dtype == torch.float64 else torch.float32
    out[f"{prefix}.{name}.lora_A.weight"] = down.to("cpu", dtype).contiguous()
    out[f"{prefix}.{name}.lora_B.weight"] = up.to("cpu", dtype).contiguous()
    out.errors[name] = float(dsig[drop].square().sum().sqrt())
    out.norms[name] = float(dsig.square().sum().sqrt())


def save_lora(export: LoraExport, path: str | os.PathLike, base_model: str | None = None) -> Path:
    """Write an export as safetensors (readable by ``pipe.load_lora_weights(path)``).

    Args:
        export (`LoraExport`): from :func:`export_lora`.
        path (`str` or `os.PathLike`): the ``.safetensors`` file to write.
        base_model (`str`, *optional*): recorded in the metadata.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "base_model": str(base_model or ""),
        "rank": str(export.rank),
        "frobenius_error": repr(export.total_error),
        "relative_error": repr(export.relative_error),
    }
    save_file(dict(export), path, meta)
    return path
