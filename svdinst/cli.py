"""The ``svdinst`` command. Each stage's module owns its sub-commands through ``register_cli``.

Errors the kit raises on purpose (:class:`svdinst.errors.SvdinstError`) print as one line
``svdinst: error: …`` and exit with status 2, and so do the file-system failures a user can fix
(disk full, read-only, no permission, a file where a folder should be: :data:`OS_ERROR_FIXES`),
naming the path. Ctrl-C at any point, start-up included, prints one line and exits 130. Anything
else is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from collections.abc import Sequence

import svdinst
from svdinst.errors import SvdinstError
from svdinst.threads import apply_threads

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


# errno → what the user can do about it; any other OSError is unexpected and keeps its traceback.
OS_ERROR_FIXES = {
    errno.ENOSPC: "the disk is full: free some space (or choose another --out) and run it again",
    errno.EDQUOT: "the disk quota is used up: free some space (or choose another --out)",
    errno.EROFS: "the file system is read-only: choose another --out",
    errno.EACCES: "no permission to write there: choose a folder you own (or fix its permissions)",
    errno.EPERM: "not permitted: choose a folder you own (or fix its permissions)",
    errno.ENOTDIR: "part of the path is a file, not a folder: choose another path",
    errno.EISDIR: "it is a folder, not a file: give a file name",
    errno.EEXIST: "a file is in the way where a folder is needed: choose another path",
}


def os_error_line(err: OSError) -> str | None:
    """The one-line message for a file-system failure a user can fix, or ``None``."""
    fix = OS_ERROR_FIXES.get(err.errno or 0)
    if fix is None:
        return None
    where = f" at '{err.filename}'" if err.filename else ""
    return f"{err.strerror or os.strerror(err.errno)}{where}; {fix}."


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``svdinst`` console script."""
    # Everything, the parser's imports included, runs inside the guard: Ctrl-C while a command
    # module loads torch is one line too.
    try:
        apply_threads()  # before a command imports torch (svdinst/threads.py: the rule)
        args = build_parser().parse_args(argv)
        result = args.func(args)
    except SvdinstError as err:
        print(f"svdinst: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("svdinst: interrupted", file=sys.stderr)
        return 130
    except OSError as err:
        line = os_error_line(err)
        if line is None:
            raise
        print(f"svdinst: error: {line}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
