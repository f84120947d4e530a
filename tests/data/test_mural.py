"""The mural proxy: deterministic, seed-dependent textures, and really limited to its palette."""

from __future__ import annotations

import io

import numpy as np
import pytest
import skimage.data
from PIL import Image
from skimage import color

from svdinst.data.mural import PIGMENTS, MuralConfig, mural_proxy, mural_stages, palette_family


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.fromarray(skimage.data.astronaut()).resize((128, 96), Image.Resampling.LANCZOS)


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _delta_e_to_palette(image: Image.Image, config: MuralConfig | None = None) -> np.ndarray:
    """Per-pixel CIELAB distance (ΔE76) to the nearest colour of the aged palette."""
    _, palette = palette_family(config)
    pal_lab = color.rgb2lab(palette[None])[0]
    lab = color.rgb2lab(np.asarray(image, dtype=float) / 255).reshape(-1, 3)
    return np.sqrt(((lab[:, None] - pal_lab[None]) ** 2).sum(-1)).min(1)


def test_same_seed_gives_identical_bytes(photo: Image.Image) -> None:
    a, b = mural_proxy(photo, seed=3), mural_proxy(photo.copy(), seed=3)
    assert a.mode == "RGB" and a.size == photo.size
    assert _png(a) == _png(b)


def test_different_seed_changes_only_the_textures(photo: Image.Image) -> None:
    s0, s1 = mural_stages(photo, seed=0), mural_stages(photo, seed=1)
    assert _png(s0["mural proxy"]) != _png(s1["mural proxy"])
    # Posterisation and outlines depend on the photo only; the seed drives the ageing textures.
    assert _png(s0["posterised"]) == _png(s1["posterised"])
    assert _png(s0["outlined"]) == _png(s1["outlined"])


def test_posterised_stage_uses_only_palette_colours(photo: Image.Image) -> None:
    _, palette = palette_family()
    allowed = {tuple(c) for c in (palette * 255).round().astype(int)}
    used = {tuple(c) for c in np.asarray(mural_stages(photo)["posterised"]).reshape(-1, 3)}
    assert used <= allowed
    assert len(used) >= 4, "a colourful photo should use several pigments"


def test_without_textures_every_pixel_is_a_palette_colour(photo: Image.Image) -> None:
    config = MuralConfig(
        outline_strength=1.0, loss_amount=0.0, grain_fine=0.0, grain_coarse=0.0, crack_strength=0.0
    )
    _, palette = palette_family(config)
    allowed = {tuple(c) for c in (palette * 255).round().astype(int)}
    pixels = np.asarray(mural_proxy(photo, config=config)).reshape(-1, 3)
    assert {tuple(c) for c in pixels} <= allowed
    photo_pixels = {tuple(c) for c in np.asarray(photo).reshape(-1, 3)}
    assert len(photo_pixels - allowed) > 1000  # the identity would fail the check above


def test_default_proxy_stays_near_the_palette(photo: Image.Image) -> None:
    # Textures perturb the pigments a little; the photo itself is far from the palette.
    assert np.median(_delta_e_to_palette(photo)) > 10
    assert np.median(_delta_e_to_palette(mural_proxy(photo))) < 5


def test_palette_family_and_ageing() -> None:
    names, fresh = palette_family(MuralConfig(fade=0, lead_darkening=0, ground_mix=0))
    assert len(names) == 3 * (len(PIGMENTS) - 2) + 2  # tint/pure/shade + lead white + ink
    pure = fresh[names.index("azurite")]
    np.testing.assert_allclose(pure * 255, PIGMENTS["azurite"], atol=0.5)
    _, aged = palette_family(MuralConfig(fade=0.5, lead_darkening=0, ground_mix=0))
    chroma = lambda rgb: np.hypot(*color.rgb2lab(rgb[None])[0][:, 1:].T)  # noqa: E731
    assert (chroma(aged) <= chroma(fresh) + 1e-6).all()
    assert chroma(aged)[names.index("cinnabar")] < 0.6 * chroma(fresh)[names.index("cinnabar")]
    _, dark = palette_family(MuralConfig(fade=0, lead_darkening=1.0, ground_mix=0))
    assert dark[names.index("lead_white")].mean() < 0.5 < fresh[names.index("lead_white")].mean()


def test_grayscale_and_tiny_inputs() -> None:
    gray = Image.fromarray(skimage.data.camera()).resize((40, 24))
    out = mural_proxy(gray, seed=0)
    assert out.mode == "RGB" and out.size == (40, 24)


@pytest.mark.parametrize(
    "kwargs", [{"fade": 1.5}, {"outline_quantile": -0.1}, {"crack_cell": 0}, {"pigments": {}}]
)
def test_config_validation(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="MuralConfig"):
        MuralConfig(**kwargs)
