"""Choose the pocket experiment's training settings on the *training* style images only.

The pocket profile's ``lr_token``, ``lr_shifts``, ``init``, ``strength`` and ``guidance`` must not
be tuned on the held-out test photos, or the report's comparison would be fitted to its own test
set. This module holds out one *style* image instead: the default data set's style image
``mural_proxy_<stem>`` is the proxy filter of the *content* photo ``<stem>``
(:mod:`svdinst.data.default`), so it is a paired target for that training photo, exactly as the
oracle is for a test photo. Selection then

1. trains the mode (``svd-inst``, training seed 0) on the *other* style images, once per
   candidate (``lr_token``, ``lr_shifts``);
2. stylizes square crops of the validation content photo at each candidate start (img2img or
   InST's stochastic inversion), strength and guidance scale with each run, and with the base
   model (the empty prompt, as in the experiment: its two guidance branches are the same
   prediction, so it is scored once per start and strength);
3. scores each (lr_token, lr_shifts, guidance, init, strength) as the experiment's first target
   does: the FID of its outputs to crops of the training style images, relative to the base
   model's at the same start and strength (``fid_gain``), and picks the largest. The SSIM to
   the aligned crops of the held-out proxy (:func:`svdinst.evaluation.oracle.oracle_distance`),
   the second target, is reported beside it.

Why FID and not SSIM: SSIM to a proxy whose cracks and paint losses fall at seeded places rewards
an output that changes nothing (smooth outputs lose least), so choosing by SSIM chose the
weakest training and the lowest strength — the pocket-v2 selection of 2026-12 did exactly that.
With N = 16 validation outputs FID is biased upwards and noisy; only the gain over the base model
at equal N is compared.

``svdinst pocket select`` runs it on the pocket profile and writes the table; the chosen values
go into the pocket profile (``svdinst/course/profiles.py``) by hand, with a pointer to the table.
"""

from __future__ import annotations

import itertools
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from svdinst.course.context import CourseContext
from svdinst.course.settings import profile_run_config
from svdinst.data import list_images, load_image
from svdinst.errors import DataError
from svdinst.evaluation.metrics import fid_kid
from svdinst.evaluation.oracle import oracle_distance
from svdinst.formats.atomic import write_json_atomic
from svdinst.formats.outputs import OutputsFolder
from svdinst.pocket.experiment import photo_crops, write_images
from svdinst.stylize.stylizer import stylize_folder
from svdinst.training.config import INST_LR
from svdinst.training.runs import ensure_run

PROXY_PREFIX = "mural_proxy_"  # svdinst.data.default names style image k after content photo k


@dataclass
class SelectionConfig:
    """The candidates and the validation split of :func:`select_settings`."""

    lr_tokens: tuple[float | None, ...] = (None, 3e-3)  # None: InST's 1e-4; the toy needs more
    lr_shifts: tuple[float, ...] = (2e-2, 5e-2)  # around v1's 2e-2; 0.1 over-trained in 60 steps
    strengths: tuple[float, ...] = (0.4, 0.5, 0.6)  # ≤ the content-preservation ceiling (0.75)
    # How stylizing starts from the photo: SDEdit's fresh noise, or InST's stochastic inversion
    # (the UNet's own noise estimate of the photo: keeps more of its structure).
    inits: tuple[str, ...] = ("img2img", "inst")
    # Classifier-free guidance scales the learned token's push (cond − uncond); None: the
    # profile's own (pocket: 3), 7.5: SD-1.4's img2img default.
    guidances: tuple[float | None, ...] = (None, 7.5)
    mode: str = "svd-inst"  # the method the targets are about; the others share the lrs
    validation: str | None = None  # content stem whose proxy is held out; None → the last one
    crops: int = 8  # validation crops (centre + random) × the profile's seeds = N per row
    reference_crops: int = 12  # FID reference: this many crops of each training style image
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
        `dict`: ``rows`` (lr_token, lr_shifts, guidance, init, strength, fid, base_fid,
        fid_gain, ssim, base_ssim, gain, psnr, n), ``best`` (the row of largest ``fid_gain``),
        ``validation`` (stem), ``train_styles``, ``steps``, ``batch``, ``mode``, ``model``,
        ``n_reference``.
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
    # FID reference as the experiment's: the (training) style images, whole and cropped
    styles = {p.stem: load_image(p) for p in split["train"]}
    reference = list(photo_crops(styles, 1 + cfg.reference_crops, seed=cfg.seed)[0].values())
    runs: dict[Any, Path | None] = {"base": None}
    for lr_token in cfg.lr_tokens:
        for lr in cfg.lr_shifts:  # the candidate, everything else the profile's
            profile = replace(ctx.profile, lr_shifts=lr, lr_token=lr_token)
            token_lr = lr_token or INST_LR  # what the run trains with (TrainConfig.token_lr)
            out = root / "runs" / f"t{token_lr:g}-s{lr:g}"
            train = profile_run_config(cfg.mode, out, profile=profile, style_dir=train_dir,
                                       seed=cfg.seed)  # fmt: skip
            runs[token_lr, lr] = ensure_run(train)
    scores: dict[tuple[Any, ...], dict] = {}
    for key, run in runs.items():
        guidances = cfg.guidances[:1] if run is None else cfg.guidances  # base: cond ≡ uncond
        with ctx.stylizer(run) as stylizer:
            for g, init, strength in itertools.product(guidances, cfg.inits, cfg.strengths):
                settings = ctx.stylize_config(strength=strength, init=init)
                if g is not None:
                    settings = replace(settings, guidance=g)
                if run is None:
                    settings = replace(settings, prompt="")  # the experiment's base model
                who = "base" if run is None else run.name
                name = f"{who}-g{settings.guidance_scale:g}-{init}-s{strength:g}"
                out = root / "outputs" / name
                stylize_folder(stylizer, content, out, settings)
                outputs = {
                    stem: [load_image(p) for p in files]
                    for stem, files in OutputsFolder(out).collect().items()
                }
                flat = [image for images in outputs.values() for image in images]
                fid = fid_kid(flat, reference, device=ctx.device)["fid"]
                score = {**oracle_distance(outputs, targets), "fid": fid,
                         "guidance": settings.guidance_scale}  # fmt: skip
                scores[key, None if run is None else g, init, strength] = score  # base: None
    rows = []
    for token_lr, lr in (k for k in runs if k != "base"):
        for g, init, s in itertools.product(cfg.guidances, cfg.inits, cfg.strengths):
            ours, base = scores[(token_lr, lr), g, init, s], scores["base", None, init, s]
            rows.append({
                "lr_token": token_lr,
                "lr_shifts": lr,
                "guidance": ours["guidance"],
                "init": init,
                "strength": s,
                "fid": ours["fid"],
                "base_fid": base["fid"],
                "fid_gain": (base["fid"] - ours["fid"]) / base["fid"],  # > 0: closer to the style
                "ssim": ours["ssim"],
                "psnr": ours["psnr"],
                "base_ssim": base["ssim"],
                "gain": ours["ssim"] - base["ssim"],
                "n": ours["n"],
            })  # fmt: skip
    result = {
        "rows": rows,
        "best": max(rows, key=lambda r: r["fid_gain"]),
        "validation": split["stem"],
        "train_styles": [p.name for p in split["train"]],
        "steps": ctx.profile.train_steps,
        "batch": ctx.profile.train_batch_size,
        "mode": cfg.mode,
        "model": str(ctx.profile.model),
        "n_reference": len(reference),
    }
    write_json_atomic(root / "selection.json", result)
    return result


def selection_markdown(result: dict[str, Any]) -> str:
    """The selection table and the choice (Markdown)."""
    best = result["best"]
    rows = "\n".join(
        f"| {r['lr_token']:g} | {r['lr_shifts']:g} | {r['guidance']:g} | {r['init']} | "
        f"{r['strength']:g} | "
        f"{r['fid']:.1f} | "
        f"{r['base_fid']:.1f} | {100 * r['fid_gain']:+.1f}% | {r['ssim']:.3f} | "
        f"{r['base_ssim']:.3f} | {r['gain']:+.3f} |"
        for r in result["rows"]
    )
    return (
        f"Selection on the training style images only: {result['mode']} trained on "
        f"{', '.join(result['train_styles'])} ({result['steps']} steps, batch {result['batch']}), "
        f"validated on {result['rows'][0]['n']} outputs from crops of the content photo "
        f"`{result['validation']}`: FID to {result['n_reference']} crops of those training style "
        f"images (as the experiment's reference), and SSIM to the same crops of the photo's own "
        f"proxy (`{PROXY_PREFIX}{result['validation']}`, held out of this training); no test "
        f"photo is used. Model `{result['model']}`. The base model (empty prompt) is scored at "
        "each start (init) and strength (with the empty prompt its guidance branches are the "
        "same prediction); gains are over it at equal N.\n\n"
        "| lr_token | lr_shifts | guidance | init | strength | FID ↓ | base FID | FID gain ↑ | "
        "SSIM to proxy ↑ | base SSIM | SSIM gain ↑ |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
        f"{rows}\n\n"
        f"Chosen: lr_token {best['lr_token']:g}, lr_shifts {best['lr_shifts']:g}, guidance "
        f"{best['guidance']:g}, init "
        f"{best['init']}, strength {best['strength']:g} (largest FID gain over the base model, "
        f"{100 * best['fid_gain']:+.1f}%; its SSIM gain {best['gain']:+.3f}).\n"
    )
