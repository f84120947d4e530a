"""Models with SD-1.4's layout: the tiny and full-size random ones, and the pocket model's sizes.

Each is written with ``save_pretrained`` and read back by :func:`svdinst.models.loading.load_components`
through the same ``from_pretrained`` path as the real model. Its tokenizer is the real CLIP BPE
vocabulary (49,408 entries, :mod:`svdinst.models.clip_vocab`), so prompts and placeholder tokens
tokenize exactly as in SD-1.4.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from svdinst.models.clip_vocab import make_clip_tokenizer

# SD-1.4's scheduler settings (scheduler/scheduler_config.json of CompVis/stable-diffusion-v1-4).
SD14_SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "set_alpha_to_one": False,
    "clip_sample": False,
}


@dataclass(frozen=True)
class SDLayoutConfig:
    """Sizes of a random-weight model with SD-1.4's layout; :meth:`tiny` and :meth:`sd14` presets.

    One builder serves both: ``tiny`` shrinks every width until a 64 px step is cheap on a CPU;
    ``sd14`` is SD-1.4's exact configuration (UNet 859,520,964 parameters, VAE 83,653,863, CLIP-L
    text tower 123,060,480, CLIP-L vision tower with projection 303,966,208), so a GPU rehearsal
    costs what the real model costs. Neither says anything about image quality.
    """

    version: str = "tiny-v2"  # cache folder name; bump when the saved folder changes
    seed: int = 0  # weights are random but deterministic, so every machine builds the same model
    unet_channels: tuple[int, ...] = (32, 32, 64, 64)  # SD: (320, 640, 1280, 1280); 4 levels kept
    unet_layers_per_block: int = 1  # SD: 2; one keeps every block type while halving the cost
    unet_norm_groups: int = 16  # SD: 32; must divide the smallest channel count
    unet_sample_size: int = 8  # latent side the config advertises (SD: 64 = 512 px / 8)
    unet_attention_head_dim: int = 8  # SD-1.4's value (diffusers reads it as the head count)
    text_dim: int = 64  # SD: 768 (CLIP-L); also the UNet's cross-attention width
    text_layers: int = 2  # CLIP-L text: 12
    text_heads: int = 4  # CLIP-L text: 12
    vision_dim: int = 64  # CLIP-L vision: 1024 hidden
    vision_layers: int = 2  # CLIP-L vision: 24
    vision_heads: int = 4  # CLIP-L vision: 16
    vision_patch: int = 8  # CLIP-L: 14
    vision_image_size: int = 32  # CLIP-L: 224; small patches keep the vision tower cheap
    projection_dim: int = 64  # CLIP-L: 768; InST maps image_embeds → token embedding
    vae_channels: tuple[int, ...] = (16, 16, 32, 32)  # SD: (128, 256, 512, 512); 4 levels → f = 8
    vae_layers_per_block: int = 1  # SD: 2
    vae_norm_groups: int = 8  # SD: 32
    vae_sample_size: int = 64  # SD: 512 (the VAE config's nominal image side)
    vae_scaling_factor: float = 0.18215  # SD's; a trained model stores its latents' 1 / std
    save_dtype: str = "float32"  # "float16" halves a full-size folder (2.8 GB instead of 5.5 GB)
    label: str = "toy size"  # goes into README.md: what the folder is, and that it is no model

    @classmethod
    def tiny(cls) -> SDLayoutConfig:
        """The tiny offline model of the tests and ``make test``'s notebooks."""
        return cls()

    @classmethod
    def sd14(cls) -> SDLayoutConfig:
        """SD-1.4's exact sizes with random weights (the ``sd14-random`` rehearsal model)."""
        return cls(
            version="sd14-random-v2",
            unet_channels=(320, 640, 1280, 1280),
            unet_layers_per_block=2,
            unet_norm_groups=32,
            unet_sample_size=64,
            text_dim=768,
            text_layers=12,
            text_heads=12,
            vision_dim=1024,
            vision_layers=24,
            vision_heads=16,
            vision_patch=14,
            vision_image_size=224,
            projection_dim=768,
            vae_channels=(128, 256, 512, 512),
            vae_layers_per_block=2,
            vae_norm_groups=32,
            vae_sample_size=512,
            save_dtype="float16",
            label="full SD-1.4 size",
        )

    @classmethod
    def pocket(cls) -> SDLayoutConfig:
        """The *pocket* model's sizes (:mod:`svdinst.pocket.pretrain` trains it on the offline photos).

        96 px images; a VAE with f = 4 (3 levels → 24×24 latents); a 3-level UNet of 4.9 M
        parameters whose training step with spectral shifts takes ~0.27 s at batch 4 on a
        2-core CPU (128 px or wider levels cost 0.35–0.6 s); text and vision towers narrow
        enough that the 49,408-row token table costs 3.2 MB in fp16 (16.6 MB in all).
        """
        return cls(
            version="pocket-v1",
            unet_channels=(48, 96, 144),  # 3 levels at 24, 12, 6 latent px
            unet_layers_per_block=1,
            unet_norm_groups=16,  # divides 48
            unet_sample_size=24,  # 96 px / f 4
            unet_attention_head_dim=4,  # heads (12–36 channels each)
            text_dim=32,  # token table 49,408 × 32 = 3.2 MB in fp16
            text_layers=2,
            text_heads=4,
            vision_dim=64,
            vision_layers=2,
            vision_heads=4,
            vision_patch=8,
            vision_image_size=64,
            projection_dim=32,
            vae_channels=(32, 64, 96),  # 3 levels → f = 4
            vae_layers_per_block=1,
            vae_norm_groups=32,
            vae_sample_size=96,
            save_dtype="float16",
            label="pocket size (trained on offline photos)",
        )


TinyConfig = SDLayoutConfig  # the name earlier versions used
TINY_VERSION = SDLayoutConfig.tiny().version  # cache folder of the tiny model
SD14_RANDOM_VERSION = SDLayoutConfig.sd14().version  # cache folder of the sd14-random model


def sd_layout_modules(config: SDLayoutConfig) -> dict[str, torch.nn.Module]:
    """Construct the four networks (``unet vae text_encoder image_encoder``) of ``config``.

    Weights are whatever the constructors draw after ``torch.manual_seed(config.seed)``, so a
    plain call is deterministic; under ``accelerate.init_empty_weights()`` nothing is allocated
    (tests count SD-1.4's parameters that way without 5.5 GB of memory).

    Args:
        config (`SDLayoutConfig`): sizes and seed.

    Returns:
        `dict[str, torch.nn.Module]`: the networks, in float32.
    """
    # diffusers and transformers take seconds to import: only when a model is actually built.
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    cfg = config
    torch.manual_seed(cfg.seed)
    n = len(cfg.unet_channels)
    unet = UNet2DConditionModel(
        sample_size=cfg.unet_sample_size,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D",) * (n - 1) + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (n - 1),
        block_out_channels=cfg.unet_channels,
        layers_per_block=cfg.unet_layers_per_block,
        cross_attention_dim=cfg.text_dim,
        attention_head_dim=cfg.unet_attention_head_dim,
        norm_num_groups=cfg.unet_norm_groups,
    )
    m = len(cfg.vae_channels)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * m,
        up_block_types=("UpDecoderBlock2D",) * m,
        block_out_channels=cfg.vae_channels,
        layers_per_block=cfg.vae_layers_per_block,
        latent_channels=4,
        norm_num_groups=cfg.vae_norm_groups,
        sample_size=cfg.vae_sample_size,
        scaling_factor=cfg.vae_scaling_factor,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=cfg.text_dim,
            intermediate_size=cfg.text_dim * 4,
            num_hidden_layers=cfg.text_layers,
            num_attention_heads=cfg.text_heads,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            projection_dim=cfg.text_dim,
        )
    )
    image_encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=cfg.vision_dim,
            intermediate_size=cfg.vision_dim * 4,
            num_hidden_layers=cfg.vision_layers,
            num_attention_heads=cfg.vision_heads,
            image_size=cfg.vision_image_size,
            patch_size=cfg.vision_patch,
            projection_dim=cfg.projection_dim,
            hidden_act="quick_gelu",
        )
    )
    return {
        "unet": unet,
        "vae": vae,
        "text_encoder": text_encoder,
        "image_encoder": image_encoder,
    }


def build_sd_layout_model(out_dir: str | os.PathLike, config: SDLayoutConfig | None = None) -> Path:
    """Build a random-weight SD-layout pipeline folder and ``save_pretrained`` it.

    The folder holds ``unet vae text_encoder tokenizer scheduler image_encoder feature_extractor``
    and ``model_index.json`` (a ``StableDiffusionPipeline`` with an image encoder), readable by
    ``StableDiffusionImg2ImgPipeline.from_pretrained``. It is written to a temporary folder and
    renamed, so a crash or a parallel build never leaves a half-written model.

    Args:
        out_dir (`str` or `os.PathLike`): the folder to create (replaced if it exists).
        config (`SDLayoutConfig`, *optional*): sizes and seed; defaults to
            :meth:`SDLayoutConfig.tiny`.
    """
    cfg = config or SDLayoutConfig.tiny()
    readme = (
        f"# svdinst {cfg.version}: random weights, never for quality claims\n\n"
        f"SD-1.4 *layout* at {cfg.label} with deterministic random weights (seed {cfg.seed}, "
        f"saved as {cfg.save_dtype}). Built by svdinst for tests, the offline course and "
        "timing/memory rehearsals only. Its images are noise: it says nothing about quality.\n"
    )
    return save_sd_layout_pipeline(
        out_dir,
        sd_layout_modules(cfg),
        cfg,
        lambda folder: (folder / "README.md").write_text(readme),
    )


def save_sd_layout_pipeline(
    out_dir: str | os.PathLike,
    modules: dict,
    config: SDLayoutConfig,
    finalize: Callable[[Path], None] | None = None,
) -> Path:
    """Save SD-layout networks (random or trained) as a diffusers pipeline folder, atomically.

    Adds the real CLIP tokenizer, SD-1.4's PNDM scheduler config and a CLIP image processor to
    the four networks of :func:`sd_layout_modules`, writes everything into a temporary folder and
    renames it, so a crash or a parallel build never leaves a half-written model.

    Args:
        out_dir (`str` or `os.PathLike`): the folder to create (replaced if it exists).
        modules (`dict[str, torch.nn.Module]`): ``unet vae text_encoder image_encoder``; cast
            *in place* to ``config.save_dtype`` (no second copy of a 3 GB model in memory).
        config (`SDLayoutConfig`): the sizes they were built with (image size, save dtype).
        finalize (`Callable[[Path], None]`, *optional*): writes extra files (a model card,
            checksums) into the staged folder before the rename.
    """
    from diffusers import PNDMScheduler, StableDiffusionPipeline  # slow import, as above
    from transformers import CLIPImageProcessor

    cfg = config
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    dtype = getattr(torch, cfg.save_dtype)
    if dtype != torch.float32:  # the constructors draw in float32
        modules = {name: module.to(dtype) for name, module in modules.items()}
    size = cfg.vision_image_size
    feature_extractor = CLIPImageProcessor(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}
    )
    scheduler = PNDMScheduler(**{k: v for k, v in SD14_SCHEDULER.items() if k != "clip_sample"})
    # PNDM has no clip_sample argument, but SD-1.4's scheduler_config.json carries
    # "clip_sample": false, and DDIM/DDPM built from it read it: without it they clip the
    # predicted latents to [-1, 1] and img2img turns into coloured noise.
    scheduler.register_to_config(clip_sample=False)

    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        # SD-1.4's tokenizer folder holds exactly these files; loading them through
        # from_pretrained works with both transformers 4 (slow BPE) and 5 (tokenizers backend).
        bpe_dir = Path(tmp) / "_bpe"
        tokenizer = make_clip_tokenizer(bpe_dir)
        pipe = StableDiffusionPipeline(
            **modules,
            tokenizer=tokenizer,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=feature_extractor,
            requires_safety_checker=False,
        )
        staged = Path(tmp) / "model"
        pipe.save_pretrained(staged)
        for name in (
            "vocab.json",
            "merges.txt",
        ):  # as in SD-1.4's folder; transformers 4 needs them
            shutil.copy(bpe_dir / name, staged / "tokenizer" / name)
        if finalize is not None:
            finalize(staged)
        if out.exists():
            shutil.rmtree(out)
        try:
            os.replace(staged, out)
        except OSError:
            if not (out / "model_index.json").exists():  # a parallel builder won the race
                raise
    return out


def build_tiny_model(out_dir: str | os.PathLike, config: SDLayoutConfig | None = None) -> Path:
    """Build the tiny SD-layout model (:meth:`SDLayoutConfig.tiny` unless ``config`` says else).

    Args:
        out_dir (`str` or `os.PathLike`): the folder to create (replaced if it exists).
        config (`SDLayoutConfig`, *optional*): sizes and seed.
    """
    return build_sd_layout_model(out_dir, config or SDLayoutConfig.tiny())
