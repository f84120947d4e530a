"""The factored training path of spectral shifts: y = ((x·V)·diag(σ'))·Uᵀ, never forming W.

For a layer that sees few tokens N (SD-1.4's 16×16 and 8×8 blocks, the cross-attention keys
and values over 77 text tokens), rebuilding W = U·diag(σ')·Vᵀ and projecting dW onto δ costs
more than the layer itself. SVDiff's Eq. 1 (Han et al., 2023) can instead be applied in
factored form, with σ' = relu(σ + s·δ) and h = x·V (N × k):

    y = (h·diag(σ'))·Uᵀ + b,     ∂L/∂δ = s·1[σ + s·δ > 0] ∘ Σₙ (g·U) ∘ h,
    ∂L/∂x = ((g·U)·diag(σ'))·Vᵀ,

which needs neither W nor dW. A k×k convolution is the same chain: Vᵀ reshaped to
(k, in, kh, kw) is a convolution to k channels (the base layer's stride, padding and dilation),
σ' scales its channels and U is a 1×1 convolution back to ``out`` channels — the shape of the
LoRA export's down/up pair. Grouped convolutions cannot be factored this way (each output group
sees other input channels) and keep the weight path of :mod:`svdinst.spectral.fast`.

Per pass the cost is 2·N·k·(in' + out) (in' = in·kh·kw) — plus, on Ampere-or-newer GPUs,
2·N·k² in the backward for ∂L/∂δ as the diagonal of one GEMM (:func:`column_dots`) — against
2·N·out·in' for the base op plus, on the weight path, dW (2·N·out·in') and the rebuild and
projection (4·out·k·in').
:func:`prefers_factored` compares the two once per layer, from its shapes and the token count
of its first forward; afterwards the choice is fixed (shapes only, no data-dependent branch),
so a whole step can still be captured in one CUDA graph.
"""

from __future__ import annotations

import functools
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from svdinst.spectral.aside import ShiftGradsAside, shift_grad_or_aside


class ShiftLayerState(Protocol):
    """What the fast kernels read and write of a ``SpectralShiftLayer``.

    :mod:`svdinst.spectral.layer` dispatches its forward to these kernels, so they name the layer
    by this protocol instead of importing it (the imports stay a DAG: layer → fast → factored).
    """

    base_layer: nn.Linear | nn.Conv2d
    U: torch.Tensor  # (out, k), in the compute dtype
    S: torch.Tensor  # (k,) σ, float32 (float64 for float64 weights)
    Vh: torch.Tensor  # (k, in·kh·kw)
    delta: nn.Parameter  # (k,) δ, the trained shifts
    scale: float  # s in relu(σ + s·δ)
    fast: bool  # fast path on (else the exact autograd rebuild)
    merged: bool  # the base storage holds the merged W
    rebuild: str  # "forward" or "step" (see SpectralShiftConfig)
    factored_mode: str  # "auto", "always" or "never"
    factored: bool | None  # W-free form? decided at the first fast forward
    sv: torch.Tensor | None  # relu(σ + s·δ) of the factored path
    grad_gate: torch.Tensor | None  # s·1[σ + s·δ > 0] of the stored W or σ' (backward)
    aside: ShiftGradsAside | None  # set while a training step computes ∂L/∂δ aside (aside.py)
    built_key: tuple | None  # what the stored W or σ' was built from (see fast.weight_key)
    vh_nhwc: torch.Tensor | None  # Vᵀ as an NHWC conv kernel, made once for NHWC inputs
    original: torch.Tensor | None  # the base weight while its storage holds a rebuilt W

    def stash_original(self) -> None: ...

    def apply_op(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor: ...


def factored_supported(layer: nn.Module) -> bool:
    """Linear, and Conv2d with ``groups == 1`` (the base layer, not the wrapper)."""
    return isinstance(layer, nn.Linear) or (isinstance(layer, nn.Conv2d) and layer.groups == 1)


def flop_costs(out: int, in_: int, k: int, tokens: int) -> tuple[int, int]:
    """(weight path, factored path) FLOPs of one forward + backward of a layer.

    Weight path: forward, dx and dW (3 × 2·N·out·in') plus rebuild and projection
    (2 × 2·out·k·in'). Factored path: forward and backward, each 2·N·k·(in' + out). Left out:
    the factored path's ∂L/∂δ as a GEMM's diagonal on a GPU (:func:`column_dots`, 2·N·k²), which
    replaces small kernels rather than adding time at batch 1; counting it would move 42 of
    SD-1.4's 282 layers to the weight path on a FLOP difference of a few per cent.

    Args:
        out (`int`), in_ (`int`), k (`int`): rows and columns (in·kh·kw) of W, number of shifts.
        tokens (`int`): N, rows of the layer's input (batch × positions).
    """
    weight = 6 * tokens * out * in_ + 4 * out * k * in_
    factored = 4 * tokens * k * (in_ + out)
    return weight, factored


def tokens_of(layer: ShiftLayerState, x: torch.Tensor) -> int:
    """N: input rows of a Linear, output positions (batch × H' × W') of a Conv2d."""
    base = layer.base_layer
    if isinstance(base, nn.Linear):
        return x.numel() // x.shape[-1]
    h, w = x.shape[-2:]
    oh, ow = (
        (size + 2 * p - d * (kk - 1) - 1) // s + 1
        for size, p, d, kk, s in zip(
            (h, w), base.padding, base.dilation, base.kernel_size, base.stride
        )
    )
    return (x.numel() // (x.shape[-3] * h * w)) * oh * ow


def prefers_factored(layer: ShiftLayerState, x: torch.Tensor) -> bool:
    """Decide the path of a fast layer from its ``factored_mode``, shapes and the tokens of x."""
    if layer.factored_mode == "never" or not factored_supported(layer.base_layer):
        return False
    if isinstance(layer.base_layer, nn.Conv2d) and x.dim() != 4:
        return False  # an unbatched conv input keeps the weight path
    if layer.factored_mode == "always":
        return True
    weight, factored = flop_costs(
        layer.U.shape[0], layer.Vh.shape[1], layer.S.numel(), tokens_of(layer, x)
    )
    return factored < weight


def is_nhwc(t: torch.Tensor) -> bool:
    """A 4-D tensor laid out channels-last (``TrainConfig.channels_last``). A 1×1 kernel (or map)
    is contiguous in both layouts; its strides still say which one convolutions will follow."""
    return (
        t.dim() == 4
        and t.is_contiguous(memory_format=torch.channels_last)
        and (not t.is_contiguous() or t.stride(-1) > 1)
    )


def _kernel(layer: ShiftLayerState) -> torch.Tensor:
    """Vᵀ as the (k, in, kh, kw) kernel of the down-convolution. In NHWC training (the layer's
    own weight was channels-last before the factored path hollowed it) an NHWC copy, made once
    (Vᵀ is frozen): with Vᵀ's NCHW view cuDNN would transpose the kernel or the activations in
    every call, and the convolutions after it would run NCHW again."""
    vh = layer.Vh.view(layer.S.numel(), *layer.base_layer.weight.shape[1:])
    if layer.original is None or not is_nhwc(layer.original):
        return vh
    cached = layer.vh_nhwc
    if cached is None or cached.device != vh.device or cached.dtype != vh.dtype:
        # .to(): a 1×1 kernel is already "contiguous" channels-last and .contiguous() would
        # keep its NCHW strides; convolutions follow the strides (see is_nhwc).
        cached = layer.vh_nhwc = vh.to(memory_format=torch.channels_last)
    return cached


def _down(layer: ShiftLayerState, x: torch.Tensor) -> torch.Tensor:
    """h = x·V: (…, k) for a Linear, (B, k, H', W') for a Conv2d."""
    base = layer.base_layer
    if isinstance(base, nn.Linear):
        return F.linear(x, layer.Vh)
    return F.conv2d(x, _kernel(layer), None, base.stride, base.padding, base.dilation)


def _up(layer: ShiftLayerState, h: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """h·Uᵀ (+ bias): a Linear, or a 1×1 convolution over channels."""
    if isinstance(layer.base_layer, nn.Linear):
        return F.linear(h, layer.U, bias)
    return F.conv2d(h, layer.U[:, :, None, None], bias)


# torch.mm(..., out_dtype=torch.float32) with float16/bfloat16 inputs: CUDA, torch >= 2.8.
_MM_OUT_DTYPE = tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 8)


@functools.cache
def _fp32_gemm_measured(device: torch.device) -> bool:
    """Cards of compute capability ≥ 8.0: the GEMM diagonal was measured to pay on Hopper (H100,
    2026-12-07); Ampere runs the same float16 → float32 cuBLAS GEMMs."""
    return _MM_OUT_DTYPE and torch.cuda.get_device_capability(device) >= (8, 0)


def column_dots(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Σₙ aₙₖ·bₙₖ of two (N, k) matrices, accumulated in ``dtype``.

    For float16/bfloat16 factors on an Ampere-or-newer GPU, the diagonal of one GEMM aᵀ·b
    accumulating into float32 (:func:`gemm_diagonal`) instead of an elementwise product and a
    sum over N — which there is a split reduction with a memset: three kernels, and in a CUDA
    graph each costs the device microseconds whatever its size (the kernel census of
    ``benchmarks/train_profile.py``). The GEMM costs 2·N·k² FLOPs, under half a factored layer's
    own (k ≤ min(in', out)). Elsewhere the product and the sum stay: a CPU has no launches to
    save and fewer FLOPs to spend, float32 factors would run the GEMM in TF32 where it is
    allowed, and older cards (the T4) and torch < 2.8 were not measured.

    Args:
        a (`torch.Tensor`), b (`torch.Tensor`): (N, k), any strides, the same dtype.
        dtype (`torch.dtype`): the result's dtype (σ's: float32, or float64).
    """
    low = a.dtype in (torch.float16, torch.bfloat16) and dtype == torch.float32
    if a.is_cuda and low and _fp32_gemm_measured(a.device):
        return gemm_diagonal(a, b, dtype)
    return (a * b).sum(0, dtype=dtype)


def gemm_diagonal(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """diag(aᵀ·b) of two (N, k) matrices from one GEMM accumulating into ``dtype`` (float16 or
    bfloat16 inputs into float32 need CUDA and torch ≥ 2.8; :func:`column_dots` decides)."""
    if a.dtype == dtype:
        return torch.mm(a.t(), b).diagonal()
    return torch.mm(a.t(), b, out_dtype=dtype).diagonal()


def rows(t: torch.Tensor, conv: bool) -> torch.Tensor:
    """A factored activation as an (N, k) matrix: a Linear's (…, k), a conv's (B, k, H, W) with
    its channels last — a view for NHWC maps and for NCHW ones of batch 1 (else a copy)."""
    return t.movedim(1, -1).reshape(-1, t.shape[1]) if conv else t.reshape(-1, t.shape[-1])


def shift_grad(layer: ShiftLayerState, diag: torch.Tensor) -> torch.Tensor:
    """∂L/∂δ = s·1[σ + s·δ > 0] ∘ diag in δ's dtype (a new, contiguous tensor)."""
    return (diag * layer.grad_gate).to(layer.delta.dtype)


def _channels(t: torch.Tensor, conv: bool) -> torch.Tensor:
    """A per-shift vector shaped to broadcast over h (channel axis 1 for convolutions)."""
    return t[:, None, None] if conv else t


class _FactoredFunction(torch.autograd.Function):
    """y = ((x·V)·diag(σ'))·Uᵀ + b with σ' precomputed; backward per the module docstring."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, delta: torch.Tensor, layer: ShiftLayerState):
        conv = isinstance(layer.base_layer, nn.Conv2d)
        dtype = layer.U.dtype
        bias = layer.base_layer.bias
        bias = bias.to(dtype) if bias is not None else None
        with torch.autocast(device_type=x.device.type, enabled=False):
            h = _down(layer, x.to(dtype))
            y = _up(layer, h * _channels(layer.sv.to(dtype), conv), bias)
        ctx.save_for_backward(h)
        ctx.layer, ctx.in_dtype, ctx.in_shape = layer, x.dtype, x.shape
        return y.to(x.dtype)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (h,) = ctx.saved_tensors
        layer = ctx.layer
        base = layer.base_layer
        conv = isinstance(base, nn.Conv2d)
        g = g.to(h.dtype)
        gu = F.conv2d(g, layer.U.t()[:, :, None, None]) if conv else g @ layer.U  # g·U
        ddelta = dx = None
        if ctx.needs_input_grad[1]:  # s·1[…] ∘ Σₙ (g·U)∘(x·V); off the main chain (aside.py)
            ddelta = shift_grad_or_aside(
                layer,
                lambda: shift_grad(
                    layer, column_dots(rows(gu, conv), rows(h, conv), layer.S.dtype)
                ),
                gu,
                h,
            )
        if ctx.needs_input_grad[0]:
            gs = gu * _channels(layer.sv.to(h.dtype), conv)
            if conv:
                dx = torch.nn.grad.conv2d_input(
                    ctx.in_shape, _kernel(layer), gs, base.stride, base.padding, base.dilation
                )
            else:
                dx = gs @ layer.Vh
            dx = dx.to(ctx.in_dtype)
        return dx, ddelta, None


def factored_forward(layer: ShiftLayerState, x: torch.Tensor) -> torch.Tensor:
    """Forward of a factored layer (σ' and the gate are kept fresh by the fast path)."""
    return _FactoredFunction.apply(x, layer.delta, layer)
