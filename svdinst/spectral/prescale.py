"""σ' folded into the factors once per refresh, in one launch per factor shape (CUDA).

A factored layer (:mod:`svdinst.spectral.factored`) scales by σ' = relu(σ + s·δ) twice per
training step: h·diag(σ') before its up-projection and (g·U)·diag(σ') before Vᵀ in the
backward. Both are small elementwise kernels on the step's main chain, and inside a CUDA graph
each costs the device microseconds however small it is (the kernel census of
``benchmarks/train_profile.py``, ``reports/benchmarks.md``). The same products can be taken on
the other side of each GEMM, without dividing by σ' anywhere:

    y = (x·V)·(U·diag(σ'))ᵀ,        ∂L/∂x = (g·U)·(diag(σ')·Vᵀ),

while ∂L/∂δ still reads the unscaled g·U and h = x·V, so it is the same expression as before.
U·diag(σ') (``us``, every fast layer; the weight path's rebuild multiplies it by Vᵀ) and
diag(σ')·Vᵀ (``vs``, factored Linear layers; a factored convolution keeps the backward's
product: its Vᵀ is a 3×3 kernel nine times the size of U) change only when δ does. Layers
whose factors have one shape are stacked into one tensor (U and Vᵀ become views of it), so one
product per shape refreshes all of them: SD-1.4's 282 layers have a few dozen shapes, and the
step loses about two main-chain kernels per factored layer.

On a CPU nothing is prescaled (:func:`wanted`): there are no launches to save, and the
factored path keeps its bits (the pocket experiment's numbers).
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import nn


def wanted(layer) -> bool:
    """Fold σ' into the factors of this fast layer? On CUDA (see the module docstring)."""
    return layer.U.is_cuda


def _fits(t: torch.Tensor | None, like: torch.Tensor) -> bool:
    """``t`` exists with ``like``'s shape, dtype and device (an output it can be written into)."""
    return t is not None and (t.shape, t.dtype, t.device) == (like.shape, like.dtype, like.device)


def _stacked_views(tensors: list[torch.Tensor]) -> torch.Tensor | None:
    """The (G, …) tensor whose rows ``tensors`` are, in order; ``None`` if they are not that."""
    base = tensors[0]._base
    if base is None or base.dim() != tensors[0].dim() + 1 or base.shape[0] != len(tensors):
        return None
    for i, t in enumerate(tensors):
        if t._base is not base or t.data_ptr() != base[i].data_ptr():
            return None
    return base


def _stack_factor(layers: list, name: str) -> torch.Tensor:
    """Move ``layer.<name>`` (U or Vh, frozen) of each layer into one stacked tensor, each layer
    keeping a view of its row (the old separate tensors are freed); returns the stack."""
    base = _stacked_views([getattr(lay, name) for lay in layers])
    if base is None:
        base = torch.stack([getattr(lay, name) for lay in layers])
        for i, lay in enumerate(layers):
            setattr(lay, name, base[i])  # a registered buffer: nn.Module keeps it one
    return base


def _output(layers: list, name: str, like: torch.Tensor) -> torch.Tensor:
    """The stacked tensor the layers' ``name`` (us or vs) are views of, made if they are not."""
    current = [getattr(lay, name) for lay in layers]
    base = None if any(t is None for t in current) else _stacked_views(current)
    if not _fits(base, like):
        base = torch.empty_like(like)
        for i, lay in enumerate(layers):
            setattr(lay, name, base[i])
    return base


def _scale_rows(layers: list, svs: list[torch.Tensor], factor: str, out: str) -> None:
    """``out`` = ``factor`` scaled by σ' (U: its columns, Vh: its rows) for layers of one
    factor shape: one product for a group of several layers, stacked on first use."""
    columns = factor == "U"
    if len(layers) == 1:
        lay, sv = layers[0], svs[0]
        src = getattr(lay, factor)
        dst = getattr(lay, out)
        if not _fits(dst, src):
            dst = torch.empty_like(src)
            setattr(lay, out, dst)
        torch.mul(src, sv if columns else sv[:, None], out=dst)
        return
    src = _stack_factor(layers, factor)
    dst = _output(layers, out, src)
    sv = torch.stack(svs)
    torch.mul(src, sv[:, None, :] if columns else sv[:, :, None], out=dst)


def prescale(layers: list, svs: list[torch.Tensor]) -> None:
    """Write ``us`` = U·diag(σ') for every layer and ``vs`` = diag(σ')·Vᵀ for factored Linear
    layers (``svs``: their σ' in the factors' dtype); layers not :func:`wanted` get neither.

    Args:
        layers (`list`): fast spectral layers whose σ' was just computed.
        svs (`list[torch.Tensor]`): σ' of each, same order.
    """
    by_u: dict[tuple, list[int]] = defaultdict(list)
    by_v: dict[tuple, list[int]] = defaultdict(list)
    for i, lay in enumerate(layers):
        if not wanted(lay):
            lay.us = lay.vs = None
            continue
        by_u[(tuple(lay.U.shape), lay.U.dtype, lay.U.device)].append(i)
        if lay.factored and isinstance(lay.base_layer, nn.Linear):
            by_v[(tuple(lay.Vh.shape), lay.Vh.dtype, lay.Vh.device)].append(i)
        else:
            lay.vs = None
    for groups, factor, out in ((by_u, "U", "us"), (by_v, "Vh", "vs")):
        for members in groups.values():
            _scale_rows([layers[i] for i in members], [svs[i] for i in members], factor, out)
