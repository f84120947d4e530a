"""The fast training path of spectral shifts: rebuild W once per optimizer step, project dW onto δ.

The naive SVDiff port rebuilds W = U·diag(relu(σ+δ))·Vᵀ inside autograd on every forward, so
autograd keeps each W and the rebuild's intermediates alive until backward, and repeats the
rebuild for every micro-batch. Here (same gradient, Han et al., 2023, Eq. 1 differentiated):

* **Rebuild once per optimizer step**, outside autograd, into the base layer's own weight
  storage (the original weight lives on as a CPU tensor; see :mod:`svdinst.spectral.layer`). A layer
  knows its W is stale from δ's version counter, which every optimizer step bumps, so gradient
  accumulation reuses W (``rebuild="step"``; the default ``"forward"`` rebuilds every
  forward, which needs no cooperation from the training loop). U, Vᵀ and W may be bfloat16 (``compute_dtype``).
  A forward pre-hook on the wrapped model rebuilds all layers at once (a few ``_foreach``
  launches and one GEMM per layer), so no layer pays Python overhead for it during the forward.
* **Custom backward**: y = op(x, W) saves only x. Backward computes dx with W, the weight
  gradient dW transiently, and its projection onto the shifts
  ∂L/∂δₖ = s·1[σₖ + s·δₖ > 0]·uₖᵀ·dW·vₖ = s·1[…]·Σⱼ (Uᵀ·dW)ₖⱼ·Vᵀₖⱼ, accumulated in float32,
  then frees dW. No per-layer W is kept by autograd.

Everything stays on the device with static shapes, so a whole training step (forward, backward,
``AdamW(capturable=True)``) can be captured in one CUDA graph, which removes the Python and
launch overhead that dominates an SD step at batch 1. Layers that see few tokens skip W
altogether (:mod:`svdinst.spectral.factored`, ``factored="auto"``). Measured on an H100 (see
``reports/benchmarks.md``, TF32, both graph-captured): 1.20× the textual-inversion step at
batch 1 and 1.15× at batch 4, at 0.84× its peak memory; the naive port needs 2.5× the memory.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import nn

from svdinst.spectral.factored import (
    ShiftLayerState,
    factored_forward,
    is_nhwc,
    prefers_factored,
    shift_grad,
)


def fast_supported(layer: nn.Module) -> bool:
    """The fast backward handles Linear and zero-padded Conv2d with numeric padding."""
    if isinstance(layer, nn.Linear):
        return True
    return layer.padding_mode == "zeros" and not isinstance(layer.padding, str)


def weight_key(layer: ShiftLayerState) -> tuple:
    """What the stored W depends on: δ (its version counter and storage), s, U's device/dtype."""
    return (
        layer.delta._version,
        layer.delta.data_ptr(),
        layer.scale,
        layer.U.device,
        layer.U.dtype,
    )


def _refresh_groups(layers: list[ShiftLayerState]) -> dict[tuple, list[ShiftLayerState]]:
    """Layers whose σ' can be computed in one flat vector: same s, σ dtype, factor dtype, device."""
    groups: dict[tuple, list[ShiftLayerState]] = defaultdict(list)
    for lay in layers:
        groups[(lay.scale, lay.S.dtype, lay.U.dtype, lay.S.device)].append(lay)
    return groups


@torch.no_grad()
def refresh_weights(layers: list[ShiftLayerState], force: bool = False) -> None:
    """Write U·diag(relu(σ + s·δ))·Vᵀ into each stale layer's weight storage (all if ``force``).

    σ' = relu(σ + s·δ), cast once to the factors' dtype, and the backward's gate
    s·1[σ + s·δ > 0] are computed for all layers as one concatenated vector (a handful of
    kernels, not a few per layer: inside a CUDA graph each kernel still costs the device
    microseconds); each layer keeps views of its slice. Then one scaled GEMM per layer writes W
    in place.
    """
    stale = [lay for lay in layers if force or lay.built_key != weight_key(lay)]
    for (scale, _, dtype, _), group in _refresh_groups(stale).items():
        sizes = [g.S.numel() for g in group]
        shifted = torch.cat([g.S for g in group])  # a new tensor: σ itself is never written
        shifted.add_(torch.cat([g.delta.detach() for g in group]), alpha=scale).clamp_min_(0.0)
        gates = torch.sign(shifted).mul_(scale)  # σ' ≥ 0, so sign(σ') = 1[σ + s·δ > 0]
        svs = shifted.to(dtype).split(sizes)
        for lay, sv, gate in zip(group, svs, gates.split(sizes)):
            if lay.factored:  # y = ((x·V)·diag(σ'))·Uᵀ needs σ' only, never W
                _hollow_weight(lay)
                lay.sv, lay.built_key = sv, weight_key(lay)
            else:
                _write_weight(lay, sv)
            lay.grad_gate = gate


def _hollow_weight(layer: ShiftLayerState) -> None:
    """A factored layer never reads its weight: stash the original on the CPU (as the weight
    path does) and leave a zero-stride placeholder of the right shape on the device, so the GPU
    holds no per-layer weight. ``unmerge()`` / ``merge()`` restore a real one."""
    if layer.original is None:
        layer.stash_original()
        weight = layer.base_layer.weight
        weight.data = torch.zeros((), dtype=layer.U.dtype, device=layer.U.device).expand(
            weight.shape
        )


def _write_weight(layer: ShiftLayerState, sv: torch.Tensor) -> None:
    layer.stash_original()
    weight = layer.base_layer.weight
    scaled = layer.U * sv  # σ' is already in U's dtype (refresh_weights)
    reusable = (
        weight.dtype == layer.U.dtype
        and weight.device == layer.U.device
        and weight.data_ptr() != layer.original.data_ptr()  # a CPU original is kept, not copied
    )
    if reusable and weight.is_contiguous():
        torch.mm(scaled, layer.Vh, out=weight.data.view(weight.shape[0], -1))
    elif reusable and is_nhwc(weight):  # U·diag·Vᵀ is (out, in·k·k) in NCHW order: one transpose
        weight.data.copy_(scaled.mm(layer.Vh).view(weight.shape))
    else:  # first build: a new storage (and maybe dtype, e.g. float32 original → bfloat16 W)
        built = scaled.mm(layer.Vh).view(weight.shape)
        weight.data = built.to(memory_format=torch.channels_last) if is_nhwc(weight) else built
    layer.built_key = weight_key(layer)


def refresh_hook(module: nn.Module, args: tuple, layers: list[ShiftLayerState]) -> None:
    """Forward pre-hook of the wrapped model: rebuild the fast ``rebuild="forward"`` layers."""
    todo = [
        lay
        for lay in layers  # a layer whose path is not decided yet is built by its first forward
        if lay.fast and not lay.merged and lay.rebuild == "forward" and lay.factored is not None
    ]
    if todo:
        refresh_weights(todo, force=True)


def _grads(
    layer: ShiftLayerState, x: torch.Tensor, g: torch.Tensor, need_dx: bool, need_dw: bool
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(dL/dx, dL/dW) of the base op at W = the stored rebuilt weight, each only if needed."""
    base, weight = layer.base_layer, layer.base_layer.weight
    if isinstance(base, nn.Linear):
        g2, x2 = g.reshape(-1, g.shape[-1]), x.reshape(-1, x.shape[-1])
        dx = (g2 @ weight).view(x.shape) if need_dx else None
        return dx, (g2.t() @ x2 if need_dw else None)
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
        [need_dx, need_dw, False],
    )
    return dx, dw


def project_weight_grad(layer: ShiftLayerState, dw: torch.Tensor) -> torch.Tensor:
    """∂L/∂δ from ∂L/∂W: s·1[σ + s·δ > 0]·diag(Uᵀ·dW·V), summed in the dtype of σ (≥ float32)."""
    proj = layer.U.t() @ dw.reshape(dw.shape[0], -1).to(layer.U.dtype)
    return shift_grad(layer, (proj * layer.Vh).sum(dim=1, dtype=layer.S.dtype))


class _SpectralShiftFunction(torch.autograd.Function):
    """y = op(x, W(δ)) with W precomputed; backward yields dx and ∂L/∂δ (see module docstring)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, delta: torch.Tensor, layer: ShiftLayerState):
        weight = layer.base_layer.weight
        xc = x.to(weight.dtype)
        if torch.is_autocast_enabled(x.device.type):
            with torch.autocast(device_type=x.device.type, enabled=False):
                y = layer.apply_op(xc, weight)
        else:
            y = layer.apply_op(xc, weight)
        ctx.save_for_backward(xc)
        ctx.layer, ctx.in_dtype = layer, x.dtype
        return y.to(x.dtype)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (x,) = ctx.saved_tensors
        layer = ctx.layer
        g = g.to(x.dtype)
        need_dx, need_delta = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        ddelta = None
        if need_delta and layer.aside is not None:  # dW and its projection off the main chain
            layer.aside.run(
                layer, lambda: project_weight_grad(layer, _grads(layer, x, g, False, True)[1]), x, g
            )
            dx = _grads(layer, x, g, True, False)[0] if need_dx else None
        else:  # one call: cuDNN's data and weight gradients together
            dx, dw = _grads(layer, x, g, need_dx, need_delta)
            ddelta = project_weight_grad(layer, dw) if need_delta else None
            del dw
        return (dx.to(ctx.in_dtype) if dx is not None else None), ddelta, None


def fast_forward(layer: ShiftLayerState, x: torch.Tensor) -> torch.Tensor:
    """Forward of a fast-path layer: pick its path once (:func:`prefers_factored`), refresh W
    (or σ' on the factored path) if stale, then the custom-backward op."""
    if layer.factored is None:
        layer.factored = prefers_factored(layer, x)
        layer.built_key = None
    if layer.built_key != weight_key(layer):
        refresh_weights([layer])
    if layer.factored:
        return factored_forward(layer, x)
    if not (torch.is_grad_enabled() and (layer.delta.requires_grad or x.requires_grad)):
        with torch.autocast(device_type=x.device.type, enabled=False):
            return layer.apply_op(x.to(layer.base_layer.weight.dtype), layer.base_layer.weight).to(
                x.dtype
            )
    return _SpectralShiftFunction.apply(x, layer.delta, layer)
