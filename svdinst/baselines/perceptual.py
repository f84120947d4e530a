"""The loss network of the perceptual baselines (AdaIN, StyTr², fast style): VGG or its substitute.

The papers use ImageNet VGG-19 (AdaIN, StyTr²) or VGG-16 (Johnson et al.). Offline the kit has
no VGG weights, so the default ``loss_backbone = "inception"`` is the lower TF-FID Inception
(:class:`svdinst.models.inception_trunk.InceptionTrunk`, real ImageNet weights) as a *labelled
substitute*: each VGG layer a method names maps to the Inception tap at the same stride and
depth (:data:`VGG_TO_INCEPTION`), and the run records ``backbone`` =
``"tf-fid-inception-trunk (substitute for VGG-19)"``. ``loss_backbone = "vgg"`` uses
torchvision's VGG (``--vgg-weights FILE`` or the torch cache; fetched with network) and refuses
to run without its weights. Neither path ever uses random features.
"""

from __future__ import annotations

import os

from torch import nn

from svdinst.baselines.vgg import VGGFeatures
from svdinst.errors import SvdinstError
from svdinst.models.inception_trunk import TAP_CHANNELS, InceptionTrunk, backbone_label

BACKBONES = ("inception", "vgg")
# VGG ReLU → the Inception tap of the same stride (1/2, 1/4, 1/8) and relative depth.
VGG_TO_INCEPTION = {
    "relu1_1": "Conv2d_1a_3x3",
    "relu1_2": "Conv2d_2a_3x3",
    "relu2_1": "Conv2d_2b_3x3",
    "relu2_2": "Conv2d_2b_3x3",
    "relu3_1": "Conv2d_4a_3x3",
    "relu3_3": "Conv2d_4a_3x3",
    "relu4_1": "Mixed_5b",
    "relu4_3": "Mixed_5c",
    "relu5_1": "Mixed_5d",
}
VGG_CHANNELS = {"relu1": 64, "relu2": 128, "relu3": 256, "relu4": 512, "relu5": 512}
VGG_NAMES = {"vgg19": "VGG-19", "vgg16": "VGG-16"}
LOSS_UPSAMPLE = 2  # the substitute as a loss network sees images ×2 (see loss_network)


def check_backbone(method: str, backbone: str) -> None:
    """A clear error for an unknown ``loss_backbone`` value."""
    if backbone not in BACKBONES:
        raise SvdinstError(f"{method} loss_backbone must be one of {BACKBONES}, got {backbone!r}.")


def feature_channels(backbone: str, layer: str) -> int:
    """Channels of VGG layer ``layer`` (``"relu4_1"``) in ``backbone`` (its substitute's tap)."""
    if backbone == "inception":
        return TAP_CHANNELS[VGG_TO_INCEPTION[layer]]
    return VGG_CHANNELS[layer.split("_")[0]]


def describe_backbone(backbone: str, arch: str) -> str:
    """The ``backbone`` a run records: the substitute's label, or the VGG it used."""
    if backbone == "inception":
        return backbone_label(VGG_NAMES[arch])
    return f"torchvision {VGG_NAMES[arch]} (ImageNet)"


def loss_network(
    backbone: str,
    arch: str,
    layers: tuple[str, ...],
    vgg_weights: str | os.PathLike | None = None,
    *,
    upsample: int = 1,
    load: bool = True,
) -> nn.Module:
    """The frozen feature network: ``forward(images in [0, 1])`` → the layers' activations.

    Args:
        backbone (`str`): ``"inception"`` (the substitute) or ``"vgg"``.
        arch (`str`): the paper's VGG, ``"vgg19"`` or ``"vgg16"`` (what the substitute stands for).
        layers (`tuple[str, ...]`): the paper's VGG ReLU names, e.g. ``("relu1_1", …)``.
        vgg_weights (*optional*): ImageNet VGG file (``backbone="vgg"`` only).
        upsample (`int`, defaults to 1): the Inception substitute sees the images ×``upsample``
            (bilinear): 2 for a *loss* network at 128 px, so its stride-2 stem sees pixel-scale
            patterns (else generators learn checkerboards it cannot see); AdaIN's encoder keeps 1
            (its decoder mirrors a 1/8-size map).
        load (`bool`, defaults to `True`): `False` builds the layers only (a saved model's state
            dict is about to fill them).
    """
    check_backbone(arch, backbone)
    if backbone == "inception":
        taps = tuple(VGG_TO_INCEPTION[name] for name in layers)
        return InceptionTrunk(taps, upsample=upsample, load=load)
    return VGGFeatures(arch, layers, vgg_weights, load=load)
