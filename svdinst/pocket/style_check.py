"""Does the pocket UNet draw the style its caption names? ``svdinst pocket style-check``.

InST writes a learned token into the caption and SVDiff reshapes the UNet's spectra; both only
*steer* a base model, so the base must already draw distinct styles when its caption names
them. A pocket model pretrained on "<subject> in <style>" crops has a style space only if
sampling "a cat in watercolour" from noise gives a watercolour. The check samples every
(style, subject, seed) from noise under the model's own captions (DDIM, the pocket profile's
guidance) and names the style each sample looks like: the nearest class centroid of TF-FID
Inception pool features, fitted on crops of the pretraining photos rendered in each style (and
unstyled, the ``photo`` class). The same classifier scores a second set of random real
crops: its accuracy there is the ceiling, one over the number of classes is chance.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from svdinst.data.styles import STYLES_V2, apply_style
from svdinst.pocket.data import POCKET_PHOTOS, caption, load_pocket_photo, style_caption
from svdinst.pocket.experiment import photo_crops
from svdinst.pocket.style_report import STYLE_CHECK_NAME

PHOTO = "photo"  # the class of unstyled crops, captioned "a photo of <subject>"
SUBJECTS = ("astronaut", "chelsea", "china", "rocket")  # pocket photo stems sampled per class

Features = Callable[[Sequence[Image.Image]], torch.Tensor]
Sampler = Callable[[Sequence[str], int], list[Image.Image]]


def class_captions(cls: str, stems: Sequence[str] = SUBJECTS) -> list[str]:
    """The pretraining captions of class ``cls`` for the photos ``stems`` (one each)."""
    subjects = {p.stem: p.subject for p in POCKET_PHOTOS}
    if cls == PHOTO:
        return [caption(subjects[s], None, False) for s in stems]
    return [style_caption(subjects[s], cls) for s in stems]


def styled_crops(
    resolution: int, styles: Sequence[str], per_photo: int = 2, seed: int = 0
) -> dict[str, list[Image.Image]]:
    """Crops of every pretraining photo, unstyled (``photo``) and in each style, at ``resolution``.

    The style is applied to the crop before it is resized, as the pretraining sampler cuts its
    crops from styled photos. Only random crops are used (not the centre square, which every
    seed shares), so two seeds give two different sets: one fits the classifier, one scores it.
    """
    photos = {p.stem: load_pocket_photo(p) for p in POCKET_PHOTOS}
    crops, _ = photo_crops(photos, per_photo + 1, min_crop=0.5, seed=seed)
    size = (resolution, resolution)
    out: dict[str, list[Image.Image]] = {PHOTO: [], **{s: [] for s in styles}}
    for crop in (im for name, im in crops.items() if not name.endswith("-c0")):
        out[PHOTO].append(crop.resize(size, Image.Resampling.LANCZOS))
        for s in styles:
            out[s].append(apply_style(crop, s).resize(size, Image.Resampling.LANCZOS))
    return out


def nearest_centroid(centroids: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Index of the nearest row of ``centroids`` (Euclidean) for each row of ``features``."""
    return torch.cdist(features.double(), centroids.double()).argmin(dim=1)


def confusion(true: Sequence[int], predicted: Sequence[int], n: int) -> np.ndarray:
    """``n × n`` counts: row = the class asked for, column = the class recognised."""
    out = np.zeros((n, n), dtype=int)
    for t, p in zip(true, predicted):
        out[t, p] += 1
    return out


def style_check(
    sample: Sampler,
    features: Features,
    resolution: int,
    *,
    styles: Sequence[str] = STYLES_V2,
    seeds: Sequence[int] = (0, 1),
) -> dict[str, Any]:
    """Sample every class's captions and name the style of each sample.

    Args:
        sample (`Callable`): captions, seed → one image per caption.
        features (`Callable`): images → N×D features (the kit passes Inception pool features).
        resolution (`int`): side of the reference crops (the model's resolution).
        styles (`Sequence[str]`, defaults to pocket-v2/v3's seven): the model's training styles.
        seeds (`Sequence[int]`, defaults to (0, 1)): sampling seeds per class.

    Returns:
        `dict`: ``classes``, ``confusion`` (rows asked, columns recognised), ``accuracy`` of the
        samples, ``classifier_accuracy`` on held-out real crops (the ceiling), ``chance``,
        ``n_per_class``, ``predicted`` (class → recognised class names) and ``samples`` (class
        → images; not JSON, dropped when written).
    """
    classes = [PHOTO, *styles]
    fit, held = styled_crops(resolution, styles, seed=0), styled_crops(resolution, styles, seed=1)
    centroids = torch.stack([features(fit[c]).mean(dim=0) for c in classes])
    real_true, real_pred = [], []
    for i, c in enumerate(classes):
        real_pred += nearest_centroid(centroids, features(held[c])).tolist()
        real_true += [i] * len(held[c])
    true, pred, samples, predicted = [], [], {}, {}
    for i, c in enumerate(tqdm(classes, desc="style check: sampling per class")):
        images = [im for seed in seeds for im in sample(class_captions(c), seed)]
        guess = nearest_centroid(centroids, features(images)).tolist()
        true += [i] * len(images)
        pred += guess
        samples[c], predicted[c] = images, [classes[j] for j in guess]
    table = confusion(true, pred, len(classes))
    return {
        "classes": classes,
        "confusion": table.tolist(),
        "accuracy": float(np.trace(table) / table.sum()),
        "classifier_accuracy": float(np.mean(np.array(real_true) == np.array(real_pred))),
        "chance": 1 / len(classes),
        "n_per_class": len(true) // len(classes),
        "predicted": predicted,
        "samples": samples,
    }


def diffusers_sampler(comps: Any, resolution: int, steps: int, guidance: float) -> Sampler:
    """Sampling from noise with the model's own scheduler config as DDIM (diffusers pipeline)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        vae=comps.vae, text_encoder=comps.text_encoder, tokenizer=comps.tokenizer,
        unet=comps.unet, scheduler=DDIMScheduler.from_config(comps.scheduler.config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    device = next(comps.unet.parameters()).device

    def sample(captions: Sequence[str], seed: int) -> list[Image.Image]:
        g = torch.Generator(device).manual_seed(seed)
        return pipe(list(captions), height=resolution, width=resolution, generator=g,
                    num_inference_steps=steps, guidance_scale=guidance).images  # fmt: skip

    return sample


def style_check_figure(m: dict[str, Any]) -> Any:
    """One row per class: its samples, each titled with the style it was recognised as."""
    from svdinst.figures import image_grid

    classes, samples = m["classes"], m["samples"]
    ncols = len(samples[classes[0]])
    images = [im for c in classes for im in samples[c]]
    titles = [f"→ {p}" for c in classes for p in m["predicted"][c]]
    return image_grid(images, ncols, titles=titles, row_labels=[f"asks {c}" for c in classes],
                      cell_size=1.4,
                      suptitle=f"Samples from noise by caption style: {m['accuracy']:.0%} "
                      f"look like the style asked for (chance {m['chance']:.0%})")  # fmt: skip


def run_style_check(
    model: str | os.PathLike,
    out: str | os.PathLike,
    *,
    steps: int = 50,
    guidance: float = 3.0,
    styles: Sequence[str] = STYLES_V2,
    name: str = STYLE_CHECK_NAME,
) -> dict[str, Any]:
    """Load a pocket folder, run :func:`style_check`, write ``<out>/<name>.json`` and ``.png``.

    Args:
        model (`str` or `os.PathLike`): a pocket model folder (or ``"pocket"``).
        out (`str` or `os.PathLike`): folder for the JSON and the figure.
        steps (`int`, defaults to 50): DDIM steps per sample.
        guidance (`float`, defaults to 3.0): classifier-free guidance (the pocket profile's).
        styles (`Sequence[str]`): the model's training styles (pocket-v2/v3's seven).
        name (`str`, defaults to ``"pocket_style_check"``): file stem of both outputs.
    """
    from svdinst.device import default_device
    from svdinst.evaluation.metrics import inception_features
    from svdinst.figures import save_figure
    from svdinst.formats.atomic import write_json_atomic
    from svdinst.models.loading import load_components

    device = default_device()
    parts = ("vae", "unet", "text_encoder", "tokenizer", "scheduler")
    comps = load_components(model, parts, device=device)
    resolution = int(comps.vae.config.sample_size)
    m = style_check(
        diffusers_sampler(comps, resolution, steps, guidance),
        lambda images: inception_features(images, device=device).cpu(),
        resolution,
        styles=styles,
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    m["figure"] = save_figure(style_check_figure(m), name, out, close=True).name  # beside the JSON
    m.update(model=str(model), steps=steps, guidance=guidance, resolution=resolution)
    m.pop("samples")
    write_json_atomic(out / f"{name}.json", m)
    return m
