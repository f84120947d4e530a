"""Safe output folders: the kit replaces only what it wrote and never a user's files.

A folder the kit builds (a model folder, the default data set) carries a manifest,
:data:`MANIFEST`, listing every file the kit wrote there. :func:`prepare_output_folder` checks a
target before any work starts (a file in the way, no write permission, a non-empty folder that is
not the kit's); :func:`remove_ours` deletes only the listed files; :func:`publish_folder` moves a
folder staged beside the target into place (a rename when it can, file by file beside a user's
files otherwise, never over one of them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from svdinst.errors import SvdinstError
from svdinst.formats.atomic import write_json_atomic

MANIFEST = ".svdinst-manifest.json"  # hidden: it is the kit's bookkeeping, not the user's data


class OutputFolderError(SvdinstError, OSError):
    """An output folder is a file, not writable, or holds files the kit did not write."""


def written_files(folder: str | os.PathLike) -> set[str] | None:
    """The POSIX relative paths the kit wrote into ``folder``; `None` when it has no manifest."""
    path = Path(folder) / MANIFEST
    try:
        return set(json.loads(path.read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_manifest(
    folder: str | os.PathLike, what: str, files: list[str] | set[str] | None = None
) -> Path:
    """Record the files the kit wrote into ``folder`` (atomically).

    Args:
        folder (`str` or `os.PathLike`): the folder.
        what (`str`): what the folder holds ("the tiny model"), for a person reading the file.
        files (`list[str]`, *optional*): POSIX paths relative to ``folder``; defaults to every
            file under it.
    """
    folder = Path(folder)
    if files is None:
        files = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    listed = sorted(set(files) - {MANIFEST})
    return write_json_atomic(
        folder / MANIFEST, {"written_by": "svdinst", "what": what, "files": listed}
    )


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(
    path: str | os.PathLike, *, what: str = "the output", folder: bool = True
) -> Path:
    """Refuse, before any work is done, an output path that cannot be written.

    One :class:`OutputFolderError` line for the common cases: a file where a folder is wanted or
    the reverse, a file above it, a read-only file system, no write permission. What shows only
    while writing (a full disk) is reported by ``svdinst/cli.py``.

    Args:
        path (`str` or `os.PathLike`): the folder (``folder=True``) or file to write.
        what (`str`, defaults to ``"the output"``): what goes there, for the message.
        folder (`bool`, defaults to `True`): whether ``path`` is to be a folder or a file.
    """
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise OutputFolderError(
            f"'{path}' is a file, not a folder; pass a new folder path for {what} "
            "(or move the file away)."
        )
    if not folder and path.is_dir():
        raise OutputFolderError(
            f"'{path}' is a folder; give {what} a file name, e.g. '{path / 'out.json'}'."
        )
    existing = _nearest_existing((path if folder else path.parent).absolute())
    if not existing.is_dir():
        raise OutputFolderError(
            f"'{existing}' is a file, so '{path}' cannot be created; pass another path for {what}."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        readonly = hasattr(os, "statvfs") and bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
        why = "is on a read-only file system" if readonly else "is not writable (no permission)"
        raise OutputFolderError(
            f"'{existing}' {why}; pick a place you can write to for {what}, or fix its permissions."
        )
    return path


def prepare_output_folder(
    path: str | os.PathLike, *, overwrite: bool, what: str, flag: str = "--overwrite"
) -> Path:
    """Check ``path`` before any work: refuse a file, a read-only place, or a foreign folder.

    A missing or empty folder, or one the kit wrote (it has a :data:`MANIFEST`), is fine. A
    non-empty folder without one holds a user's files: refused unless ``overwrite``, and even
    then only the kit's files are ever replaced (see :func:`publish_folder`).

    Args:
        path (`str` or `os.PathLike`): the output folder.
        overwrite (`bool`): the user passed ``flag``: write beside files the kit did not write.
        what (`str`): what goes there ("the tiny model"), for the message.
        flag (`str`, defaults to ``"--overwrite"``): the command's flag, named in the message.

    Returns:
        `Path`: ``path``.
    """
    path = check_writable(path, what=what)
    if path.is_dir() and written_files(path) is None and not overwrite:
        entries = sorted(p.name for p in path.iterdir())
        if entries:
            shown = ", ".join(entries[:3]) + (", …" if len(entries) > 3 else "")
            raise OutputFolderError(
                f"{path}: not empty and not written by svdinst ({shown}); pass a new or empty "
                f"folder for {what}, or {flag} to write beside these files (only svdinst's own "
                "files are ever replaced)."
            )
    return path


def remove_ours(path: str | os.PathLike) -> list[str]:
    """Delete the files the kit wrote into ``path`` (its manifest), then folders left empty.

    A user's files, and the folders holding them, stay. The folder itself goes when it ends
    empty. Returns the removed paths (relative); nothing happens without a manifest.
    """
    path = Path(path)
    files = written_files(path)
    if files is None:
        return []
    removed = []
    for name in sorted(files):
        target = path / name
        if target.is_file() or target.is_symlink():
            target.unlink()
            removed.append(name)
    (path / MANIFEST).unlink(missing_ok=True)
    # Only folders that held the kit's files, deepest first (a user's empty folder stays).
    ours = {parent for name in files for parent in (path / name).parents if path in parent.parents}
    for folder in sorted(ours, key=lambda p: -len(p.parts)):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    if not any(path.iterdir()):
        path.rmdir()
    return removed


def publish_folder(staged: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Move ``staged`` (a folder with a manifest, beside ``out``) into place as ``out``.

    An earlier kit-written ``out`` loses only its listed files first. When ``out`` is then
    gone, one rename publishes the whole folder; when a user's files remain, the kit's files
    move in one by one, and a user's file in the way is an error (nothing is overwritten).

    Args:
        staged (`str` or `os.PathLike`): the finished folder, on the same file system.
        out (`str` or `os.PathLike`): the target.
    """
    staged, out = Path(staged), Path(out)
    files = written_files(staged)
    if files is None:
        raise ValueError(f"{staged}: has no {MANIFEST}; call write_manifest first")
    if out.exists():
        remove_ours(out)
    if not out.exists():
        os.replace(staged, out)
        return out
    in_the_way = sorted(f for f in files if (out / f).exists())
    if in_the_way:
        raise OutputFolderError(
            f"{out / in_the_way[0]}: not written by svdinst and in the way "
            f"({len(in_the_way)} such file(s)); move it away or pass another folder."
        )
    for name in sorted(files):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged / name, out / name)
    os.replace(staged / MANIFEST, out / MANIFEST)  # last: it marks a complete folder
    return out


@contextmanager
def writing_into(path: str | os.PathLike, *, what: str) -> Iterator[None]:
    """Turn a permission error while writing ``what`` under ``path`` into one line naming the file.

    :func:`check_writable` sees only the top folder; a read-only file or sub-folder inside it
    (or a mount turned read-only midway) fails at the write itself.
    """
    try:
        yield
    except PermissionError as err:
        where = err.filename or path
        raise OutputFolderError(
            f"{where}: not writable (permission denied) while writing {what}; fix its "
            "permissions or pick another folder."
        ) from None
