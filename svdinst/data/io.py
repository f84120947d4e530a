"""Image folders: reading every image with validation, and checking folders.

Every image the kit reads goes through :func:`load_image`, which decodes the *whole* file (PIL is
lazy: a truncated JPEG opens fine and fails later) and converts it to 8-bit RGB, or raises a
:class:`~svdinst.errors.DataError` naming the file and the fix. Conversions (documented, never
silent failures):

- grayscale (``L``, ``1``) → RGB by repeating the channel;
- 16-bit grayscale (``I;16``, ``I``) → 8-bit by scaling 0‥65535 to 0‥255;
- transparency (``RGBA``, ``LA``, ``PA``, palette with a transparent colour) → composited over
  **white**, as the image looks on a white page;
- palette (``P``), ``CMYK`` (naive conversion, no ICC profile), ``YCbCr``, ``LAB``, ``HSV`` → RGB;
- EXIF orientation is applied (phone photos come out upright); of a multi-frame file (GIF, TIFF)
  only the first frame is used.

Folder rules (:func:`scan_folder`): files whose name starts with ``.`` are OS metadata
(``.DS_Store``, ``._photo.jpg``) and are skipped; sub-folders are not searched (images in them
are counted and reported); files without an image extension (:data:`IMAGE_EXTENSIONS`) are
skipped *and reported* (a warning from :func:`list_images`, a note from ``svdinst data check``).
An image under :data:`MIN_SIDE` px on its short side, or over PIL's decompression-bomb size, is
used with one :class:`ImageWarning` per file; an unreadable file is named as such, not as corrupt. A data folder holds the sub-folders
:data:`SPLITS`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

from svdinst.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
SPLITS = ("content", "style", "test")  # the sub-folders of a data folder
# Below this short side an image is upscaled so far that it teaches blur, not a style or a photo
# (the tiny profile trains at 64 px; SD-1.4 at 512).
MIN_SIDE = 64


class ImageWarning(UserWarning):
    """An image the kit can use but probably should not (tiny, huge)."""


_warned: set[str] = set()  # messages already given: once per file and process, however often read


def _warn_once(message: str, stacklevel: int = 3) -> None:
    # The warnings module's own "once per location" forgets whenever any code changes the
    # filters (PIL's and torch's do), which is how one huge image printed 18 warnings.
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, ImageWarning, stacklevel=stacklevel)


def load_image(path: str | os.PathLike) -> Image.Image:
    """Read one image file fully and return it as an 8-bit RGB PIL image.

    Args:
        path (`str` or `os.PathLike`): the image file.

    Returns:
        `PIL.Image.Image`: mode ``"RGB"``, loaded into memory (the file is closed).

    Raises:
        `DataError`: the file is missing, empty, not an image, truncated/corrupt, or in a mode
            that cannot be converted (e.g. floating-point) — the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{path}: no such image file. Check the path (or run `svdinst data check`)."
        )
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty (0 bytes). Re-copy or delete it.")
    try:
        with warnings.catch_warnings():
            # Said once below, with the fix; PIL's own warning repeats on every read.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()  # force the full decode: truncation only shows up here
                im = ImageOps.exif_transpose(im) or im
                rgb = _to_rgb(im, path)
    except PermissionError:
        raise DataError(
            f"{path}: not readable (permission denied); check its permissions (e.g. chmod a+r)."
        ) from None
    except UnidentifiedImageError:
        raise DataError(
            f"{path}: not an image file PIL can read. Delete it or re-export it as PNG/JPEG."
        ) from None
    except Image.DecompressionBombError as err:
        raise DataError(f"{path}: too large to decode safely ({err}). Downscale it.") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(
            f"{path}: truncated or corrupt image ({err}). Re-copy it from the source or delete it."
        ) from None
    width, height = rgb.size
    if Image.MAX_IMAGE_PIXELS is not None and width * height > Image.MAX_IMAGE_PIXELS:
        _warn_once(
            f"{path}: very large image ({width}×{height}); it decodes slowly and needs much "
            "memory. Downscale it (the kit resizes it anyway)."
        )
    if min(width, height) < MIN_SIDE:
        _warn_once(
            f"{path}: tiny image ({width}×{height}, under {MIN_SIDE} px on the short side); it is "
            "upscaled to the training size and teaches mostly blur. Use a larger copy."
        )
    return rgb


def _to_rgb(im: Image.Image, path: Path) -> Image.Image:
    """Convert a loaded image to 8-bit RGB following the rules in the module docstring."""
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(im).astype(np.float64)
        if im.mode == "I" and arr.max(initial=0) <= 255:
            scaled = arr  # 32-bit container holding 8-bit values
        else:
            scaled = np.clip(arr, 0, 65535) / 257  # 65535 → 255
        im = Image.fromarray(np.round(scaled).astype(np.uint8))  # 2-D uint8 → mode "L"
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if im.mode == "RGB":
        return im.copy()
    if im.mode in ("L", "1", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        return im.convert("RGB")
    raise DataError(
        f"{path}: unsupported image mode {im.mode!r}. Convert it to 8-bit RGB (e.g. save as PNG)."
    )


def scan_folder(folder: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """Split a folder's files into image candidates and skipped non-image files (no decoding).

    Args:
        folder (`str` or `os.PathLike`): a flat folder of images.

    Returns:
        `(candidates, skipped)`: sorted paths with an image extension, and sorted other files.
        Hidden files and sub-folders are in neither list (see the module docstring).

    Raises:
        `DataError`: the folder does not exist or is a file.
    """
    folder = Path(folder)
    if not folder.exists():
        raise DataError(
            f"{folder}: image folder not found. Create it, or run `svdinst data prepare DIR` "
            "for the default data set."
        )
    if not folder.is_dir():
        raise DataError(f"{folder}: expected a folder of images, found a file.")
    candidates, skipped = [], []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.is_dir():
            continue
        (candidates if entry.suffix.lower() in IMAGE_EXTENSIONS else skipped).append(entry)
    return candidates, skipped


def images_in_subfolders(folder: str | os.PathLike) -> dict[str, int]:
    """Image files inside ``folder``'s (non-hidden) sub-folders, which are not searched.

    Returns:
        `dict[str, int]`: sub-folder name → number of image files anywhere under it.
    """
    found = {}
    for sub in sorted(Path(folder).iterdir()):
        if sub.is_dir() and not sub.name.startswith("."):
            n = sum(1 for p in sub.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
            if n:
                found[sub.name] = n
    return found


def nested_note(folder: str | os.PathLike, nested: dict[str, int]) -> str:
    """One line: how many images :func:`images_in_subfolders` found, and where."""
    where = ", ".join(f"{name}/" for name in nested)
    return (
        f"{folder}: skipping {sum(nested.values())} image(s) in sub-folders ({where}); sub-folders "
        "are not searched: move the images up into the folder to use them."
    )


def check_folder(folder: str | os.PathLike) -> list[tuple[Path, str]]:
    """Validate every image of ``folder``; return ``(path, problem)`` for each bad one.

    An empty folder (no image files) is one problem with the folder as its path.

    Args:
        folder (`str` or `os.PathLike`): a flat folder of images.

    Raises:
        `DataError`: the folder does not exist.
    """
    candidates, _ = scan_folder(folder)
    if not candidates:
        return [
            (Path(folder), f"no images (expected files ending in {', '.join(IMAGE_EXTENSIONS)})")
        ]
    problems = []
    # Decoding thousands of photos takes a while: show progress for folders that are not tiny.
    for path in tqdm(
        candidates,
        desc=f"checking {Path(folder).name}/",
        unit="image",
        disable=len(candidates) < 50,
        leave=False,
    ):
        try:
            load_image(path)
        except DataError as err:
            problems.append((path, str(err).removeprefix(f"{path}: ")))
    return problems


def list_images(
    folder: str | os.PathLike, *, validate: bool = True, _stacklevel: int = 2
) -> list[Path]:
    """The sorted image files of ``folder``, each fully decoded once to validate it.

    Non-image files are skipped with a warning naming them; hidden files silently (OS metadata).

    Args:
        folder (`str` or `os.PathLike`): a flat folder of images.
        validate (`bool`, defaults to `True`): decode every file and fail on bad ones.

    Raises:
        `DataError`: the folder is missing or holds no images, or (``validate``) some files are
            bad — the message lists every bad file.
    """
    candidates, skipped = scan_folder(folder)
    if skipped:
        names = ", ".join(p.name for p in skipped)
        warnings.warn(f"{folder}: skipping non-image files: {names}", stacklevel=_stacklevel)
    nested = images_in_subfolders(folder)
    if nested:
        warnings.warn(nested_note(folder, nested), stacklevel=_stacklevel)
    if not candidates:
        raise DataError(
            f"{folder}: no images found (expected {', '.join(IMAGE_EXTENSIONS)}). Add some, or run "
            "`svdinst data prepare DIR` for the default data set."
        )
    if validate:
        problems = check_folder(folder)
        if problems:
            listing = "; ".join(f"{p.name}: {why}" for p, why in problems)
            raise DataError(
                f"{folder}: {len(problems)} bad image file(s) — {listing}. Fix or remove them "
                f"(`svdinst data check {folder}` lists them)."
            )
    return candidates


def load_images(folder: str | os.PathLike) -> list[Image.Image]:
    """Load every image of ``folder`` (sorted by file name) as RGB; see :func:`list_images`."""
    return [load_image(p) for p in list_images(folder, validate=False, _stacklevel=3)]


def check_data_dir(data_dir: str | os.PathLike) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Validate a data folder: its content/, style/, test/ sub-folders, or itself if flat.

    Returns:
        `(folders, problems)`: the folders checked and every ``(path, problem)`` found.
    """
    data_dir = Path(data_dir)
    scan_folder(data_dir)  # a clear DataError when the folder is missing
    folders = [data_dir / s for s in SPLITS if (data_dir / s).is_dir()] or [data_dir]
    return folders, [problem for folder in folders for problem in check_folder(folder)]
