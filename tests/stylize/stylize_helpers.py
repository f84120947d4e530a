"""Helpers shared by the stylize tests (a helper module, not a test module; named so it cannot
shadow another test folder's helper on ``sys.path``)."""

from __future__ import annotations

import numpy as np
from PIL import Image

FAST = {"steps": 4, "strength": 0.75, "batch_size": 2}  # 3 denoising steps at 64 px


def _photo(seed: int, size: tuple[int, int] = (72, 64)) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, size=(4, 4, 3)).astype(np.uint8)
    return Image.fromarray(small).resize(size, Image.BICUBIC)


def _maxdiff(a: Image.Image, b: Image.Image) -> int:
    return int(np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max())
