"""The outputs format: one folder per method, ``<method>/<content-stem>/seed-<k>.png``.

:class:`OutputsFolder` is one method's folder: image paths, atomic image writes, the settings
file (how the images were made), ``collect`` (what metrics evaluate) and ``clear`` (so an earlier
call's images never get evaluated beside new ones). Method folders of repeated *training* runs
are named by :func:`method_folder_name` (``<method>`` for training seed 0, else
``<method>-seed<k>``) and read back by :func:`parse_method_folder`; :func:`method_folders`
groups a whole ``outputs/`` folder by method.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from PIL import Image

from svdinst.errors import DataError
from svdinst.formats.atomic import save_image_atomic, write_json_atomic

LAYOUT = "<stem>/seed-<k>.png"  # how messages and --help spell one method folder's images
SEEDED_METHOD = "<method>-seed<k>"  # how messages spell the folder of a training seed k > 0
_SEED_FILE = re.compile(r"^seed-(\d+)\.png$")
_SEED_SUFFIX = re.compile(r"^(?P<method>.+)-seed(?P<seed>\d+)$")


def image_name(seed: int) -> str:
    """``seed-<k>.png``: the file name of sampling seed ``seed``."""
    return f"seed-{seed}.png"


def image_seed(name: str) -> int | None:
    """The sampling seed of an image file name, or ``None`` when it is not an output image."""
    match = _SEED_FILE.match(name)
    return int(match.group(1)) if match else None


def method_folder_name(method: str, seed: int) -> str:
    """Folder of a method's training seed: ``method`` for seed 0, else ``<method>-seed<k>``.

    The report groups ``<method>-seed<k>`` folders with ``<method>`` as repeated training runs.
    """
    return method if seed == 0 else f"{method}-seed{seed}"


def parse_method_folder(name: str) -> tuple[str, int]:
    """``(method, training seed)`` of a method folder name (inverse of :func:`method_folder_name`)."""
    match = _SEED_SUFFIX.match(name)
    return (match["method"], int(match["seed"])) if match else (name, 0)


class OutputsFolder:
    """One method's output folder (e.g. ``outputs/svd-inst``).

    Args:
        path (`str` or `os.PathLike`): the folder (need not exist yet).
    """

    SETTINGS = "settings.json"  # how the images were made (run, steps, seeds, seconds…)

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"OutputsFolder('{self.path}')"

    def __fspath__(self) -> str:
        return str(self.path)

    @property
    def settings_path(self) -> Path:
        return self.path / self.SETTINGS

    def image_path(self, stem: str, seed: int) -> Path:
        """``<folder>/<stem>/seed-<k>.png``."""
        return self.path / stem / image_name(seed)

    def save_image(self, stem: str, seed: int, image: Image.Image) -> Path:
        """Write one output image atomically (creating its photo folder); returns its path."""
        return save_image_atomic(self.image_path(stem, seed), image)

    def write_settings(self, settings: dict[str, Any]) -> Path:
        """Write the settings file atomically."""
        return write_json_atomic(self.settings_path, settings)

    def read_settings(self) -> dict[str, Any]:
        """The settings file, or ``{}`` when the folder has none."""
        if not self.settings_path.is_file():
            return {}
        return json.loads(self.settings_path.read_text())

    def _images(self) -> list[tuple[str, int, Path]]:
        found = []
        if self.path.is_dir():
            for sub in sorted(p for p in self.path.iterdir() if p.is_dir()):
                for file in sub.iterdir():
                    seed = image_seed(file.name)
                    if seed is not None:
                        found.append((sub.name, seed, file))
        return found

    def has_images(self) -> bool:
        """Whether any ``<stem>/seed-<k>.png`` exists."""
        return bool(self._images())

    def collect(self) -> dict[str, list[Path]]:
        """Content stem → its images ordered by seed (a :class:`DataError` when there are none)."""
        if not self.path.is_dir():
            raise DataError(
                f"Generated folder '{self.path}' does not exist; run `svdinst stylize` first."
            )
        groups: dict[str, list[tuple[int, Path]]] = {}
        for stem, seed, file in self._images():
            groups.setdefault(stem, []).append((seed, file))
        if not groups:
            raise DataError(
                f"'{self.path}' holds no outputs of the form {LAYOUT}; "
                "point --generated at a folder written by `svdinst stylize` (or a baseline)."
            )
        return {stem: [p for _, p in sorted(seeds)] for stem, seeds in groups.items()}

    def clear(self) -> int:
        """Delete the folder's output images before it is written again (other files stay).

        Returns:
            `int`: how many files were deleted.
        """
        stale = [file for _, _, file in self._images()]
        if stale:
            print(f"Replacing {len(stale)} earlier output(s) in {self.path}.")
        for file in stale:
            file.unlink()
        return len(stale)


def method_folders(outputs_dir: str | os.PathLike) -> dict[str, list[Path]]:
    """Method → its output folders with images (one per training seed), sorted by folder name.

    Args:
        outputs_dir (`str` or `os.PathLike`): ``WORKDIR/outputs``, one sub-folder per method.
    """
    root = Path(outputs_dir)
    groups: dict[str, list[Path]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        if OutputsFolder(folder).has_images():
            groups.setdefault(parse_method_folder(folder.name)[0], []).append(folder)
    return groups
