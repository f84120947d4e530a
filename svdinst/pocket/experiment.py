"""The pocket experiment: does training learn the style? base model vs InST vs SVD-InST.

On the ``pocket`` profile (a small model the kit pretrained on the offline photos) we stylize the
held-out test photos with

* ``base`` — the pretrained model untouched, with the empty prompt (no token, no style word:
  the unconditional caption its pretraining dropped 10 % of captions to),
* ``inst`` — InST's image→token module trained on the style images (Zhang et al. 2023),
* ``svd-inst`` — the token module and SVDiff's spectral shifts δ trained jointly,
* ``svdiff`` — the shifts alone (with a fixed token), to see which part carries the style,

each trained with several seeds (runs ``runs/<mode>`` for seed 0 and seed-suffixed folders
(:func:`svdinst.formats.outputs.method_folder_name`) for the others, as notebooks 03–05 write them),
and measure

* FID / KID of the outputs to the proxy style set (real TF-FID Inception, :mod:`svdinst.evaluation.metrics`)
  — style learning shows as a falling FID from base to the trained modes;
* the paired distance (PSNR, SSIM) to the oracle, ``mural_proxy(photo)`` (:mod:`svdinst.evaluation.oracle`);
* content preservation (:mod:`svdinst.evaluation.content`): are outputs still closest to their photo?

Three test photos give a very noisy FID, so the test set is ``crops_per_photo`` square crops of
each test photo (the full centre square first, then random crops) and the FID reference is crops
of the style images; N is stated with every number. Everything lives under ``WORKDIR/outputs/
pocket/`` (``crops/``, ``style-ref/``, ``reference-crops/`` for the reference rows, and
``outputs/`` with one
:class:`~svdinst.formats.outputs.OutputsFolder` per method and training seed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from svdinst.captions import difference_caption
from svdinst.course.context import CourseContext
from svdinst.course.outputs import BASE, train_and_stylize
from svdinst.data import list_images, load_image
from svdinst.data.mural import mural_proxy
from svdinst.errors import DataError
from svdinst.evaluation.content import content_preservation
from svdinst.evaluation.metrics import write_metrics
from svdinst.evaluation.oracle import native_crop
from svdinst.evaluation.references import reference_rows, row_metrics_path
from svdinst.evaluation.report import LABELS, evaluate_methods, method_folders
from svdinst.figures import add_caption, image_grid
from svdinst.formats.outputs import OutputsFolder
from svdinst.pocket.report import ordered


@dataclass
class PocketExperimentConfig:
    """What the pocket experiment compares and on how many images."""

    modes: tuple[str, ...] = ("inst", "svd-inst", "svdiff")  # notebook 05 trains all three
    seeds: tuple[int, ...] | None = None  # training seeds; None → profile.training_seeds
    crops_per_photo: int = 4  # test images per photo; N = photos × crops × stylize seeds
    style_crops_per_image: int = 8  # FID reference: crops of each style image (+ the image)
    min_crop: float = 0.5  # random crops: side ≥ this fraction of the shorter side
    crop_seed: int = 0  # crops are deterministic, so every method sees the same test set
    base_prompt: str = ""  # base model: the empty caption it was trained on (caption dropout)


def photo_crops(
    photos: Mapping[str, Image.Image], per_photo: int, *, min_crop: float = 0.5, seed: int = 0
) -> tuple[dict[str, Image.Image], dict[str, str]]:
    """Square crops of each photo at full resolution: ``<stem>-c0`` the centre, then random ones.

    Args:
        photos (`Mapping[str, PIL.Image]`): stem → photo.
        per_photo (`int`): crops per photo (≥ 1).
        min_crop (`float`, defaults to 0.5): smallest random crop side / shorter side.
        seed (`int`, defaults to 0): crop positions come from ``numpy.random.default_rng``.

    Returns:
        `tuple[dict[str, PIL.Image], dict[str, str]]`: crop name → crop, and crop name → stem.
    """
    if per_photo < 1 or not 0 < min_crop <= 1:
        raise ValueError(f"per_photo ≥ 1 and min_crop in (0, 1], got {per_photo}, {min_crop}.")
    crops: dict[str, Image.Image] = {}
    groups: dict[str, str] = {}
    for index, (stem, photo) in enumerate(photos.items()):
        rng = np.random.default_rng([seed, index])
        w, h = photo.size
        short = min(w, h)
        for k in range(per_photo):
            side = short if k == 0 else round(short * rng.uniform(min_crop, 0.9))
            left = (w - side) // 2 if k == 0 else int(rng.integers(0, w - side + 1))
            top = (h - side) // 2 if k == 0 else int(rng.integers(0, h - side + 1))
            name = f"{stem}-c{k}"
            crops[name] = photo.convert("RGB").crop((left, top, left + side, top + side))
            groups[name] = stem
    return crops, groups


def write_images(images: Mapping[str, Image.Image], folder: str | Path) -> Path:
    """Write ``<folder>/<name>.png`` for each image, replacing the folder's earlier PNGs."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.png"):
        if stale.stem not in images:
            stale.unlink()
    for name, image in images.items():
        image.save(out / f"{name}.png")
    return out


def prepare_sets(
    data_dir: str | Path,
    root: str | Path,
    config: PocketExperimentConfig,
    outputs_per_crop: int = 1,
) -> dict:
    """Write the test crops, the FID reference (style crops) and the reference rows' crops.

    Args:
        data_dir (`str` or `Path`): ``WORKDIR/data`` (``test/`` and ``style/``).
        root (`str` or `Path`): the experiment folder (``WORKDIR/outputs/pocket``).
        config (`PocketExperimentConfig`): crop counts and seed.
        outputs_per_crop (`int`, defaults to 1): stylize seeds per crop. The reference rows
            (photos, oracle) score as many *distinct* crops as a method has outputs — the same
            crops first, then more from the same generator — because FID's bias depends on N.

    Returns:
        `dict`: ``crops`` (folder), ``style_ref`` (folder), ``groups`` (crop → photo stem),
        ``ref_crops`` (folder).
    """
    photos = {p.stem: load_image(p) for p in list_images(Path(data_dir) / "test")}
    styles = {p.stem: load_image(p) for p in list_images(Path(data_dir) / "style")}
    crops, groups = photo_crops(
        photos, config.crops_per_photo, min_crop=config.min_crop, seed=config.crop_seed
    )
    more, _ = photo_crops(photos, config.crops_per_photo * outputs_per_crop,
                          min_crop=config.min_crop, seed=config.crop_seed)  # fmt: skip
    # The reference keeps each whole style image and adds crops (more samples for FID's Σ).
    ref, _ = photo_crops(
        styles, 1 + config.style_crops_per_image, min_crop=config.min_crop, seed=config.crop_seed
    )
    return {
        "crops": write_images(crops, Path(root) / "crops"),
        "style_ref": write_images(ref, Path(root) / "style-ref"),
        "groups": groups,
        "ref_crops": write_images(more, Path(root) / "reference-crops"),
    }


def evaluate_experiment(
    root: str | Path,
    sets: Mapping[str, Any],
    *,
    runs_dir: str | Path | None = None,
    metrics_dir: str | Path | None = None,
    **evaluate_kwargs: Any,
) -> dict[str, list[dict[str, Any]]]:
    """FID/KID to the style reference, the oracle distance and content preservation per folder.

    Args:
        root (`str` or `Path`): the experiment folder (its ``outputs/`` holds one folder per
            method and training seed).
        sets (`Mapping`): from :func:`prepare_sets`.
        runs_dir (`str` or `Path`, *optional*): for trainable parameters and checkpoint bytes.
        metrics_dir (`str` or `Path`, *optional*): also write ``<folder>.json`` here.
        evaluate_kwargs: passed to :func:`svdinst.evaluation.metrics.evaluate` (``device``, LPIPS…).

    Returns:
        `dict[str, list[dict]]`: method → one metrics dict per training seed (as
        :func:`svdinst.evaluation.report.evaluate_methods`, plus ``content_preservation``).
    """
    results = evaluate_methods(
        Path(root) / "outputs",
        sets["style_ref"],
        sets["crops"],
        runs_dir=runs_dir,
        mural_oracle=True,
        **evaluate_kwargs,
    )
    photos = {p.stem: load_image(p) for p in list_images(sets["crops"])}
    for runs in results.values():
        for metrics in runs:
            outputs = {
                stem: [load_image(p) for p in files]
                for stem, files in OutputsFolder(metrics["generated"]).collect().items()
            }
            cp = content_preservation(outputs, photos, groups=sets["groups"])
            metrics["content_preservation"] = cp.summary()
            if metrics_dir is not None:
                write_metrics(metrics, Path(metrics_dir) / f"{metrics['folder']}.json")
    return results


def run_pocket_experiment(
    ctx: CourseContext,
    config: PocketExperimentConfig | None = None,
    *,
    make_missing: bool = True,
    **evaluate_kwargs: Any,
) -> dict[str, Any]:
    """The whole experiment: test sets, runs, stylization, metrics (module docstring).

    Args:
        ctx (`CourseContext`): from :func:`svdinst.course.notebook.setup` (profile ``pocket``).
        config (`PocketExperimentConfig`, *optional*): modes, seeds, crops.
        make_missing (`bool`, defaults to `True`): train missing runs (else RunFolderError).
        evaluate_kwargs: passed to :func:`svdinst.evaluation.metrics.evaluate` (e.g. ``lpips_backbone``).

    Returns:
        `dict`: ``results`` (method → metrics per seed), ``references`` (the reference rows of
        :func:`~svdinst.evaluation.references.reference_rows` at the methods' N: the photos
        themselves, the oracle outputs, a held-out half of the style set), ``root``, ``sets``,
        ``runs``, ``settings`` (the stylization settings).
    """
    cfg = config or PocketExperimentConfig()
    root = ctx.outputs_dir / "pocket"
    stylize = ctx.stylize_config()
    sets = prepare_sets(ctx.data_dir, root, cfg, stylize.seeds)
    seeds = cfg.seeds if cfg.seeds is not None else "auto"
    runs = train_and_stylize(
        ctx, cfg.modes, seeds, content=sets["crops"], out_root=root / "outputs",
        config=stylize, base_prompt=cfg.base_prompt, make_missing=make_missing,
    )  # fmt: skip
    evaluate_kwargs.setdefault("device", ctx.device)
    metrics_dir = ctx.reports_dir / "metrics" / "pocket"
    results = evaluate_experiment(
        root, sets, runs_dir=ctx.runs_dir, metrics_dir=metrics_dir, **evaluate_kwargs
    )
    settings = OutputsFolder(root / "outputs" / BASE).read_settings()
    references = reference_rows(sets["style_ref"], sets["ref_crops"], settings["resolution"],
                                device=evaluate_kwargs["device"])  # fmt: skip
    for key, rows in references.items():
        write_metrics(rows[0], row_metrics_path(metrics_dir, key))
    return {"results": results, "references": references, "root": root, "sets": sets,
            "runs": runs, "settings": settings}  # fmt: skip


def pocket_figure(root: str | Path, methods: Sequence[str] | None = None) -> Any:
    """Test photo | each method's seed 0 (first training seed) | oracle, one row per test photo.

    Args:
        root (`str` or `Path`): the experiment folder (``crops/`` and ``outputs/``).
        methods (`Sequence[str]`, *optional*): methods to show, in column order; defaults to
            every method with outputs in the table's order (base, InST, SVD-InST, …).
    """
    root = Path(root)
    groups = method_folders(root / "outputs")
    if methods is None:
        methods = list(ordered(groups))
    methods = list(methods)
    missing = [m for m in methods if m not in groups]
    if missing or not methods:
        raise DataError(f"No outputs under '{root / 'outputs'}' for {missing or 'any method'}: "
                        "run the pocket experiment first.")  # fmt: skip
    centres = [p for p in list_images(root / "crops") if p.stem.endswith("-c0")]
    cells, labels = [], []
    for path in centres:
        photo = load_image(path)
        row = [load_image(OutputsFolder(groups[m][0]).image_path(path.stem, 0)) for m in methods]
        size = row[0].size
        oracle = mural_proxy(native_crop(photo, size)).resize(size, Image.Resampling.LANCZOS)
        cells += [photo.resize(size, Image.Resampling.LANCZOS), *row, oracle]
        labels.append(path.stem.removesuffix("-c0"))
    titles = ["test photo", *(LABELS.get(m, m) for m in methods), "oracle (proxy filter)"]
    fig = image_grid(cells, ncols=len(titles), titles=titles, row_labels=labels)
    columns = {t: cells[i :: len(titles)] for i, t in enumerate(titles) if i > 0}
    reference = LABELS.get(methods[0], methods[0])
    add_caption(fig, difference_caption(columns, reference, titles[-1]), width=150)
    return fig
