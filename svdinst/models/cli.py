"""``svdinst tiny-model DIR``: build the tiny offline SD-layout model (random weights)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _cli_tiny_model(args: argparse.Namespace) -> int:
    # Imported when the command runs: torch, diffusers and transformers would slow `svdinst --help`.
    from svdinst.models.layouts import build_tiny_model

    out = build_tiny_model(args.dir)
    print(f"Wrote the tiny model to {out}")
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``svdinst tiny-model DIR``."""
    tiny = subparsers.add_parser(
        "tiny-model", help="build the tiny offline SD-layout model (random weights) into DIR"
    )
    tiny.add_argument("dir", type=Path, metavar="DIR")
    tiny.set_defaults(func=_cli_tiny_model)
