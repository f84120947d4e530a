"""Does the pocket VAE keep the held-out mural proxy's texture? PSNR/SSIM and a figure.

Style learning can only reach what the autoencoder can draw: if the VAE blurs the proxy's ink
outlines and cracks away, no token or spectral shift can bring them back. The check encodes and
decodes (posterior mean) square crops of ``mural_proxy(test photo)`` — proxies of the held-out
test photos, which the pretraining never saw in any form — at the model's resolution, and
reports the paired PSNR/SSIM (:func:`svdinst.evaluation.oracle.oracle_distance`) beside a
reference that keeps exactly the latent grid's information without learning anything: a
bicubic downscale by the VAE's factor f and back. ``svdinst pocket vae-check DIR`` writes both
and the figure (proxy | reconstruction | 3× zoom of each).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from svdinst.data import to_image, to_tensor
from svdinst.data.default import PHOTOS, _source_image
from svdinst.data.mural import mural_proxy
from svdinst.evaluation.oracle import oracle_distance
from svdinst.figures import image_grid, save_figure
from svdinst.formats.atomic import write_json_atomic
from svdinst.pocket.experiment import photo_crops
from svdinst.pocket.report import VAE_CHECK_NAME


def held_out_proxies(resolution: int, per_photo: int = 4, seed: int = 0) -> dict[str, Image.Image]:
    """Square crops of the mural proxies of the held-out test photos, at ``resolution`` px.

    Args:
        resolution (`int`): side of each crop after a Lanczos resize.
        per_photo (`int`, defaults to 4): crops per test photo (the centre square first).
        seed (`int`, defaults to 0): crop positions.
    """
    proxies = {
        p.stem: mural_proxy(_source_image(p), seed=100 + k)
        for k, p in enumerate(s for s in PHOTOS if s.split == "test")
    }
    crops, _ = photo_crops(proxies, per_photo, min_crop=0.3, seed=seed)
    size = (resolution, resolution)
    return {name: im.resize(size, Image.Resampling.LANCZOS) for name, im in crops.items()}


@torch.no_grad()
def reconstruct(vae: torch.nn.Module, images: list[Image.Image]) -> list[Image.Image]:
    """Encode (posterior mean) and decode each image with ``vae`` in float32 on its device."""
    vae = vae.float().eval()
    device = next(vae.parameters()).device
    out = []
    for image in images:
        x = to_tensor(image)[None].to(device)
        out.append(to_image(vae.decode(vae.encode(x).latent_dist.mean).sample[0]))
    return out


def resize_reference(images: list[Image.Image], factor: int) -> list[Image.Image]:
    """Bicubic down by ``factor`` and back up: what the latent grid's size alone would keep."""
    return [
        im.resize((im.width // factor, im.height // factor), Image.Resampling.BICUBIC).resize(
            im.size, Image.Resampling.BICUBIC
        )
        for im in images
    ]


def vae_texture_check(
    vae: torch.nn.Module, resolution: int, *, per_photo: int = 4
) -> tuple[dict[str, Any], dict[str, tuple[Image.Image, Image.Image]]]:
    """PSNR/SSIM of the VAE's reconstructions of held-out proxy crops, and of the resize reference.

    Args:
        vae (`torch.nn.Module`): a diffusers ``AutoencoderKL``.
        resolution (`int`): crop side (the model's resolution).
        per_photo (`int`, defaults to 4): crops per test photo.

    Returns:
        `(metrics, pairs)`: ``metrics`` holds ``vae`` and ``resize_reference`` (each ``psnr``,
        ``ssim``, ``n``), ``factor`` and ``resolution``; ``pairs`` maps crop name → (proxy,
        reconstruction).
    """
    targets = held_out_proxies(resolution, per_photo)
    names = list(targets)
    recons = reconstruct(vae, [targets[n] for n in names])
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    resized = resize_reference([targets[n] for n in names], factor)

    def score(images: list[Image.Image]) -> dict[str, Any]:
        result = oracle_distance({n: [im] for n, im in zip(names, images)}, targets)
        return {k: result[k] for k in ("psnr", "ssim", "n")}

    metrics = {
        "vae": score(recons),
        "resize_reference": score(resized),
        "factor": factor,
        "resolution": resolution,
        "images": "mural proxies of the held-out test photos (never seen in pretraining)",
    }
    return metrics, {n: (targets[n], r) for n, r in zip(names, recons)}


def _zoom(image: Image.Image, fraction: float = 1 / 3) -> Image.Image:
    """The central ``fraction`` of ``image``, enlarged back to its size with nearest pixels."""
    w, h = image.size
    cw, ch = round(w * fraction), round(h * fraction)
    box = ((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch)
    return image.crop(box).resize(image.size, Image.Resampling.NEAREST)


def vae_texture_figure(pairs: dict[str, tuple[Image.Image, Image.Image]], rows: int = 3) -> Any:
    """Proxy | reconstruction | zoom of each, for the centre crop of each test photo."""
    chosen = [n for n in pairs if n.endswith("-c0")][:rows] or list(pairs)[:rows]
    cells = []
    for name in chosen:
        proxy, recon = pairs[name]
        cells += [proxy, recon, _zoom(proxy), _zoom(recon)]
    titles = ["held-out proxy", "VAE reconstruction", "proxy (3× zoom)", "reconstruction (3×)"]
    labels = [n.removesuffix("-c0") for n in chosen]
    return image_grid(cells, ncols=4, titles=titles, row_labels=labels)


def run_vae_check(
    model: str | os.PathLike,
    out: str | os.PathLike,
    *,
    name: str = VAE_CHECK_NAME,
    resolution: int | None = None,
) -> dict[str, Any]:
    """Load a pocket folder's VAE, run :func:`vae_texture_check`, write ``<out>/<name>.json/.png``.

    Args:
        model (`str` or `os.PathLike`): a pocket model folder (or ``"pocket"``).
        out (`str` or `os.PathLike`): folder for the metrics JSON and the figure.
        name (`str`, defaults to ``"pocket_vae_texture"``): file stem of both.
        resolution (`int`, *optional*): crop side; defaults to the VAE config's ``sample_size``.
    """
    from svdinst.device import default_device
    from svdinst.models.loading import load_components

    vae = load_components(model, ["vae"]).vae.to(default_device())
    resolution = resolution or int(vae.config.sample_size)
    metrics, pairs = vae_texture_check(vae, resolution)
    metrics["model"] = str(model)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / f"{name}.json", metrics)
    metrics["figure"] = str(save_figure(vae_texture_figure(pairs), name, out, close=True))
    return metrics
