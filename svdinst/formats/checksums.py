"""``SHA256SUMS`` of a folder of shipped weights (the pocket model, the trained baselines).

The file is in ``sha256sum`` format (``<hex>  <relative path>``) and covers every file of the
folder except itself and the kit's manifest, so ``sha256sum -c SHA256SUMS`` or
:func:`verify_checksums` proves that committed weights are the ones their card describes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from svdinst.formats.folders import MANIFEST

SUMS = "SHA256SUMS"


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def listed_files(folder: Path) -> list[str]:
    """Every file under ``folder`` except ``SHA256SUMS`` and the kit's manifest, as sorted POSIX relative paths."""
    found = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    return sorted(f for f in found if f not in (SUMS, MANIFEST))  # the manifest is bookkeeping


def write_checksums(
    folder: str | os.PathLike, known: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Write ``folder/SHA256SUMS`` for every other file of ``folder``; returns {path: hex}.

    Args:
        folder (`str` or `os.PathLike`): the folder of weights.
        known (`Mapping[str, str]`, *optional*): relative path → hex the caller has computed
            already for files unchanged since (a weight file is hashed once, not twice).
    """
    folder = Path(folder)
    known = known or {}
    sums = {
        name: known[name] if name in known else sha256_file(folder / name)
        for name in listed_files(folder)
    }
    (folder / SUMS).write_text("".join(f"{h}  {name}\n" for name, h in sums.items()))
    return sums


def verify_checksums(folder: str | os.PathLike) -> list[str]:
    """Recompute every checksum listed in ``folder/SHA256SUMS``.

    Args:
        folder (`str` or `os.PathLike`): a folder given its sums by :func:`write_checksums`.

    Returns:
        `list[str]`: one line per problem (``"changed: unet/…"``, ``"missing: …"``,
        ``"not listed: …"``); empty when the folder is exactly what was written.
    """
    folder = Path(folder)
    listing = folder / SUMS
    if not listing.is_file():
        return [f"missing: {SUMS} (not a folder of weights the kit wrote)"]
    problems, listed = [], set()
    for line in listing.read_text().splitlines():
        if not line.strip():
            continue
        digest, name = line.split(maxsplit=1)
        name = name.strip().lstrip("*")
        listed.add(name)
        path = folder / name
        if not path.is_file():
            problems.append(f"missing: {name}")
        elif sha256_file(path) != digest:
            problems.append(f"changed: {name}")
    problems += [f"not listed: {name}" for name in listed_files(folder) if name not in listed]
    return problems
