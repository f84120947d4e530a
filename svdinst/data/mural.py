"""The *mural proxy*: a documented, deterministic "mineral-pigment mural" filter.

The original study trained on a private set of Dunhuang-style murals that cannot ship with the
kit. This module makes **proxy** style images instead — a photo repainted with a handful of
mineral pigments, outlined in ink, on textured plaster that has cracked and faded. It is a proxy
for the private mural set, not a mural: every figure and file made with it says so.

Because the filter is known and deterministic (same input + seed → identical bytes), the proxy of
a held-out test photo is an *oracle target* for paired metrics: a perfect stylizer would
reproduce it. The stages, in order (each can be switched off in :class:`MuralConfig`):

1. **Posterise** to a small pigment palette (ochre, malachite, azurite, cinnabar, lead white, ink
   black; each pigment also as a tint with lead white and a shade with ink), by nearest colour
   in CIELAB after a chroma boost, then a majority (mode) filter so areas are painted flat.
2. **Age the palette**: desaturate (fading), darken lead white (lead pigments oxidise to brown
   lead dioxide — the best-known colour change at Dunhuang), and drift toward the plaster colour.
3. **Ink outlines** along strong luminance edges of the photo.
4. **Paint loss**: low-frequency patches where the paint layer flaked off and plaster shows.
5. **Plaster texture**: multiplicative grain at two scales.
6. **Craquelure**: a wiggly Voronoi crack network, present only in some regions.

Spatial sizes are given in pixels *at 512 px* (longest side) and scale with the image, so a 64 px
proxy looks like a shrunk 512 px one. Only numpy, scipy and scikit-image are used; a 512 px image
takes well under a second on one CPU core.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage import color

# Approximate sRGB colours of the pigments of Dunhuang wall paintings (as they look today).
PIGMENTS: dict[str, tuple[int, int, int]] = {
    "ochre": (188, 138, 72),  # yellow/red earth: the ground tone of most scenes
    "malachite": (64, 138, 104),  # copper green (mineral green)
    "azurite": (44, 84, 150),  # copper blue (mineral blue)
    "cinnabar": (186, 56, 40),  # mercury-sulfide red (vermilion)
    "lead_white": (236, 228, 210),  # lead white / kaolin, slightly warm
    "ink": (34, 30, 28),  # carbon-black ink for outlines and hair
}
PLASTER = (214, 196, 160)  # the clay-lime ground that shows where paint is lost
AGED_LEAD = (112, 92, 78)  # lead dioxide brown: where lead white and red lead have darkened
CRACK = (56, 46, 39)  # dirt-filled crack lines: a darker brown than the aged lead


@dataclass(frozen=True)
class MuralConfig:
    """Every knob of :func:`mural_proxy`. Sizes are pixels at a 512 px longest side."""

    # --- 1. posterisation ---
    smooth_sigma: float = 1.2  # blur before matching: painters ignore film grain and jpeg noise
    chroma_boost: float = 1.3  # photos are duller than pigments; lets a muted sky pick azurite
    tint: float = 0.5  # tint = pigment mixed with this much lead white (light tones)
    shade: float = 0.4  # shade = pigment mixed with this much ink (dark tones)
    mode_filter_size: float = 5.0  # majority window: flat colour areas instead of speckle
    # --- 2. ageing of the palette ---
    fade: float = 0.25  # chroma lost to light and salts over centuries (0 = fresh paint)
    lead_darkening: float = 0.35  # lead white drifts toward lead-dioxide brown
    ground_mix: float = 0.12  # thin paint lets the warm plaster colour through everywhere
    # --- 3. ink outlines ---
    outline_sigma: float = 1.5  # edge scale: follows contours, not texture
    outline_quantile: float = 0.9  # fraction of pixels *without* a line (top 10% edges get ink)
    outline_strength: float = 0.8  # ink opacity; < 1 because brush lines are uneven
    # --- 4. paint loss ---
    loss_scale: float = 60.0  # size of flaked patches
    loss_amount: float = 0.08  # fraction of the wall, roughly, where plaster shows through
    # --- 5. plaster texture ---
    grain_fine: float = 0.04  # per-pixel grain amplitude (sand in the plaster)
    grain_coarse: float = 0.04  # amplitude of uneven, trowelled lightness
    grain_coarse_scale: float = 8.0  # size of the trowel unevenness
    # --- 6. craquelure ---
    crack_cell: float = 38.0  # typical crack-cell diameter
    crack_wiggle: float = 5.0  # displacement that makes cell borders wander like real cracks
    crack_strength: float = 0.55  # crack darkness (0 disables craquelure)
    crack_coverage: float = 0.5  # fraction of the wall that is cracked; cracks come in patches
    # --- the palette ---
    pigments: dict[str, tuple[int, int, int]] = field(default_factory=lambda: dict(PIGMENTS))
    # ^ sRGB 0-255; must keep "lead_white" and "ink" (tints, shades and outlines use them)

    def __post_init__(self) -> None:
        unit = {
            "tint": self.tint,
            "shade": self.shade,
            "fade": self.fade,
            "lead_darkening": self.lead_darkening,
            "ground_mix": self.ground_mix,
            "outline_quantile": self.outline_quantile,
            "outline_strength": self.outline_strength,
            "loss_amount": self.loss_amount,
            "crack_strength": self.crack_strength,
            "crack_coverage": self.crack_coverage,
        }
        for name, value in unit.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"MuralConfig.{name} must be in [0, 1], got {value}.")
        for name in ("smooth_sigma", "chroma_boost", "mode_filter_size", "outline_sigma"):
            if getattr(self, name) < 0:
                raise ValueError(f"MuralConfig.{name} must be >= 0, got {getattr(self, name)}.")
        for name in ("loss_scale", "grain_coarse_scale", "crack_cell"):
            if getattr(self, name) <= 0:
                raise ValueError(f"MuralConfig.{name} must be > 0, got {getattr(self, name)}.")
        missing = {"lead_white", "ink"} - set(self.pigments)
        if missing:
            raise ValueError(f"MuralConfig.pigments must include {sorted(missing)}.")


def palette_family(config: MuralConfig | None = None) -> tuple[list[str], np.ndarray]:
    """The aged palette every posterised pixel is painted with.

    Each chromatic pigment appears as tint, pure and shade; lead white and ink once each.

    Args:
        config (`MuralConfig`, *optional*): defaults to ``MuralConfig()``.

    Returns:
        `(names, colours)`: names like ``"azurite/tint"`` and a ``(K, 3)`` float array in [0, 1].
    """
    config = config or MuralConfig()
    pigments = config.pigments
    white = np.array(pigments["lead_white"], float) / 255
    ink = np.array(pigments["ink"], float) / 255
    names, colours = [], []
    for name, rgb in pigments.items():
        base = np.array(rgb, float) / 255
        if name in ("lead_white", "ink"):
            tones = {"": base}
        else:
            tones = {
                "/tint": (1 - config.tint) * base + config.tint * white,
                "": base,
                "/shade": (1 - config.shade) * base + config.shade * ink,
            }
        for suffix, rgb_tone in tones.items():
            names.append(name + suffix)
            colours.append(rgb_tone)
    return names, _age(np.array(colours), names, config)


def _age(colours: np.ndarray, names: list[str], config: MuralConfig) -> np.ndarray:
    """Stage 2: fade chroma in CIELAB, darken lead white, mix in the plaster ground."""
    lab = color.rgb2lab(colours[None])[0]
    lab[:, 1:] *= 1 - config.fade
    aged = np.clip(color.lab2rgb(lab[None])[0], 0, 1)
    lead = np.array([n.startswith("lead_white") for n in names])
    aged[lead] = (1 - config.lead_darkening) * aged[lead] + config.lead_darkening * (
        np.array(AGED_LEAD) / 255
    )
    ground = np.array(PLASTER) / 255
    return (1 - config.ground_mix) * aged + config.ground_mix * ground


def _upsampler(n_coarse: int, n: int, step: float) -> np.ndarray:
    """``(n, n_coarse)`` matrix doing 1-D cubic B-spline upsampling by ``step``."""
    return ndimage.zoom(np.eye(n_coarse), (step, 1), order=3, prefilter=False)[:n]


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Zero-mean, unit-std noise with features of about ``scale`` pixels (fast at any scale)."""
    h, w = shape
    if scale < 2:
        noise = ndimage.gaussian_filter(rng.standard_normal(shape), max(scale, 0.3) / 2)
    else:
        # Cubic upsampling of a coarse random grid gives blobs about `scale` across; done as two
        # small matrix products (separable), which is much faster than ndimage.zoom in 2-D.
        step = scale / 2
        ch, cw = int(np.ceil(h / step)) + 4, int(np.ceil(w / step)) + 4
        coarse = rng.standard_normal((ch, cw))
        noise = _upsampler(ch, h, step) @ coarse @ _upsampler(cw, w, step).T
    noise = noise - noise.mean()
    return noise / (noise.std() + 1e-12)


def _mode_filter(labels: np.ndarray, k: int, size: int) -> np.ndarray:
    """Majority vote of the labels in a ``size``×``size`` window (ties → lower label)."""
    if size < 2:
        return labels
    votes = np.stack(
        [ndimage.uniform_filter((labels == i).astype(np.float32), size) for i in range(k)]
    )
    return votes.argmax(0)


def _posterise(
    rgb: np.ndarray, palette: np.ndarray, config: MuralConfig, scale: float
) -> np.ndarray:
    """Stage 1: label every pixel with its nearest palette colour (CIELAB, chroma boosted)."""
    blurred = ndimage.gaussian_filter(rgb, (config.smooth_sigma * scale,) * 2 + (0,))
    lab = color.rgb2lab(blurred)
    lab[..., 1:] *= config.chroma_boost
    pal_lab = color.rgb2lab(palette[None])[0]
    # |x - p|^2 = |x|^2 - 2 x.p + |p|^2; |x|^2 is the same for every p, so it is dropped.
    dist = (pal_lab**2).sum(-1) - 2 * lab @ pal_lab.T
    labels = dist.argmin(-1)
    size = round(config.mode_filter_size * scale)
    return _mode_filter(labels, len(palette), size if size % 2 else size + 1)


def _outlines(rgb: np.ndarray, config: MuralConfig, scale: float) -> np.ndarray:
    """Stage 3: ink-line mask in [0, 1] along the strongest luminance edges."""
    lum = ndimage.gaussian_filter(
        rgb @ np.array([0.299, 0.587, 0.114]), config.outline_sigma * scale
    )
    mag = np.hypot(ndimage.sobel(lum, 0), ndimage.sobel(lum, 1))
    return (mag > np.quantile(mag, config.outline_quantile)).astype(float)


def _cracks(
    rng: np.random.Generator, shape: tuple[int, int], config: MuralConfig, scale: float
) -> np.ndarray:
    """Stage 6: mask in [0, 1] of crack lines (borders of jittered Voronoi cells), in patches."""
    h, w = shape
    cell = max(config.crack_cell * scale, 3.0)
    n_seeds = max(4, int(h * w / cell**2))
    seeds = rng.uniform((0, 0), (h, w), size=(n_seeds, 2))
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    wiggle = config.crack_wiggle * scale
    yy += wiggle * _smooth_noise(rng, shape, cell / 2)
    xx += wiggle * _smooth_noise(rng, shape, cell / 2)
    owner = cKDTree(seeds).query(np.stack([yy.ravel(), xx.ravel()], 1))[1].reshape(h, w)
    border = np.zeros(shape, bool)
    border[:-1] |= owner[:-1] != owner[1:]
    border[:, :-1] |= owner[:, :-1] != owner[:, 1:]
    region = _smooth_noise(rng, shape, 4 * cell)
    patches = region > np.quantile(region, 1 - config.crack_coverage)
    return (border & patches).astype(float)


def mural_stages(
    image: Image.Image, seed: int = 0, config: MuralConfig | None = None
) -> dict[str, Image.Image]:
    """Run the proxy filter and return every stage (for teaching); the last is the result.

    Args:
        image (`PIL.Image.Image`): any PIL image; converted to RGB first.
        seed (`int`, defaults to 0): seeds every random texture; the posterisation is seed-free.
        config (`MuralConfig`, *optional*): defaults to ``MuralConfig()``.

    Returns:
        `dict[str, PIL.Image.Image]`: ``"photo"``, ``"posterised"``, ``"outlined"``,
        ``"paint loss"``, ``"plaster"``, ``"mural proxy"`` (all RGB, same size as the input).
    """
    config = config or MuralConfig()
    rng = np.random.default_rng(seed)
    rgb = np.asarray(image.convert("RGB"), dtype=float) / 255
    h, w = rgb.shape[:2]
    scale = max(h, w) / 512
    names, palette = palette_family(config)
    stages = {"photo": rgb}

    out = palette[_posterise(rgb, palette, config, scale)]
    stages["posterised"] = out.copy()

    ink = palette[names.index("ink")]
    lines = _outlines(rgb, config, scale) * config.outline_strength
    out = out * (1 - lines[..., None]) + ink * lines[..., None]
    stages["outlined"] = out.copy()

    loss_field = _smooth_noise(rng, (h, w), config.loss_scale * scale)
    threshold = np.quantile(loss_field, 1 - config.loss_amount) if config.loss_amount else np.inf
    loss = np.clip((loss_field - threshold) * 4, 0, 1)  # soft-edged flakes
    out = out * (1 - loss[..., None]) + np.array(PLASTER) / 255 * loss[..., None]
    stages["paint loss"] = out.copy()

    grain = config.grain_fine * _smooth_noise(rng, (h, w), 1.0) + config.grain_coarse * (
        _smooth_noise(rng, (h, w), config.grain_coarse_scale * scale)
    )
    out = out * (1 + grain[..., None])
    stages["plaster"] = out.copy()

    if config.crack_strength > 0:
        crack = _cracks(rng, (h, w), config, scale) * config.crack_strength
        out = out * (1 - crack[..., None]) + np.array(CRACK) / 255 * crack[..., None]
    stages["mural proxy"] = out
    return {
        k: Image.fromarray((np.clip(v, 0, 1) * 255).round().astype(np.uint8))
        for k, v in stages.items()
    }


def mural_proxy(
    image: Image.Image, seed: int = 0, config: MuralConfig | None = None
) -> Image.Image:
    """Repaint ``image`` as a mineral-pigment mural **proxy** (see the module docstring).

    Deterministic: the same image, seed and config give identical pixels (and PNG bytes).

    Args:
        image (`PIL.Image.Image`): any PIL image; converted to RGB first.
        seed (`int`, defaults to 0): seeds the plaster, paint-loss and crack textures.
        config (`MuralConfig`, *optional*): defaults to ``MuralConfig()``.

    Returns:
        `PIL.Image.Image`: an RGB image of the same size.
    """
    return mural_stages(image, seed, config)["mural proxy"]
