"""Does the pocket UNet denoise photos it never saw as well as the photos it was trained on?

img2img keeps a photo's content only if the UNet can take the noise back off *that* photo. A
small UNet pretrained on crops of 13 photos may instead have learned those 13 photos: it then
denoises them sharply and turns any other photo into blobs, and a style token has nothing left
to act on. The check measures that gap directly. For square crops of each photo at the model's
resolution it encodes the crop (posterior mean), noises the latent to timestep ``t`` with fixed
noise, asks the UNet for the noise under the empty prompt, and decodes its one-step estimate of
the clean latent, x̂₀ = (z_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t. PSNR/SSIM of that decoded estimate to the crop,
beside the VAE round trip alone (the ceiling), are reported for two groups: the pretraining
photos and the held-out test photos. ``svdinst pocket denoise-check MODEL`` writes them; :mod:`svdinst.pocket.denoise_report`
turns them into the report's table and reading.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from svdinst.data import to_image, to_tensor
from svdinst.data.default import PHOTOS, _source_image
from svdinst.evaluation.oracle import oracle_distance
from svdinst.formats.atomic import write_json_atomic
from svdinst.models.clip_vocab import padded_ids
from svdinst.pocket.data import POCKET_PHOTOS, load_pocket_photo
from svdinst.pocket.denoise_report import DENOISE_CHECK_NAME
from svdinst.pocket.experiment import photo_crops

TIMESTEPS = (100, 200, 400)  # img2img strength 0.1 / 0.2 / 0.4 starts about here (of 1,000)


def check_crops(
    resolution: int, per_photo: int = 4, seed: int = 0
) -> dict[str, dict[str, Image.Image]]:
    """Square crops of the pretraining photos and of the held-out test photos, at ``resolution``.

    Args:
        resolution (`int`): side of each crop after a Lanczos resize.
        per_photo (`int`, defaults to 4): crops per photo (the centre square first).
        seed (`int`, defaults to 0): crop positions.

    Returns:
        `dict`: ``{"pretraining photos": {name: crop}, "held-out test photos": {name: crop}}``.
    """
    groups = {
        "pretraining photos": {p.stem: load_pocket_photo(p) for p in POCKET_PHOTOS},
        "held-out test photos": {p.stem: _source_image(p) for p in PHOTOS if p.split == "test"},
    }
    size = (resolution, resolution)
    out = {}
    for group, photos in groups.items():
        crops, _ = photo_crops(photos, per_photo, min_crop=0.5, seed=seed)
        out[group] = {n: im.resize(size, Image.Resampling.LANCZOS) for n, im in crops.items()}
    return out


@torch.no_grad()
def one_step_estimates(
    comps: Any, images: Mapping[str, Image.Image], timesteps: Sequence[int], seed: int = 0
) -> dict[str, dict[str, Image.Image]]:
    """The VAE round trip and the decoded one-step x̂₀ at each timestep, for each image.

    Args:
        comps (`Components`): with ``vae``, ``unet``, ``text_encoder``, ``tokenizer`` and
            ``scheduler`` (float32 modules on one device).
        images (`Mapping[str, PIL.Image]`): name → square image at the model's resolution.
        timesteps (`Sequence[int]`): DDPM timesteps to noise to.
        seed (`int`, defaults to 0): the noise of image ``k`` comes from seed ``seed + k``.

    Returns:
        `dict`: ``"vae"`` and ``"t<t>"`` → name → decoded image.
    """
    vae, unet, scheduler = comps.vae, comps.unet, comps.scheduler
    device = next(unet.parameters()).device
    scale = vae.config.scaling_factor
    empty = comps.text_encoder(padded_ids(comps.tokenizer, [""]).to(device))[0]
    alphas = scheduler.alphas_cumprod.to(device)
    out: dict[str, dict[str, Image.Image]] = {"vae": {}, **{f"t{t}": {} for t in timesteps}}
    for k, (name, image) in enumerate(images.items()):
        z = vae.encode(to_tensor(image)[None].to(device)).latent_dist.mean * scale
        out["vae"][name] = to_image(vae.decode(z / scale).sample[0])
        g = torch.Generator().manual_seed(seed + k)
        for t in timesteps:
            noise = torch.randn(z.shape, generator=g).to(device)
            a = alphas[t]
            z_t = a.sqrt() * z + (1 - a).sqrt() * noise
            eps = unet(z_t, t, encoder_hidden_states=empty).sample
            z0 = (z_t - (1 - a).sqrt() * eps) / a.sqrt()
            out[f"t{t}"][name] = to_image(vae.decode(z0 / scale).sample[0])
    return out


def denoise_check(
    comps: Any, resolution: int, *, timesteps: Sequence[int] = TIMESTEPS, per_photo: int = 4
) -> dict[str, Any]:
    """PSNR/SSIM of the VAE round trip and of the one-step x̂₀, per group of photos.

    Args:
        comps (`Components`): see :func:`one_step_estimates`.
        resolution (`int`): crop side (the model's resolution).
        timesteps (`Sequence[int]`, defaults to (100, 200, 400)): noise levels.
        per_photo (`int`, defaults to 4): crops per photo.

    Returns:
        `dict`: ``groups`` → group → ``"vae"`` / ``"t<t>"`` → ``{"psnr", "ssim", "n"}``, plus
        ``timesteps`` and ``resolution``.
    """
    groups = {}
    for group, crops in check_crops(resolution, per_photo).items():
        estimates = one_step_estimates(comps, crops, timesteps)
        groups[group] = {}
        for key, images in estimates.items():
            d = oracle_distance({n: [im] for n, im in images.items()}, crops)
            groups[group][key] = {m: d[m] for m in ("psnr", "ssim", "n")}
    return {"groups": groups, "timesteps": list(timesteps), "resolution": resolution}


def run_denoise_check(
    model: str | os.PathLike, out: str | os.PathLike, *, name: str = DENOISE_CHECK_NAME
) -> dict[str, Any]:
    """Load a pocket folder, run :func:`denoise_check`, write ``<out>/<name>.json``.

    Args:
        model (`str` or `os.PathLike`): a pocket model folder (or ``"pocket"``).
        out (`str` or `os.PathLike`): folder for the JSON.
        name (`str`, defaults to ``"pocket_denoise_check"``): its file stem.
    """
    from svdinst.device import default_device
    from svdinst.models.loading import load_components

    parts = ("vae", "unet", "text_encoder", "tokenizer", "scheduler")
    comps = load_components(model, parts, device=default_device())
    metrics = denoise_check(comps, int(comps.vae.config.sample_size))
    metrics["model"] = str(model)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / f"{name}.json", metrics)
    return metrics
