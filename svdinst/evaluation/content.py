"""Content preservation: do img2img outputs stay closer to their own photo than to the others?

SDEdit (Meng et al. 2022, Sec. 3) noises the photo's latent to the time t₀ = strength·T and
denoises it: a larger t₀ gives the model more freedom (more style) and keeps less of the photo
(less faithfulness). A small base model pretrained on a few photos adds a third outcome — it
*memorises*: at high strength a coffee cup can come back as a cat's eye, an output that is a
convincing photo, but of a training photo instead of its input.

So we measure faithfulness as an **identification test**. For every output y (of input photo i)
and every candidate photo x_j we compute the similarity s(y, x_j) = SSIM (Wang et al. 2004,
eq. 13) of the two images in grayscale at the outputs' size (skimage's 7×7 uniform window;
grayscale so a palette change — the style — is not counted as a content change). The output is
*identified* when its own photo is more similar than every candidate of another photo. We report

* ``identified`` — the fraction of outputs identified (chance is 1 / number of photos),
* ``own`` — the mean SSIM to the own photo (1 means untouched; the distance is 1 − SSIM),
* ``margin_best`` — mean of own − the most similar other photo (> 0: identified, with room),
* ``margin_mean`` — mean of own − the mean over other photos.

:func:`strength_sweep` runs the test over several strengths; :func:`pick_strength` returns the
highest strength whose outputs are still clearly identified — the pocket profile's default.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from PIL import Image, ImageOps
from skimage.metrics import structural_similarity
from tqdm.auto import tqdm

from svdinst.errors import DataError
from svdinst.stylize.stylizer import StylizeConfig, Stylizer


@dataclass
class ContentPreservation:
    """The identification test's result (module docstring): one row per output."""

    rows: list[str]  # the input photo (stem) of each output, in row order
    candidates: list[str]  # the candidate photos (stems), in column order
    similarity: np.ndarray  # rows × candidates SSIM (grayscale); distance = 1 − SSIM
    own: np.ndarray  # per row, the column of its own photo
    others: np.ndarray  # rows × candidates: True where the candidate is another photo
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. strength, seeds, model

    @property
    def own_similarity(self) -> np.ndarray:
        """SSIM of each output to its own photo."""
        return self.similarity[np.arange(len(self.rows)), self.own]

    @property
    def best_other(self) -> np.ndarray:
        """SSIM of each output to the most similar photo that is not its own."""
        return np.where(self.others, self.similarity, -np.inf).max(axis=1)

    @property
    def identified(self) -> float:
        """Fraction of outputs more similar to their own photo than to every other photo."""
        return float(np.mean(self.own_similarity > self.best_other))

    def summary(self) -> dict[str, Any]:
        """The numbers the report shows (plain floats, JSON-ready)."""
        other_mean = np.nanmean(np.where(self.others, self.similarity, np.nan), axis=1)
        return {
            "identified": self.identified,
            "own": float(self.own_similarity.mean()),
            "margin_best": float((self.own_similarity - self.best_other).mean()),
            "margin_mean": float((self.own_similarity - other_mean).mean()),
            "n_outputs": len(self.rows),
            "n_candidates": len(self.candidates),
            "chance": float(np.mean(1.0 / (1.0 + self.others.sum(axis=1)))),
            "measure": "SSIM, grayscale, at the outputs' size (skimage 7×7 window)",
            **self.meta,
        }


def _gray(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """Grayscale float array in [0, 1] of the image's central crop at ``size`` (w, h)."""
    fitted = ImageOps.fit(image.convert("RGB"), size, Image.Resampling.LANCZOS)
    return np.asarray(fitted.convert("L"), dtype=np.float64) / 255.0


def content_preservation(
    outputs: Mapping[str, Sequence[Image.Image]],
    photos: Mapping[str, Image.Image],
    *,
    groups: Mapping[str, str] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> ContentPreservation:
    """The identification test of the module docstring.

    Args:
        outputs (`Mapping[str, Sequence[PIL.Image]]`): input stem → its outputs (one per seed),
            all of one size (the stylizer's resolution).
        photos (`Mapping[str, PIL.Image]`): candidate stem → photo; must hold every input stem,
            plus any distractors. Photos are center-cropped to the outputs' aspect ratio and
            resized to their size, as the stylizer did.
        groups (`Mapping[str, str]`, *optional*): candidate stem → the photo it comes from
            (e.g. several crops of one photo); candidates of the output's own group are neither
            "own" nor "other". Defaults to every stem being its own group.
        meta (`Mapping[str, Any]`, *optional*): stored in the result's summary (strength…).

    Returns:
        `ContentPreservation`
    """
    missing = sorted(set(outputs) - set(photos))
    if missing:
        raise DataError(
            f"Content preservation: no photo for output(s) {missing[:5]}; pass the folder "
            "that was stylized as the candidates."
        )
    candidates = list(photos)
    group = {s: (groups or {}).get(s, s) for s in {*candidates, *outputs}}
    rows = [stem for stem, images in outputs.items() for _ in images]
    flat = [img for images in outputs.values() for img in images]
    if not flat:
        raise DataError("Content preservation needs at least one output image.")
    sizes = {img.size for img in flat}
    if len(sizes) != 1:
        raise DataError(f"Content preservation: outputs have several sizes {sorted(sizes)}.")
    size = sizes.pop()
    cands = [_gray(photos[s], size) for s in candidates]
    grays = [_gray(y, size) for y in flat]  # once per output, not once per candidate
    sim = np.array([[structural_similarity(g, c, data_range=1.0) for c in cands] for g in grays])
    own = np.array([candidates.index(stem) for stem in rows])
    others = np.array([[group[c] != group[stem] for c in candidates] for stem in rows])
    if not others.any(axis=1).all():
        raise DataError(
            "Content preservation needs at least one candidate photo of another group per "
            "output (add distractor photos)."
        )
    return ContentPreservation(rows, candidates, sim, own, others, dict(meta or {}))


def strength_sweep(
    stylizer: Stylizer,
    inputs: Mapping[str, Image.Image],
    candidates: Mapping[str, Image.Image],
    strengths: Sequence[float],
    *,
    seeds: Sequence[int] = (0, 1),
    config: StylizeConfig | None = None,
) -> dict[float, ContentPreservation]:
    """Stylize ``inputs`` at each strength and run the identification test on the outputs.

    Args:
        stylizer (`svdinst.stylize.stylizer.Stylizer`): the model (a run applied, or the base model with
            ``config.prompt`` set).
        inputs (`Mapping[str, PIL.Image]`): stem → photo to stylize.
        candidates (`Mapping[str, PIL.Image]`): stem → photo; must include ``inputs``' stems,
            plus distractors (e.g. every offline photo).
        strengths (`Sequence[float]`): img2img strengths to try, e.g. ``(0.4, 0.5, …, 0.9)``.
        seeds (`Sequence[int]`, defaults to ``(0, 1)``): outputs per photo and strength.
        config (`StylizeConfig`, *optional*): steps, guidance, prompt…; its strength is replaced.

    Returns:
        `dict[float, ContentPreservation]`: strength → result.
    """
    base = config or StylizeConfig()
    sweep: dict[float, ContentPreservation] = {}
    with tqdm(total=len(strengths) * len(inputs), desc="strength sweep", unit="photo") as bar:
        for strength in strengths:
            cfg = replace(base, strength=float(strength), seeds=len(seeds))
            outs = {}
            for stem, photo in inputs.items():
                outs[stem] = stylizer.stylize(photo, list(seeds), cfg)
                bar.update(1)
            meta = {"strength": float(strength), "seeds": len(seeds), "steps": cfg.steps}
            sweep[float(strength)] = content_preservation(outs, candidates, meta=meta)
    return sweep


def pick_strength(
    sweep: Mapping[Any, ContentPreservation | Mapping[str, Any]],
    *,
    min_identified: float = 1.0,
    min_margin: float = 0.05,
) -> float | None:
    """The highest strength whose outputs are still *clearly* closest to their own photo.

    Clearly: at least ``min_identified`` of the outputs are identified and, on average, the own
    photo's SSIM beats the best other photo's by at least ``min_margin``.

    Args:
        sweep (`Mapping`): strength → :class:`ContentPreservation` (from :func:`strength_sweep`)
            or its summary dict (as :func:`save_sweep` writes them; string keys are accepted).
        min_identified (`float`, defaults to 1.0): every output identified.
        min_margin (`float`, defaults to 0.05): mean own − best-other SSIM.

    Returns:
        `float` or `None`: the chosen strength; `None` when no strength qualifies (random
        weights, or a model that memorised its photos: sweep lower strengths).
    """
    summaries = {
        float(k): (r.summary() if isinstance(r, ContentPreservation) else r)
        for k, r in sweep.items()
    }
    ok = [
        s
        for s, r in summaries.items()
        if r["identified"] >= min_identified and r["margin_best"] >= min_margin
    ]
    return max(ok) if ok else None


def save_sweep(sweep: Mapping[float, ContentPreservation], path: str | os.PathLike) -> Path:
    """Write the sweep's summaries as JSON (``{"0.6": {...}, …}``), e.g. for the report.

    Args:
        sweep (`Mapping[float, ContentPreservation]`): from :func:`strength_sweep`.
        path (`str` or `os.PathLike`): the JSON file (parent folders are created).
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    data = {f"{s:g}": r.summary() for s, r in sorted(sweep.items())}
    out.write_text(json.dumps(data, indent=2) + "\n")
    return out


def plot_strength_sweep(
    sweep: Mapping[float, ContentPreservation], chosen: float | None = None
) -> Figure:
    """Identified fraction and SSIM margins against strength (save with ``save_figure``).

    Args:
        sweep (`Mapping[float, ContentPreservation]`): from :func:`strength_sweep`.
        chosen (`float`, *optional*): draw the chosen default strength as a vertical line.
    """
    xs = sorted(sweep)
    summaries = [sweep[x].summary() for x in xs]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3))
    ax1.plot(xs, [s["identified"] for s in summaries], "o-", label="identified")
    ax1.axhline(summaries[0]["chance"], color="gray", ls=":", label="chance")
    ax1.set_ylim(-0.05, 1.05)
    ax1.set_ylabel("outputs closest to own photo")
    for key, label in (
        ("own", "SSIM to own photo"),
        ("margin_best", "own − best other"),
        ("margin_mean", "own − mean other"),
    ):
        ax2.plot(xs, [s[key] for s in summaries], "o-", label=label)
    ax2.axhline(0, color="gray", lw=0.8)
    for ax in (ax1, ax2):
        ax.set_xlabel("img2img strength")
        if chosen is not None:
            ax.axvline(chosen, color="k", ls="--", lw=0.8)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    ax2.set_ylabel("SSIM (grayscale)")
    fig.suptitle("Content preservation against img2img strength")
    fig.tight_layout()
    return fig
