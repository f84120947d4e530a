"""The pocket training styles: deterministic, each its own look, none with the mural's palette."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from PIL import Image
from scipy import ndimage
from skimage import color

from svdinst.data.mural import mural_proxy, palette_family
from svdinst.data.styles import (
    PRINT_PALETTE,
    PROXY_TECHNIQUES,
    STYLES,
    STYLES_V2,
    apply_style,
    cel_shading,
    craquelure,
    flat_print,
    halftone,
    peeling_paint,
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


def test_v2_styles_are_the_first_seven_and_never_move() -> None:
    """pocket-v2/v3's recipes name these seven; later styles are appended, never inserted."""
    assert STYLES_V2 == (
        "woodcut", "pencil sketch", "watercolour", "halftone", "flat print", "mosaic", "blueprint"
    )  # fmt: skip
    assert tuple(STYLES)[: len(STYLES_V2)] == STYLES_V2
    # the styles sharing a proxy technique came later (pocket-v4) and are styles
    assert set(PROXY_TECHNIQUES) <= set(STYLES) - set(STYLES_V2)


def test_cel_shading_is_few_flat_fills_inside_black_lines(photos) -> None:
    cel = np.asarray(cel_shading(photos[0])).reshape(-1, 3)
    colours = {tuple(c) for c in cel}
    assert (0, 0, 0) in colours and len(colours) <= 7  # six fills and the line black
    black = (cel == 0).all(1).mean()
    assert 0.05 < black < 0.4  # lines along the strongest edges, not a black picture


def test_craquelure_keeps_the_photo_between_its_cracks(photos) -> None:
    """Cracks darken the photo's own colours; inside a flake the photo is only slightly lifted."""
    photo, out = _a(photos[1]), _a(craquelure(photos[1], seed=3))
    ratio = (out.sum(-1) + 1e-3) / (photo.sum(-1) + 1e-3)
    assert (ratio < 0.4).mean() > 0.05  # a visible net of dark cracks
    assert np.median(ratio) > 0.8  # most of the surface is the photo
    bright = photo.sum(-1) > 0.3
    hue_in = color.rgb2lab(photo)[..., 1:][bright & (ratio > 0.8)]
    hue_out = color.rgb2lab(out)[..., 1:][bright & (ratio > 0.8)]
    assert np.abs(hue_in - hue_out).mean() < 3  # no colour of its own (ΔE in a*, b*)
    assert not np.array_equal(out, _a(craquelure(photos[1], seed=4)))  # the seed moves the net


def test_peeling_paint_bares_neutral_concrete_in_patches(photos) -> None:
    photo, out = _a(photos[0]), _a(peeling_paint(photos[0], seed=2))
    chroma = np.hypot(*np.moveaxis(color.rgb2lab(out)[..., 1:], -1, 0))
    changed = np.abs(out - photo).sum(-1) > 0.3
    bare = changed & (chroma < 4)  # grey concrete where paint changed a lot
    assert 0.1 < bare.mean() < 0.4  # about a quarter of the wall
    sizes = np.sort(np.bincount(ndimage.label(bare)[0].ravel())[1:])[::-1]
    assert sizes[:12].sum() > 0.75 * sizes.sum()  # a dozen patches hold it, not speckle
