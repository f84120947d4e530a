"""StyTr²: Deng et al., "StyTr²: Image Style Transfer with Transformers" (CVPR 2022); facts and
hyper-parameters from the authors' code (diyiiyiii/StyTR-2).

Both images are cut into 8×8 patches and linearly embedded. A *content* transformer
encoder (with the content-aware positional encoding, CAPE: positions computed from the
content itself — average-pooled to 18×18, a 1×1 conv, bilinearly resized back — so they scale
with the image) and a *style* encoder (no positions: style is position-free) each stack 3
post-norm layers. A 3-layer transformer decoder takes the content sequence as queries and the
style sequence as keys/values; a CNN decoder (three nearest ×2 upsamplings, the mirror of
VGG-19 up to relu4_1) turns the 32×32 grid back into a 256×256 image.

Losses, from a frozen VGG-19: content ``L_c`` = MSE of mean-variance
normalised relu4_1 and relu5_1 features; style ``L_s`` = mean/std MSE over relu1_1 … relu5_1;
identity ``L_id1`` = pixel MSE of ``I_cc``, ``I_ss`` (each image stylized with itself) to the
inputs; ``L_id2`` = feature MSE of the same over the five layers.
``L = 7 L_c + 10 L_s + 70 L_id1 + 1 L_id2`` (train.py). Adam, lr 5e-4 with warm-up.

Loss network: VGG-19 when its ImageNet weights can be had (``loss_backbone="vgg"``); by default
the TF-FID Inception trunk as a labelled substitute (:mod:`svdinst.baselines.perceptual`;
relu4_1 and relu5_1 of the content loss → Mixed_5b and Mixed_5d).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image

from svdinst.baselines.base import Baseline, register
from svdinst.baselines.common import (
    fit_loop,
    fixed_seed,
    require_style,
    seed_everything,
    style_pair_samplers,
    style_tensor_for,
    translate_each,
)
from svdinst.baselines.perceptual import (
    LOSS_UPSAMPLE,
    check_backbone,
    describe_backbone,
    loss_network,
)
from svdinst.baselines.stytr2_net import StyTr2Net
from svdinst.baselines.vgg import mean_std, mean_std_loss
from svdinst.errors import SvdinstError

STYTR2_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


@dataclass
class StyTr2Config:
    """Published defaults (authors' ``train.py`` / ``models/transformer.py``)."""

    resolution: int = 256  # random 256×256 crops (train.py)
    load_size: int = 0  # shorter side before cropping; 0 → 2 × resolution (authors: 512 → 256)
    batch_size: int = 8  # train.py --batch_size
    published_steps: int = 160_000  # train.py --max_iter (fit's `steps` is what actually runs)
    d_model: int = 512  # embedding width = VGG relu4_1 width the CNN decoder expects
    n_heads: int = 8  # transformer.py nhead
    n_encoder_layers: int = 3  # 3 layers in each of the content and style encoders
    n_decoder_layers: int = 3  # 3 transformer decoder layers
    dim_feedforward: int = 2048  # FFN width (DETR-style layers)
    dropout: float = 0.1  # dropout inside attention and FFN
    patch_size: int = 8  # 8×8 patches; the CNN decoder's three ×2 upsamplings undo it
    cape_pool: int = 18  # CAPE pools the content embedding to 18×18 (transformer.py)
    decoder_widths: tuple[int, int, int] = (256, 128, 64)  # CNN decoder; smaller in tests
    lr: float = 5e-4  # Adam base learning rate (train.py --lr)
    warmup_steps: int = 10_000  # linear warm-up from 0.1·lr to lr_after_warmup
    lr_after_warmup: float = 2e-4  # train.py adjust_learning_rate's numerator
    lr_decay: float = 1e-5  # then lr_after_warmup / (1 + lr_decay · (i − warmup_steps))
    content_weight: float = 7.0  # λ_c (train.py --content_weight)
    style_weight: float = 10.0  # λ_s (train.py --style_weight)
    identity1_weight: float = 70.0  # λ_id1 (train.py: l_identity1 * 70)
    identity2_weight: float = 1.0  # λ_id2 (train.py: l_identity2 * 1)
    loss_backbone: str = "inception"  # "inception": offline substitute; "vgg": needs VGG-19
    vgg_weights: str | None = None  # ImageNet VGG-19 file (loss_backbone="vgg"); None → cache

    def __post_init__(self) -> None:
        self.decoder_widths = tuple(self.decoder_widths)
        check_backbone("stytr2", self.loss_backbone)
        if self.patch_size != 8:
            raise SvdinstError(
                f"stytr2 patch_size must be 8 (the CNN decoder upsamples ×8), got {self.patch_size}."
            )
        if self.resolution < 16 or self.resolution % 8:
            raise SvdinstError(
                f"stytr2 resolution must be a multiple of 8 and ≥ 16, got {self.resolution}."
            )
        if self.d_model % self.n_heads:
            raise SvdinstError(f"stytr2 d_model {self.d_model} must divide by n_heads.")
        if self.load_size and self.load_size < self.resolution:
            raise SvdinstError(f"stytr2 load_size {self.load_size} < resolution {self.resolution}.")


def stytr2_lr(cfg: StyTr2Config, step: int) -> float:
    """train.py's schedule: ``lr·0.1·(1 + 3e-4·i)`` for i < 10⁴, then ``2e-4/(1 + 1e-5·(i − 10⁴))``.

    Written as a linear ramp from ``0.1·lr`` to ``lr_after_warmup`` so it stays right when the
    warm-up length changes (with the defaults it is the published formula exactly).
    """
    if step < cfg.warmup_steps:
        start = 0.1 * cfg.lr
        return start + (cfg.lr_after_warmup - start) * step / cfg.warmup_steps
    return cfg.lr_after_warmup / (1.0 + cfg.lr_decay * (step - cfg.warmup_steps))


def normalize(feat: torch.Tensor) -> torch.Tensor:
    """Mean-variance normalisation per channel (the ``norm`` of the content loss L_c)."""
    mean, std = mean_std(feat)
    return (feat - mean) / std


def stytr2_losses(
    net: StyTr2Net, vgg: torch.nn.Module, content: torch.Tensor, style: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The unweighted losses L_c, L_s, L_id1, L_id2 of one batch, and the stylized ``ics``."""
    with torch.no_grad():
        fc, fs = vgg(content), vgg(style)
    ics = net(content, style)
    f_ics = vgg(ics)
    loss_c = sum(F.mse_loss(normalize(f_ics[i]), normalize(fc[i])) for i in (-2, -1))
    loss_s = mean_std_loss(f_ics, fs)
    icc, iss = net(content, content), net(style, style)
    loss_id1 = F.mse_loss(icc, content) + F.mse_loss(iss, style)
    f_icc, f_iss = vgg(icc), vgg(iss)
    loss_id2 = sum(
        F.mse_loss(a, b) + F.mse_loss(c, d) for a, b, c, d in zip(f_icc, fc, f_iss, fs, strict=True)
    )
    return {"content": loss_c, "style": loss_s, "id1": loss_id1, "id2": loss_id2, "ics": ics}


@register
class StyTr2(Baseline):
    """StyTr² (see the module docstring); an arbitrary-style method."""

    name = "stytr2"
    config_class = StyTr2Config
    uses_style_at_inference = True

    def __init__(self, config: StyTr2Config | None = None, device: str = "cpu") -> None:
        super().__init__(config, device)
        cfg = self.config
        with fixed_seed(0):  # initial weights independent of whatever ran before
            self.net = StyTr2Net(
                d_model=cfg.d_model, n_heads=cfg.n_heads, n_encoder_layers=cfg.n_encoder_layers,
                n_decoder_layers=cfg.n_decoder_layers, dim_feedforward=cfg.dim_feedforward,
                dropout=cfg.dropout, patch_size=cfg.patch_size, cape_pool=cfg.cape_pool,
                decoder_widths=cfg.decoder_widths,
            ).to(self.device)  # fmt: skip
        self.net.eval()
        self.vgg: torch.nn.Module | None = None  # the loss network, built on the first fit

    @classmethod
    def tiny_config(cls, resolution: int = 64) -> StyTr2Config:
        """Same layout (3 + 3 encoder, 3 decoder layers) at width 32, for CPU tests."""
        return StyTr2Config(
            resolution=resolution, batch_size=1, d_model=32, n_heads=4,
            dim_feedforward=64, decoder_widths=(32, 16, 8),
        )  # fmt: skip

    @property
    def backbone(self) -> str:
        """The loss network the run used: VGG-19 or its labelled Inception substitute."""
        return describe_backbone(self.config.loss_backbone, "vgg19")

    def loss_network(self) -> torch.nn.Module:
        """The frozen network of the losses (VGG-19 or its substitute; built once)."""
        if self.vgg is None:
            cfg = self.config
            self.vgg = loss_network(
                cfg.loss_backbone, "vgg19", STYTR2_LAYERS, cfg.vgg_weights, upsample=LOSS_UPSAMPLE
            )
            self.vgg.to(self.device)
        return self.vgg

    def fit(
        self,
        content_dir: str | os.PathLike,
        style_dir: str | os.PathLike,
        steps: int,
        *,
        out_dir: str | os.PathLike | None = None,
        checkpoint_every: int = 0,
        resume: bool = False,
        seed: int = 0,
    ) -> list[float]:
        """Train the embedding, transformer and CNN decoder on random (content, style) pairs.

        Args:
            content_dir: photos (the paper: MS-COCO).
            style_dir: style images (the paper: WikiArt; here the murals).
            steps (`int`): Adam steps of ``batch_size`` pairs.
            out_dir, checkpoint_every, resume, seed: see :meth:`Baseline.fit`.
        """
        cfg = self.config
        seed_everything(seed)
        vgg = self.loss_network()

        content, style = style_pair_samplers(
            content_dir, style_dir, cfg.resolution, cfg.load_size, seed
        )
        optimizer = torch.optim.Adam(self.net.parameters(), lr=stytr2_lr(cfg, 0))
        self.net.train()

        def step_fn(step: int) -> dict[str, float]:
            for group in optimizer.param_groups:
                group["lr"] = stytr2_lr(cfg, step)
            c = content.sample(cfg.batch_size).to(self.device)
            s = style.sample(cfg.batch_size).to(self.device)
            terms = stytr2_losses(self.net, vgg, c, s)
            loss = (
                cfg.content_weight * terms["content"]
                + cfg.style_weight * terms["style"]
                + cfg.identity1_weight * terms["id1"]
                + cfg.identity2_weight * terms["id2"]
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            logged = {k: v.item() for k, v in terms.items() if k != "ics"}
            return {"loss": loss.item(), **logged}

        objects = {"net": self.net, "optimizer": optimizer, "content": content, "style": style}
        losses = fit_loop(
            step_fn, steps, objects=objects, out_dir=out_dir, checkpoint_every=checkpoint_every,
            resume=resume, desc=self.name, lr_fn=lambda: optimizer.param_groups[0]["lr"],
        )  # fmt: skip
        self.net.eval()
        return losses

    @torch.no_grad()
    def stylize(
        self, images: list[Image.Image], style: list[Image.Image] | None = None
    ) -> list[Image.Image]:
        """Stylize photo ``i`` with ``style[i % len(style)]`` at the photo's own size.

        The style image is resized so its shorter side matches the photo's (the authors resize
        both to 512); the output is clamped to [0, 1] when converted to an image.
        """
        style = require_style(self.name, style)
        self.net.eval()
        images = list(images)

        def run(x: torch.Tensor, i: int) -> torch.Tensor:
            return self.net(x, style_tensor_for(style, i, images[i]).to(self.device))

        return translate_each(images, run, self.device, multiple=8, value_range=(0.0, 1.0))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"net.{k}": v for k, v in self.net.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.net.load_state_dict({k[len("net.") :]: v for k, v in state.items()})
