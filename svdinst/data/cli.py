"""``svdinst data prepare DIR`` and ``svdinst data check DIR``."""

from __future__ import annotations

import argparse
from pathlib import Path

from svdinst.formats.folders import writing_into


def _cli_prepare(args: argparse.Namespace) -> int:
    # Imported when the command runs: `svdinst --help` should not load PIL, numpy, scipy.
    from svdinst.data.default import prepare_default_dataset

    with writing_into(args.dir, what="the data set"):
        prepare_default_dataset(args.dir, force=args.force, overwrite=args.overwrite)
    return 0


def _cli_check(args: argparse.Namespace) -> int:
    from svdinst.data.io import (  # lazy, as above
        SPLITS,
        check_data_dir,
        images_in_subfolders,
        nested_note,
        scan_folder,
    )

    folders, problems = check_data_dir(args.dir)
    n_images = 0
    for folder in folders:
        candidates, skipped = scan_folder(folder)
        n_images += len(candidates)
        for path in skipped:
            print(f"note: {path}: skipped (not an image extension)")
        nested = images_in_subfolders(folder)
        if nested:
            print(f"note: {nested_note(folder, nested)}")
    if folders[0] != Path(args.dir):
        for split in SPLITS:
            if not (Path(args.dir) / split).is_dir():
                print(f"note: {Path(args.dir) / split}: no such folder")
    for path, problem in problems:
        print(f"BAD {path}: {problem}")
    names = ", ".join(str(f) for f in folders)
    print(f"Checked {n_images} image file(s) in {names}: {len(problems)} problem(s).")
    return 1 if problems else 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``svdinst data prepare DIR`` and ``svdinst data check DIR``."""
    data = subparsers.add_parser("data", help="prepare the default data set or check a folder")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    prepare = sub.add_parser(
        "prepare", help="write DIR/{content,style,test}/ and DIR/LICENSES.md (offline)"
    )
    prepare.add_argument("dir", type=Path, metavar="DIR")
    prepare.add_argument(
        "--force", action="store_true", help="rebuild every file even if the set is complete"
    )
    prepare.add_argument(
        "--overwrite",
        action="store_true",
        help="add the set to a folder holding other images (a file svdinst did not write is "
        "never replaced)",
    )
    prepare.set_defaults(func=_cli_prepare)
    check = sub.add_parser(
        "check",
        help="validate every image of DIR (or its content/style/test); exit 1 if any is bad",
    )
    check.add_argument("dir", type=Path, metavar="DIR")
    check.set_defaults(func=_cli_check)
