"""Fig. 3 of the report: the test photos, their oracle, and each method's output, in two groups.

The diffusion methods (trained here) and the baselines are separate panels with their own
column titles, at tiles large enough to judge a style (the old single grid of 12 columns at
80 dpi gave ~130 px tiles). Outputs that are black, constant or noise are marked on the tile
and named in the caption (:func:`svdinst.captions.degenerate_output`), and so are methods
whose outputs do not depend on the photo or equal another method's
(:func:`svdinst.captions.sameness_caption`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from PIL import Image

from svdinst.captions import degenerate_caption, degenerate_output, sameness_caption
from svdinst.data import list_images, load_image
from svdinst.data.mural import mural_proxy
from svdinst.data.transforms import center_crop_resize
from svdinst.errors import DataError
from svdinst.evaluation.verdict import DIFFUSION_METHODS
from svdinst.figures import add_caption
from svdinst.formats.outputs import OutputsFolder
from svdinst.formats.outputs import method_folders as outputs_method_folders

TILE_INCHES = 1.6  # 192 px per tile at save_figure's 120 dpi: 1.5× the pocket's 128 px outputs, and
# the executed notebook 07 stays under the 2 MiB per-image check (2.2 in. gave 3.2 MiB)


def _column(outputs_dir: Path, folder: str, stems: Sequence[str]) -> list[Image.Image]:
    images = []
    for stem in stems:
        out = OutputsFolder(outputs_dir / folder).image_path(stem, 0)
        if not out.is_file():
            raise DataError(f"{out} is missing: stylize {stem} with {folder} first.")
        images.append(load_image(out))
    return images


def grouped_comparison(
    photos: Mapping[str, Image.Image],
    columns: Sequence[tuple[str, Sequence[tuple[str, Sequence[Image.Image]]]]],
    *,
    oracle: bool = False,
    title: str = "Fig. 3: each test photo stylized by each method (seed 0)",
    tile: float = TILE_INCHES,
) -> Figure:
    """Panels of image columns: per panel the photo, (its oracle), then each method's outputs.

    Args:
        photos (`Mapping[str, PIL.Image]`): photo stem → the photo as the methods saw it.
        columns: ``(panel title, [(method label, one image per photo), …])`` per panel.
        oracle (`bool`, defaults to `False`): add ``mural_proxy(photo)`` after the photo.
        title (`str`): the figure's title.
        tile (`float`, defaults to :data:`TILE_INCHES`): inches per tile.
    """
    panels = [(name, cols) for name, cols in columns if cols]
    if not panels:
        raise DataError("Fig. 3 needs at least one method's outputs.")
    stems = list(photos)
    lead = [("test photo", list(photos.values()))]
    if oracle:
        lead.append(("mural proxy (oracle)", [mural_proxy(p) for p in photos.values()]))
    width = max(len(lead) + len(cols) for _, cols in panels)
    fig = plt.figure(figsize=(tile * width, (tile + 0.25) * len(stems) * len(panels) + 0.8),
                     layout="constrained")  # fmt: skip
    fig.suptitle(title, fontsize=13)
    subfigs = fig.subfigures(len(panels), 1, squeeze=False)[:, 0]
    tiles: dict[str, Image.Image] = {}
    outputs = {label: images for _, cols in panels for label, images in cols}
    for sub, (name, cols) in zip(subfigs, panels):
        sub.suptitle(name, fontsize=12, fontweight="bold")
        axes = sub.subplots(len(stems), width, squeeze=False)
        for c, (label, images) in enumerate([*lead, *cols]):
            for r, image in enumerate(images):
                ax = axes[r, c]
                ax.imshow(image)
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(label, fontsize=10)
                if c == 0:
                    ax.set_ylabel(stems[r], fontsize=10)
                if c >= len(lead):
                    kind = degenerate_output(image)
                    tiles[f"{label} / {stems[r]}"] = image
                    if kind is not None:
                        ax.set_xlabel(f"⚠ {kind}", color="crimson", fontsize=10)
        for ax in axes[:, len(lead) + len(cols) :].flat:
            ax.set_visible(False)
    text = " ".join(t for t in (degenerate_caption(tiles), sameness_caption(outputs)) if t)
    add_caption(fig, text, width=int(tile * width * 14))
    return fig


def comparison_figure(
    outputs_dir: str | os.PathLike,
    content_dir: str | os.PathLike,
    methods: Sequence[str] | None = None,
    *,
    photos: int = 3,
    oracle: bool = False,
    resolution: int | None = None,
    labels: Mapping[str, str] | None = None,
    groups: Mapping[str, Sequence[Path]] | None = None,
) -> Figure:
    """Fig. 3: diffusion methods and baselines in two panels, one row per test photo.

    Each method shows seed 0 of its first training seed's folder.

    Args:
        outputs_dir (`str` or `os.PathLike`): ``WORKDIR/outputs``.
        content_dir (`str` or `os.PathLike`): the stylized photos.
        methods (`Sequence[str]`, *optional*): columns; defaults to every method with outputs.
        photos (`int`, defaults to 3): rows.
        oracle (`bool`, defaults to `False`): add ``mural_proxy(photo)``, the ideal output when
            the style set is the mural proxy.
        resolution (`int`, *optional*): center-crop the photos to the outputs' size.
        labels (`Mapping[str, str]`, *optional*): method → column title.
        groups (`Mapping[str, Sequence[Path]]`, *optional*): method → its output folders, when the
            caller has scanned ``outputs_dir`` already (the report does, for the table order);
            the default methods follow its order. Scanned here when not given.
    """
    if groups is None:
        groups = outputs_method_folders(outputs_dir)
    methods = list(methods) if methods is not None else list(groups)
    missing = [m for m in methods if m not in groups]
    if missing or not methods:
        raise DataError(f"No outputs under '{outputs_dir}' for method(s) {missing or methods}.")
    paths = list_images(content_dir)[:photos]
    shown = {}
    for p in paths:
        image = load_image(p)
        shown[p.stem] = center_crop_resize(image, resolution) if resolution else image
    labels = labels or {}
    root = Path(outputs_dir)

    def cols(names: Sequence[str]) -> list[tuple[str, list[Image.Image]]]:
        return [(labels.get(m, m), _column(root, groups[m][0].name, list(shown))) for m in names]

    return grouped_comparison(
        shown,
        [
            (
                "Diffusion methods (trained here)",
                cols([m for m in methods if m in DIFFUSION_METHODS]),
            ),
            ("Baselines", cols([m for m in methods if m not in DIFFUSION_METHODS])),
        ],
        oracle=oracle,
    )
