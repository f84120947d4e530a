"""The fast training path of spectral shifts: rebuild W once per optimizer step, project dW onto δ.

The naive SVDiff port rebuilds W = U·diag(relu(σ+δ))·Vᵀ inside autograd on every forward, so
autograd keeps each W and the rebuild's intermediates alive until backward, and repeats the
rebuild for every micro-batch. Here (same gradient, Han et al., 2023, Eq. 1 differentiated):

* **Rebuild once per optimizer step**, outside autograd, into the base layer's own weight
  storage (the original weight lives on as a CPU copy; see :mod:`svdinst.spectral`). A layer
  knows its W is stale from δ's version counter, which every optimizer step bumps, so gradient
  accumulation reuses W (``rebuild="step"``; the default ``"forward"`` rebuilds every
  forward, which needs no cooperation from the training loop). U, Vᵀ and W may be bfloat16 (``compute_dtype``).
* **Custom backward**: y = op(x, W) saves only x. Backward computes dx with W, the weight
  gradient dW transiently, and its projection onto the shifts
  ∂L/∂δₖ = s·1[σₖ + s·δₖ > 0]·uₖᵀ·dW·vₖ = s·1[…]·Σⱼ (Uᵀ·dW)ₖⱼ·Vᵀₖⱼ, accumulated in float32,
  then frees dW. No per-layer W is kept by autograd.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from svdinst.spectral import SpectralShiftLayer


@torch.no_grad()
def refresh_weight(layer: SpectralShiftLayer, force: bool = False) -> None:
    """Write U·diag(relu(σ + s·δ))·Vᵀ into the base weight's storage (if stale, or ``force``)."""
    key = (layer.delta._version, layer.delta.data_ptr(), layer.scale, layer.U.device, layer.U.dtype)
    if layer._built_key == key and not force:
        return
    layer._stash_original()
    weight = layer.base_layer.weight
    sv = layer.shifted_singular_values().to(layer.U.dtype)
    rows = weight.shape[0]
    if weight.dtype == layer.U.dtype and weight.device == layer.U.device and weight.is_contiguous():
        torch.mm(layer.U * sv, layer.Vh, out=weight.data.view(rows, -1))
    else:  # first build: the storage changes dtype (e.g. float32 original → bfloat16 W)
        weight.data = (layer.U * sv).mm(layer.Vh).view(weight.shape)
    layer._built_key = key


def _grads(
    layer: SpectralShiftLayer, x: torch.Tensor, g: torch.Tensor, need_dx: bool
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """(dL/dx, dL/dW) of the base op at W = the stored rebuilt weight."""
    base, weight = layer.base_layer, layer.base_layer.weight
    if isinstance(base, nn.Linear):
        g2, x2 = g.reshape(-1, g.shape[-1]), x.reshape(-1, x.shape[-1])
        dx = (g2 @ weight).view(x.shape) if need_dx else None
        return dx, g2.t() @ x2
    dx, dw, _ = torch.ops.aten.convolution_backward(
        g,
        x,
        weight,
        None,
        base.stride,
        base.padding,
        base.dilation,
        False,
        [0, 0],
        base.groups,
        [need_dx, True, False],
    )
    return dx, dw


def project_weight_grad(layer: SpectralShiftLayer, dw: torch.Tensor) -> torch.Tensor:
    """∂L/∂δ from ∂L/∂W: s·1[σ + s·δ > 0]·diag(Uᵀ·dW·V), summed in the dtype of σ (≥ float32)."""
    proj = layer.U.t() @ dw.reshape(dw.shape[0], -1).to(layer.U.dtype)
    diag = (proj * layer.Vh).sum(dim=1, dtype=layer.S.dtype)
    active = (layer.S + layer.scale * layer.delta.detach()) > 0
    return (diag * layer.scale * active).to(layer.delta.dtype)


class _SpectralShiftFunction(torch.autograd.Function):
    """y = op(x, W(δ)) with W precomputed; backward yields dx and ∂L/∂δ (see module docstring)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, delta: torch.Tensor, layer: SpectralShiftLayer):
        weight = layer.base_layer.weight
        xc = x.to(weight.dtype)
        with torch.autocast(device_type=x.device.type, enabled=False):
            y = layer.apply_op(xc, weight)
        ctx.save_for_backward(xc)
        ctx.layer, ctx.in_dtype = layer, x.dtype
        return y.to(x.dtype)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (x,) = ctx.saved_tensors
        layer = ctx.layer
        with torch.autocast(device_type=x.device.type, enabled=False):
            dx, dw = _grads(layer, x, g.to(x.dtype), ctx.needs_input_grad[0])
            ddelta = project_weight_grad(layer, dw) if ctx.needs_input_grad[1] else None
        del dw
        return (dx.to(ctx.in_dtype) if dx is not None else None), ddelta, None


def fast_forward(layer: SpectralShiftLayer, x: torch.Tensor) -> torch.Tensor:
    """Forward of a fast-path layer: refresh W if stale, then the custom-backward op."""
    refresh_weight(layer, force=layer.rebuild == "forward")
    if not (torch.is_grad_enabled() and (layer.delta.requires_grad or x.requires_grad)):
        with torch.autocast(device_type=x.device.type, enabled=False):
            return layer.apply_op(x.to(layer.base_layer.weight.dtype), layer.base_layer.weight).to(
                x.dtype
            )
    return _SpectralShiftFunction.apply(x, layer.delta, layer)
