"""Training utilities every baseline shares: image batches, tensor↔PIL, checkpoints, the fit loop.

One place for the plumbing so each method file holds only its paper's architecture and losses:

- :func:`resolve_device` — ``"auto"`` → CUDA when present, else CPU.
- :class:`ImageSampler` — an image folder (read with :mod:`svdinst.data`) → random crops/flips
  at a given size as tensors, with a checkpointable random generator.
- :func:`to_tensor` / :func:`to_pil` / :func:`translate_each` — PIL ↔ tensors in a chosen value
  range, and per-image inference at each photo's own size (reflect-padded to a multiple).
- :func:`checkpoint_objects` / :func:`latest_checkpoint` / :func:`restore_objects` (from
  :mod:`svdinst.baselines.training`, re-exported here) — atomic, resumable checkpoints.
- :func:`fit_loop` — the generic loop: resume, tqdm bar, the loss log, periodic checkpoints.
- :class:`ImagePool` (Shrivastava et al. 2017, used by CycleGAN) and the linear-decay schedule
  (CycleGAN's constant-then-linear-to-zero learning-rate schedule).
"""

from __future__ import annotations

import functools
import os
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from svdinst.baselines.training import (  # noqa: F401  re-exported for the method files
    checkpoint_objects,
    fit_loop,
    latest_checkpoint,
    restore_objects,
)
from svdinst.data import list_images, load_image
from svdinst.device import default_device
from svdinst.errors import SvdinstError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto"``/``None`` into ``cuda`` when available (else ``cpu``); check other names.

    Args:
        device (`str`, `torch.device` or `None`, defaults to ``"auto"``): e.g. ``"cpu"``,
            ``"cuda"``, ``"cuda:1"``.
    """
    if device is None or str(device) == "auto":
        return torch.device(default_device())
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SvdinstError(
            f"Device {str(device)!r} was asked for but CUDA is not available; "
            "use --device cpu (or auto)."
        )
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so a run is repeatable."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------- tensors <-> PIL


def to_tensor(
    images: Image.Image | Iterable[Image.Image], value_range: tuple[float, float] = (-1.0, 1.0)
) -> torch.Tensor:
    """PIL RGB image(s) of one size → a float tensor ``(N, 3, H, W)`` in ``value_range``.

    Args:
        images: one PIL image or an iterable of same-sized ones.
        value_range (`tuple`, defaults to ``(-1, 1)``): ``(-1, 1)`` for tanh generators (GANs),
            ``(0, 1)`` for VGG-based methods.
    """
    if isinstance(images, Image.Image):
        images = [images]
    arrays = [np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0 for im in images]
    if len({a.shape for a in arrays}) != 1:
        raise ValueError("to_tensor needs images of one size; resize or use translate_each.")
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    lo, hi = value_range
    return x * (hi - lo) + lo


def to_pil(x: torch.Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> list[Image.Image]:
    """Inverse of :func:`to_tensor`: ``(N, 3, H, W)`` (or ``(3, H, W)``) → PIL images (clamped)."""
    if x.dim() == 3:
        x = x[None]
    lo, hi = value_range
    x = ((x.detach().float().cpu() - lo) / (hi - lo)).clamp(0, 1)
    arr = (x.permute(0, 2, 3, 1).numpy() * 255.0 + 0.5).astype(np.uint8)
    return [Image.fromarray(a) for a in arr]


@torch.no_grad()
def translate_each(
    images: Iterable[Image.Image],
    fn: Callable[[torch.Tensor, int], torch.Tensor],
    device: torch.device | str,
    *,
    multiple: int = 4,
    value_range: tuple[float, float] = (-1.0, 1.0),
) -> list[Image.Image]:
    """Run ``fn(x, i)`` on each image at its own size; return same-sized PIL images.

    Each image is reflect-padded on the bottom/right to a multiple of ``multiple`` (the network's
    total down-sampling factor) and the output is cropped back, so any photo size works.

    Args:
        images: PIL images (any sizes).
        fn: maps a ``(1, 3, H', W')`` tensor on ``device`` (and the image index) to an output of
            the same shape, in ``value_range``.
        device: where ``fn`` runs.
        multiple (`int`, defaults to 4): pad height and width to a multiple of this.
        value_range (`tuple`, defaults to ``(-1, 1)``): see :func:`to_tensor`.
    """
    out = []
    for i, image in enumerate(images):
        x = to_tensor(image, value_range).to(device)
        h, w = x.shape[-2:]
        ph, pw = (-h) % multiple, (-w) % multiple
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        y = fn(x, i)[..., :h, :w]
        out.extend(to_pil(y, value_range))
    return out


# ----------------------------------------------------------------------------- data


class ImageSampler:
    """Random training crops from one image folder (CycleGAN's ``resize_and_crop`` + flip).

    Every image is read once (through :func:`svdinst.data.list_images` / ``load_image``, which
    name bad files), its shorter side resized to ``load_size``; :meth:`sample` then draws
    random ``size``×``size`` crops with random horizontal flips.

    Args:
        folder (`str` or `os.PathLike`): a folder of images.
        size (`int`): crop size in px.
        load_size (`int`, *optional*): shorter side before cropping; defaults to
            ``round(size * 286 / 256)`` — CycleGAN's 286→256 jitter, scaled.
        flip (`bool`, defaults to `True`): random horizontal flips.
        seed (`int`, defaults to 0): seeds the sampler's own generator (saved in checkpoints).
        value_range (`tuple`, defaults to ``(-1, 1)``): see :func:`to_tensor`.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        size: int,
        *,
        load_size: int | None = None,
        flip: bool = True,
        seed: int = 0,
        value_range: tuple[float, float] = (-1.0, 1.0),
    ) -> None:
        self.folder = Path(folder)
        self.size = int(size)
        self.load_size = int(load_size or round(size * 286 / 256))
        if self.load_size < self.size:
            raise ValueError(f"load_size {self.load_size} must be ≥ crop size {self.size}.")
        self.flip = flip
        self.paths = list_images(self.folder)
        self.images = [
            to_tensor(resize_shorter(load_image(p), self.load_size), value_range)[0]
            for p in self.paths
        ]
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, batch_size: int = 1) -> torch.Tensor:
        """A ``(batch_size, 3, size, size)`` batch of random crops (images drawn with replacement)."""
        idx = torch.randint(len(self.images), (batch_size,), generator=self.generator)
        return torch.stack([self.crop(int(i)) for i in idx])

    def sample_with_index(self, batch_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Like :meth:`sample`, also returning which image each crop came from."""
        idx = torch.randint(len(self.images), (batch_size,), generator=self.generator)
        return torch.stack([self.crop(int(i)) for i in idx]), idx

    def crop(self, index: int) -> torch.Tensor:
        """One random crop (and maybe flip) of image ``index``."""
        img = self.images[index]
        h, w = img.shape[-2:]
        top = int(torch.randint(h - self.size + 1, (1,), generator=self.generator))
        left = int(torch.randint(w - self.size + 1, (1,), generator=self.generator))
        out = img[:, top : top + self.size, left : left + self.size]
        if self.flip and bool(torch.rand((), generator=self.generator) < 0.5):
            out = out.flip(-1)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.generator.set_state(state["generator"])


def resize_shorter(image: Image.Image, side: int) -> Image.Image:
    """Resize so the shorter side is ``side`` px (bicubic), keeping the aspect ratio."""
    w, h = image.size
    scale = side / min(w, h)
    return image.resize((max(side, round(w * scale)), max(side, round(h * scale))), Image.BICUBIC)


# ------------------------------------------------------------- arbitrary-style helpers


def style_pair_samplers(
    content_dir: str | os.PathLike,
    style_dir: str | os.PathLike,
    resolution: int,
    load_size: int,
    seed: int,
) -> tuple[ImageSampler, ImageSampler]:
    """(content, style) crop samplers of the arbitrary-style methods (AdaIN, StyTr²).

    As published, images are resized so the shorter side is ``load_size`` (0 → 2 × resolution,
    the papers' 512 → 256 ratio), cropped to ``resolution`` without flips, in [0, 1].
    """
    load = load_size or 2 * resolution

    def sampler(folder: str | os.PathLike, offset: int) -> ImageSampler:
        return ImageSampler(
            folder, resolution, load_size=load, flip=False, seed=seed + offset,
            value_range=(0.0, 1.0),
        )  # fmt: skip

    return sampler(content_dir, 0), sampler(style_dir, 1)


def require_style(method: str, style: list[Image.Image] | None) -> list[Image.Image]:
    """The style images an arbitrary-style method needs at inference, or a one-line error."""
    if not style:
        raise SvdinstError(f"{method} transfers arbitrary styles: pass style images (--style DIR).")
    return list(style)


def style_tensor_for(style: list[Image.Image], i: int, photo: Image.Image) -> torch.Tensor:
    """Style image ``i % len(style)`` in [0, 1], its shorter side matched to ``photo``'s
    (style statistics depend on scale)."""
    return to_tensor(resize_shorter(style[i % len(style)], min(photo.size)), (0.0, 1.0))


# ----------------------------------------------------------------------------- GAN helpers


class ImagePool:
    """History of generated images for the discriminator (Shrivastava et al. 2017, §2.3).

    Until ``size`` images are stored, each new image is stored and returned; afterwards, with
    probability ½ a stored image is returned (and replaced by the new one), else the new one.
    ``size = 0`` disables the pool. Its own generator keeps checkpoints exact.
    """

    def __init__(self, size: int = 50, seed: int = 0) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Return a batch of the same shape mixing ``images`` with stored ones."""
        if self.size == 0:
            return images
        if self.images and self.images[0].device != images.device:  # e.g. restored on the CPU
            self.images = [im.to(images.device) for im in self.images]
        out = []
        for image in images.detach():
            image = image[None]
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif bool(torch.rand((), generator=self.generator) < 0.5):
                k = int(torch.randint(self.size, (1,), generator=self.generator))
                out.append(self.images[k].clone())
                self.images[k] = image.clone()
            else:
                out.append(image)
        return torch.cat(out)

    def state_dict(self) -> dict[str, Any]:
        return {"images": [im.cpu() for im in self.images], "generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.images = list(state["images"])  # moved to the batches' device on the next query
        self.generator.set_state(state["generator"])


def linear_decay(step: int, *, total: int, decay_fraction: float = 0.5) -> float:
    """CycleGAN's schedule as a ``LambdaLR`` factor: 1 for the first ``(1 − decay_fraction)`` of
    ``total`` steps, then linearly down to 0 at ``total`` (the paper: 100 epochs constant + 100
    epochs of decay)."""
    total = max(int(total), 1)
    start = round(total * (1.0 - decay_fraction))
    if step < start:
        return 1.0
    return max(0.0, 1.0 - (step - start) / max(total - start, 1))


def linear_decay_scheduler(
    optimizer: torch.optim.Optimizer, total: int, decay_fraction: float = 0.5
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` with :func:`linear_decay` (stepped once per training step).

    The factor is a ``functools.partial``, whose (empty) ``__dict__`` is all ``LambdaLR`` saves:
    a resumed run follows *its own* ``total``, so ``--resume --steps`` can also extend a run.
    """
    factor = functools.partial(linear_decay, total=total, decay_fraction=decay_fraction)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def set_requires_grad(modules: torch.nn.Module | Iterable[torch.nn.Module], flag: bool) -> None:
    """Freeze/unfreeze parameters (discriminators are frozen during the generator step)."""
    if isinstance(modules, torch.nn.Module):
        modules = [modules]
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(flag)


@contextmanager
def fixed_seed(seed: int) -> Iterator[None]:
    """Run a block (e.g. building a network) under ``torch.manual_seed(seed)`` without disturbing
    the caller's random state, so a baseline's initial weights never depend on what ran before."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def init_normal(module: torch.nn.Module, std: float = 0.02) -> None:
    """DCGAN/pix2pix initialisation: conv weights ~ N(0, std), biases 0, norm scales ~ N(1, std)."""
    for m in module.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
            torch.nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                torch.nn.init.zeros_(m.bias)
        elif isinstance(m, (torch.nn.BatchNorm2d, torch.nn.InstanceNorm2d)) and m.affine:
            torch.nn.init.normal_(m.weight, 1.0, std)
            torch.nn.init.zeros_(m.bias)


class GeneratorState:
    """Adapter so a bare ``torch.Generator`` can be checkpointed like a module."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"state": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        self.generator.set_state(state["state"])


def center_square(x: torch.Tensor, size: int) -> torch.Tensor:
    """The central square of a ``(3, H, W)`` image tensor, area-resized to ``size``×``size``."""
    h, w = x.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = x[..., top : top + side, left : left + side]
    return F.interpolate(square[None], size=(size, size), mode="area")[0]
