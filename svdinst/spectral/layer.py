"""SVDiff spectral shifts: one Linear/Conv2d weight as W = U·diag(relu(σ + s·δ))·Vᵀ.

SVDiff (Han et al., 2023, "SVDiff: Compact Parameter Space for Diffusion Fine-Tuning", Eq. 1)
decomposes each pretrained weight once, W₀ = U·diag(σ)·Vᵀ, freezes U, σ, Vᵀ and trains only a
shift δ of the singular values: W_δ = U·diag(ReLU(σ + δ))·Vᵀ. For SD-1.4's UNet that is 282
layers and 222,696 shifts (< 1 MB). A scale ``s`` on δ is the style-strength knob.

:class:`SpectralShiftLayer` is the peft-style wrapper (``base_layer``, ``merge()`` /
``unmerge()``); :mod:`svdinst.spectral.model` injects it into a model. Two training paths compute
the same δ-gradient: the *exact* path rebuilds W inside autograd on every forward (fp32, the
reference the tests check against), the *fast* path (:mod:`svdinst.spectral.fast`) rebuilds W
once per optimizer step in a compute dtype and projects the weight gradient onto δ in a custom
backward, or, for layers with few tokens, never forms W (:mod:`svdinst.spectral.factored`).

Memory design: the original weight is never recomputed from the factors (that is exact only to
~1e-6). Whenever the base layer's storage holds a rebuilt weight (after ``merge()`` or in fast
mode) the original is kept on the CPU (:attr:`SpectralShiftLayer.original`), so ``unmerge()``
restores it bit for bit and the GPU holds one weight per layer, as in vanilla SD (a factored fast
layer holds none at all). A CPU weight is kept as the very tensor it was, not copied: a copy
holds the same values at another address, and MKL/oneDNN pick kernels (and so summation orders)
by the address alignment, so a copied weight gives outputs ~1e-6 away from the original's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from svdinst.spectral.aside import ShiftGradsAside
from svdinst.spectral.config import FACTORED_MODES
from svdinst.spectral.fast import fast_forward, fast_supported


class SpectralShiftLayer(nn.Module):
    """A Linear or Conv2d whose weight is U·diag(relu(σ + s·δ))·Vᵀ (SVDiff Eq. 1).

    Conv weights (out, in/groups, kh, kw) are decomposed as the matrix (out, in/groups·kh·kw);
    the functional op of the base layer (stride, padding, dilation, groups, bias) is reused.

    Args:
        base_layer (`nn.Linear` or `nn.Conv2d`): the layer to wrap (kept as ``base_layer``).
        U (`torch.Tensor`), S (`torch.Tensor`), Vh (`torch.Tensor`): its thin SVD factors,
            shapes (out, k), (k,), (k, in'), with k = min(out, in').
        fast (`bool`, defaults to `False`): use the fast path (see :mod:`svdinst.spectral.fast`).
        rebuild (`str`, defaults to ``"forward"``), factored (`str`, defaults to ``"auto"``):
            see :class:`~svdinst.spectral.config.SpectralShiftConfig`.

    Attributes (read and written by the fast kernels, see
    :class:`~svdinst.spectral.factored.ShiftLayerState`):
        scale (`float`): s; ``merged`` (`bool`): the base storage holds the merged W;
        factored (`bool` or `None`): W-free fast form, decided at the first fast forward;
        sv, grad_gate: σ' and s·1[σ + s·δ > 0] as last built; built_key: what they (or the
        stored W) were built from; original: the base weight while its storage holds a rebuilt W.
    """

    def __init__(
        self,
        base_layer: nn.Module,
        U: torch.Tensor,
        S: torch.Tensor,
        Vh: torch.Tensor,
        fast: bool = False,
        rebuild: str = "forward",
        factored: str = "auto",
    ) -> None:
        super().__init__()
        if not isinstance(base_layer, (nn.Linear, nn.Conv2d)):
            raise TypeError(
                f"Spectral shifts wrap nn.Linear and nn.Conv2d, got {type(base_layer)}."
            )
        self.base_layer = base_layer
        # Buffers follow .to(); not persistent: they derive from the base weight (and the SVD
        # cache), so state_dict() stays base weights + δ instead of growing by ~1.3× the UNet.
        self.register_buffer("U", U, persistent=False)
        self.register_buffer("S", S, persistent=False)
        self.register_buffer("Vh", Vh, persistent=False)
        self.delta = nn.Parameter(torch.zeros_like(S))
        self.scale = 1.0
        self.fast = fast and fast_supported(base_layer)
        self.rebuild, self.factored_mode = rebuild, factored
        self.factored: bool | None = None
        self.sv: torch.Tensor | None = None
        self.merged = False
        self.original: torch.Tensor | None = None
        self.built_key: tuple | None = None
        self.vh_nhwc: torch.Tensor | None = None  # factored convs under NHWC inputs
        self.grad_gate: torch.Tensor | None = None
        # A ShiftGradsAside while a training step computes ∂L/∂δ off its main chain (aside.py).
        self.aside: ShiftGradsAside | None = None

    # peft-style pass-through so code reading layer.weight / layer.bias keeps working.
    @property
    def weight(self) -> torch.Tensor:
        return self.base_layer.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base_layer.bias

    def extra_repr(self) -> str:
        mode = "merged" if self.merged else ("fast" if self.fast else "exact")
        mode += ", factored" if self.fast and self.factored else ""
        return f"k={self.S.numel()}, scale={self.scale}, {mode}"

    def shifted_singular_values(self) -> torch.Tensor:
        """relu(σ + s·δ), differentiable in δ."""
        return F.relu(self.S + self.scale * self.delta)

    def rebuild_weight(self) -> torch.Tensor:
        """U·diag(relu(σ + s·δ))·Vᵀ reshaped like the base weight (differentiable in δ)."""
        sv = self.shifted_singular_values().to(self.U.dtype)
        return ((self.U * sv) @ self.Vh).view(self.base_layer.weight.shape)

    def apply_op(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """The base layer's functional op with ``weight`` in place of its own."""
        bias = self.base_layer.bias
        if bias is not None and bias.dtype != weight.dtype:
            bias = bias.to(weight.dtype)
        if isinstance(self.base_layer, nn.Linear):
            return F.linear(x, weight, bias)
        return self.base_layer._conv_forward(x, weight, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged:
            return self.base_layer(x)
        if self.fast:
            return fast_forward(self, x)
        weight = self.rebuild_weight()
        return self.apply_op(x, weight.to(self.base_layer.weight.dtype))

    def set_fast(self, enabled: bool, factored: str | None = None) -> None:
        """Switch this layer to the fast or the exact path (unmerging first); the fast path
        picks its form again at the next forward. ``factored``: a new ``factored`` mode."""
        if factored is not None and factored not in FACTORED_MODES:
            raise ValueError(f"factored must be one of {FACTORED_MODES}, got {factored!r}.")
        self.unmerge()
        self.fast = enabled and fast_supported(self.base_layer)
        self.factored, self.sv = None, None
        if factored is not None:
            self.factored_mode = factored

    def stash_original(self) -> None:
        """Keep the base weight before its storage first holds a rebuilt W: a CPU weight as the
        tensor itself (same storage, so same alignment and kernels), a GPU one as a CPU copy."""
        if self.original is None:
            weight = self.base_layer.weight.detach()
            self.original = weight if weight.device.type == "cpu" else weight.to("cpu", copy=True)

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the shifts into the base weight; forward then costs what the base layer costs."""
        if self.merged:
            return
        self.stash_original()
        weight = self.rebuild_weight().to(self.original.dtype)
        self.base_layer.weight.data = weight.contiguous()  # a new storage: the original stays
        self.built_key = None
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Restore the original base weight bit for bit (on the CPU: the very same tensor)."""
        if self.original is not None:
            self.base_layer.weight.data = self.original.to(self.S.device)
            self.original = None
        self.built_key = None
        self.merged = False
