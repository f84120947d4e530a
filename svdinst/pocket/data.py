"""The pocket model's training data: random crops of offline photos with appearance captions.

Only photos that ship inside scikit-image, scikit-learn and matplotlib are used (no network), and
never a style image or a held-out test photo of the kit's default data set
(:data:`svdinst.data.default.PHOTOS` with split ``"test"``), so content preservation is measured
on photos the model never saw. Each crop gets a caption naming its subject and the appearance
change applied to it ("a blurry photo of a cat", "a grayscale photo of coins"): the UNet learns to
*read* its cross-attention for appearance, which is what a learned style token later writes into.
The appearance changes are plain photo edits (blur, contrast, tint, …), never the mural proxy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from svdinst.data.default import MAX_SIDE, PHOTOS, _package_file, _source_image
from svdinst.errors import DataError


@dataclass(frozen=True)
class PocketPhoto:
    """One training photo: where its bytes live, what it shows, and its credit and licence."""

    stem: str  # short name (model card, tests)
    subject: str  # what the caption calls it: "a photo of {subject}"
    module: str  # importable package holding the file
    relative: str  # path inside that package
    credit: str
    licence: str


def _content(stem: str, subject: str) -> PocketPhoto:
    """A training photo of the default data set's ``content/`` split (same credit, same licence)."""
    src = next(s for s in PHOTOS if s.stem == stem)
    if src.split != "content":
        raise ValueError(f"'{stem}' is a held-out {src.split} photo; it must not train the model.")
    return PocketPhoto(stem, subject, src.package, src.origin, src.credit, src.licence)


# The content photos plus every other real photograph bundled with scikit-image (no pooch
# download). Left out: synthetic images, text scans, silhouettes, the moon (no licence stated),
# the Middlebury motorcycle (research-use licence) and the held-out test photos.
POCKET_PHOTOS = (
    _content("astronaut", "an astronaut"),
    _content("chelsea", "a cat"),
    _content("rocket", "a rocket"),
    _content("china", "a temple"),
    PocketPhoto(
        "camera",
        "a man with a camera",
        "skimage",
        "data/camera.png",
        "Lav Varshney (photographer)",
        "CC0",
    ),
    PocketPhoto(
        "coins",
        "coins",
        "skimage",
        "data/coins.png",
        "Brooklyn Museum Collection (Greek coins from Pompeii)",
        "no known copyright restrictions",
    ),
    PocketPhoto(
        "clock",
        "a clock",
        "skimage",
        "data/clock_motion.png",
        "Stefan van der Walt (photographer)",
        "public domain",
    ),
    PocketPhoto(
        "hubble",
        "galaxies",
        "skimage",
        "data/hubble_deep_field.jpg",
        "NASA / Hubble eXtreme Deep Field (HubbleSite)",
        "public domain",
    ),
    PocketPhoto(
        "ihc",
        "stained tissue",
        "skimage",
        "data/ihc.png",
        "Center for Microscopy And Molecular Imaging (CMMI)",
        "no known copyright restrictions",
    ),
    PocketPhoto(
        "retina",
        "a retina",
        "skimage",
        "data/retina.jpg",
        "Mikael Häggström (Wikimedia Commons)",
        "CC0 1.0",
    ),
    PocketPhoto(
        "brick", "a brick wall", "skimage", "data/brick.png", "CC0Textures (Bricks25)", "CC0"
    ),
    PocketPhoto(
        "grass", "grass", "skimage", "data/grass.png", "linolafett on DeviantArt (Grass-01)", "CC0"
    ),
    PocketPhoto("gravel", "gravel", "skimage", "data/gravel.png", "CC0Textures (Gravel04)", "CC0"),
)

# Appearance edits and the words the caption uses for them (plain photo edits, never a mural).
APPEARANCES = (
    "grayscale",
    "blurry",
    "high-contrast",
    "faded",
    "dark",
    "bright",
    "warm-toned",
    "blue-tinted",
    "noisy",
)


def load_pocket_photo(photo: PocketPhoto, max_side: int = MAX_SIDE) -> Image.Image:
    """The photo's pixels (RGB), downscaled like the default data set so its longest side ≤ 512.

    Args:
        photo (`PocketPhoto`): which photo.
        max_side (`int`, defaults to 512): longest side after a Lanczos downscale.
    """
    content = next((s for s in PHOTOS if s.stem == photo.stem and s.split == "content"), None)
    if content is not None:
        image = _source_image(content)
    else:
        path = _package_file(photo.module, photo.relative)
        if not path.is_file():
            raise DataError(
                f"Pocket training photo '{path}' is missing from the installed {photo.module}; "
                f"reinstall it (`pip install --force-reinstall {photo.module}`)."
            )
        with Image.open(path) as im:
            image = im.convert("RGB")
    if max(image.size) > max_side:
        image = ImageOps.contain(image, (max_side, max_side), Image.Resampling.LANCZOS)
    return image


def is_grayscale(image: Image.Image) -> bool:
    """True when all three channels are equal (a grey photo stored as RGB)."""
    a = np.asarray(image)
    return bool((a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all())


def caption(subject: str, appearance: str | None, grayscale: bool) -> str:
    """The caption of one crop, e.g. ``"a blurry grayscale photo of coins"``.

    Args:
        subject (`str`): what the photo shows.
        appearance (`str`, *optional*): one of :data:`APPEARANCES`, or `None` for none.
        grayscale (`bool`): the photo itself is grey (said even without the grayscale edit).
    """
    words = [appearance] if appearance and appearance != "grayscale" else []
    if grayscale or appearance == "grayscale":
        words.append("grayscale")
    words.append("photo")
    article = "an" if words[0][0] in "aeiou" else "a"
    return f"{article} {' '.join(words)} of {subject}"


def style_caption(subject: str, style: str) -> str:
    """The caption of a crop of a styled photo: ``"a cat in woodcut"`` (pocket-v2)."""
    return f"{subject} in {style}"


def all_captions(
    photos: tuple[PocketPhoto, ...], grays: list[bool], styles: tuple[str, ...] = ()
) -> list[str]:
    """Every caption the sampler can emit (the empty one for classifier-free guidance first)."""
    found = {""}
    for photo, gray in zip(photos, grays):
        for appearance in (None, *APPEARANCES):
            found.add(caption(photo.subject, appearance, gray))
        found.update(style_caption(photo.subject, style) for style in styles)
    return sorted(found)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a (1, 3, H, W) image, reflect-padded."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).repeat(3, 1, 1, 1)
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k.view(3, 1, 1, -1), groups=3)
    return F.conv2d(x, k.view(3, 1, -1, 1), groups=3)


def apply_appearance(x: torch.Tensor, appearance: str | None, noise: torch.Tensor) -> torch.Tensor:
    """Apply one appearance edit to a (1, 3, H, W) image in [0, 1].

    Args:
        x (`torch.Tensor`): the crop.
        appearance (`str`, *optional*): one of :data:`APPEARANCES`; `None` returns ``x``.
        noise (`torch.Tensor`): standard normal values shaped like ``x`` (used by ``"noisy"``;
            drawn by the caller so the sampler's generator alone decides every pixel).
    """
    if appearance is None:
        return x
    luma = (x * x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    if appearance == "grayscale":
        y = luma.expand_as(x)
    elif appearance == "blurry":
        y = _blur(x, sigma=x.shape[-1] / 48)  # 2 px at 96 px: clearly soft, subject still legible
    elif appearance == "high-contrast":
        y = (x - mean) * 1.7 + mean
    elif appearance == "faded":
        y = (x - mean) * 0.45 + mean + 0.15
    elif appearance == "dark":
        y = x * 0.5
    elif appearance == "bright":
        y = 1 - (1 - x) * 0.5
    elif appearance == "warm-toned":
        y = x * x.new_tensor([1.15, 1.0, 0.75]).view(1, 3, 1, 1)
    elif appearance == "blue-tinted":
        y = x * x.new_tensor([0.75, 0.95, 1.2]).view(1, 3, 1, 1)
    elif appearance == "noisy":
        y = x + 0.08 * noise
    else:
        raise ValueError(f"Unknown appearance {appearance!r}; choose from {APPEARANCES}.")
    return y.clamp(0, 1)
