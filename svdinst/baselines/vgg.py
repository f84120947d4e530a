"""Frozen VGG feature extractors for the perceptual losses of StyTr², AdaIN and fast style transfer.

The architectures are torchvision's (``vgg19`` / ``vgg16``, Simonyan & Zisserman 2015); only the
convolutional trunk up to the deepest layer a method needs is kept. Inputs are RGB in [0, 1]; the
ImageNet normalisation the weights were trained with happens inside.

Weights come, in this order, from an explicit file (``weights=FILE``, the CLI's
``--vgg-weights FILE``: torchvision's ``vgg19-dcbb9e9d.pth`` / ``vgg16-397923af.pth`` or a
safetensors copy), from torch hub's cache (``$TORCH_HOME/hub/checkpoints``), or — with network —
fetched into that cache through torchvision's weights API (:mod:`svdinst.models.backbones`).
Offline (``HF_HUB_OFFLINE``) or when the fetch fails it is an error naming the file and how to
supply it: a perceptual loss on random features teaches nothing (issue 17), so the baselines
default to the Inception substitute instead (:mod:`svdinst.baselines.perceptual`). Only tests of
the loss wiring ask for ``weights="random"`` explicitly.

Deviation from the authors' code, on purpose: AdaIN and StyTr² used the Caffe "normalised VGG"
with reflection padding; torchvision's trunk uses zero padding and ImageNet mean/std. The layers
and the losses built on them are the same.

Also here: :func:`vgg_mirror_decoder`, the decoder that mirrors VGG-19 up to relu4_1 (nearest
upsampling, reflection padding) shared by AdaIN (Huang & Belongie 2017) and StyTr²'s CNN decoder
(Deng et al. 2022).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from svdinst.baselines.common import fixed_seed
from svdinst.errors import ModelNotFoundError, SvdinstError
from svdinst.models.backbones import TORCHVISION_WEIGHTS, fetch_weights, find_weights, supply_hint

# Index of each named ReLU inside torchvision's ``vgg*.features`` Sequential.
VGG19_RELU = {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 20, "relu5_1": 29}
VGG16_RELU = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22}
_INDEX = {"vgg19": VGG19_RELU, "vgg16": VGG16_RELU}
_CFG = {"vgg19": "E", "vgg16": "D"}  # torchvision's names of the two layer configurations
# torchvision's ImageNet checkpoint file names (what torch.hub caches under checkpoints/).
TORCHVISION_FILES = {arch: TORCHVISION_WEIGHTS[arch][1] for arch in ("vgg19", "vgg16")}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RANDOM_SOURCE = "random"


def find_vgg_weights(arch: str, weights: str | os.PathLike | None = None) -> Path | None:
    """The ImageNet weights file to use for ``arch``, or ``None`` when none is available.

    Args:
        arch (`str`): ``"vgg19"`` or ``"vgg16"``.
        weights (`str` or `os.PathLike`, *optional*): an explicit file; it must exist.

    Returns:
        The explicit file, else torchvision's file in torch hub's cache if present, else ``None``.
    """
    if arch not in TORCHVISION_FILES:
        raise SvdinstError(f"Unknown VGG architecture {arch!r}; use 'vgg19' or 'vgg16'.")
    if weights is not None and str(weights) == RANDOM_SOURCE:
        return None
    return find_weights(
        arch,
        weights,
        f"pass torchvision's {TORCHVISION_FILES[arch]} (or leave --vgg-weights out to use the "
        "Inception substitute).",
    )


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            return load_file(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a corrupt or non-tensor file: say which and why
        raise SvdinstError(f"Cannot read VGG weights '{path}': {err}") from err
    if not isinstance(state, dict):
        raise SvdinstError(f"VGG weights '{path}' is not a state dict of tensors.")
    return state


class VGGFeatures(nn.Module):
    """Frozen VGG trunk returning the activations of named ReLU layers.

    Args:
        arch (`str`): ``"vgg19"`` or ``"vgg16"`` (torchvision's architectures).
        layers (`tuple[str, ...]`): ReLU names to return, e.g. ``("relu1_1", …, "relu4_1")``;
            the trunk is cut after the deepest one.
        weights (`str` or `os.PathLike`, *optional*, defaults to `None`): ImageNet weights file;
            `None` looks in torch hub's cache and, with network, fetches into it through
            torchvision (else an error); ``"random"`` (tests of the loss wiring only) skips it.
        load (`bool`, *optional*, defaults to `True`): `False` builds the architecture only (its
            weights are about to be restored from a saved state dict).
    """

    def __init__(
        self,
        arch: str,
        layers: tuple[str, ...],
        weights: str | os.PathLike | None = None,
        *,
        load: bool = True,
    ) -> None:
        super().__init__()
        from torchvision import models  # seconds to import: only when a VGG is built

        if arch not in _INDEX:
            raise SvdinstError(f"Unknown VGG architecture {arch!r}; use 'vgg19' or 'vgg16'.")
        unknown = [name for name in layers if name not in _INDEX[arch]]
        if unknown:
            raise SvdinstError(f"{arch} has no layer {unknown[0]!r}; known: {list(_INDEX[arch])}.")
        self.arch, self.layers = arch, tuple(layers)
        self._ends = [_INDEX[arch][name] for name in self.layers]
        last = max(self._ends)
        # torchvision's trunk (make_layers of config "E"/"D" is exactly vgg19/vgg16 .features),
        # with torchvision's VGG init under a fixed seed: the random fallback is identical in
        # every process, so save → load is exact even without ImageNet weights.
        # Built on the meta device first so the weights are initialised once, not twice.
        with torch.device("meta"):
            trunk = models.vgg.make_layers(models.vgg.cfgs[_CFG[arch]])[: last + 1]
        trunk = trunk.to_empty(device="cpu")
        with fixed_seed(0):
            for m in trunk:
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.zeros_(m.bias)
        self.features = nn.Sequential(
            *[nn.ReLU(inplace=False) if isinstance(m, nn.ReLU) else m for m in trunk]
        )
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.weights_source = "state_dict"
        if load:
            path = find_vgg_weights(arch, weights)
            if path is not None:
                state, where = _read_state(path), str(path)
            elif weights is None:  # nothing local: fetch through torchvision (with network)
                state, where = fetch_weights(arch)
            else:
                state, where = None, f"weights={RANDOM_SOURCE!r} was asked for"
            if state is None and weights is None:  # nothing local and no fetch: never random
                raise ModelNotFoundError(
                    f"No ImageNet {arch} weights ({where}); "
                    f"{supply_hint(arch, '--vgg-weights FILE')} — or train with the default "
                    "loss_backbone='inception' (the TF-FID Inception substitute, offline)."
                )
            if state is not None:
                self._load_state(state, Path(where))
            else:
                self.weights_source = RANDOM_SOURCE  # asked for by name (tests of the wiring)
        self.requires_grad_(False)
        self.eval()

    def _load_state(self, state: dict[str, torch.Tensor], path: Path) -> None:
        trunk = {}
        for key, value in state.items():
            short = key[len("features.") :] if key.startswith("features.") else key
            trunk[short] = value
        own = self.features.state_dict()
        missing = [k for k in own if k not in trunk or trunk[k].shape != own[k].shape]
        if missing:
            raise SvdinstError(
                f"'{path}' is not torchvision {self.arch} ImageNet weights (layer "
                f"features.{missing[0]} missing or mis-shaped); use {TORCHVISION_FILES[self.arch]}."
            )
        self.features.load_state_dict({k: trunk[k] for k in own})
        self.weights_source = f"imagenet:{path}"

    def train(self, mode: bool = True) -> VGGFeatures:
        """Stay in eval mode: the backbone is a fixed loss network."""
        return super().train(False)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Activations at ``self.layers`` (in that order) for RGB ``images`` in [0, 1]."""
        x = (images - self.mean) / self.std
        out: dict[int, torch.Tensor] = {}
        last = max(self._ends)
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self._ends:
                out[i] = x
            if i == last:
                break
        return [out[i] for i in self._ends]


def vgg_mirror_decoder(in_channels: int = 512, widths: tuple[int, int, int] = (256, 128, 64)):
    """The decoder mirroring VGG-19 up to relu4_1: 9 conv layers, 3 nearest ×2 upsamplings.

    Layout of Huang & Belongie (2017): it mirrors the encoder, with pooling replaced by nearest
    up-sampling and reflection padding; StyTr² (Deng et al. 2022) reuses it as its CNN decoder.
    With the defaults it has 3,505,219 parameters, the count of the authors' decoder.

    Args:
        in_channels (`int`, *optional*, defaults to 512): channels of the feature map to decode.
        widths (`tuple[int, int, int]`, *optional*, defaults to `(256, 128, 64)`): the widths of
            the relu3_x, relu2_x and relu1_x mirror stages (smaller in tests).
    """
    w3, w2, w1 = widths

    def conv(cin: int, cout: int, relu: bool = True) -> list[nn.Module]:
        block: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)]
        return [*block, nn.ReLU()] if relu else block

    up = nn.Upsample(scale_factor=2, mode="nearest")
    return nn.Sequential(
        *conv(in_channels, w3),
        up,
        *conv(w3, w3),
        *conv(w3, w3),
        *conv(w3, w3),
        *conv(w3, w2),
        nn.Upsample(scale_factor=2, mode="nearest"),
        *conv(w2, w2),
        *conv(w2, w1),
        nn.Upsample(scale_factor=2, mode="nearest"),
        *conv(w1, w1),
        *conv(w1, 3, relu=False),
    )


def mean_std(feat: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and std over space, shapes ``(N, C, 1, 1)``.

    The std is ``sqrt(unbiased variance + eps)``, as in the AdaIN and StyTr² reference code.
    """
    n, c = feat.shape[:2]
    flat = feat.reshape(n, c, -1)
    std = (flat.var(dim=2) + eps).sqrt().view(n, c, 1, 1)
    return flat.mean(dim=2).view(n, c, 1, 1), std


def adain(content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor) -> torch.Tensor:
    """Adaptive instance normalisation (Huang & Belongie 2017, Eq. 8).

    ``AdaIN(x, y) = σ(y) · (x − μ(x)) / σ(x) + μ(y)``; the style enters only through its channel
    statistics ``style_mean`` / ``style_std`` (shape ``(N or 1, C, 1, 1)``).
    """
    c_mean, c_std = mean_std(content)
    return (content - c_mean) / c_std * style_std + style_mean


def mean_std_loss(feats: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
    """Style loss of AdaIN (L_s) and StyTr²: Σ_layers MSE(μ) + MSE(σ) of channel statistics."""
    loss = feats[0].new_zeros(())
    for f, t in zip(feats, targets, strict=True):
        f_mean, f_std = mean_std(f)
        t_mean, t_std = mean_std(t)
        loss = loss + nn.functional.mse_loss(f_mean, t_mean) + nn.functional.mse_loss(f_std, t_std)
    return loss
