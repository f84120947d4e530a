"""Sizes of the random-weight SD-layout models (:class:`SDLayoutConfig`: tiny, pocket, sd14).

Kept apart from :mod:`svdinst.models.layouts` (which builds the networks with torch and diffusers)
so that configs, presets and cache-folder names can be read without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


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

    @classmethod
    def pocket_v2(cls) -> SDLayoutConfig:
        """The *pocket-v2* sizes: 128 px, f = 4 (32² latents), a VAE wide enough for texture.

        Its VAE must reproduce the held-out mural proxy's thin ink outlines and cracks, so it
        keeps f = 4 at 128 px and widens the deepest level (96 → 128 channels); the UNet keeps
        v1's widths (its CPU training step is what `make reproduce` pays for, 15 runs).
        """
        return replace(
            cls.pocket(),
            version="pocket-v2",
            unet_sample_size=32,  # 128 px / f 4
            vae_channels=(32, 64, 128),  # 3 levels → f = 4
            vae_sample_size=128,
            label="pocket-v2 size (trained on offline photos and procedural styles)",
        )

    @classmethod
    def pocket_v3(cls) -> SDLayoutConfig:
        """The *pocket-v3* sizes: pocket-v2's exactly (v3 continues v2's UNet on its frozen VAE)."""
        return replace(
            cls.pocket_v2(),
            version="pocket-v3",
            label="pocket-v3 size (pocket-v2's UNet trained further on photos and styles)",
        )

    @classmethod
    def pocket_v4(cls) -> SDLayoutConfig:
        """The *pocket-v4* sizes: pocket-v3's exactly (v4 continues v3's UNet on more styles).

        A recipe whose weights are not shipped (`svdinst pocket pretrain --preset pocket-v4`).
        """
        return replace(
            cls.pocket_v2(),
            version="pocket-v4",
            label="pocket-v4 size (pocket-v3's UNet trained further on ten procedural styles)",
        )

    @classmethod
    def pocket_v5(cls) -> SDLayoutConfig:
        """The *pocket-v5* sizes: pocket-v2's VAE and towers, a UNet 1.6× as wide (7.8 M).

        The widest UNet whose folder stays within issue 17's 30 MB in fp16 (29.7 MB; the rest
        of the folder is 14.1 MB), at ~1.3× v3's CPU cost (`benchmarks/pocket_width_cost.py`).
        A recipe whose weights are not shipped yet (`svdinst pocket pretrain --preset pocket-v5`).
        """
        return replace(
            cls.pocket_v2(),
            version="pocket-v5",
            unet_channels=(64, 128, 176),  # 176 = 11 norm groups of 16, 4 heads of 44
            label="pocket-v5 size (a wider UNet trained on pocket-v2's VAE, photos and styles)",
        )


# The committed pocket model that the `pocket` name and profile use. Switching to another
# version is this one line (its weights must be in svdinst/weights/<version>/).
POCKET_VERSION = "pocket-v3"
POCKET_LAYOUTS = {
    "pocket-v1": SDLayoutConfig.pocket,
    "pocket-v2": SDLayoutConfig.pocket_v2,
    "pocket-v3": SDLayoutConfig.pocket_v3,
    "pocket-v4": SDLayoutConfig.pocket_v4,
    "pocket-v5": SDLayoutConfig.pocket_v5,
}

TINY_VERSION = SDLayoutConfig.tiny().version  # cache folder of the tiny model
SD14_RANDOM_VERSION = SDLayoutConfig.sd14().version  # cache folder of the sd14-random model
