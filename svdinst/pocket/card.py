"""The pocket model's folder: fp16 pipeline files, a model card (README.md) and ``SHA256SUMS``.

``SHA256SUMS`` is in ``sha256sum`` format (``<hex>  <relative path>``) and covers every file of the
folder except itself, so ``sha256sum -c SHA256SUMS`` or :func:`verify_checksums` proves that
committed weights are the ones the card describes.
"""

from __future__ import annotations

import os
import platform
from dataclasses import replace
from pathlib import Path

import torch

import svdinst
from svdinst.data.styles import PROXY_TECHNIQUES
from svdinst.formats.checksums import (  # noqa: F401  (the pocket CLI and tests import them here)
    SUMS,
    listed_files,
    sha256_file,
    verify_checksums,
    write_checksums,
)
from svdinst.models.layouts import save_sd_layout_pipeline
from svdinst.pocket.config import PocketConfig
from svdinst.pocket.data import APPEARANCES, POCKET_PHOTOS


def parameter_counts(modules: dict) -> dict[str, int]:
    """Parameters per network (``unet vae text_encoder image_encoder``)."""
    return {name: sum(p.numel() for p in m.parameters()) for name, m in modules.items()}


def _versions() -> str:
    # Only a card being written needs these; `svdinst pocket verify` stays light.
    import diffusers
    import transformers

    return (
        f"svdinst {svdinst.__version__}, torch {torch.__version__}, diffusers "
        f"{diffusers.__version__}, transformers {transformers.__version__}, Python "
        f"{platform.python_version()}"
    )


def _vae_line(config: PocketConfig, stats: dict) -> str:
    if config.init_from:
        return (f"- VAE: {config.init_from}'s, frozen, with its scaling factor (no VAE steps "
                "here; its card has the recipe); its text and image towers too.")  # fmt: skip
    return (
        f"- VAE: {config.vae_steps:,} steps, batch {config.batch_size}, AdamW lr "
        f"{config.vae_lr:g}, loss L1 +\n  {config.edge_weight:g} × L1 of image gradients + "
        f"{config.kl_weight:g} × KL; final loss\n  {stats['loss_vae']:.4f} (mean of the last "
        f"100 steps); {stats['seconds_vae'] / 60:.1f} min."
    )


def _reproduce(config: PocketConfig) -> str:
    """The command that retrains the folder (after its ``init_from`` model, if any)."""
    init = f" --init-from {config.init_from}" if config.init_from else ""
    before = (f"`svdinst pocket verify` of {config.init_from} (the shipped weights, or retrained "
              "from its card), then " if config.init_from else "")  # fmt: skip
    return (
        f"{before}`svdinst pocket pretrain --out DIR --preset {config.model.version} --seed "
        f"{config.seed} --resolution\n  {config.resolution} --vae-steps {config.vae_steps} "
        f"--unet-steps {config.unet_steps}\n  --batch-size {config.batch_size}{init}`"
    )


def _techniques(styles: tuple[str, ...]) -> str:
    """The card's sentence on styles that share a technique (not the palette) with the proxy."""
    shared = [f"{name} ({PROXY_TECHNIQUES[name]})" for name in styles if name in PROXY_TECHNIQUES]
    if not shared:
        return ""
    return (
        f"\n{len(shared)} of them each use one of the proxy's techniques alone, in the photo's own "
        f"colours: {'; '.join(shared)}. So the proxy differs from this style space in its palette "
        "and in combining them, not in every ingredient."
    )


def model_card(
    config: PocketConfig, stats: dict, counts: dict[str, int], sums: dict[str, str]
) -> str:
    """The README.md of a pocket model folder (Markdown)."""
    m = config.model
    f = 2 ** (len(m.vae_channels) - 1)
    total = sum(counts.values())
    photos = "\n".join(
        f"| {p.stem} | {p.subject} | {p.module}: `{p.relative}` | {p.credit} | {p.licence} |"
        for p in POCKET_PHOTOS
    )
    files = "\n".join(
        f"| `{name}` | `{digest}` |" for name, digest in sums.items() if name != "README.md"
    )
    styles = ""
    if config.styles:
        names = ", ".join(config.styles)
        styles = f"""
## Style space (procedural training styles)
{config.style_prob:.0%} of the crops are cut from a copy of their photo repainted by one of
{len(config.styles)} deterministic filters of `svdinst/data/styles.py` ({names}), captioned
"<subject> in <style>" (e.g. "a cat in woodcut"), so the UNet learns to move between styles
through its cross-attention. The held-out **mural proxy** (`svdinst/data/mural.py`) is not among
them, and no training style paints with its aged pigment palette (`pigment_share`, tested in
`tests/data/test_styles.py`).{_techniques(config.styles)}
"""
    vae_min = stats["seconds_vae"] / 60
    unet_min = stats["seconds_unet"] / 60
    return f"""# svdinst {m.version} — the pocket base model

A small latent diffusion model with Stable Diffusion 1.4's *layout*, pretrained by the kit itself
(`svdinst pocket pretrain`) on crops of {len(POCKET_PHOTOS)} photos that ship inside scikit-image
and scikit-learn. It exists so the offline course shows real style learning (img2img, textual
inversion, spectral shifts) on a CPU in minutes.

## What it is NOT
- **Not a text-to-image model.** It has seen {len(POCKET_PHOTOS)} photos; sampled from noise it
  produces photo-like textures and fragments of them, not what a prompt describes.
- **Not evidence about SD-1.4.** Nothing measured with it says anything about the quality of
  Stable Diffusion 1.4 or of SVD-InST at 512 px; quality claims need the `sd14` profile.
- It never saw a style image of the kit's data set, a mural proxy, or the held-out test photos (coffee, flower,
  grace_hopper), so content preservation measured on those is measured on unseen photos.

## Architecture ({total:,} parameters)
| part | configuration | parameters |
|---|---|---:|
| UNet (`UNet2DConditionModel`) | blocks {m.unet_channels}, {m.unet_layers_per_block} layer per block, {m.unet_attention_head_dim} heads, cross-attention {m.text_dim} | {counts["unet"]:,} |
| VAE (`AutoencoderKL`) | blocks {m.vae_channels}, f = {f}, 4 latent channels, scaling_factor {stats["scaling_factor"]:.5f} (1 / measured latent std) | {counts["vae"]:,} |
| text encoder (`CLIPTextModel`) | width {m.text_dim}, {m.text_layers} layers; **frozen random** | {counts["text_encoder"]:,} |
| image encoder (`CLIPVisionModelWithProjection`) | width {m.vision_dim}, {m.vision_layers} layers, {m.vision_image_size} px, projection {m.projection_dim}; **frozen random** | {counts["image_encoder"]:,} |

The tokenizer is the real CLIP BPE vocabulary (49,408 tokens); the scheduler config is SD-1.4's
(PNDM, scaled-linear betas 0.00085–0.012, 1,000 steps). Weights are stored in float16.

**Text conditioning.** The text tower is random and frozen: its outputs are fixed, distinct codes
for each caption, and the UNet learned to read them through cross-attention. Each crop's caption
names its subject and the appearance edit applied to it ({", ".join(APPEARANCES)}), e.g.
"a blurry grayscale photo of coins"; {config.caption_dropout:.0%} of captions are empty (the
unconditional branch of classifier-free guidance). A cross-attention that carries *appearance* is
what a learned style token (InST) later writes into. Training the text tower on a dozen captions
would add nothing the UNet cannot learn from fixed codes, and would cost size and time.
**Image encoder.** Random and frozen: for InST its embedding of a style image is a fixed random
image feature, from which the image→token module learns the token.

{styles}
## Training
- Data: random square crops (side log-uniform from {config.min_crop:.0%} of the shorter side to
  all of it), horizontal flips, and with probability {config.appearance_prob:.0%} one appearance
  edit (of the crops not cut from a styled copy); {config.resolution} px, cut from photos of at most {config.photo_side} px by one batched
  `grid_sample` ({config.supersample}² samples per pixel) on the training device.
{_vae_line(config, stats)}
- UNet: {"continued from " + config.init_from + "'s UNet (its saved EMA weights), " if config.init_from and config.init_unet else ""}{config.unet_steps:,} steps, batch {config.batch_size}, AdamW lr {config.unet_lr:g} (warm-up
  {config.warmup_steps}, cosine to {config.min_lr_ratio:g}×), ε-prediction on the SD-1.4 DDPM
  schedule, EMA {config.ema_decay:g} (the saved weights); final loss {stats["loss_unet"]:.4f};
  {unet_min:.1f} min.
- Seed {config.seed}; device: {stats["device"]}; {_versions()}.
- Wall time: {stats["seconds_prep"]:.0f} s building models and loading photos, {vae_min:.1f} min
  VAE, {unet_min:.1f} min UNet ({(stats["seconds_prep"] / 60 + vae_min + unet_min):.1f} min of
  training in all, saving excluded).
- Reproduce: {_reproduce(config)} (bit-identical on a CPU with the same library versions and
  thread count; GPU kernels differ in the last bits from run to run and card to card).

## Photos (training data)
| name | caption subject | file | credit | licence |
|---|---|---|---|---|
{photos}

## Files (SHA-256)
`SHA256SUMS` lists the same digests plus this card's; check with `svdinst pocket verify DIR`
or `sha256sum -c SHA256SUMS`.

| file | SHA-256 |
|---|---|
{files}
"""


def write_model_folder(
    out: str | os.PathLike, modules: dict, config: PocketConfig, stats: dict
) -> Path:
    """Save the trained networks as an fp16 pipeline folder with its card and ``SHA256SUMS``.

    Args:
        out (`str` or `os.PathLike`): the folder (replaced atomically).
        modules (`dict[str, torch.nn.Module]`): ``unet vae text_encoder image_encoder``
            (cast to fp16 in place).
        config (`svdinst.pocket.pretrain.PocketConfig`): the run's settings.
        stats (`dict`): what :func:`svdinst.pocket.pretrain.pretrain` measured (times, losses, device).
    """
    counts = parameter_counts(modules)

    def finalize(folder: Path) -> None:
        sums = {name: sha256_file(folder / name) for name in listed_files(folder)}
        (folder / "README.md").write_text(model_card(config, stats, counts, sums))
        unchanged = {name: h for name, h in sums.items() if name != "README.md"}
        write_checksums(folder, known=unchanged)  # hashes only the card just written

    model_cfg = replace(config.model, seed=config.seed, save_dtype="float16")
    return save_sd_layout_pipeline(out, modules, model_cfg, finalize)
