"""Stylize photos with a trained run: img2img or InST's stochastic inversion, many seeds.

The report's protocol: every test photo, 10 seeds, strength 0.8, DDIM 50 steps. A run folder's
spectral shifts are *merged* into plain weights (:func:`svdinst.training.runs.load_run`), so sampling costs
exactly what vanilla SD costs; ``shift_scale`` (s in W = U·diag(relu(σ + s·δ))·Vᵀ, SVDiff eq. 1)
is the style-strength knob. Two ways to start from the photo:

* ``img2img`` — SDEdit (Meng et al. 2022) through diffusers' ``StableDiffusionImg2ImgPipeline``:
  noise the photo's latent to the step ``strength`` of the way up the DDIM schedule with fresh
  Gaussian noise, then denoise with classifier-free guidance (7.5 by default, diffusers' value).
* ``inst`` — InST's "stochastic inversion" (Zhang et al. 2023, Sec. 3.3; its ``InST.ipynb``):
  noise the latent to t = ⌊strength·T⌋ (T = 1000) with Gaussian noise, let the UNet *predict* that
  noise under the style prompt, and re-noise the clean latent with the prediction
  (z_t = √ᾱ_t·z₀ + √(1−ᾱ_t)·ε̂) — the start keeps more of the photo than random noise would. Then
  DDIM over the last ⌊strength·steps⌋ steps with guidance 10 (InST's scale). Optionally AdaIN
  first moves the content latent's per-channel mean/std to the style image's.

Outputs: an outputs folder (:class:`svdinst.formats.outputs.OutputsFolder`: one image per photo
and seed, and the settings file), written by :func:`svdinst.stylize.folder.stylize_folder`.
Seed k uses its own ``torch.Generator(seed=k)`` for every photo, so any output can be
regenerated alone and batching (:meth:`Stylizer.stylize_batch` mixes photos in one batch)
changes a result by float round-off at most.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline
from PIL import Image

import svdinst
from svdinst.data import load_image, to_tensor
from svdinst.errors import RunFolderError, SvdinstError
from svdinst.formats.run_folder import RunFolder
from svdinst.models.loading import load_components
from svdinst.stylize.config import AUTO, CPU_BATCH, StylizeConfig, auto_batch_size
from svdinst.stylize.speed import (
    SpeedOptions,
    apply_speed_options,
    compact_on_device,
    free_gpu_memory,
    release_cached_memory,
)
from svdinst.training.inversion import load_learned_embeds
from svdinst.training.runs import check_run, load_run
from svdinst.training.style_crops import vae_scale_factor


def adain(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """AdaIN (Huang & Belongie 2017, eq. 8): content's per-channel mean/std replaced by style's.

    Args:
        content (`torch.Tensor`): N×C×H×W; style (`torch.Tensor`): 1×C×h×w or N×C×h×w.
        eps (`float`, defaults to 1e-5): added to the variance (as InST).
    """
    c_mean, s_mean = content.mean((2, 3), keepdim=True), style.mean((2, 3), keepdim=True)
    c_std = (content.var((2, 3), keepdim=True) + eps).sqrt()
    s_std = (style.var((2, 3), keepdim=True) + eps).sqrt()
    return (content - c_mean) / c_std * s_std + s_mean


class Stylizer:
    """Stable Diffusion with a run applied (token + merged shifts, or a LoRA file).

    Args:
        model (`str`, *optional*): ``"tiny"``, a hub id or a folder; defaults to the run's model.
        run (`str` or `os.PathLike`, *optional*): a training run folder; without one the bare
            model is used (``prompt`` must then be given to :meth:`stylize`).
        lora (`str` or `os.PathLike`, *optional*): a LoRA file exported from the run
            (``svdinst export-lora``) applied with stock ``load_lora_weights`` instead of the
            run's shift file; the run still provides the learned token.
        shift_scale (`float`, defaults to 1.0): s in W = U·diag(relu(σ + s·δ))·Vᵀ; for a LoRA,
            the LoRA scale (equal to s while no σ + s·δ is clipped at 0).
        merge (`bool`, defaults to `True`): fold the shifts into plain weights (fast; the result
            equals the unmerged model's).
        device (`str`, defaults to ``"cpu"``), dtype (`torch.dtype`, defaults to float32).
        speed (`SpeedOptions`, *optional*): channels-last, fused attention projections,
            ``torch.compile`` (all off by default; see :mod:`svdinst.stylize.speed`).
    """

    def __init__(
        self,
        model: str | None = None,
        run: str | os.PathLike | None = None,
        *,
        lora: str | os.PathLike | None = None,
        shift_scale: float = 1.0,
        merge: bool = True,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
        speed: SpeedOptions | None = None,
    ) -> None:
        config = check_run(run) if run is not None else {}
        if model is None:
            if run is None:
                raise SvdinstError("Stylizer needs a model or a run folder (whose model is used).")
            model = config["model"]
        parts = ["vae", "text_encoder", "tokenizer", "scheduler"]
        comps = load_components(model, parts, device=device, dtype=dtype)
        shifts = lora is None and config.get("mode") in ("svdiff", "svd-inst")
        # Merged shifts are applied to the float32 weights training decomposed (the same SVD
        # cache file, so δ lands on the singular vectors it was trained on, and no float64 SVD of
        # a float16 copy), merged in float32, and only then cast to ``dtype``.
        unet_dtype = torch.float32 if shifts and merge else dtype
        comps.unet = load_components(model, ["unet"], device=device, dtype=unet_dtype).unet
        self.model, self.run, self.lora, self.shift_scale = str(model), run, lora, shift_scale
        self.prompt: str | None = None
        self.mode = "base"
        if run is not None and lora is None:
            info = load_run(run, comps, shift_scale=shift_scale, merge=merge)
            self.prompt, self.mode = info.prompt, info.mode
            if unet_dtype != dtype:  # merged in float32 (plain weights now): cast them
                comps.unet.to(dtype)
                compact_on_device(comps.unet, device)  # stock's memory layout (speed.py)
        elif run is not None:  # token from the run, UNet change from the LoRA file
            token = load_learned_embeds(
                RunFolder(run).learned_embeds, comps.tokenizer, comps.text_encoder
            )
            self.prompt, self.mode = config["prompt_template"].format(token), config["mode"]
        self.style_files = config.get("style", [])
        self.pipe = StableDiffusionImg2ImgPipeline(
            vae=comps.vae,
            text_encoder=comps.text_encoder,
            tokenizer=comps.tokenizer,
            unet=comps.unet,
            scheduler=DDIMScheduler.from_config(comps.scheduler.config, clip_sample=False),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        self.pipe.set_progress_bar_config(disable=True)
        if lora is not None:
            if not Path(lora).is_file():
                raise RunFolderError(f"LoRA file '{lora}' does not exist; `svdinst export-lora`.")
            self.pipe.load_lora_weights(str(lora), adapter_name="svdinst")
            self.pipe.fuse_lora(lora_scale=shift_scale)  # vanilla-SD cost, like merged shifts
            self.mode += "+lora"
        self.device, self.dtype = device, dtype
        self.speed = speed or SpeedOptions()
        apply_speed_options(self.pipe, self.speed)
        # The float32 UNet, the SVD factors and the merge's temporaries are garbage now, but
        # CUDA's caching allocator would keep their segments (~10 GiB for SD-1.4) reserved,
        # sized for them and not for sampling's activations (issue 15 measured 8.3 vs stock
        # 4.6 GiB at batch 4), and batch_size="auto" would see them as used.
        release_cached_memory()
        self.native_resolution = int(comps.unet.config.sample_size) * vae_scale_factor(comps.vae)

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Free the model now, GPU memory included, so the next Stylizer has the card to itself
        (two SD-1.4 models at once nearly fill a T4). ``with ctx.stylizer(run) as st:`` calls it."""
        self.pipe = None
        release_cached_memory()

    def __enter__(self) -> Stylizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require_open(self) -> None:
        if self.pipe is None:
            raise SvdinstError("This Stylizer was closed (close()); make a new one.")

    # ------------------------------------------------------------------ sampling

    def batch_size(self, config: StylizeConfig) -> int:
        """``config.batch_size``, with ``"auto"`` resolved: from the free memory of this
        process's GPU (:func:`~svdinst.stylize.config.auto_batch_size`), 4 on a CPU."""
        if config.batch_size != AUTO:
            return int(config.batch_size)
        if torch.device(self.device).type != "cuda":
            return CPU_BATCH
        free = free_gpu_memory(self.device)
        return auto_batch_size(free, config.resolution or self.native_resolution)

    def _latent(self, x: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
        """VAE latent of one image per generator (or one image for all), sampled per generator
        (as InST's encode_first_stage)."""
        vae = self.pipe.vae
        dist = vae.encode(x.to(self.device, self.dtype)).latent_dist
        eps = torch.stack([torch.randn(dist.mean.shape[1:], generator=g) for g in generators])
        z = dist.mean + dist.std * eps.to(self.device, self.dtype)
        return z * vae.config.scaling_factor

    @torch.no_grad()
    def _inst(
        self, x: torch.Tensor, prompt: str, cfg: StylizeConfig, gens: Sequence[torch.Generator]
    ) -> list[Image.Image]:
        """InST's stochastic inversion + DDIM (module docstring); one sample per generator."""
        from diffusers import DDIMScheduler  # heavy: see __init__

        pipe, n, g = self.pipe, len(gens), cfg.guidance_scale
        cond, uncond = pipe.encode_prompt(prompt, self.device, n, g > 1.0, negative_prompt="")
        z0 = self._latent(x, gens)
        if cfg.adain_style is not None:
            style = to_tensor(load_image(cfg.adain_style), x.shape[-1])[None]
            # One style sample per seed: every generator draws the same stream in any batch.
            z0 = adain(z0, self._latent(style, gens))
        sched = DDIMScheduler.from_config(pipe.scheduler.config, clip_sample=False)
        sched.set_timesteps(cfg.steps, device=self.device)
        t_inv = min(
            int(cfg.strength * sched.config.num_train_timesteps),
            sched.config.num_train_timesteps - 1,
        )
        t_inv = torch.tensor([t_inv] * n, device=self.device)
        noise = torch.stack([torch.randn(z0.shape[1:], generator=gen) for gen in gens])
        noisy = sched.add_noise(z0, noise.to(z0), t_inv)
        eps_hat = pipe.unet(noisy, t_inv, encoder_hidden_states=cond).sample  # InST: no CFG here
        z = sched.add_noise(z0, eps_hat, t_inv)  # re-noise with the predicted noise
        for t in sched.timesteps[len(sched.timesteps) - int(cfg.strength * cfg.steps) :]:
            if g > 1.0:
                e_u, e_c = pipe.unet(
                    torch.cat([z, z]), t, encoder_hidden_states=torch.cat([uncond, cond])
                ).sample.chunk(2)
                e = e_u + g * (e_c - e_u)
            else:
                e = pipe.unet(z, t, encoder_hidden_states=cond).sample
            z = sched.step(e, t, z).prev_sample  # eta = 0: deterministic DDIM
        images = pipe.vae.decode(z / pipe.vae.config.scaling_factor).sample
        return self._to_pil(pipe.image_processor.postprocess(images, output_type="np"))

    def _img2img_latents(
        self,
        tensors: dict[int, torch.Tensor],
        images: Sequence[Image.Image],
        gens: Sequence[torch.Generator],
    ) -> torch.Tensor:
        """The scaled VAE latent of each pair, as diffusers' img2img would sample it, with each
        distinct photo encoded once.

        Given a generator per image, ``StableDiffusionImg2ImgPipeline.prepare_latents`` runs
        the VAE encoder once per *pair*, at batch 1, and samples each latent with the pair's
        generator; a batch of the report's run holds 32 pairs of 4 or 5 photos (10 seeds each).
        Here the encoder runs once per photo on the input the pipeline would have encoded (its
        ``image_processor``), at the same batch 1, and each pair samples from its photo's
        distribution with its own generator, in the pipeline's order: the same kernels, random
        draws and generator states, so the same bits (``tests/stylize``).
        """
        pipe = self.pipe
        dists = {}
        for key, t in tensors.items():
            x = pipe.image_processor.preprocess((t[None] + 1) / 2)  # the pipeline wants [0, 1]
            dists[key] = pipe.vae.encode(x.to(self.device, self.dtype)).latent_dist
        z = torch.cat([dists[id(im)].sample(gen) for im, gen in zip(images, gens)])
        return pipe.vae.config.scaling_factor * z

    def _to_pil(self, images: np.ndarray) -> list[Image.Image]:
        """The decoded batch as images, refused when not finite: NaN would save as black."""
        if not np.isfinite(images).all():
            source = f"run '{self.run}'" if self.run is not None else f"model '{self.model}'"
            raise SvdinstError(
                f"The decoded images are not finite (NaN/inf) with the {source}: its weights "
                "or settings overflow (retrain it with finite settings; on a GPU try "
                "--device cpu to rule out float16)."
            )
        return self.pipe.image_processor.numpy_to_pil(images)

    @torch.no_grad()
    def stylize(
        self, image: Image.Image, seeds: Sequence[int], config: StylizeConfig | None = None
    ) -> list[Image.Image]:
        """Stylize one photo once per seed, :meth:`batch_size` seeds per batch.

        Args:
            image (`PIL.Image.Image`): the content photo (center-cropped to the resolution).
            seeds (`Sequence[int]`): one output per seed; seed k → ``torch.Generator`` seeded k.
            config (`StylizeConfig`, *optional*): defaults to ``StylizeConfig()``.

        Returns:
            `list[PIL.Image.Image]`: one image per seed, in order.
        """
        cfg = config or StylizeConfig()
        size = self.batch_size(cfg)
        out: list[Image.Image] = []
        for start in range(0, len(seeds), size):
            chunk = list(seeds[start : start + size])
            out += self.stylize_batch([image] * len(chunk), chunk, cfg)
        return out

    @torch.no_grad()
    def stylize_batch(
        self,
        images: Sequence[Image.Image],
        seeds: Sequence[int],
        config: StylizeConfig | None = None,
    ) -> list[Image.Image]:
        """Stylize the pairs ``(images[i], seeds[i])`` in ONE batch (photos may differ).

        Pair i draws all its noise from ``torch.Generator`` seeded ``seeds[i]`` (never from the
        photo or its place in the batch), so a pair's image depends on the batch it shares only
        by float round-off, and equal batches give equal bits.

        Args:
            images (`Sequence[PIL.Image.Image]`): content photos (center-cropped).
            seeds (`Sequence[int]`): one seed per photo.
            config (`StylizeConfig`, *optional*): defaults to ``StylizeConfig()``.

        Returns:
            `list[PIL.Image.Image]`: one image per pair, in order.
        """
        self._require_open()
        cfg = config or StylizeConfig()
        if len(images) != len(seeds) or not seeds:
            raise SvdinstError(f"stylize_batch: {len(images)} photos for {len(seeds)} seeds.")
        prompt = cfg.prompt if cfg.prompt is not None else self.prompt
        if prompt is None:
            raise SvdinstError("No prompt: pass a run folder, or set StylizeConfig.prompt.")
        res = cfg.resolution or self.native_resolution
        tensors: dict[int, torch.Tensor] = {}  # a photo repeated in the batch is converted once
        for im in images:
            if id(im) not in tensors:
                tensors[id(im)] = to_tensor(im, res)
        gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        if cfg.init == "inst":
            return self._inst(torch.stack([tensors[id(im)] for im in images]), prompt, cfg, gens)
        decoded = self.pipe(
            prompt=[prompt] * len(seeds),
            image=self._img2img_latents(tensors, images, gens),  # 4 channels: used as latents
            strength=cfg.strength,
            num_inference_steps=cfg.steps,
            guidance_scale=cfg.guidance_scale,
            generator=gens,
            output_type="np",  # checked, then made images (as "pil" would)
        ).images
        return self._to_pil(decoded)

    def settings(self, config: StylizeConfig) -> dict[str, Any]:
        """What produced the outputs (written as the outputs folder's settings file)."""
        return {
            **asdict(config),
            "guidance_scale": config.guidance_scale,
            "resolution": config.resolution or self.native_resolution,
            "model": self.model,
            "run": str(self.run) if self.run is not None else None,
            "mode": self.mode,
            "lora": str(self.lora) if self.lora is not None else None,
            "shift_scale": self.shift_scale,
            "prompt": config.prompt if config.prompt is not None else self.prompt,
            "scheduler": "DDIM (eta 0)",
            "device": torch.device(self.device).type,  # not the index: rank k uses cuda:k
            "dtype": str(self.dtype).replace("torch.", ""),
            "speed": asdict(self.speed),  # they change float round-off, so they are settings
            "svdinst_version": svdinst.__version__,
            "run_digest": RunFolder(self.run).digest() if self.run is not None else None,
        }


# Folder-level stylizing lives in folder.py (this file is the model); re-exported for callers
# that import it from here (it imports this module only for type hints: no cycle).
from svdinst.stylize.folder import content_images, stylize_folder  # noqa: E402

__all__ = ["StylizeConfig", "Stylizer", "adain", "content_images", "stylize_folder"]
