"""The ``svdinst`` command. Each stage's module owns its sub-commands through ``register_cli``.

Errors the kit raises on purpose (:class:`svdinst.errors.SvdinstError`) print as one line
``svdinst: error: …`` and exit with status 2; anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

import svdinst
from svdinst.errors import SvdinstError

# Modules that add sub-commands; each defines register_cli(subparsers) and sets `func` defaults.
COMMAND_MODULES = [
    "svdinst.training.lora_cli",
    "svdinst.data.images",
    "svdinst.evaluation.cli",
    "svdinst.stylize.stylizer",
    "svdinst.baselines.cli",
    "svdinst.training.cli",
    "svdinst.pocket.cli",
]


def _tiny_model(args: argparse.Namespace) -> None:
    from svdinst.models.loading import build_tiny_model

    out = build_tiny_model(args.dir)
    print(f"Wrote the tiny model to {out}")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used by the docs and tests)."""
    parser = argparse.ArgumentParser(
        prog="svdinst",
        description="SVD-InST: photo → mural-style translation on Stable Diffusion.",
    )
    parser.add_argument("--version", action="version", version=f"svdinst {svdinst.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    tiny = sub.add_parser(
        "tiny-model", help="build the tiny offline SD-layout model (random weights) into DIR"
    )
    tiny.add_argument("dir", type=Path, metavar="DIR")
    tiny.set_defaults(func=_tiny_model)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register_cli(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``svdinst`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except SvdinstError as err:
        print(f"svdinst: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("svdinst: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
