"""Image folders: loading with validation, small transforms, and the offline default data set.

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
(``.DS_Store``, ``._photo.jpg``) and are skipped; sub-folders are not searched; files without an
image extension (:data:`IMAGE_EXTENSIONS`) are skipped *and reported* (a warning from
:func:`list_images`, a note from ``svdinst data check``).

The default data set (:func:`prepare_default_dataset`) is built offline from photos that ship
inside installed packages; its style images are mural **proxies** (:mod:`svdinst.data.mural`).
"""

from __future__ import annotations

import argparse
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

from svdinst.data.default import PHOTOS, SPLITS, prepare_default_dataset
from svdinst.errors import DataError

if TYPE_CHECKING:
    import torch

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
__all__ = [
    "IMAGE_EXTENSIONS",
    "PHOTOS",
    "SPLITS",
    "center_crop_resize",
    "check_folder",
    "ensure_dataset",
    "images_to_batch",
    "list_images",
    "load_image",
    "load_images",
    "prepare_default_dataset",
    "random_crop_flip",
    "scan_folder",
    "to_image",
    "to_tensor",
]


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
        with Image.open(path) as im:
            im.load()  # force the full decode: truncation only shows up here
            im = ImageOps.exif_transpose(im) or im
            return _to_rgb(im, path)
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


# --- transforms the trainers and stylizers use ---------------------------------------------


def center_crop_resize(image: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` (Lanczos) and cut the central ``size``×``size`` square."""
    return ImageOps.fit(image.convert("RGB"), (size, size), Image.Resampling.LANCZOS)


def random_crop_flip(
    image: Image.Image,
    size: int,
    rng: np.random.Generator,
    *,
    min_scale: float = 0.6,
    flip: bool = True,
) -> Image.Image:
    """Augmentation for training on a few style images: random square crop, resize, mirror.

    Args:
        image (`PIL.Image.Image`): the source image.
        size (`int`): output side in pixels.
        rng (`numpy.random.Generator`): the only source of randomness (reproducible runs).
        min_scale (`float`, defaults to 0.6): smallest crop side as a fraction of the shorter
            image side (1.0 = always the largest square).
        flip (`bool`, defaults to `True`): mirror left-right with probability 1/2.
    """
    if not 0 < min_scale <= 1:
        raise ValueError(f"`min_scale` must be in (0, 1], got {min_scale}.")
    w, h = image.size
    side = round(min(w, h) * rng.uniform(min_scale, 1.0))
    left = int(rng.integers(0, w - side + 1))
    top = int(rng.integers(0, h - side + 1))
    crop = image.convert("RGB").crop((left, top, left + side, top + side))
    crop = crop.resize((size, size), Image.Resampling.LANCZOS)
    if flip and rng.random() < 0.5:
        crop = ImageOps.mirror(crop)
    return crop


def to_tensor(image: Image.Image, size: int | None = None) -> torch.Tensor:
    """PIL image → float32 tensor ``(3, H, W)`` in [-1, 1], the range SD's VAE expects.

    Args:
        image (`PIL.Image.Image`): an image (converted to RGB).
        size (`int`, *optional*): center-crop-resize to ``size``×``size`` first.
    """
    import torch

    if size is not None:
        image = center_crop_resize(image, size)
    arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def to_image(tensor: torch.Tensor) -> Image.Image:
    """Inverse of :func:`to_tensor`: ``(3, H, W)`` in [-1, 1] → RGB PIL image (values clipped)."""
    import torch

    arr = ((tensor.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return Image.fromarray(arr.permute(1, 2, 0).numpy())


def images_to_batch(images: Sequence[Image.Image], size: int) -> torch.Tensor:
    """Stack images as a ``(N, 3, size, size)`` batch in [-1, 1] (center crops)."""
    import torch

    return torch.stack([to_tensor(im, size) for im in images])


def ensure_dataset(data_dir: str | os.PathLike) -> Path:
    """Use the data in ``data_dir`` if it has ``content/`` and ``style/`` images, else make it.

    A folder with none of ``content/``, ``style/``, ``test/`` gets the default data set; a
    half-filled one is an error, so the default images never mix into a user's own set.

    Args:
        data_dir (`str` or `os.PathLike`): the data folder (``ctx.data_dir`` in notebooks).
    """
    data_dir = Path(data_dir)
    present = [s for s in SPLITS if (data_dir / s).is_dir() and scan_folder(data_dir / s)[0]]
    if {"content", "style"} <= set(present):
        print(f"Using the images in {data_dir} ({', '.join(present)}).")
        return data_dir
    if not present:
        return prepare_default_dataset(data_dir)
    missing = sorted({"content", "style"} - set(present))
    raise DataError(
        f"{data_dir}: has {', '.join(present)}/ but no images in {', '.join(missing)}/. Add them, "
        "or empty the folder to get the default data set."
    )


# --- CLI: svdinst data {prepare,check} -------------------------------------------------------


def check_data_dir(data_dir: str | os.PathLike) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Validate a data folder: its content/, style/, test/ sub-folders, or itself if flat.

    Returns:
        `(folders, problems)`: the folders checked and every ``(path, problem)`` found.
    """
    data_dir = Path(data_dir)
    scan_folder(data_dir)  # a clear DataError when the folder is missing
    folders = [data_dir / s for s in SPLITS if (data_dir / s).is_dir()] or [data_dir]
    return folders, [problem for folder in folders for problem in check_folder(folder)]


def _cli_prepare(args: argparse.Namespace) -> int:
    prepare_default_dataset(args.dir, force=args.force)
    return 0


def _cli_check(args: argparse.Namespace) -> int:
    folders, problems = check_data_dir(args.dir)
    n_images = 0
    for folder in folders:
        candidates, skipped = scan_folder(folder)
        n_images += len(candidates)
        for path in skipped:
            print(f"note: {path}: skipped (not an image extension)")
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
    prepare.set_defaults(func=_cli_prepare)
    check = sub.add_parser(
        "check",
        help="validate every image of DIR (or its content/style/test); exit 1 if any is bad",
    )
    check.add_argument("dir", type=Path, metavar="DIR")
    check.set_defaults(func=_cli_check)
