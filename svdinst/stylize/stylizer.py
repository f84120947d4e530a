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
and seed, and the settings file). Seed k uses its own
``torch.Generator(seed=k)`` for every photo, so any output can be regenerated alone and batching
changes a result by float round-off at most.
"""

from __future__ import annotations

import gc
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline
from PIL import Image
from tqdm.auto import tqdm

import svdinst
from svdinst.data import list_images, load_image, to_tensor
from svdinst.errors import DataError, RunFolderError, SvdinstError
from svdinst.formats.outputs import OutputsFolder
from svdinst.formats.run_folder import RunFolder
from svdinst.models.loading import load_components
from svdinst.stylize.config import StylizeConfig
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
        self.native_resolution = int(comps.unet.config.sample_size) * vae_scale_factor(comps.vae)

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Free the model now, GPU memory included, so the next Stylizer has the card to itself
        (two SD-1.4 models at once nearly fill a T4). ``with ctx.stylizer(run) as st:`` calls it."""
        self.pipe = None
        gc.collect()  # the pipeline's modules hold reference cycles
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def __enter__(self) -> Stylizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require_open(self) -> None:
        if self.pipe is None:
            raise SvdinstError("This Stylizer was closed (close()); make a new one.")

    # ------------------------------------------------------------------ sampling

    def _latent(self, x: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
        """VAE latent of one image, sampled per generator (as InST's encode_first_stage)."""
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
        """Stylize one photo once per seed.

        Args:
            image (`PIL.Image.Image`): the content photo (center-cropped to the resolution).
            seeds (`Sequence[int]`): one output per seed; seed k → ``torch.Generator`` seeded k.
            config (`StylizeConfig`, *optional*): defaults to ``StylizeConfig()``.

        Returns:
            `list[PIL.Image.Image]`: one image per seed, in order.
        """
        self._require_open()
        cfg = config or StylizeConfig()
        prompt = cfg.prompt if cfg.prompt is not None else self.prompt
        if prompt is None:
            raise SvdinstError("No prompt: pass a run folder, or set StylizeConfig.prompt.")
        x = to_tensor(image, cfg.resolution or self.native_resolution)[None]
        out: list[Image.Image] = []
        for start in range(0, len(seeds), cfg.batch_size):
            chunk = list(seeds[start : start + cfg.batch_size])
            gens = [torch.Generator("cpu").manual_seed(int(s)) for s in chunk]
            if cfg.init == "inst":
                out += self._inst(x, prompt, cfg, gens)
            else:
                images = self.pipe(
                    prompt=[prompt] * len(chunk),
                    image=(x.expand(len(chunk), -1, -1, -1) + 1) / 2,  # the pipeline wants [0, 1]
                    strength=cfg.strength,
                    num_inference_steps=cfg.steps,
                    guidance_scale=cfg.guidance_scale,
                    generator=gens,
                    output_type="np",  # checked, then made images (as "pil" would)
                ).images
                out += self._to_pil(images)
        return out

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
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
            "svdinst_version": svdinst.__version__,
            "run_digest": RunFolder(self.run).digest() if self.run is not None else None,
        }


def content_images(content: str | os.PathLike, max_photos: int | None = None) -> list[Path]:
    """The photos to stylize: one file, or every image of a folder (validated; unique stems).

    Args:
        content (`str` or `os.PathLike`): a photo or a folder of photos.
        max_photos (`int`, *optional*): only the first ``max_photos`` of the folder (sorted by
            name), e.g. a profile's ``test_photos`` so a big test set fits a notebook's budget.
    """
    path = Path(content)
    if path.is_file():
        load_image(path)  # a clear DataError for a corrupt file, before any sampling
        return [path]
    if max_photos is not None and max_photos < 1:
        raise DataError(f"max_photos must be ≥ 1 or None, got {max_photos}.")
    files = list_images(path)[:max_photos]
    stems = [p.stem for p in files]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise DataError(
            f"{path}: several images share the stem(s) {dupes}; outputs are named by stem, so "
            "rename them."
        )
    return files


def stylize_folder(
    stylizer: Stylizer,
    content: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: StylizeConfig | None = None,
    resume: bool = True,
    max_photos: int | None = None,
) -> dict[str, list[Path]]:
    """Stylize every photo with seeds 0…N−1 into the outputs folder ``out_dir``.

    The settings file is written first (without ``seconds``) and again at the end. A call whose
    settings equal the folder's (same run files, photos and sampling settings) keeps the images
    already written and makes only the missing ones: after a crash or a Colab disconnect a re-run
    finishes the folder. A seed batch is redone whole when any of its images is missing, so every
    image comes from the same batch as in an uninterrupted call (equal results on a CPU). Other
    settings clear the folder's images first, so old and new outputs are never evaluated together.

    Args:
        stylizer (`Stylizer`): the loaded model and run.
        content (`str` or `os.PathLike`): a photo or a folder of photos.
        out_dir (`str` or `os.PathLike`): the method's output folder (e.g. ``outputs/svd-inst``).
        config (`StylizeConfig`, *optional*): defaults to ``StylizeConfig()``.
        resume (`bool`, defaults to `True`): keep matching images; `False` always starts over.
        max_photos (`int`, *optional*): stylize only the first ``max_photos`` photos of a folder
            (see :func:`content_images`).

    Returns:
        `dict[str, list[Path]]`: content stem → its files (written or kept), in seed order.
    """
    cfg = config or StylizeConfig()
    files = content_images(content, max_photos)
    out = OutputsFolder(out_dir)
    out.path.mkdir(parents=True, exist_ok=True)
    seeds = list(range(cfg.seeds))
    settings = {**stylizer.settings(cfg), "content": str(content), "n_photos": len(files)}
    settings = json.loads(json.dumps(settings))  # as the settings file reads back
    earlier = out.read_settings()
    before = float(earlier.pop("seconds", 0.0))
    if not (resume and earlier == settings):
        out.clear()
        before = 0.0
    else:  # images of photos no longer in ``content`` would be evaluated with the new ones
        wanted = {out.image_path(f.stem, k) for f in files for k in seeds}
        for stale in (p for ps in out.collect().values() for p in ps) if out.has_images() else ():
            if stale not in wanted:
                stale.unlink()
    out.write_settings(settings)  # marks the folder as in progress (no "seconds" yet)
    written: dict[str, list[Path]] = {}
    start = time.perf_counter()
    batches = math.ceil(len(seeds) / cfg.batch_size)
    with tqdm(total=len(files) * len(seeds), desc="stylize", unit="img") as bar:
        for file in files:
            image = None
            written[file.stem] = [out.image_path(file.stem, k) for k in seeds]
            for b in range(batches):
                chunk = seeds[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                if all(out.image_path(file.stem, k).is_file() for k in chunk):
                    bar.update(len(chunk))
                    continue
                image = image if image is not None else load_image(file)
                for seed, img in zip(chunk, stylizer.stylize(image, chunk, cfg)):
                    out.save_image(file.stem, seed, img)
                bar.update(len(chunk))
    seconds = round(before + time.perf_counter() - start, 2)
    out.write_settings({**settings, "seconds": seconds})
    return written
