"""Captions computed from the data when a figure shows nothing a reader could see.

A figure can be drawn correctly and still show nothing: two loss curves that lie inside each
other's step-to-step noise, a knob whose settings change the output by less than one grey level,
an output that is black, constant or noise, a "curve" of two points. The helpers here detect
those cases from the numbers and return one sentence (``""`` when the figure does show
something), which :func:`svdinst.figures.add_caption` writes under the figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image

LEVEL = 1.0 / 255.0  # one grey level of an 8-bit image: smaller changes are invisible
BLACK_MEAN = 0.02  # mean intensity below this (about 5 / 255) reads as black
NOISE_CORRELATION = 0.3  # neighbour correlation of photos is ~0.9; of white noise ~0
NOISE_HIGH_FREQUENCY = 0.5  # share of spectral energy in the upper half of frequencies
FEW_POINTS = 3  # a loss log with fewer points is no curve


def as_float_image(image: Image.Image | np.ndarray) -> np.ndarray:
    """An image as float64 H×W×C in [0, 1] (PIL, uint8 or float arrays; gray gets C = 1)."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    arr = arr / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float64)
    return arr[..., None] if arr.ndim == 2 else arr


def neighbour_correlation(image: Image.Image | np.ndarray) -> float:
    """Mean correlation of each pixel's luminance with its right and lower neighbour.

    Smooth natural images score near 1; independent per-pixel noise near 0. A constant image
    has no variance and scores 1 (it is not noise).
    """
    gray = as_float_image(image).mean(axis=2)
    pairs = [(gray[:, :-1], gray[:, 1:]), (gray[:-1, :], gray[1:, :])]
    corrs = []
    for a, b in pairs:
        if a.size < 2 or a.std() < 1e-12 or b.std() < 1e-12:
            corrs.append(1.0)
            continue
        corrs.append(float(np.corrcoef(a.ravel(), b.ravel())[0, 1]))
    return float(np.mean(corrs))


def high_frequency_share(image: Image.Image | np.ndarray) -> float:
    """Share of the luminance's spectral energy (mean removed) above half the Nyquist radius."""
    gray = as_float_image(image).mean(axis=2)
    power = np.abs(np.fft.fft2(gray - gray.mean())) ** 2
    fy = np.fft.fftfreq(gray.shape[0])[:, None]
    fx = np.fft.fftfreq(gray.shape[1])[None, :]
    radius = np.sqrt(fx**2 + fy**2)
    total = power.sum()
    return float(power[radius > 0.25].sum() / total) if total > 0 else 0.0


def degenerate_output(image: Image.Image | np.ndarray) -> str | None:
    """``"black"``, ``"constant"``, ``"noise"`` or `None` (the image shows something).

    - black: mean intensity < :data:`BLACK_MEAN`;
    - constant: the spatial std of every channel < one grey level (:data:`LEVEL`): one solid
      colour;
    - noise: neighbouring pixels nearly uncorrelated (< :data:`NOISE_CORRELATION`) *and* most
      spectral energy at high spatial frequencies (> :data:`NOISE_HIGH_FREQUENCY`).

    Args:
        image (`PIL.Image.Image` or `np.ndarray`): uint8, or float in [0, 1].
    """
    arr = as_float_image(image)
    if arr.mean() < BLACK_MEAN:
        return "black"
    if arr.std(axis=(0, 1)).max() < LEVEL:  # per channel: a solid colour is constant too
        return "constant"
    if min(arr.shape[:2]) >= 4 and (
        neighbour_correlation(arr) < NOISE_CORRELATION
        and high_frequency_share(arr) > NOISE_HIGH_FREQUENCY
    ):
        return "noise"
    return None


def degenerate_caption(images: Mapping[str, Image.Image | np.ndarray]) -> str:
    """One sentence naming the images that are black, constant or noise (``""`` if none).

    Args:
        images (`Mapping[str, image]`): label (e.g. ``"InST, photo 1"``) → image.
    """
    found: dict[str, list[str]] = {}
    for label, image in images.items():
        kind = degenerate_output(image)
        if kind is not None:
            found.setdefault(kind, []).append(label)
    if not found:
        return ""
    parts = [f"{kind}: {', '.join(labels)}" for kind, labels in found.items()]
    return (
        f"Detected automatically, {sum(map(len, found.values()))} of {len(images)} images show "
        f"nothing ({'; '.join(parts)}) — read them as failures of the method at this profile, "
        "not as a style."
    )


def knob_caption(
    images: Sequence[Image.Image | np.ndarray], values: Sequence[object], knob: str
) -> str:
    """A sentence when turning ``knob`` through ``values`` changes the output < 1/255 per pixel.

    Each image is compared with the first (mean absolute difference per pixel and channel).

    Args:
        images: the outputs, one per knob value, all the same size.
        values: the knob's settings, in the same order.
        knob (`str`): its name, e.g. ``"shift scale"``.
    """
    if len(images) < 2:
        return ""
    change = max(mean_difference(images[0], im) for im in images[1:])
    if change >= LEVEL:
        return ""
    return (
        f"Changing the {knob} from {values[0]} to {values[-1]} changes the output by at most "
        f"{change * 255:.2f} / 255 per pixel (mean |Δ|), below one grey level: the panels look "
        "the same because they are the same."
    )


def curves_overlap(a: Sequence[float], b: Sequence[float]) -> tuple[bool, float, float]:
    """Do two noisy series end at the same level within their spread?

    Compares the means of the last half of each series; the spread is the pooled sample std of
    those halves (step-to-step noise). Returns ``(overlap, gap, spread)``; overlap means
    ``gap < spread``.
    """
    ta = np.asarray(a, dtype=float)[len(a) // 2 :]
    tb = np.asarray(b, dtype=float)[len(b) // 2 :]
    gap = abs(float(ta.mean() - tb.mean()))
    variances = [np.var(t, ddof=1) for t in (ta, tb) if len(t) > 1]
    spread = float(np.sqrt(np.mean(variances))) if variances else 0.0
    return gap < spread, gap, spread


def series_caption(series: Mapping[str, tuple[Sequence[float], Sequence[float]]]) -> str:
    """Sentences for loss "curves" that are too short, or that overlap within noise.

    Args:
        series (`Mapping[str, (steps, values)]`): label → its logged steps and values.
    """
    notes = []
    short = [f"{k} ({len(v[1])})" for k, v in series.items() if len(v[1]) < FEW_POINTS]
    if short:
        notes.append(
            f"Too few logged points to show a trend — shown as points, not curves: "
            f"{', '.join(short)}."
        )
    long = {k: v[1] for k, v in series.items() if len(v[1]) >= FEW_POINTS}
    labels = list(long)
    same = []
    for i, x in enumerate(labels):
        for y in labels[i + 1 :]:
            overlap, gap, spread = curves_overlap(long[x], long[y])
            if overlap:
                same.append(f"{x} vs {y} (gap {gap:.3g}, spread {spread:.3g})")
    if same:
        notes.append(
            "These curves end at the same level within their step-to-step spread (mean of the "
            f"last half): {'; '.join(same)} — the figure shows no difference between them."
        )
    return " ".join(notes)


def mean_difference(a: Image.Image | np.ndarray, b: Image.Image | np.ndarray) -> float:
    """Mean |a − b| per pixel and channel, in [0, 1] (``inf`` when the sizes differ)."""
    fa, fb = as_float_image(a), as_float_image(b)
    return float(np.abs(fa - fb).mean()) if fa.shape == fb.shape else float("inf")


def sameness_caption(columns: Mapping[str, Sequence[Image.Image | np.ndarray]]) -> str:
    """Sentences when outputs do not depend on what should change them (``""`` otherwise).

    Names each method whose outputs for different photos are within one grey level per pixel
    (it ignores its input), and each pair of methods whose outputs are (they are the same).

    Args:
        columns (`Mapping[str, Sequence[image]]`): method label → its output for each photo.
    """
    notes = []
    ignoring = [
        label
        for label, images in columns.items()
        if len(images) > 1 and max(mean_difference(images[0], x) for x in images[1:]) < LEVEL
    ]
    if ignoring:
        notes.append(
            f"{', '.join(ignoring)}: the same image for every photo (< 1/255 per pixel apart) — "
            "the output does not depend on the input."
        )
    labels = list(columns)
    pairs = [
        f"{x} = {y}"
        for i, x in enumerate(labels)
        for y in labels[i + 1 :]
        if len(columns[x]) == len(columns[y])
        and max(mean_difference(p, q) for p, q in zip(columns[x], columns[y])) < LEVEL
    ]
    if pairs:
        notes.append(
            f"Identical within one grey level per pixel: {'; '.join(pairs)} — these columns "
            "show no difference between the methods."
        )
    return " ".join(notes)


def difference_caption(
    columns: Mapping[str, Sequence[Image.Image | np.ndarray]], reference: str, target: str
) -> str:
    """How far each column moved from ``reference`` compared with how far ``target`` is.

    For a "did training change anything?" figure: a trained column that sits a few grey levels
    from the untrained one while the ideal output (``target``) is far away shows no learning,
    however the eye reads it. Mean |Δ| per pixel and channel over the rows, in grey levels.

    Args:
        columns (`Mapping[str, Sequence[image]]`): label → one image per row (equal sizes).
        reference (`str`): the label the others are measured from (e.g. the base model).
        target (`str`): the label of the ideal output (e.g. the oracle).
    """

    def apart(a: str, b: str) -> float:
        return 255 * float(np.mean([mean_difference(x, y) for x, y in zip(columns[a], columns[b],
                                                                          strict=True)]))  # fmt: skip

    far = apart(reference, target)
    moved = {
        label: apart(reference, label) for label in columns if label not in (reference, target)
    }
    if not moved:
        return ""
    parts = ", ".join(f"{label} {d:.1f}" for label, d in moved.items())
    text = (f"Mean |Δ| from the {reference} per pixel (grey levels of 255): {parts}; "
            f"the {target} is {far:.1f} away.")  # fmt: skip
    if max(moved.values()) < 0.1 * far:
        text += (f" Every column is within a tenth of that distance of the {reference}: "
                 "what differs between them is too small to show a learned style.")  # fmt: skip
    return text
