"""The offline default data set: real photos from installed packages plus mural proxies.

:func:`prepare_default_dataset` writes ``content/`` (training photos), ``test/`` (held-out
photos) and ``style/`` (mural **proxies** of the content photos, made by :mod:`svdinst.data.mural`)
with a ``LICENSES.md`` naming every file's source, credit and licence. No network: the photos ship
inside scikit-image, scikit-learn and matplotlib. :func:`ensure_dataset` uses a user's own data
folder when it has images, and builds the default set into an empty one.
"""

from __future__ import annotations

import importlib.util
import io
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps
from tqdm.auto import tqdm

from svdinst.data.io import SPLITS, scan_folder
from svdinst.data.mural import mural_proxy
from svdinst.errors import DataError
from svdinst.formats.atomic import write_bytes_atomic
from svdinst.formats.folders import (
    OutputFolderError,
    check_writable,
    write_manifest,
    written_files,
)

MAX_SIDE = 512  # stored size: enough for the sd14 profile's 512 px crops; tiny resizes to 64


@dataclass(frozen=True)
class PhotoSource:
    """One photo that ships inside an installed package, with its credit and licence."""

    stem: str  # file name in the data set (``<stem>.png``)
    split: str  # "content" (training photos) or "test" (held out for evaluation)
    package: str  # where the bytes come from
    origin: str  # how to get it from that package
    credit: str  # the original author/holder as the package documents it
    licence: str


PHOTOS = (
    PhotoSource(
        "astronaut",
        "content",
        "scikit-image",
        "skimage.data.astronaut()",
        "Eileen Collins, NASA Great Images database",
        "public domain (no known copyright restrictions)",
    ),
    PhotoSource(
        "chelsea",
        "content",
        "scikit-image",
        "skimage.data.chelsea()",
        "Stefan van der Walt (photographer)",
        "CC0",
    ),
    PhotoSource(
        "rocket",
        "content",
        "scikit-image",
        "skimage.data.rocket()",
        "SpaceX (DSCOVR launch on Falcon 9)",
        "public domain (released by SpaceX)",
    ),
    PhotoSource(
        "china",
        "content",
        "scikit-learn",
        'sklearn.datasets.load_sample_image("china.jpg")',
        "danielbuechele on Flickr (photo 6061409035)",
        "CC BY 2.0",
    ),
    PhotoSource(
        "coffee",
        "test",
        "scikit-image",
        "skimage.data.coffee()",
        "Rachel Michetti (photographer), courtesy of Pikolo Espresso Bar",
        "CC0",
    ),
    PhotoSource(
        "flower",
        "test",
        "scikit-learn",
        'sklearn.datasets.load_sample_image("flower.jpg")',
        "vultilion on Flickr (photo 6056698931; scikit-learn's README names danielbuechele "
        "but links vultilion's photostream)",
        "CC BY 2.0",
    ),
    PhotoSource(
        "grace_hopper",
        "test",
        "matplotlib",
        'matplotlib.cbook.get_sample_data("grace_hopper.jpg")',
        "U.S. Navy photograph of Commodore Grace M. Hopper",
        "public domain (work of the U.S. federal government)",
    ),
)
STYLE_SEED0 = 0  # style image k is mural_proxy(content photo k, seed=STYLE_SEED0 + k)


def _package_file(package: str, relative: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)  # finds a top-level package without running it
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"Package {package!r} is needed for the default data set.")
    return Path(next(iter(spec.submodule_search_locations))) / relative


def _source_image(source: PhotoSource) -> Image.Image:
    """The photo's pixels straight from its package (no network).

    Files are read directly (``skimage.data``'s PNGs/JPEGs, sklearn's and matplotlib's JPEGs):
    the same pixels the packages' loaders return, without importing scikit-learn (seconds).
    """
    relative = {
        "scikit-image": f"data/{source.stem}.{'jpg' if source.stem == 'rocket' else 'png'}",
        "scikit-learn": f"datasets/images/{source.stem}.jpg",
        "matplotlib": f"mpl-data/sample_data/{source.stem}.jpg",
    }[source.package]
    module = {"scikit-image": "skimage", "scikit-learn": "sklearn", "matplotlib": "matplotlib"}
    with Image.open(_package_file(module[source.package], relative)) as im:
        return im.convert("RGB")


def _png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)  # no timestamps: same pixels → same bytes
    return buf.getvalue()


def _write_ours(out: Path, name: str, data: bytes, ours: set[str], kept: list[str]) -> bool:
    """Write ``out/name`` unless it already holds ``data`` or is a user's file; True when written.

    A file the kit did not write (not in ``ours``, the manifest) is never replaced: its name goes
    to ``kept``. The manifest names a file *before* it is written, so a crash midway leaves
    nothing that a rerun would take for the user's.
    """
    path = out / name
    if path.is_file() and path.read_bytes() == data:
        ours.add(name)  # the same bytes: the kit's file (also from a kit without manifests)
        return False
    if path.exists() and name not in ours:
        kept.append(name)
        return False
    ours.add(name)
    write_manifest(out, "the svdinst default data set", ours)
    write_bytes_atomic(path, data)
    return True


def _foreign_images(out: Path, ours: set[str]) -> list[Path]:
    """Images in ``out``'s splits that the kit did not write."""
    found = []
    for split in SPLITS:
        if (out / split).is_dir():
            found += [
                p for p in scan_folder(out / split)[0] if p.relative_to(out).as_posix() not in ours
            ]
    return found


def _licences_md(rows: list[tuple[str, str, str, str]]) -> str:
    lines = [
        "# svdinst default data set — sources and licences",
        "",
        "Written by `svdinst data prepare` from photos that ship inside installed Python packages",
        "(no network). `content/` holds training photos, `test/` held-out photos for evaluation.",
        "`style/` holds **mural proxies**: the photos repainted by `svdinst.data.mural.mural_proxy`, a",
        "procedural mineral-pigment filter standing in for the private Dunhuang mural set of the",
        "original study. They are a PROXY, not real murals, and keep the source photo's licence.",
        "",
        "| file | source | original credit | licence |",
        "|---|---|---|---|",
        *(f"| `{f}` | {src} | {credit} | {lic} |" for f, src, credit, lic in rows),
        "",
    ]
    return "\n".join(lines)


def default_files() -> list[str]:
    """Paths (relative to the data folder) of every file :func:`prepare_default_dataset` writes."""
    photos = [f"{s.split}/{s.stem}.png" for s in PHOTOS]
    styles = [f"style/mural_proxy_{s.stem}.png" for s in PHOTOS if s.split == "content"]
    return [*photos, *styles, "LICENSES.md"]


def prepare_default_dataset(
    out_dir: str | os.PathLike,
    *,
    max_side: int = MAX_SIDE,
    force: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write the offline default data set: ``content/``, ``style/``, ``test/`` and LICENSES.md.

    Deterministic and idempotent: every run produces the same bytes, and files that already
    hold them are not rewritten. A manifest (:mod:`svdinst.formats.folders`) lists the files it
    wrote; a file it did not write is never replaced, and a folder already holding other images
    is refused unless ``overwrite``.

    Args:
        out_dir (`str` or `os.PathLike`): the data folder (``ctx.data_dir`` in notebooks).
        max_side (`int`, defaults to 512): photos are downscaled (Lanczos, never upscaled) so
            their longest side is at most this.
        force (`bool`, defaults to `False`): rebuild even when every file is already there
            (without it, a complete folder is returned at once; a missing file triggers a rebuild).
        overwrite (`bool`, defaults to `False`): add the set to a folder that already holds
            images svdinst did not write (they stay; a same-named file stops the call).

    Returns:
        `Path`: ``out_dir``.
    """
    out = check_writable(out_dir, what="the data set")
    if not force and max_side == MAX_SIDE and all((out / f).is_file() for f in default_files()):
        print(f"Default data set already in {out} (pass force=True to rebuild).")
        return out
    ours, kept = written_files(out) or set(), []
    foreign = _foreign_images(out, ours)
    if foreign and not overwrite:
        raise OutputFolderError(
            f"{out}: holds {len(foreign)} image(s) svdinst did not write (e.g. {foreign[0]}); pass "
            "a new or empty folder, or --overwrite to add the default set beside them (your files "
            "are never replaced)."
        )
    for split in SPLITS:
        (out / split).mkdir(parents=True, exist_ok=True)
    rows, written = [], 0
    content = [s for s in PHOTOS if s.split == "content"]
    for source in tqdm(PHOTOS, desc="default data set", unit="photo"):
        photo = _source_image(source)
        if max(photo.size) > max_side:
            photo = ImageOps.contain(photo, (max_side, max_side), Image.Resampling.LANCZOS)
        name = f"{source.split}/{source.stem}.png"
        written += _write_ours(out, name, _png_bytes(photo), ours, kept)
        rows.append((name, f"{source.package}: `{source.origin}`", source.credit, source.licence))
        if source in content:
            seed = STYLE_SEED0 + content.index(source)
            style = f"style/mural_proxy_{source.stem}.png"
            written += _write_ours(
                out, style, _png_bytes(mural_proxy(photo, seed=seed)), ours, kept
            )
            rows.append(
                (
                    style,
                    f"mural PROXY of `{name}` (`svdinst.data.mural.mural_proxy`, seed {seed})",
                    source.credit,
                    f"{source.licence} (derived work)",
                )
            )
    rows.sort(key=lambda r: (SPLITS.index(r[0].split("/")[0]), r[0]))
    written += _write_ours(out, "LICENSES.md", _licences_md(rows).encode(), ours, kept)
    if kept:
        raise OutputFolderError(
            f"{out / kept[0]}: not written by svdinst, so it was left as is ({len(kept)} such "
            "file(s)) and the default set is incomplete; move it away and run `svdinst data "
            "prepare` again."
        )
    print(f"Default data set in {out}: {len(rows)} images ({written} file(s) written).")
    return out


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
