"""Models with SD-1.4's layout: the tiny and full-size random ones, and the pocket model's sizes.

Each is written with ``save_pretrained`` and read back by :func:`svdinst.models.loading.load_components`
through the same ``from_pretrained`` path as the real model. Its tokenizer is the real CLIP BPE
vocabulary (49,408 entries, :mod:`svdinst.models.clip_vocab`), so prompts and placeholder tokens
tokenize exactly as in SD-1.4.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from svdinst.formats.folders import OutputFolderError, publish_folder, write_manifest
from svdinst.models.clip_vocab import make_clip_tokenizer
from svdinst.models.layout_config import (
    SDLayoutConfig,
)

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


def _readme(cfg: SDLayoutConfig, what: str) -> Callable[[Path], None]:
    """A ``finalize`` that writes the folder's README: random weights, never for quality."""
    text = (
        f"# svdinst {cfg.version}: random weights, never for quality claims\n\n"
        f"{what} *layout* at {cfg.label} with deterministic random weights (seed {cfg.seed}, "
        f"saved as {cfg.save_dtype}). Built by svdinst for tests, the offline course and "
        "timing/memory rehearsals only. Its images are noise: it says nothing about quality.\n"
    )
    return lambda folder: (folder / "README.md").write_text(text)


def build_sd_layout_model(out_dir: str | os.PathLike, config: SDLayoutConfig | None = None) -> Path:
    """Build a random-weight SD-layout pipeline folder and ``save_pretrained`` it.

    The folder holds ``unet vae text_encoder tokenizer scheduler image_encoder feature_extractor``
    and ``model_index.json`` (a ``StableDiffusionPipeline`` with an image encoder), readable by
    ``StableDiffusionImg2ImgPipeline.from_pretrained``. It is written to a temporary folder and
    renamed, so a crash or a parallel build never leaves a half-written model.

    Args:
        out_dir (`str` or `os.PathLike`): the folder to create (an earlier build's files are replaced; a user's are never touched).
        config (`SDLayoutConfig`, *optional*): sizes and seed; defaults to
            :meth:`SDLayoutConfig.tiny`.
    """
    cfg = config or SDLayoutConfig.tiny()
    return save_sd_layout_pipeline(out_dir, sd_layout_modules(cfg), cfg, _readme(cfg, "SD-1.4"))


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
        out_dir (`str` or `os.PathLike`): the folder to create (an earlier build's files are replaced; a user's are never touched).
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
        write_manifest(staged, "an SD-layout model folder")
        try:
            # Replaces only the files an earlier build wrote; a user's files stay (or stop it).
            publish_folder(staged, out)
        except OutputFolderError:
            raise
        except OSError:
            if not (out / "model_index.json").exists():  # a parallel builder won the race
                raise
    return out


# The keys of CompVis/stable-diffusion-v1-4's model_index.json (besides "_class_name" and
# "_diffusers_version"): no image encoder (InST's comes from openai/clip-vit-large-patch14).
SD14_HUB_COMPONENTS = (
    "feature_extractor", "safety_checker", "scheduler", "text_encoder", "tokenizer", "unet", "vae",
)  # fmt: skip


def build_hub_layout_model(
    out_dir: str | os.PathLike,
    vision_dir: str | os.PathLike,
    config: SDLayoutConfig | None = None,
) -> tuple[Path, Path]:
    """Random weights saved as the hub's own two folders, in the hub's precision (fp32).

    ``out_dir`` is laid out like ``CompVis/stable-diffusion-v1-4``: ``model_index.json`` with
    exactly that repository's components (:data:`SD14_HUB_COMPONENTS`; ``safety_checker`` is
    ``[null, null]``, how diffusers saves a pipeline without one) and no ``image_encoder/``.
    ``vision_dir`` is laid out like ``openai/clip-vit-large-patch14`` as the kit reads it: a
    ``CLIPVisionModelWithProjection`` and its ``preprocessor_config.json``. Pass it as
    ``load_components(out_dir, image_encoder=vision_dir)`` (or ``SVDINST_IMAGE_ENCODER``).

    Args:
        out_dir (`str` or `os.PathLike`): the pipeline folder (an earlier build's files are replaced; a user's are never touched).
        vision_dir (`str` or `os.PathLike`): the vision-tower folder (an earlier build's files are replaced; a user's are never touched).
        config (`SDLayoutConfig`, *optional*): sizes; defaults to :meth:`SDLayoutConfig.sd14`.
            Saved in float32 whatever its ``save_dtype``: the hub's files are fp32.
    """
    from transformers import CLIPImageProcessor  # slow import, as above

    cfg = replace(config or SDLayoutConfig.sd14(), save_dtype="float32")
    modules = sd_layout_modules(cfg)
    vision = modules.pop("image_encoder")

    def finalize(folder: Path) -> None:
        _readme(cfg, "SD-1.4 (CompVis/stable-diffusion-v1-4)")(folder)
        index_path = folder / "model_index.json"
        index = json.loads(index_path.read_text())
        keep = {k: v for k, v in index.items() if k.startswith("_") or k in SD14_HUB_COMPONENTS}
        index_path.write_text(json.dumps(keep, indent=2, sort_keys=True) + "\n")

    pipeline = save_sd_layout_pipeline(out_dir, modules, cfg, finalize)
    vision_out = Path(vision_dir)
    vision_out.parent.mkdir(parents=True, exist_ok=True)
    size = cfg.vision_image_size
    processor = CLIPImageProcessor(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}
    )
    with tempfile.TemporaryDirectory(dir=vision_out.parent, prefix=f".{vision_out.name}.") as tmp:
        staged = Path(tmp) / "vision"
        vision.save_pretrained(staged)
        processor.save_pretrained(staged)
        _readme(cfg, "CLIP-L vision tower (openai/clip-vit-large-patch14)")(staged)
        write_manifest(staged, "a CLIP vision-tower folder")
        publish_folder(staged, vision_out)
    return pipeline, vision_out


def build_tiny_model(out_dir: str | os.PathLike, config: SDLayoutConfig | None = None) -> Path:
    """Build the tiny SD-layout model (:meth:`SDLayoutConfig.tiny` unless ``config`` says else).

    Args:
        out_dir (`str` or `os.PathLike`): the folder to create (an earlier build's files are replaced; a user's are never touched).
        config (`SDLayoutConfig`, *optional*): sizes and seed.
    """
    return build_sd_layout_model(out_dir, config or SDLayoutConfig.tiny())
