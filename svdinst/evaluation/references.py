"""Rows that make Table I readable: reference rows, equal-N rows and each method's training budget.

- **Reference rows** calibrate FID on this style set at this N: the test photos themselves
  (doing nothing), the oracle outputs ``mural_proxy(photo)`` (the ideal stylization) and a
  held-out half of the style set against the other half (two samples of the style itself).
  A method whose FID is above "the test photos themselves" scores worse than returning its input.
- **Equal-N rows**: diffusion methods make several seeds per photo, deterministic baselines one,
  so their N differ and their FIDs cannot be compared. :func:`seed0_results` evaluates each
  multi-seed folder on seed 0 of every photo alone (N = number of photos), the baselines' N.
- **Training budget**: steps and backbone of each row, read from the run folder's settings
  (``train_steps`` / ``backbone`` when the run recorded them, else derived from what it saved:
  the loss log's last step, the VGG weights' source), so untrained rows are marked as such.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from svdinst.data import list_images, load_image
from svdinst.data.mural import mural_proxy
from svdinst.data.transforms import center_crop_resize
from svdinst.evaluation.metrics import fid_kid_from_features, inception_features, require_two
from svdinst.evaluation.oracle import native_crop, oracle_distance
from svdinst.formats.outputs import OutputsFolder
from svdinst.formats.run_folder import RunFolder

SEED0 = "@seed0"  # suffix of a method's key for its seed 0-only (equal-N) row
REFERENCE_LABELS = {  # key → how Table I names the reference row
    "ref:photos": "reference: the test photos themselves",
    "ref:oracle": "reference: oracle outputs mural_proxy(photo)",
    "ref:style-split": "reference: held-out half of the style set",
}
RANDOM_VGG = "random"  # svdinst.baselines.vgg.RANDOM_SOURCE: a VGG trunk with random weights
GAN_BASELINES = ("cyclegan", "stargan", "balagan")  # trained from scratch, no backbone
PRETRAINED_BASELINES = {"magenta": "pretrained Magenta network (not trained here)"}


def row_metrics_path(metrics_dir: str | os.PathLike, key: str) -> Path:
    """Where a reference or equal-N row's metrics JSON goes: ``<metrics_dir>/<key>.json`` with
    the reference keys' colon as a hyphen (``ref:oracle`` → ``ref-oracle.json``)."""
    return Path(metrics_dir) / f"{key.replace(':', '-')}.json"


def is_reference(method: str) -> bool:
    """Whether a results key is a reference row (not a method)."""
    return method in REFERENCE_LABELS


def base_method(method: str) -> str:
    """The method behind a key: ``"svd-inst@seed0"`` → ``"svd-inst"``."""
    return method.removesuffix(SEED0)


def _as_row(fk: Mapping[str, Any], oracle: Mapping[str, Any] | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "N": fk["n_generated"],
        "n_reference": fk["n_reference"],
        "fid": fk["fid"],
        "kid": {"mean": fk["kid_mean"], "std": fk["kid_std"], "subset_size": fk["kid_subset_size"]},
        "reference": True,
    }
    if oracle is not None:
        row["oracle"] = dict(oracle)
    return row


def reference_rows(
    style_dir: str | os.PathLike,
    content_dir: str | os.PathLike,
    size: int,
    *,
    mural_oracle: bool = True,
    device: str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """FID/KID (and oracle distance) of the reference rows, one "seed" each.

    Args:
        style_dir (`str` or `os.PathLike`): the style set (FID reference).
        content_dir (`str` or `os.PathLike`): the test photos the methods stylized.
        size (`int`): the outputs' side in pixels: photos are center-cropped to it, as the
            stylizers saw them.
        mural_oracle (`bool`, defaults to `True`): add the oracle-output row and the photos'
            distance to the oracle (only meaningful when the style set is the mural proxy).
        device (`str`, *optional*): Inception's device.
    """
    styles = [load_image(p) for p in list_images(style_dir)]
    raw = {p.stem: load_image(p) for p in list_images(content_dir)}  # each photo decoded once
    photos = {stem: center_crop_resize(im, size) for stem, im in raw.items()}
    require_two("generated", photos)
    require_two("reference", styles)
    ref = inception_features(styles, device=device, cache=True)  # shared by the first two rows

    def scored(generated: Sequence[Image.Image]) -> dict[str, Any]:
        return fid_kid_from_features(inception_features(generated, device=device), ref)

    rows: dict[str, list[dict[str, Any]]] = {}
    oracle = None
    if mural_oracle:
        targets = {stem: mural_proxy(native_crop(im, (size, size))) for stem, im in raw.items()}
        oracle = oracle_distance({s: [im] for s, im in photos.items()}, targets)
    rows["ref:photos"] = [_as_row(scored(list(photos.values())), oracle)]
    if mural_oracle:
        proxies = [t.resize((size, size), Image.BICUBIC) for t in targets.values()]
        rows["ref:oracle"] = [_as_row(scored(proxies))]
    if len(styles) >= 4:  # two halves of ≥ 2 images each: a covariance needs two
        held_out = inception_features(styles[1::2], device=device)  # not the cached full set
        rows["ref:style-split"] = [
            _as_row(
                fid_kid_from_features(held_out, inception_features(styles[0::2], device=device))
            )
        ]
    return rows


def seed0_results(
    groups: Mapping[str, Sequence[Path]],
    evaluate_one: Callable[[Path], dict[str, Any]],
) -> dict[str, list[dict[str, Any]]]:
    """Evaluate seed 0 of every photo of each multi-seed output folder (the baselines' N).

    Args:
        groups (`Mapping[str, Sequence[Path]]`): method → its output folders.
        evaluate_one (`Callable[[Path], dict]`): evaluates one outputs folder (e.g.
            :func:`svdinst.evaluation.metrics.evaluate` with the style and content folders bound).

    Returns:
        `dict`: ``"<method>@seed0"`` → one metrics dict per folder, for methods whose folders
        hold more than one seed per photo.
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for method, folders in groups.items():
        for folder in folders:
            files = OutputsFolder(folder).collect()
            if min(len(v) for v in files.values()) < 2:
                continue
            with tempfile.TemporaryDirectory(prefix="svdinst-equal-n.") as tmp:
                view = OutputsFolder(Path(tmp) / folder.name)
                for stem, paths in files.items():
                    target = view.image_path(stem, 0)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(paths[0], target)
                metrics = evaluate_one(view.path)
            metrics.update(generated=str(folder), seeds_used="seed 0 of each photo")
            out.setdefault(f"{method}{SEED0}", []).append(metrics)
    return out


def training_budget(run_dir: str | os.PathLike | None, method: str) -> dict[str, Any]:
    """``train_steps`` and ``backbone`` of a row (``None`` steps when unknown).

    Reads the run's settings keys ``train_steps`` / ``backbone`` when present; otherwise steps
    come from the settings' ``steps`` (diffusion runs) or the loss log's last step (baselines),
    and the backbone from the saved VGG source (``"random"`` → random VGG).
    """
    method = base_method(method)
    if method in PRETRAINED_BASELINES:
        return {"train_steps": 0, "backbone": PRETRAINED_BASELINES[method]}
    if method == "base":
        return {"train_steps": 0, "backbone": "the base diffusion model, untrained here"}
    run = RunFolder(run_dir) if run_dir is not None and Path(run_dir).is_dir() else None
    config = run.read_config() if run is not None and run.has_config() else {}
    steps = config.get("train_steps")
    if steps is None and "baseline" not in config and "steps" in config:
        steps = config["steps"]  # a diffusion run's TrainConfig
    if steps is None and run is not None and run.log_path.is_file():
        logged = run.read_loss_log()["step"]
        steps = int(logged[-1]) if logged else 0
    backbone = config.get("backbone")
    if backbone is None:
        source = config.get("vgg_weights_source")
        if source is not None:
            backbone = (
                "random VGG"
                if source == RANDOM_VGG
                else "published VGG (ImageNet)"
                if source
                else "VGG (weights' source not recorded)"
            )
        elif method in GAN_BASELINES:
            backbone = "none (GAN trained from scratch)"
        elif "model" in config:
            backbone = f"diffusion model `{config['model']}`"
        else:
            backbone = "unknown"
    return {"train_steps": None if steps is None else int(steps), "backbone": backbone}
