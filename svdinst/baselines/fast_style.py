"""Fast style transfer: Johnson, Alahi & Fei-Fei, "Perceptual Losses for Real-Time Style Transfer
and Super-Resolution" (ECCV 2016), in the layout of pytorch/examples' ``fast_neural_style``.

A feed-forward *image transformation network* (the supplementary material's architecture:
three convolutions with instance norm, five residual blocks, two upsample-convolutions, a final
9×9 convolution; 1,679,235 parameters) is trained for one style with *perceptual losses* from a
frozen VGG-16: feature reconstruction ℓ_feat at relu2_2 and style reconstruction ℓ_style — the
squared Frobenius distance of normalised Gram matrices — at relu1_2, relu2_2, relu3_3, relu4_3.

Loss network: VGG-16 when its ImageNet weights can be had (``loss_backbone="vgg"``); by default
the TF-FID Inception trunk as a labelled substitute (:mod:`svdinst.baselines.perceptual`).

One style per network, as in the paper. Our style is a *folder* (the mural set), so the Gram
target of each layer is the mean of the Gram matrices of all style images (each resized so its
shorter side is ``style_size``); with a single image this is exactly the paper's target.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from svdinst.baselines.base import Baseline, register
from svdinst.baselines.common import (
    ImageSampler,
    fit_loop,
    fixed_seed,
    seed_everything,
    translate_each,
)
from svdinst.baselines.perceptual import (
    LOSS_UPSAMPLE,
    check_backbone,
    describe_backbone,
    loss_network,
)
from svdinst.errors import SvdinstError

FAST_STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
CONTENT_LAYER = 1  # index of relu2_2 in FAST_STYLE_LAYERS (Johnson et al.)


@dataclass
class FastStyleConfig:
    """Published defaults of pytorch/examples' ``neural_style.py train`` (Johnson et al.)."""

    resolution: int = 256  # training crops of 256×256 (paper and examples' --image-size)
    style_size: int = 0  # shorter side of style images; 0 → resolution (examples: original size)
    batch_size: int = 4  # paper and examples' --batch-size
    published_steps: int = 40_000  # paper: 40k iterations ≈ 2 epochs of COCO (fit's `steps` runs)
    lr: float = 1e-3  # Adam learning rate (paper and examples' --lr)
    content_weight: float = 1e5  # examples' --content-weight (balances the Gram scale below)
    style_weight: float = 1e10  # examples' --style-weight (Grams are divided by C·H·W: tiny)
    channels: tuple[int, int, int] = (32, 64, 128)  # paper's widths; smaller only in tests
    n_residual: int = 5  # five residual blocks (supplementary Table 1)
    loss_backbone: str = "inception"  # "inception": offline substitute; "vgg": needs VGG-16
    vgg_weights: str | None = None  # ImageNet VGG-16 file (loss_backbone="vgg"); None → cache

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        check_backbone("fast_style", self.loss_backbone)
        if self.resolution < 16 or self.resolution % 4:
            raise SvdinstError(
                f"fast_style resolution must be a multiple of 4 and ≥ 16, got {self.resolution}."
            )
        if self.batch_size < 1 or self.lr <= 0:
            raise SvdinstError(f"fast_style needs batch_size ≥ 1 and lr > 0, got {self}.")


class ConvLayer(nn.Sequential):
    """Reflection padding (size // 2) then a convolution — keeps borders free of artefacts."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, upsample: int = 1):
        layers: list[nn.Module] = []
        if upsample > 1:  # nearest upsampling + conv instead of a transposed conv (no checkerboard)
            layers.append(nn.Upsample(scale_factor=upsample, mode="nearest"))
        layers += [nn.ReflectionPad2d(kernel // 2), nn.Conv2d(cin, cout, kernel, stride)]
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """Two 3×3 conv + instance-norm layers with an identity shortcut (Gross & Wilber's design)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvLayer(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True),
            nn.ReLU(),
            ConvLayer(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class TransformerNet(nn.Sequential):
    """Johnson et al.'s image transformation network (supplementary Table 1, with instance norm).

    Works on pixel values in [0, 255] like pytorch/examples; the output is unbounded (clamped only
    when saved). Down-samples by 4, so sizes should be multiples of 4.

    Args:
        channels (`tuple[int, int, int]`, defaults to `(32, 64, 128)`): the three stage widths.
        n_residual (`int`, defaults to 5): residual blocks at the lowest resolution.
    """

    def __init__(self, channels: tuple[int, int, int] = (32, 64, 128), n_residual: int = 5):
        c1, c2, c3 = channels

        def conv_in_relu(cin: int, cout: int, kernel: int, **kw: int) -> list[nn.Module]:
            return [
                ConvLayer(cin, cout, kernel, **kw),
                nn.InstanceNorm2d(cout, affine=True),
                nn.ReLU(),
            ]

        super().__init__(
            *conv_in_relu(3, c1, 9),
            *conv_in_relu(c1, c2, 3, stride=2),
            *conv_in_relu(c2, c3, 3, stride=2),
            *[ResidualBlock(c3) for _ in range(n_residual)],
            *conv_in_relu(c3, c2, 3, upsample=2),
            *conv_in_relu(c2, c1, 3, upsample=2),
            ConvLayer(c1, 3, 9),
        )


def gram_matrix(feat: torch.Tensor) -> torch.Tensor:
    """Normalised Gram matrix ``G = F Fᵀ / (C·H·W)`` of ``(N, C, H, W)`` features (the paper's Gram matrix)."""
    n, c, h, w = feat.shape
    flat = feat.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def perceptual_losses(
    feats_out: list[torch.Tensor],
    feats_content: list[torch.Tensor],
    gram_targets: list[torch.Tensor],
    content_weight: float,
    style_weight: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted feature (ℓ_feat, relu2_2) and style (ℓ_style, Σ layers) reconstruction losses.

    Both use the mean squared error, as pytorch/examples does. ``gram_targets`` are ``(1, C, C)``.
    """
    content = content_weight * F.mse_loss(feats_out[CONTENT_LAYER], feats_content[CONTENT_LAYER])
    style = feats_out[0].new_zeros(())
    for feat, target in zip(feats_out, gram_targets, strict=True):
        gram = gram_matrix(feat)
        style = style + F.mse_loss(gram, target.expand_as(gram))
    return content, style_weight * style


@register
class FastStyle(Baseline):
    """Johnson et al.'s per-style feed-forward network (see the module docstring)."""

    name = "fast_style"
    config_class = FastStyleConfig
    uses_style_at_inference = False

    def __init__(self, config: FastStyleConfig | None = None, device: str = "cpu") -> None:
        super().__init__(config, device)
        cfg = self.config
        with fixed_seed(0):  # initial weights independent of whatever ran before
            self.net = TransformerNet(cfg.channels, cfg.n_residual).to(self.device)
        self.vgg: torch.nn.Module | None = None  # built on the first fit (only training needs it)

    @classmethod
    def tiny_config(cls, resolution: int = 64) -> FastStyleConfig:
        """Same layout (5 residual blocks) with a quarter of the widths, for CPU tests."""
        return FastStyleConfig(resolution=resolution, batch_size=1, channels=(8, 16, 32))

    @property
    def backbone(self) -> str:
        """The loss network the run used: VGG-16 or its labelled Inception substitute."""
        return describe_backbone(self.config.loss_backbone, "vgg16")

    def loss_network(self) -> torch.nn.Module:
        """The frozen network of the perceptual losses (VGG-16 or its substitute; built once)."""
        if self.vgg is None:
            cfg = self.config
            self.vgg = loss_network(
                cfg.loss_backbone,
                "vgg16",
                FAST_STYLE_LAYERS,
                cfg.vgg_weights,
                upsample=LOSS_UPSAMPLE,
            )
            self.vgg.to(self.device)
        return self.vgg

    @torch.no_grad()
    def style_grams(self, style_dir: str | os.PathLike) -> list[torch.Tensor]:
        """Mean Gram matrix per layer over every image of ``style_dir`` (``(1, C, C)`` each)."""
        side = self.config.style_size or self.config.resolution
        # The sampler's images are the whole pictures, shorter side resized to `side`.
        images = ImageSampler(style_dir, side, load_size=side, value_range=(0.0, 1.0)).images
        vgg = self.loss_network()
        sums: list[torch.Tensor] | None = None
        for image in images:
            grams = [gram_matrix(f) for f in vgg(image[None].to(self.device))]
            sums = grams if sums is None else [s + g for s, g in zip(sums, grams)]
        return [s / len(images) for s in sums]

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
        """Train the network on ``content_dir`` crops toward the style of ``style_dir``.

        Args:
            content_dir: photos (the paper: COCO); random ``resolution`` crops, no flips.
            style_dir: the style images (one mean Gram target, see the module docstring).
            steps (`int`): Adam steps of ``batch_size`` crops.
            out_dir, checkpoint_every, resume, seed: see :meth:`Baseline.fit`.
        """
        cfg, dev = self.config, self.device
        seed_everything(seed)
        vgg = self.loss_network()
        targets = self.style_grams(style_dir)
        # Resize the shorter side to the crop size then crop (examples: Resize + CenterCrop).
        content = ImageSampler(
            content_dir, cfg.resolution, load_size=cfg.resolution, flip=False, seed=seed,
            value_range=(0.0, 1.0),
        )  # fmt: skip
        optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        self.net.train()

        def step_fn(step: int) -> dict[str, float]:
            x = content.sample(cfg.batch_size).to(dev)
            y = self.net(x * 255.0) / 255.0  # the network works in [0, 255] (pytorch/examples)
            with torch.no_grad():
                feats_x = vgg(x)
            loss_c, loss_s = perceptual_losses(
                vgg(y), feats_x, targets, cfg.content_weight, cfg.style_weight
            )
            loss = loss_c + loss_s
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return {"loss": loss.item(), "content": loss_c.item(), "style": loss_s.item()}

        losses = fit_loop(
            step_fn, steps, objects={"net": self.net, "optimizer": optimizer, "content": content},
            out_dir=out_dir, checkpoint_every=checkpoint_every, resume=resume, desc=self.name,
            lr_fn=lambda: optimizer.param_groups[0]["lr"],
        )  # fmt: skip
        self.net.eval()
        return losses

    @torch.no_grad()
    def stylize(
        self, images: list[Image.Image], style: list[Image.Image] | None = None
    ) -> list[Image.Image]:
        """One forward pass per photo at its own size (``style`` is ignored: one net per style)."""
        self.net.eval()
        return translate_each(
            images, lambda x, i: self.net(x * 255.0) / 255.0, self.device,
            multiple=4, value_range=(0.0, 1.0),
        )  # fmt: skip

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"net.{k}": v for k, v in self.net.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.net.load_state_dict({k[len("net.") :]: v for k, v in state.items()})
