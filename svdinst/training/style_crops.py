"""Training samples from the style image(s): random crops and flips, with cached VAE latents.

One ``torch.Generator`` drives every random choice, so a run (and a resumed run) sees exactly
the same samples. When augmentation allows it the crops are drawn *once* into a pool and their
VAE posteriors (mean and std) are encoded once; each step then samples ``mean + std·ε`` — the
same distribution as encoding every step (LDM's ``latent_dist.sample()``), at no VAE cost. Given
an ``encode`` function (InST's CLIP features), the pooled crops' features are computed once too,
so the image→token module sees the very crop the step denoises, as in InST's code.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from svdinst.data import (
    center_crop_resize,
    list_images,
    load_image,
    random_crop_flip,
    to_tensor,
)
from svdinst.errors import DataError


def gather_style_images(paths: Sequence[str | os.PathLike]) -> list[tuple[Path, Image.Image]]:
    """Load the style images named by files and/or folders (validated; DataError on bad input)."""
    files: list[Path] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            files.extend(list_images(path))
        elif path.exists():
            files.append(path)
        else:
            raise DataError(
                f"Style image '{path}' does not exist; pass image files or a folder of them "
                "(e.g. data/style after `svdinst data prepare data`)."
            )
    return [(f, load_image(f)) for f in files]


def to_batch(images: Sequence[Image.Image]) -> torch.Tensor:
    """PIL RGB crops → ``(B, 3, H, W)`` in [-1, 1] (the VAE's input range)."""
    return torch.stack([to_tensor(im) for im in images])


def vae_scale_factor(vae: Any) -> int:
    """Pixels per latent cell of a diffusers ``AutoencoderKL``: 2^(levels − 1) (SD: 8, pocket: 4)."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


class StyleSampler:
    """Draws a global batch of (latent, style index) per step.

    Args:
        images (`list[PIL.Image.Image]`): the style images.
        vae (`AutoencoderKL`): frozen; encodes crops (once, when they are pooled).
        resolution (`int`): crop size in pixels.
        augment (`str`): ``"crop-flip"``, ``"flip"`` or ``"none"``.
        min_crop (`float`): smallest crop as a fraction of the shorter side.
        crop_pool (`int`): crops per image drawn once and cached (``"crop-flip"`` only; 0 =
            a fresh crop, hence a VAE encode, every step).
        seed (`int`): seeds the crop generator (a NumPy generator, as
            :func:`svdinst.data.random_crop_flip` takes); the step sampling uses the caller's.
        encode (`Callable[[list[PIL.Image.Image]], torch.Tensor]`, *optional*): CLIP features of
            crops (:func:`svdinst.training.inversion.encode_images`); pooled crops are encoded
            once, fresh crops each step (:meth:`features`).
    """

    def __init__(
        self,
        images: Sequence[Image.Image],
        vae: Any,
        resolution: int,
        augment: str,
        min_crop: float,
        crop_pool: int,
        seed: int,
        encode: Callable[[list[Image.Image]], torch.Tensor] | None = None,
    ) -> None:
        self.images, self.vae, self.resolution = list(images), vae, resolution
        self.encode = encode
        self.augment, self.min_crop = augment, min_crop
        self.scaling = vae.config.scaling_factor
        self.cached = augment != "crop-flip" or crop_pool > 0
        self.rng = np.random.default_rng(seed + 1)  # crops; its state goes into checkpoints
        if not self.cached:
            return
        crops, owners = [], []
        for idx, image in enumerate(self.images):
            if augment == "crop-flip":
                variants = [self._crop(image) for _ in range(crop_pool)]
            else:
                base = center_crop_resize(image, resolution)
                variants = [base]
                if augment == "flip":
                    variants.append(ImageOps.mirror(base))
            crops += variants
            owners += [idx] * len(variants)
        self.owners = torch.tensor(owners)
        self.mean, self.std = self._encode(crops)
        self.pool_features = None if encode is None else self._features(crops)

    def _features(self, crops: Sequence[Image.Image]) -> torch.Tensor:
        chunks = [self.encode(list(crops[i : i + 8])) for i in range(0, len(crops), 8)]
        return torch.cat(chunks)

    def features(self, picks: Any) -> torch.Tensor:
        """CLIP features of the chosen crops (pool indices or fresh crops from :meth:`draw`)."""
        if self.cached:
            if self.pool_features is None:
                raise ValueError("StyleSampler was built without `encode`: no crop features.")
            return self.pool_features[picks.to(self.pool_features.device)]
        return self._features(picks)

    def _crop(self, image: Image.Image) -> Image.Image:
        return random_crop_flip(image, self.resolution, self.rng, min_scale=self.min_crop)

    @torch.no_grad()
    def _encode(self, crops: Sequence[Image.Image]) -> tuple[torch.Tensor, torch.Tensor]:
        param = next(self.vae.parameters())
        means, stds = [], []
        for start in range(0, len(crops), 8):
            pixels = to_batch(crops[start : start + 8]).to(param.device, param.dtype)
            dist = self.vae.encode(pixels).latent_dist
            means.append(dist.mean.float())
            stds.append(dist.std.float())
        return torch.cat(means), torch.cat(stds)

    def draw(self, batch: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """A global batch: (pool indices or fresh crops, style indices, ε of the VAE sample)."""
        if self.cached:
            picks = torch.randint(0, len(self.owners), (batch,), generator=gen)
            eps = torch.randn((batch, *self.mean.shape[1:]), generator=gen)
            return picks, self.owners[picks], eps
        owners = torch.randint(0, len(self.images), (batch,), generator=gen)
        crops = [self._crop(self.images[int(i)]) for i in owners]
        side = self.resolution // vae_scale_factor(self.vae)
        latent_shape = (self.vae.config.latent_channels, side, side)  # SD: 4 × 64 × 64 at 512 px
        eps = torch.randn((batch, *latent_shape), generator=gen)
        return crops, owners, eps

    def latents(self, picks: Any, eps: torch.Tensor, device: torch.device) -> torch.Tensor:
        """Sample ``z = (mean + std·ε)·scaling_factor`` for the chosen crops on ``device``."""
        if self.cached:
            mean, std = self.mean[picks], self.std[picks]
        else:
            mean, std = self._encode(picks)
        z = mean.to(device) + std.to(device) * eps.to(device)
        return z * self.scaling
