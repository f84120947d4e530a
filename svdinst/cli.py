"""The ``svdinst`` command. Each stage's module owns its sub-commands through ``register_cli``.

Errors the kit raises on purpose (:class:`svdinst.errors.SvdinstError`) print as one line
``svdinst: error: …`` and exit with status 2; anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

import svdinst
from svdinst.errors import SvdinstError

# The one list of modules that add sub-commands, in `svdinst --help` order; each defines
# register_cli(subparsers) and sets a `func` default. Imported by name so that a module is loaded
# only when the parser is built (and a slow module import shows up in `python -X importtime`).
COMMAND_MODULES = [
    "svdinst.models.cli",
    "svdinst.training.lora_cli",
    "svdinst.data.cli",
    "svdinst.evaluation.cli",
    "svdinst.stylize.cli",
    "svdinst.baselines.cli",
    "svdinst.training.cli",
    "svdinst.pocket.cli",
]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used by the docs and tests)."""
    parser = argparse.ArgumentParser(
        prog="svdinst",
        description="SVD-InST: photo → mural-style translation on Stable Diffusion.",
    )
    parser.add_argument("--version", action="version", version=f"svdinst {svdinst.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
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
