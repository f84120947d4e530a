"""AdaIN: Huang & Belongie, "Arbitrary Style Transfer in Real-time with Adaptive Instance
Normalization" (ICCV 2017); hyper-parameters of the authors' Torch code as ported by
naoto0804/pytorch-AdaIN.

A fixed VGG-19 encoder ``f`` (up to relu4_1) maps content ``c`` and style ``s`` to features;
AdaIN (Eq. 8) gives the content features the style's channel mean and std,
``t = AdaIN(f(c), f(s))``; a trained decoder ``g`` (the mirror of the encoder) maps ``t`` back to
an image. Losses: content ``L_c = ‖f(g(t)) − t‖²`` (Eq. 12) — against the AdaIN target,
not the content features — and style ``L_s = Σ_i ‖μ(φ_i(g(t))) − μ(φ_i(s))‖² +
‖σ(φ_i(g(t))) − σ(φ_i(s))‖²`` over relu1_1 … relu4_1 (Eq. 13); ``L = L_c + λ L_s``, λ = 10
(pytorch-AdaIN's default for these mean-squared losses; the original Torch ``train.lua``
sets 1e-2 for its own loss scaling).
At test time ``α`` trades content for style: ``g((1 − α) f(c) + α t)`` (Eq. 14).

One decoder serves any style, so stylize takes style images (photo ``i`` gets
``style[i % len(style)]``). The run folder keeps the encoder weights too, so a saved model
reproduces its outputs wherever it is loaded, with or without the ImageNet file.

Encoder: VGG-19 when its ImageNet weights can be had (``loss_backbone="vgg"``); by default the
TF-FID Inception trunk as a labelled substitute (:mod:`svdinst.baselines.perceptual`: relu1_1 …
relu4_1 → Conv2d_1a … Mixed_5b, whose 256 channels the decoder then mirrors). The substitute
encodes the image upsampled ×2 (Inception works at 299 px; its stride-2 stem would otherwise miss
pixel-scale detail), so the decoder ends with a 2×2 average pool back to the input's size.
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
    feature_channels,
    loss_network,
)
from svdinst.baselines.vgg import adain, mean_std, mean_std_loss, vgg_mirror_decoder
from svdinst.errors import SvdinstError

ADAIN_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")  # style layers; relu4_1 also encodes


@dataclass
class AdaINConfig:
    """Published defaults (the authors' ``train.lua``; pytorch-AdaIN ``train.py``)."""

    resolution: int = 256  # random 256×256 crops
    load_size: int = 0  # shorter side before cropping; 0 → 2 × resolution (authors: 512 → 256)
    batch_size: int = 8  # 8 content-style pairs per step (train.lua -batchSize)
    published_steps: int = 160_000  # train.lua -maxIter (fit's `steps` is what actually runs)
    lr: float = 1e-4  # Adam learning rate
    lr_decay: float = 5e-5  # lr_i = lr / (1 + lr_decay · i), the Torch code's inverse decay
    content_weight: float = 1.0  # L_c weight
    style_weight: float = 10.0  # λ of Eq. 11 (pytorch-AdaIN --style_weight)
    alpha: float = 1.0  # Eq. 14 content-style trade-off at test time: 1 = full style
    decoder_widths: tuple[int, int, int] = (256, 128, 64)  # the mirror of VGG; smaller in tests
    loss_backbone: str = "inception"  # "inception": offline substitute; "vgg": needs VGG-19
    vgg_weights: str | None = None  # ImageNet VGG-19 file (loss_backbone="vgg"); None → cache

    def __post_init__(self) -> None:
        self.decoder_widths = tuple(self.decoder_widths)
        check_backbone("adain", self.loss_backbone)
        if self.resolution < 16 or self.resolution % 8:
            raise SvdinstError(
                f"adain resolution must be a multiple of 8 and ≥ 16, got {self.resolution}."
            )
        if not 0.0 <= self.alpha <= 1.0:
            raise SvdinstError(f"adain alpha must be in [0, 1], got {self.alpha}.")
        if self.load_size and self.load_size < self.resolution:
            raise SvdinstError(f"adain load_size {self.load_size} < resolution {self.resolution}.")


def adain_losses(
    encoder: torch.nn.Module,
    decoder: torch.nn.Module,
    content: torch.Tensor,
    style: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Content (Eq. 12) and style (Eq. 13) losses of one batch, unweighted."""
    with torch.no_grad():
        style_feats = encoder(style)
        target = adain(encoder(content)[-1], *mean_std(style_feats[-1]))
    out_feats = encoder(decoder(target))
    return F.mse_loss(out_feats[-1], target), mean_std_loss(out_feats, style_feats)


@register
class AdaIN(Baseline):
    """VGG-19 encoder + AdaIN + trained decoder (see the module docstring)."""

    name = "adain"
    config_class = AdaINConfig
    uses_style_at_inference = True

    def __init__(self, config: AdaINConfig | None = None, device: str = "cpu") -> None:
        super().__init__(config, device)
        with fixed_seed(0):  # initial weights independent of whatever ran before
            width = feature_channels(self.config.loss_backbone, ADAIN_LAYERS[-1])
            decoder = vgg_mirror_decoder(width, self.config.decoder_widths)
            if self.upsample > 1:  # the encoder saw the image ×2: back to the input's size
                decoder = torch.nn.Sequential(decoder, torch.nn.AvgPool2d(self.upsample))
            self.decoder = decoder.to(self.device)
        self._encoder: torch.nn.Module | None = None

    @classmethod
    def tiny_config(cls, resolution: int = 64) -> AdaINConfig:
        """The real (substitute) encoder with a decoder of 1/8 the widths, for CPU tests."""
        return AdaINConfig(resolution=resolution, batch_size=1, decoder_widths=(32, 16, 8))

    @property
    def upsample(self) -> int:
        """The Inception substitute encodes the image ×2 (see :func:`loss_network`); VGG ×1."""
        return LOSS_UPSAMPLE if self.config.loss_backbone == "inception" else 1

    @property
    def backbone(self) -> str:
        """The encoder the run used: VGG-19 or its labelled Inception substitute."""
        return describe_backbone(self.config.loss_backbone, "vgg19")

    @property
    def encoder(self) -> torch.nn.Module:
        """The frozen encoder (relu1_1 … relu4_1 or their substitutes), built on first use."""
        if self._encoder is None:
            cfg = self.config
            self._encoder = loss_network(
                cfg.loss_backbone, "vgg19", ADAIN_LAYERS, cfg.vgg_weights, upsample=self.upsample
            )
            self._encoder.to(self.device)
        return self._encoder

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
        """Train the decoder on random (content, style) crop pairs.

        Args:
            content_dir: photos (the paper: MS-COCO).
            style_dir: style images (the paper: WikiArt; here the murals).
            steps (`int`): Adam steps of ``batch_size`` pairs.
            out_dir, checkpoint_every, resume, seed: see :meth:`Baseline.fit`.
        """
        cfg = self.config
        seed_everything(seed)
        encoder = self.encoder

        content, style = style_pair_samplers(
            content_dir, style_dir, cfg.resolution, cfg.load_size, seed
        )
        optimizer = torch.optim.Adam(self.decoder.parameters(), lr=cfg.lr)
        self.decoder.train()

        def step_fn(step: int) -> dict[str, float]:
            for group in optimizer.param_groups:  # inverse decay, a function of the step only
                group["lr"] = cfg.lr / (1.0 + cfg.lr_decay * step)
            c = content.sample(cfg.batch_size).to(self.device)
            s = style.sample(cfg.batch_size).to(self.device)
            loss_c, loss_s = adain_losses(encoder, self.decoder, c, s)
            loss = cfg.content_weight * loss_c + cfg.style_weight * loss_s
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return {"loss": loss.item(), "content": loss_c.item(), "style": loss_s.item()}

        objects = {"decoder": self.decoder, "optimizer": optimizer}
        objects.update(content=content, style=style)
        losses = fit_loop(
            step_fn, steps, objects=objects, out_dir=out_dir, checkpoint_every=checkpoint_every,
            resume=resume, desc=self.name, lr_fn=lambda: optimizer.param_groups[0]["lr"],
        )  # fmt: skip
        self.decoder.eval()
        return losses

    @torch.no_grad()
    def transfer(self, content: torch.Tensor, style: torch.Tensor, alpha: float) -> torch.Tensor:
        """``g((1 − α) f(c) + α AdaIN(f(c), f(s)))`` for images in [0, 1] (Eq. 14)."""
        feat = self.encoder(content)[-1]
        target = adain(feat, *mean_std(self.encoder(style)[-1]))
        return self.decoder(alpha * target + (1.0 - alpha) * feat)

    @torch.no_grad()
    def stylize(
        self,
        images: list[Image.Image],
        style: list[Image.Image] | None = None,
        alpha: float | None = None,
    ) -> list[Image.Image]:
        """Stylize photo ``i`` with ``style[i % len(style)]`` at the photo's own size.

        Args:
            images (`list[PIL.Image]`): photos.
            style (`list[PIL.Image]`): style images, resized so their shorter side matches the
                photo's (AdaIN's statistics depend on scale).
            alpha (`float`, *optional*): overrides ``config.alpha`` (Eq. 14).
        """
        style = require_style(self.name, style)
        alpha = self.config.alpha if alpha is None else alpha
        if not 0.0 <= alpha <= 1.0:
            raise SvdinstError(f"adain alpha must be in [0, 1], got {alpha}.")
        self.decoder.eval()
        images = list(images)

        def run(x: torch.Tensor, i: int) -> torch.Tensor:
            s = style_tensor_for(style, i, images[i])
            return self.transfer(x, s.to(self.device), alpha)

        return translate_each(images, run, self.device, multiple=8, value_range=(0.0, 1.0))

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {f"decoder.{k}": v for k, v in self.decoder.state_dict().items()}
        state.update({f"encoder.{k}": v for k, v in self.encoder.state_dict().items()})
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        def part(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}

        self.decoder.load_state_dict(part("decoder."))
        if self._encoder is None:  # the saved run carries its encoder: no file search
            cfg = self.config
            self._encoder = loss_network(
                cfg.loss_backbone, "vgg19", ADAIN_LAYERS, upsample=self.upsample, load=False
            )
            self._encoder.to(self.device)
        self._encoder.load_state_dict(part("encoder."))
