"""``svdinst export-lora``: a run folder's spectral shifts as a rank-r LoRA file for diffusers.

:func:`export_run` reads the run folder (its settings file with the base model under ``"model"``
and its spectral shifts, both named by :class:`~svdinst.formats.run_folder.RunFolder`), loads the
base UNet, and writes the exact top-r LoRA of
:func:`svdinst.spectral.lora.export_lora`. The CLI: ``svdinst export-lora --run RUN --rank R
--out FILE``.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from svdinst.errors import RunFolderError, SvdinstError
from svdinst.formats.run_folder import RunFolder

if TYPE_CHECKING:  # torch-heavy: imported inside export_run so `svdinst --help` stays quick
    from svdinst.spectral.lora import LoraExport


def export_run(run: str | os.PathLike, rank: int, out: str | os.PathLike) -> LoraExport:
    """Load a run folder's shifts onto its base UNet and save them as a rank-r LoRA file.

    Args:
        run (`str` or `os.PathLike`): a run folder trained with ``--mode svdiff`` or
            ``svd-inst`` (docs/DESIGN.md, "Run folder").
        rank (`int`): LoRA rank r.
        out (`str` or `os.PathLike`): the ``.safetensors`` file to write.
    """
    # Heavy (torch, diffusers) imports here, not at the top: `svdinst --help` imports this module.
    from svdinst.models.loading import load_components
    from svdinst.spectral import (
        add_spectral_shifts,
        export_lora,
        load_spectral_shifts,
        read_spectral_shift_file,
        save_lora,
    )

    if not isinstance(rank, int) or rank < 1:  # before any model is loaded
        raise SvdinstError(f"--rank must be a positive integer (e.g. 4), got {rank!r}.")
    folder = RunFolder(run)
    model = folder.read_config(required=("model",))["model"]
    shifts_file = folder.spectral_shifts
    if not shifts_file.is_file():
        raise RunFolderError(
            f"'{run}' has no {RunFolder.SPECTRAL_SHIFTS}: only runs trained with --mode svdiff "
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
    p.add_argument(
        "--run", type=Path, required=True, help="run folder of an svdiff or svd-inst run"
    )
    p.add_argument("--rank", type=int, required=True, help="LoRA rank r (exact top-r of Δσ)")
    p.add_argument("--out", type=Path, required=True, help="the .safetensors file to write")
    p.set_defaults(func=_cli_export)
