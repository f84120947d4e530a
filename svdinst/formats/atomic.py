"""Atomic, durable file writes: a reader sees the old file or the new one, never half of one.

Every write goes to a temporary file in the *same* folder (so the rename stays on one file
system), is flushed and fsynced, replaces the target with ``os.replace`` and then fsyncs the
folder so the rename itself survives a power cut. :func:`atomic_path` is the general form for
writers that want a path (``torch.save``, ``safetensors.torch.save_file``, ``PIL.Image.save``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # a type only: the CLI's output-folder checks import this module, not PIL
    from PIL import Image


def fsync_dir(folder: str | os.PathLike) -> None:
    """Flush a folder's entries (renames) to disk where the OS allows it (not on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: str | os.PathLike) -> None:
    """Flush one file's bytes to disk (for writers that closed the file themselves)."""
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed onto ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.

    Args:
        path (`str` or `os.PathLike`): the final file; its folder is created when missing.
    """
    final = Path(path)
    tmp: Path | None = None
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        # The suffix is kept so writers that pick a format from it (PIL) still see ".png".
        fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=final.suffix)
        os.close(fd)
        tmp = Path(name)
        yield tmp
        fsync_file(tmp)  # on disk before the rename: a crash never publishes an empty file
        os.replace(tmp, final)
        fsync_dir(final.parent)
    except OSError as err:
        # Name the file the caller asked for, not the hidden temporary one (or none: PIL's
        # ENOSPC carries no file name): `svdinst` prints it as the one-line error.
        if err.errno is None or err.filename == str(final):
            raise
        raise OSError(err.errno, err.strerror, str(final)) from err
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)  # a failed write leaves no temporary file behind


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; returns the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, data: Any, *, sort_keys: bool = False) -> Path:
    """Write ``data`` as indented JSON (with a final newline) atomically; returns the path."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=sort_keys) + "\n")


def save_image_atomic(path: str | os.PathLike, image: Image.Image) -> Path:
    """Save a PIL image atomically (format from the suffix, e.g. PNG); returns the path."""
    with atomic_path(path) as tmp:
        image.save(tmp)
    return Path(path)
