"""``svdinst export-lora``: a run folder's spectral shifts as a rank-r LoRA file for diffusers.

:func:`export_run` reads the run folder (``config.json`` with the base model under ``"model"``,
``spectral_shifts.safetensors``), loads the base UNet, and writes the exact top-r LoRA of
:func:`svdinst.spectral.lora.export_lora`. The CLI: ``svdinst export-lora --run RUN --rank R
--out FILE``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from svdinst.errors import RunFolderError, SvdinstError

if TYPE_CHECKING:  # torch-heavy: imported inside export_run so `svdinst --help` stays quick
    from svdinst.spectral.lora import LoraExport

CONFIG_FILE, SHIFTS_FILE = "config.json", "spectral_shifts.safetensors"


def export_run(run: str | os.PathLike, rank: int, out: str | os.PathLike) -> LoraExport:
    """Load a run folder's shifts onto its base UNet and save them as a rank-r LoRA file.

    Args:
        run (`str` or `os.PathLike`): run folder with ``config.json`` (key ``model``) and
            ``spectral_shifts.safetensors`` (see DESIGN.md's run-folder contract).
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
    run = Path(run)
    config_file, shifts_file = run / CONFIG_FILE, run / SHIFTS_FILE
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
