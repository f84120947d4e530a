"""Choose the pocket experiment's training settings on the *training* style images only.

The pocket profile's ``lr_shifts`` and ``strength`` must not be tuned on the held-out test
photos, or the report's comparison would be fitted to its own test set. This module holds out
one *style* image instead: the default data set's style image ``mural_proxy_<stem>`` is the proxy
filter of the *content* photo ``<stem>`` (:mod:`svdinst.data.default`), so it is a paired target
for that training photo, exactly as the oracle is for a test photo. Selection then

1. trains the mode (``svd-inst``, training seed 0) on the *other* style images, once per
   candidate ``lr_shifts``;
2. stylizes square crops of the validation content photo at each candidate strength, with each
   run and with the base model (the empty prompt, as in the experiment);
3. scores each (lr, strength) by the SSIM gain over the base model at the same strength, to the
   aligned crops of the validation style image (:func:`svdinst.evaluation.oracle.oracle_distance`),
   and picks the best.

``svdinst pocket select`` runs it on the pocket profile and writes the table; the chosen values
go into the pocket profile (``svdinst/course/profiles.py``) by hand, with a pointer to the table.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from svdinst.course.context import CourseContext
from svdinst.course.settings import profile_run_config
from svdinst.data import list_images, load_image
from svdinst.errors import DataError
from svdinst.evaluation.oracle import oracle_distance
from svdinst.formats.atomic import write_json_atomic
from svdinst.formats.outputs import OutputsFolder
from svdinst.pocket.experiment import photo_crops, write_images
from svdinst.stylize.stylizer import stylize_folder
from svdinst.training.runs import ensure_run

PROXY_PREFIX = "mural_proxy_"  # svdinst.data.default names style image k after content photo k


@dataclass
class SelectionConfig:
    """The candidates and the validation split of :func:`select_settings`."""

    lr_shifts: tuple[float, ...] = (2e-2, 5e-2, 1e-1)  # around v1's 2e-2 (150 steps), upwards
    strengths: tuple[float, ...] = (0.4, 0.5, 0.6)  # around v1's 0.5
    mode: str = "svd-inst"  # the method the targets are about; the others share lr_shifts
    validation: str | None = None  # content stem whose proxy is held out; None → the last one
    crops: int = 4  # validation crops (centre + random), as the experiment's crops_per_photo
    seed: int = 0  # training seed and crop seed


def validation_split(style_dir: Path, content_dir: Path, validation: str | None) -> dict:
    """The held-out style image, its content photo and the remaining style images."""
    styles = {p.stem.removeprefix(PROXY_PREFIX): p for p in list_images(style_dir)}
    paired = {s: p for s, p in styles.items() if (content_dir / f"{s}.png").is_file()}
    if len(styles) < 2 or not paired:
        raise DataError(
            f"Selection needs ≥ 2 style images in '{style_dir}', one of them named "
            f"'{PROXY_PREFIX}<stem>.png' after a photo '<stem>.png' in '{content_dir}' (the "
            "default data set: `svdinst data prepare`)."
        )
    stem = validation or sorted(paired)[-1]
    if stem not in paired:
        raise DataError(f"No style image '{PROXY_PREFIX}{stem}' with a content photo '{stem}'.")
    return {
        "stem": stem,
        "style": paired[stem],
        "content": content_dir / f"{stem}.png",
        "train": [p for s, p in styles.items() if s != stem],
    }


def select_settings(
    ctx: CourseContext, config: SelectionConfig | None = None, *, root: Path | None = None
) -> dict[str, Any]:
    """Train and score every candidate (module docstring); returns the table and the choice.

    Args:
        ctx (`CourseContext`): the pocket profile's context (its model, resolution, steps).
        config (`SelectionConfig`, *optional*): candidates and split.
        root (`Path`, *optional*): work folder; defaults to ``WORKDIR/outputs/pocket-select``.

    Returns:
        `dict`: ``rows`` (lr, strength, ssim, psnr, base_ssim, gain), ``best`` (one row),
        ``validation`` (stem), ``train_styles``, ``steps``, ``batch``, ``mode``.
    """
    cfg = config or SelectionConfig()
    root = root or ctx.outputs_dir / "pocket-select"
    split = validation_split(ctx.style_dir, ctx.data_dir / "content", cfg.validation)
    train_dir = root / "train-styles"
    train_dir.mkdir(parents=True, exist_ok=True)
    for path in split["train"]:
        shutil.copy2(path, train_dir / path.name)
    photo, proxy = load_image(split["content"]), load_image(split["style"])
    if photo.size != proxy.size:
        raise DataError(f"'{split['style']}' is not the proxy of '{split['content']}' (sizes).")
    crops, _ = photo_crops({split["stem"]: photo}, cfg.crops, seed=cfg.seed)
    targets, _ = photo_crops({split["stem"]: proxy}, cfg.crops, seed=cfg.seed)  # same boxes
    content = write_images(crops, root / "val-content")
    runs: dict[Any, Path | None] = {"base": None}
    for lr in cfg.lr_shifts:
        profile = replace(ctx.profile, lr_shifts=lr)  # the candidate, everything else the profile's
        train = profile_run_config(cfg.mode, root / "runs" / f"lr{lr:g}", profile=profile,
                                   style_dir=train_dir, seed=cfg.seed)  # fmt: skip
        runs[lr] = ensure_run(train)
    scores: dict[tuple[Any, float], dict] = {}
    for key, run in runs.items():
        with ctx.stylizer(run) as stylizer:
            for strength in cfg.strengths:
                settings = ctx.stylize_config(strength=strength)
                if run is None:
                    settings = replace(settings, prompt="")  # the experiment's base model
                out = root / "outputs" / f"{key if run is None else f'lr{key:g}'}-s{strength:g}"
                stylize_folder(stylizer, content, out, settings)
                outputs = {
                    stem: [load_image(p) for p in files]
                    for stem, files in OutputsFolder(out).collect().items()
                }
                scores[key, strength] = oracle_distance(outputs, targets)
    rows = [
        {
            "lr_shifts": lr,
            "strength": s,
            "ssim": scores[lr, s]["ssim"],
            "psnr": scores[lr, s]["psnr"],
            "base_ssim": scores["base", s]["ssim"],
            "gain": scores[lr, s]["ssim"] - scores["base", s]["ssim"],
            "n": scores[lr, s]["n"],
        }
        for lr in cfg.lr_shifts
        for s in cfg.strengths
    ]
    result = {
        "rows": rows,
        "best": max(rows, key=lambda r: r["gain"]),
        "validation": split["stem"],
        "train_styles": [p.name for p in split["train"]],
        "steps": ctx.profile.train_steps,
        "batch": ctx.profile.train_batch_size,
        "mode": cfg.mode,
        "model": str(ctx.profile.model),
    }
    write_json_atomic(root / "selection.json", result)
    return result


def selection_markdown(result: dict[str, Any]) -> str:
    """The selection table and the choice (Markdown)."""
    best = result["best"]
    rows = "\n".join(
        f"| {r['lr_shifts']:g} | {r['strength']:g} | {r['ssim']:.3f} | {r['base_ssim']:.3f} | "
        f"{r['gain']:+.3f} | {r['psnr']:.2f} |"
        for r in result["rows"]
    )
    return (
        f"Selection on the training style images only: {result['mode']} trained on "
        f"{', '.join(result['train_styles'])} ({result['steps']} steps, batch {result['batch']}), "
        f"validated on crops of the content photo `{result['validation']}` against its own proxy "
        f"(`{PROXY_PREFIX}{result['validation']}`, held out of this training); no test photo is "
        f"used. Model `{result['model']}`.\n\n"
        "| lr_shifts | strength | SSIM to proxy ↑ | base SSIM | gain over base ↑ | PSNR |\n"
        "|---|---|---|---|---|---|\n"
        f"{rows}\n\n"
        f"Chosen: lr_shifts {best['lr_shifts']:g}, strength {best['strength']:g} "
        f"(largest SSIM gain over the base model, {best['gain']:+.3f}).\n"
    )
