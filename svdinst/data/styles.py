"""Procedural *training* styles of the pocket world: deterministic filters of a photo.

The pocket model only learns a style space if it sees styles while it is pretrained. These
filters make them from the offline photos (numpy, scipy and scikit-image only; same photo + seed →
identical pixels), and the pretraining data captions each crop "… in <style>". None of them is
the held-out mural proxy (:mod:`svdinst.data.mural`): each paints with its *own* palette or the
photo's, far from the proxy's aged mineral pigments (:func:`pigment_share`, tested in
``tests/data/test_styles.py``), so learning the proxy later is learning something the base model
never saw. pocket-v2 and v3 learned the first seven (:data:`STYLES_V2`); pocket-v4 adds three
that each use one of the proxy's techniques alone (flat fills inside ink lines, a crack network,
paint flaking off a wall), so the proxy differs from the space in its palette and in combining them.

Sizes are pixels at a 512 px longest side and scale with the image, like the mural proxy.
Every filter takes and returns an RGB ``PIL.Image`` of the same size; :data:`STYLES` maps each
caption name to its filter and :func:`apply_style` dispatches.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage import color

from svdinst.data.mural import MuralConfig, _cracks, _mode_filter, _smooth_noise

_LUMA = np.array([0.299, 0.587, 0.114])


def _rgb(image: Image.Image) -> tuple[np.ndarray, float]:
    """Float RGB in [0, 1] and the size scale (longest side / 512)."""
    rgb = np.asarray(image.convert("RGB"), dtype=float) / 255
    return rgb, max(rgb.shape[:2]) / 512


def _image(rgb: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8))


def _luma(rgb: np.ndarray, sigma: float = 0.0) -> np.ndarray:
    lum = rgb @ _LUMA
    return ndimage.gaussian_filter(lum, sigma) if sigma > 0 else lum


def _edges(lum: np.ndarray, quantile: float) -> np.ndarray:
    """Boolean mask of the strongest ``1 - quantile`` share of Sobel gradient magnitudes."""
    mag = np.hypot(ndimage.sobel(lum, 0), ndimage.sobel(lum, 1))
    return mag > np.quantile(mag, quantile)


def _equalise(lum: np.ndarray) -> np.ndarray:
    """Rank-normalise to [0, 1] so every photo uses all tone levels (dark photos too)."""
    ranks = lum.ravel().argsort().argsort().reshape(lum.shape)
    return ranks / max(1, lum.size - 1)


def woodcut(image: Image.Image, seed: int = 0) -> Image.Image:
    """Black-ink woodcut on white paper: three carved tones and diagonal gouge lines.

    Dark tones print solid ink, light tones are bare paper, mid tones get parallel carved lines
    (the gouge marks of a relief print); strong photo edges are cut as thick black contours.
    Palette: ink black and paper white only.

    Args:
        image (`PIL.Image.Image`): the photo.
        seed (`int`, defaults to 0): shifts the gouge lines' phase.
    """
    rgb, s = _rgb(image)
    tone = _equalise(_luma(rgb, 1.5 * s))
    h, w = tone.shape
    yy, xx = np.mgrid[0:h, 0:w]
    period = max(3.0, 7 * s)
    phase = np.random.default_rng(seed).uniform(0, period)
    stripes = ((xx + yy + phase) % period) < period * 0.45
    ink = (tone < 0.33) | ((tone < 0.66) & stripes) | _edges(_luma(rgb, 2 * s), 0.9)
    paper, black = np.array([0.97, 0.97, 0.95]), np.array([0.04, 0.04, 0.05])
    return _image(np.where(ink[..., None], black, paper))


def pencil_sketch(image: Image.Image, seed: int = 0) -> Image.Image:
    """Graphite pencil on grey-white paper: a colour-dodge sketch with hatching and grain.

    The classic dodge blend (grey / (1 - blurred inverted grey)) keeps only lines where tone
    changes; shadows get light cross-hatching and the paper gets a fine grain. Grey only.

    Args:
        image (`PIL.Image.Image`): the photo.
        seed (`int`, defaults to 0): seeds the paper grain.
    """
    rgb, s = _rgb(image)
    grey = _luma(rgb, 0.5 * s)
    blurred = ndimage.gaussian_filter(1 - grey, 6 * s)
    sketch = np.clip(grey / np.maximum(1 - blurred, 1e-3), 0, 1) ** 2.5
    h, w = grey.shape
    yy, xx = np.mgrid[0:h, 0:w]
    period = max(3.0, 6 * s)
    hatch = (((xx - yy) % period) < 1.2).astype(float) * (grey < 0.35)
    rng = np.random.default_rng(seed)
    grain = 0.035 * _smooth_noise(rng, (h, w), 1.0)
    out = (sketch - 0.25 * hatch) * (0.93 + grain)
    return _image(np.repeat(out[..., None], 3, axis=2))


def watercolour(image: Image.Image, seed: int = 0) -> Image.Image:
    """Watercolour wash: soft, pale colour pools with darker rims on white paper.

    Colours are smoothed and pushed to pale, cool-leaning washes (diluted pigment on white), the
    rim of each wash is darkened where colour changes (pigment collects at a drying edge) and a
    blotchy granulation modulates the density. No outlines, no texture of its own but paper.

    Args:
        image (`PIL.Image.Image`): the photo.
        seed (`int`, defaults to 0): seeds the granulation and the paper.
    """
    rgb, s = _rgb(image)
    soft = ndimage.gaussian_filter(rgb, (4 * s, 4 * s, 0))
    lab = color.rgb2lab(soft)
    lab[..., 0] = 70 + 0.3 * lab[..., 0]  # diluted: light washes, the paper shines through
    lab[..., 1:] *= 1.4
    lab[..., 2] -= 12  # cool-leaning (ultramarine, viridian) washes
    wash = np.clip(color.lab2rgb(lab), 0, 1)
    h, w = rgb.shape[:2]
    rng = np.random.default_rng(seed)
    density = 1 + 0.12 * _smooth_noise(rng, (h, w), 24 * s)
    edge = ndimage.gaussian_filter(_edges(_luma(soft), 0.85).astype(float), 1.2 * s)
    edge = edge / max(edge.max(), 1e-6)
    paper = 1 + 0.02 * _smooth_noise(rng, (h, w), 1.0)
    out = 1 - (1 - wash) * density[..., None] * (1 + 0.8 * edge[..., None])
    return _image(out * paper[..., None])


def halftone(image: Image.Image, seed: int = 0) -> Image.Image:
    """Four-colour halftone print: cyan, magenta, yellow and black dot screens on white.

    Each CMYK separation is printed as round dots on its own screen angle (15°, 75°, 0°, 45°);
    a dot's area follows the ink coverage. Palette: pure process inks on white paper.

    Args:
        image (`PIL.Image.Image`): the photo.
        seed (`int`, defaults to 0): offsets the screens.
    """
    rgb, s = _rgb(image)
    rgb = ndimage.gaussian_filter(rgb, (s, s, 0))
    k = 1 - rgb.max(-1)
    cmy = (1 - rgb - k[..., None]) / np.maximum(1 - k[..., None], 1e-6)
    h, w = k.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    cell = max(4.0, 9 * s)
    offset = np.random.default_rng(seed).uniform(0, cell, 2)
    inks = {  # process ink colours in sRGB
        "c": (np.array([0.0, 0.68, 0.94]), cmy[..., 0], 15),
        "m": (np.array([0.93, 0.0, 0.55]), cmy[..., 1], 75),
        "y": (np.array([1.0, 0.95, 0.0]), cmy[..., 2], 0),
        "k": (np.array([0.05, 0.05, 0.05]), k, 45),
    }
    out = np.ones_like(rgb)
    for ink, cover, angle in inks.values():
        a = np.deg2rad(angle)
        u = (xx + offset[0]) * np.cos(a) + (yy + offset[1]) * np.sin(a)
        v = -(xx + offset[0]) * np.sin(a) + (yy + offset[1]) * np.cos(a)
        du, dv = (u % cell) / cell - 0.5, (v % cell) / cell - 0.5
        dot = np.hypot(du, dv) < np.sqrt(np.clip(cover, 0, 1) / np.pi)  # dot area = coverage
        out = np.where(dot[..., None], out * ink, out)  # inks multiply like overprinting
    return _image(out)


# Screen-print palette, dark to light: nothing in it is an earth or mineral pigment.
PRINT_PALETTE = np.array(
    [(40, 16, 92), (230, 30, 140), (0, 190, 200), (255, 222, 0), (255, 250, 240)], float
)


def flat_print(image: Image.Image, seed: int = 0) -> Image.Image:
    """Flat-palette screen print: five tone bands in deep violet, magenta, cyan, yellow, white.

    Tones (equalised luminance) are cut into five flat bands, each printed in one ink of
    :data:`PRINT_PALETTE`, with a slight misregistration of the darkest layer as in a real
    screen print. Palette: those five inks only.

    Args:
        image (`PIL.Image.Image`): the photo.
        seed (`int`, defaults to 0): the misregistration direction.
    """
    rgb, s = _rgb(image)
    tone = _equalise(_luma(rgb, 2 * s))
    bands = np.minimum((tone * len(PRINT_PALETTE)).astype(int), len(PRINT_PALETTE) - 1)
    bands = ndimage.median_filter(bands, size=max(3, int(5 * s) | 1))
    shift = np.random.default_rng(seed).integers(-2, 3, 2) * max(1, round(s))
    dark = np.roll(bands == 0, tuple(shift), axis=(0, 1))
    bands = np.where(dark, 0, bands)
    return _image(PRINT_PALETTE[bands] / 255)


def mosaic(image: Image.Image, seed: int = 0) -> Image.Image:
    """Glass-tile mosaic: jittered square tesserae of saturated colour set in white grout.

    Each tile takes the mean colour of its cell, pushed to vivid glass (chroma × 1.8, lightness
    raised), and the joints between tiles are bright grout lines.

    Args:
        image (`PIL.Image.Image`): the photo.
        seed (`int`, defaults to 0): jitters the tile centres.
    """
    rgb, s = _rgb(image)
    h, w = rgb.shape[:2]
    cell = max(4.0, 14 * s)
    rng = np.random.default_rng(seed)
    gy, gx = np.mgrid[cell / 2 : h : cell, cell / 2 : w : cell]
    centres = np.stack([gy.ravel(), gx.ravel()], 1) + rng.uniform(-0.3, 0.3, (gy.size, 2)) * cell
    yy, xx = np.mgrid[0:h, 0:w]
    # Chebyshev-distance Voronoi cells look like cut square tiles.
    owner = cKDTree(centres).query(np.stack([yy.ravel(), xx.ravel()], 1), p=np.inf)[1]
    owner = owner.reshape(h, w)
    counts = np.bincount(owner.ravel(), minlength=len(centres))[:, None]
    means = np.stack(
        [np.bincount(owner.ravel(), rgb[..., c].ravel(), len(centres)) for c in range(3)], 1
    ) / np.maximum(counts, 1)
    lab = color.rgb2lab(means[None])[0]
    lab[:, 0] = 35 + 0.6 * lab[:, 0]
    lab[:, 1:] *= 1.8
    tiles = np.clip(color.lab2rgb(lab[None])[0], 0, 1)[owner]
    grout = np.zeros((h, w), bool)
    grout[:-1] |= owner[:-1] != owner[1:]
    grout[:, :-1] |= owner[:, :-1] != owner[:, 1:]
    grout = ndimage.binary_dilation(grout, iterations=max(1, round(s)))
    return _image(np.where(grout[..., None], np.array([0.93, 0.94, 0.96]), tiles))


def blueprint(image: Image.Image, seed: int = 0) -> Image.Image:
    """Cyanotype blueprint: white line drawing of the photo's edges on Prussian blue.

    Edges at two scales become white lines; a faint square grid and a slightly uneven blue
    ground (the sun print's exposure) complete it. Palette: Prussian blue and white.

    Args:
        image (`PIL.Image.Image`): the photo.
        seed (`int`, defaults to 0): seeds the ground's unevenness.
    """
    rgb, s = _rgb(image)
    lines = _edges(_luma(rgb, 1.0 * s), 0.88) | _edges(_luma(rgb, 3 * s), 0.93)
    h, w = lines.shape
    yy, xx = np.mgrid[0:h, 0:w]
    step = max(8, round(32 * s))
    grid = (yy % step == 0) | (xx % step == 0)
    rng = np.random.default_rng(seed)
    ground = (
        np.array([0.06, 0.22, 0.52]) * (1 + 0.08 * _smooth_noise(rng, (h, w), 40 * s))[..., None]
    )
    out = np.where(grid[..., None], 0.75 * ground + 0.25, ground)
    return _image(np.where(lines[..., None], np.array([0.92, 0.95, 1.0]), out))


def cel_shading(image: Image.Image, seed: int = 0) -> Image.Image:
    """Cel shading: the photo's own colours in a few flat, vivid fills inside thick black lines.

    The photo is cut into six colours of its own (PIL's median cut), each pushed to a bright
    cartoon fill (chroma × 2, lightness raised), flattened by a majority filter and outlined in
    pure black along strong edges. Palette: the photo's colours made vivid, and black.

    Args:
        image (`PIL.Image.Image`): the photo.
        seed (`int`, defaults to 0): unused (the filter has no texture); kept for the common
            signature.
    """
    rgb, s = _rgb(image)
    soft = _image(ndimage.gaussian_filter(rgb, (1.5 * s, 1.5 * s, 0)))
    k = 6  # fills
    quant = soft.quantize(k, method=Image.Quantize.MEDIANCUT)
    labels = _mode_filter(np.asarray(quant), k, max(3, int(5 * s) | 1))
    fills = np.asarray(quant.getpalette()[: 3 * k], float).reshape(k, 3) / 255
    lab = color.rgb2lab(fills[None])[0]
    lab[:, 0] = 45 + 0.6 * lab[:, 0]
    lab[:, 1:] *= 2.0
    out = np.clip(color.lab2rgb(lab[None])[0], 0, 1)[labels]
    lines = ndimage.binary_dilation(_edges(_luma(rgb, 1.5 * s), 0.9), iterations=max(1, round(s)))
    return _image(np.where(lines[..., None], 0.0, out))


def craquelure(image: Image.Image, seed: int = 0) -> Image.Image:
    """Craquelure: the photo on a glaze that has crazed all over into a net of dark cracks.

    A dense, wandering crack network (the borders of jittered cells, as in old glaze or
    varnish) darkens the photo's own colours along every crack, and each crack-bounded cell is
    lifted slightly at its centre (the cupped flakes of a crazed surface). Palette: the photo's,
    darkened along the cracks; no colour of its own.

    Args:
        image (`PIL.Image.Image`): the photo.
        seed (`int`, defaults to 0): seeds the crack network.
    """
    rgb, s = _rgb(image)
    net = MuralConfig(crack_cell=30.0, crack_wiggle=4.0, crack_coverage=1.0)
    cracks = _cracks(np.random.default_rng(seed), rgb.shape[:2], net, s)
    cup = ndimage.distance_transform_edt(cracks == 0)
    cup = np.clip(cup / max(3.0, 8 * s), 0, 1)  # 0 at a crack, 1 inside a flake
    out = rgb * (0.8 + 0.25 * cup[..., None])
    return _image(out * (1 - 0.85 * cracks[..., None]))


def peeling_paint(image: Image.Image, seed: int = 0) -> Image.Image:
    """Peeling paint: the photo painted on a concrete wall, flaking off in large patches.

    Large soft-edged patches of paint have fallen away and bare neutral-grey concrete shows (about a
    quarter of the wall), each flake casting a thin dark rim; the paint keeps the photo's
    colours and the whole wall a coarse sandy grain. Palette: the photo's and neutral concrete grey.

    Args:
        image (`PIL.Image.Image`): the photo.
        seed (`int`, defaults to 0): seeds the flakes and the grain.
    """
    rgb, s = _rgb(image)
    h, w = rgb.shape[:2]
    rng = np.random.default_rng(seed)
    field_ = _smooth_noise(rng, (h, w), 45 * s)
    loss = np.clip((field_ - np.quantile(field_, 0.75)) * 6, 0, 1)
    rim = ndimage.gaussian_filter(loss, 1.5 * s) - loss  # just outside a flake's edge
    grain = 1 + 0.06 * _smooth_noise(rng, (h, w), 1.0) + 0.05 * _smooth_noise(rng, (h, w), 6 * s)
    concrete = np.array([0.72, 0.72, 0.72]) * grain[..., None]
    out = rgb * (1 - loss[..., None]) + concrete * loss[..., None]
    return _image(out * (1 - 1.5 * np.clip(rim, 0, 1)[..., None]) * grain[..., None])


# Caption name → filter. The caption of a styled crop is "… in <name>"; order is fixed so a
# style's index (the pretraining sampler draws indices) never changes between versions.
STYLES: dict[str, Callable[[Image.Image, int], Image.Image]] = {
    "woodcut": woodcut,
    "pencil sketch": pencil_sketch,
    "watercolour": watercolour,
    "halftone": halftone,
    "flat print": flat_print,
    "mosaic": mosaic,
    "blueprint": blueprint,
    # pocket-v4: the proxy's *techniques* (flat fills in outlines, cracks, paint loss), each
    # alone and never in its palette — so the held-out mural differs from the space in its
    # palette and in how it combines them.
    "cel shading": cel_shading,
    "craquelure": craquelure,
    "peeling paint": peeling_paint,
}
STYLES_V2 = tuple(STYLES)[:7]  # pocket-v2 and v3 were pretrained on these seven
# The styles that use one of the mural proxy's techniques (alone, in another palette), and which.
PROXY_TECHNIQUES = {
    "cel shading": "flat fills inside ink lines",
    "craquelure": "a crack network",
    "peeling paint": "paint flaking off a wall",
}


def apply_style(image: Image.Image, style: str, seed: int = 0) -> Image.Image:
    """Apply one of :data:`STYLES` by its caption name.

    Args:
        image (`PIL.Image.Image`): the photo.
        style (`str`): a key of :data:`STYLES`.
        seed (`int`, defaults to 0): the filter's texture seed.
    """
    if style not in STYLES:
        raise ValueError(f"Unknown style {style!r}; choose from {sorted(STYLES)}.")
    return STYLES[style](image, seed)


def pigment_share(images: list[Image.Image], palette: np.ndarray, tolerance: float = 5.0) -> float:
    """Share of pixels within ``tolerance`` (CIE76 ΔE in CIELAB) of a palette colour.

    Measures whether images *paint with* a palette: the mural proxy's own images score about
    0.75 against its aged pigment palette (:func:`svdinst.data.mural.palette_family`), the
    unfiltered photos about 0.03, and no training style may score above the photos (tested).

    Args:
        images (`list[PIL.Image.Image]`): RGB images (any sizes).
        palette (`np.ndarray`): ``(k, 3)`` sRGB colours in [0, 1].
        tolerance (`float`, defaults to 5.0): ΔE radius; about 2 is a just-noticeable difference.
    """
    px = np.concatenate([np.asarray(im.convert("RGB")).reshape(-1, 3) for im in images]) / 255
    lab = color.rgb2lab(px[None])[0]
    pal = color.rgb2lab(np.asarray(palette, float)[None])[0]
    nearest = np.linalg.norm(lab[:, None] - pal[None], axis=-1).min(1)
    return float((nearest < tolerance).mean())
