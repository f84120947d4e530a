"""Paired distance to the mural-proxy oracle: how close an output is to the *ideal* output.

The style images of the default data set come from a known filter (:func:`svdinst.data.mural.
mural_proxy`), so for every test photo the ideal stylization is known: the filter applied to the
photo. That allows paired, reference-based metrics the original report (with real murals) could
not have. We report PSNR and SSIM (pixel level; always available) and LPIPS (perceptual; when its
AlexNet backbone is available). Only meaningful when the style set *is* the proxy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageOps
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from svdinst.evaluation.lpips import UNAVAILABLE, LpipsScorer


def native_crop(photo: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The central region of ``photo`` with the aspect ratio of ``size``, at full resolution."""
    scale = min(photo.width / size[0], photo.height / size[1])
    crop = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
    return ImageOps.fit(photo, crop, Image.BICUBIC)


def oracle_distance(
    outputs: Mapping[str, Sequence[Image.Image]],
    targets: Mapping[str, Image.Image],
    scorer: LpipsScorer | None = None,
) -> dict[str, Any]:
    """Paired distance of each output to its oracle target (the proxy filter of its photo).

    Args:
        outputs (`Mapping[str, Sequence[PIL.Image]]`): content stem → outputs (one per seed).
        targets (`Mapping[str, PIL.Image]`): content stem → ``mural_proxy(photo)``;
            center-cropped to each output's aspect ratio and resized to its size.
        scorer (`LpipsScorer`, *optional*): adds paired LPIPS when given.

    Returns:
        `dict`: ``psnr`` (dB, higher is better), ``ssim`` (higher is better), ``lpips`` (lower is
        better, or ``"unavailable"``), ``n``.
    """
    outs, tgts = [], []
    for stem, images in outputs.items():
        for img in images:
            outs.append(img.convert("RGB"))
            tgts.append(ImageOps.fit(targets[stem].convert("RGB"), img.size, Image.BICUBIC))
    psnr, ssim = [], []
    for o, t in zip(outs, tgts):
        a, b = np.asarray(o), np.asarray(t)
        with np.errstate(divide="ignore"):  # identical images: PSNR = inf, which is right
            psnr.append(peak_signal_noise_ratio(b, a, data_range=255))
        ssim.append(structural_similarity(b, a, channel_axis=2, data_range=255))
    result: dict[str, Any] = {
        "psnr": float(np.mean(psnr)),
        "ssim": float(np.mean(ssim)),
        "lpips": UNAVAILABLE,
        "n": len(outs),
    }
    if scorer is not None:
        result["lpips"] = float(scorer.distance(outs, tgts).mean())
    return result
