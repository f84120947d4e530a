"""The pocket-v2 training styles: deterministic, each its own look, none with the mural's palette."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from PIL import Image
from skimage import color

from svdinst.data.mural import mural_proxy, palette_family
from svdinst.data.styles import (
    PRINT_PALETTE,
    STYLES,
    apply_style,
    flat_print,
    halftone,
    pencil_sketch,
    pigment_share,
    woodcut,
)


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    size = (128, 96)
    return [
        Image.fromarray(skimage.data.astronaut()).resize(size, Image.Resampling.LANCZOS),
        Image.fromarray(skimage.data.chelsea()).resize(size, Image.Resampling.LANCZOS),
        Image.fromarray(skimage.data.rocket()).resize(size, Image.Resampling.LANCZOS),
    ]


def _a(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=float) / 255


def test_at_least_six_documented_styles() -> None:
    assert len(STYLES) >= 6
    for name, fn in STYLES.items():
        assert fn.__doc__ and "Args:" in fn.__doc__, name
        assert name == name.lower() and "mural" not in name


@pytest.mark.parametrize("style", sorted(STYLES))
def test_deterministic_same_size_and_not_the_photo(style: str, photos) -> None:
    photo = photos[0]
    a, b = apply_style(photo, style, seed=1), apply_style(photo.copy(), style, seed=1)
    assert a.mode == "RGB" and a.size == photo.size
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert np.abs(_a(a) - _a(photo)).mean() > 0.05, "a style must change the photo visibly"


def test_styles_differ_from_each_other(photos) -> None:
    outs = {name: _a(apply_style(photos[1], name)) for name in STYLES}
    names = sorted(outs)
    for i, x in enumerate(names):
        for y in names[i + 1 :]:
            assert np.abs(outs[x] - outs[y]).mean() > 0.05, (x, y)


def test_no_training_style_paints_with_the_mural_palette(photos) -> None:
    """The held-out proxy's aged pigments: its own images mostly use them, the styles don't."""
    _, palette = palette_family()
    proxy_share = pigment_share([mural_proxy(p) for p in photos], palette)
    photo_share = pigment_share(photos, palette)
    assert proxy_share > 0.5  # the measure sees the palette where it is used
    for name in STYLES:
        share = pigment_share([apply_style(p, name) for p in photos], palette)
        assert share <= max(photo_share, 0.05), f"{name}: {share:.3f} of pixels are mural pigments"


def test_palette_styles_use_only_their_inks(photos) -> None:
    wood = np.asarray(woodcut(photos[0])).reshape(-1, 3)
    assert len({tuple(c) for c in wood}) == 2  # ink and paper
    used = {tuple(c) for c in np.asarray(flat_print(photos[1])).reshape(-1, 3)}
    assert used <= {tuple(c) for c in PRINT_PALETTE.astype(int)}
    assert len(used) >= 4


def test_pencil_sketch_is_grey_and_light(photos) -> None:
    sketch = _a(pencil_sketch(photos[1]))
    assert np.allclose(sketch[..., 0], sketch[..., 1]) and np.allclose(
        sketch[..., 1], sketch[..., 2]
    )
    assert sketch.mean() > 0.6  # mostly paper, lines where tone changes


def test_halftone_dots_follow_the_tone() -> None:
    ramp = np.linspace(0, 255, 128)[None, :, None].repeat(64, 0).repeat(3, 2).astype(np.uint8)
    dots = _a(halftone(Image.fromarray(ramp)))
    left, right = dots[:, :32].mean(), dots[:, -32:].mean()
    assert left < 0.3 and right > 0.85  # dark end mostly ink, light end mostly paper
    # every pixel is paper or an overprint of process inks: few distinct colours
    assert len({tuple(c) for c in (dots * 255).round().astype(int).reshape(-1, 3)}) <= 16


def test_unknown_style_is_refused(photos) -> None:
    with pytest.raises(ValueError, match="woodcut"):
        apply_style(photos[0], "oil painting")


def test_pigment_share_counts_pixels_near_the_palette() -> None:
    red = np.array([[1.0, 0.0, 0.0]])
    image = np.zeros((2, 2, 3), np.uint8)
    image[0, 0] = (255, 0, 0)
    image[1, 1] = (250, 2, 2)
    assert pigment_share([Image.fromarray(image)], red) == pytest.approx(0.5)
    far = color.lab2rgb(np.array([[[53.2, 80.1, 67.2 - 30]]]))[0]  # ΔE 30 from red
    assert pigment_share([Image.fromarray(image)], far) == 0.0
