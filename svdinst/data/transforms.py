"""Small image transforms the trainers, stylizers and metrics share (PIL ↔ tensors in [-1, 1])."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageOps


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
    if size is not None:
        image = center_crop_resize(image, size)
    arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def to_image(tensor: torch.Tensor) -> Image.Image:
    """Inverse of :func:`to_tensor`: ``(3, H, W)`` in [-1, 1] → RGB PIL image (values clipped)."""
    arr = ((tensor.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return Image.fromarray(arr.permute(1, 2, 0).numpy())


def images_to_batch(images: Sequence[Image.Image], size: int) -> torch.Tensor:
    """Stack images as a ``(N, 3, size, size)`` batch in [-1, 1] (center crops)."""
    return torch.stack([to_tensor(im, size) for im in images])
