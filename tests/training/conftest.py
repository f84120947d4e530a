"""Fixtures shared by the training tests."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def style_image(tmp_path_factory) -> Path:
    """A structured (learnable) style image: colour bands and stripes (test_safety.py keeps its
    own noise image: it tests refusals, not learning)."""
    y, x = np.mgrid[0:72, 0:96]
    img = np.stack([(x * 2.6) % 256, (y * 3.5) % 256, ((x + y) // 12 % 2) * 200 + 30], -1)
    path = tmp_path_factory.mktemp("style") / "style.png"
    Image.fromarray(img.astype(np.uint8)).save(path)
    return path
