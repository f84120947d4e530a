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

import argparse
import json
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from svdinst.errors import RunFolderError, SvdinstError

if TYPE_CHECKING:  # torch is imported inside functions so `svdinst --help` stays quick
    from torch import nn

FORMAT = "svdinst-lora-from-spectral-shifts-v1"


class LoraExport(dict):
    """``{key: tensor}`` in diffusers' LoRA layout, plus the truncation errors.

    Attributes:
        rank (`int`): r (layers with fewer singular values are zero-padded to r).
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
        rank (`int`): r ≥ 1; r ≥ k of a layer reproduces its ΔW exactly.
        prefix (`str`, defaults to ``"unet"``): key prefix diffusers uses for the UNet.

    Returns:
        `LoraExport`: the state dict, with ``errors``/``norms`` per layer and the totals.
    """
    import torch

    from svdinst.spectral.layer import _require_layers

    if not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank must be a positive integer, got {rank!r}.")
    out = LoraExport()
    out.rank, out.errors, out.norms = rank, {}, {}
    with torch.no_grad():
        for name, layer in _require_layers(model).items():
            _export_layer(out, prefix, name, layer, rank)
    return out


def _export_layer(out: LoraExport, prefix: str, name: str, layer: nn.Module, rank: int) -> None:
    """Add one layer's A, B and errors to ``out`` (see :func:`export_lora`)."""
    import torch

    dsig = (layer.shifted_singular_values() - layer.S).double()
    order = dsig.abs().argsort(descending=True)
    keep, drop = order[:rank], order[rank:]
    U, Vh = layer.U.double(), layer.Vh.double()
    up = torch.zeros(U.shape[0], rank, dtype=torch.float64, device=U.device)
    down = torch.zeros(rank, Vh.shape[1], dtype=torch.float64, device=U.device)
    up[:, : keep.numel()] = U[:, keep] * dsig[keep]
    down[: keep.numel()] = Vh[keep]
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
    from safetensors.torch import save_file

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


def export_run(run: str | os.PathLike, rank: int, out: str | os.PathLike) -> LoraExport:
    """Load a run folder's shifts onto its base UNet and save them as a rank-r LoRA file.

    Args:
        run (`str` or `os.PathLike`): run folder with ``config.json`` (key ``model``) and
            ``spectral_shifts.safetensors`` (see DESIGN.md's run-folder contract).
        rank (`int`): LoRA rank r.
        out (`str` or `os.PathLike`): the ``.safetensors`` file to write.
    """
    from svdinst.models.loading import load_components
    from svdinst.spectral.layer import add_spectral_shifts, load_spectral_shifts, read_spectral_shift_file

    if not isinstance(rank, int) or rank < 1:  # before any model is loaded
        raise SvdinstError(f"--rank must be a positive integer (e.g. 4), got {rank!r}.")
    run = Path(run)
    config_file, shifts_file = run / "config.json", run / "spectral_shifts.safetensors"
    if not config_file.is_file():
        raise RunFolderError(f"'{run}' is not a run folder: it has no config.json; pass a RUN/.")
    try:
        model = json.loads(config_file.read_text())["model"]
    except (ValueError, KeyError) as err:
        raise RunFolderError(
            f"'{config_file}' has no base model under the key \"model\" ({err}); "
            "re-create the run with `svdinst train`."
        ) from err
    if not shifts_file.is_file():
        raise RunFolderError(
            f"'{run}' has no spectral_shifts.safetensors: only runs trained with --mode svdiff "
            "or svd-inst have spectral shifts to export."
        )
    _, meta = read_spectral_shift_file(shifts_file)
    unet = load_components(model, parts=["unet"]).unet
    names = [f"^{re.escape(n)}$" for n in meta["layers"]]
    add_spectral_shifts(unet, include=names, base_model=str(model))
    load_spectral_shifts(unet, shifts_file)
    export = export_lora(unet, rank)
    save_lora(export, out, base_model=str(model))
    return export


def _cli_export(args: argparse.Namespace) -> None:
    export = export_run(args.run, args.rank, args.out)
    size = Path(args.out).stat().st_size
    print(
        f"Wrote {args.out}: {len(export.errors)} layers at rank {export.rank}, "
        f"{size / 2**20:.2f} MiB; truncation error ‖ΔW − BA‖_F = {export.total_error:.4g} "
        f"({100 * export.relative_error:.2f}% of ‖ΔW‖_F)."
    )


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``svdinst export-lora --run RUN --rank R --out FILE``."""
    p = subparsers.add_parser(
        "export-lora",
        help="export a run's spectral shifts as a rank-R LoRA that diffusers' load_lora_weights reads",
    )
    p.add_argument("--run", type=Path, required=True, help="run folder (config.json + shifts)")
    p.add_argument("--rank", type=int, required=True, help="LoRA rank r (exact top-r of Δσ)")
    p.add_argument("--out", type=Path, required=True, help="the .safetensors file to write")
    p.set_defaults(func=_cli_export)
