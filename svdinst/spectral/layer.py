"""SVDiff spectral shifts: wrap every Linear/Conv2d weight as W = U·diag(relu(σ + s·δ))·Vᵀ.

SVDiff (Han et al., 2023, "SVDiff: Compact Parameter Space for Diffusion Fine-Tuning", Eq. 1)
decomposes each pretrained weight once, W₀ = U·diag(σ)·Vᵀ, freezes U, σ, Vᵀ and trains only a
shift δ of the singular values: W_δ = U·diag(ReLU(σ + δ))·Vᵀ. For SD-1.4's UNet that is 282
layers and 222,696 shifts (< 1 MB). A scale ``s`` on δ is the style-strength knob.

This module is the public API (peft style: a wrapper keeping ``base_layer``, ``merge()`` /
``unmerge()``, a config dataclass and an injection function). Two training paths compute the same
δ-gradient: the *exact* path rebuilds W inside autograd on every forward (fp32, the reference the
tests check against), the *fast* path (:mod:`svdinst.spectral.fast`) rebuilds W once per
optimizer step in a compute dtype and projects the weight gradient onto δ in a custom backward,
or, for layers with few tokens, never forms W (:mod:`svdinst.spectral.factored`).

Memory design: the original weight is never recomputed from the factors (that is exact only to
~1e-6). Whenever the base layer's storage holds a rebuilt weight (after ``merge()`` or in fast
mode) the original is kept as a CPU copy, so ``unmerge()`` restores it bit for bit and the GPU
holds one weight per layer, as in vanilla SD (a factored fast layer holds none at all).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "FILE_FORMAT",
    "SpectralShiftConfig",
    "SpectralShiftLayer",
    "add_spectral_shifts",
    "export_lora",
    "load_spectral_shifts",
    "merge_spectral_shifts",
    "read_spectral_shift_file",
    "refresh_spectral_weights",
    "remove_spectral_shifts",
    "save_spectral_shifts",
    "set_fast_path",
    "set_shift_scale",
    "spectral_layers",
    "spectral_shift_layout",
    "spectral_shifts_state_dict",
    "unmerge_spectral_shifts",
]


@dataclass
class SpectralShiftConfig:
    """How spectral shifts are computed. The defaults are the exact reference path.

    Args:
        fast (`bool`, defaults to `False`): use the fast training path (rebuild once per optimizer
            step, custom backward); the exact path rebuilds W in autograd on every forward.
        compute_dtype (`torch.dtype`, *optional*): dtype of U, Vᵀ and the rebuilt W on the fast
            path (e.g. ``torch.bfloat16`` on a GPU; accumulation stays fp32). ``None``: the base
            weight's dtype.
        svd_method (`str`, defaults to ``"auto"``): ``"svd"`` (LAPACK/cuSOLVER SVD in float64),
            ``"gram"`` (float64 Gram matrix + batched eigh, much faster on a GPU, falls back to SVD
            for ill-conditioned weights) or ``"auto"`` (``gram``, fastest on CPU and GPU alike).
        svd_device (`str`, *optional*): where to decompose; ``None`` = where the weights are.
        cache (`bool`, defaults to `True`): reuse factors saved under ``cache_dir()/spectral``
            for the same base model and weights (needs ``base_model``).
        rebuild (`str`, defaults to ``"forward"``): fast path only. ``"forward"`` rebuilds W on
            every forward; ``"step"`` rebuilds only when δ's version counter changes or
            :func:`refresh_spectral_weights` is called — call it after each ``optimizer.step()``
            (a fused optimizer updates δ without bumping its version) to rebuild once per step
            under gradient accumulation.
        factored (`str`, defaults to ``"auto"``): fast path only. ``"auto"`` runs a layer as
            y = ((x·V)·diag(σ'))·Uᵀ without W when a FLOP model says that is cheaper for the
            tokens of its first forward (:mod:`svdinst.spectral.factored`); ``"always"``,
            ``"never"`` force the choice (grouped convolutions always use W).
    """

    fast: bool = False  # exact path by default: simplest autograd graph, what the tests check
    compute_dtype: torch.dtype | None = None  # bf16 halves factor memory and doubles GEMM speed
    svd_method: str = "auto"  # eigh of a float64 Gram matrix batches well on GPUs
    svd_device: str | None = None  # a GPU decomposes SD-1.4 in seconds, a CPU in minutes
    cache: bool = True  # decompose once per base model; later runs reload the factors
    rebuild: str = "forward"  # "step" skips rebuilds between optimizer steps (accumulation)
    factored: str = "auto"  # few-token layers (8×8/16×16 blocks) skip the rebuild of W entirely

    def __post_init__(self) -> None:
        if self.svd_method not in ("auto", "svd", "gram"):
            raise ValueError(
                f"svd_method must be 'auto', 'svd' or 'gram', got {self.svd_method!r}."
            )
        if self.compute_dtype is not None and not self.compute_dtype.is_floating_point:
            raise ValueError(f"compute_dtype must be a float dtype, got {self.compute_dtype}.")
        if self.rebuild not in ("forward", "step"):
            raise ValueError(f"rebuild must be 'forward' or 'step', got {self.rebuild!r}.")
        if self.factored not in ("auto", "always", "never"):
            raise ValueError(f"factored must be 'auto', 'always' or 'never', not {self.factored!r}")


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
            see :class:`SpectralShiftConfig`.
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
        self.fast = fast and _fast_supported(base_layer)
        self.rebuild, self.factored_mode = rebuild, factored
        self.factored: bool | None = None  # fast path: W-free form? decided at the 1st forward
        self._sv: torch.Tensor | None = None  # relu(σ + s·δ) of the factored path
        self.merged = False
        self._original: torch.Tensor | None = None  # CPU copy while the storage holds a rebuilt W
        self._built_key: tuple | None = None  # (δ version, scale, device) of the stored rebuilt W
        self._grad_gate: torch.Tensor | None = None  # s·1[σ + s·δ > 0] of the stored W (backward)

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
            from svdinst.spectral.fast import fast_forward

            return fast_forward(self, x)
        weight = self.rebuild_weight()
        return self.apply_op(x, weight.to(self.base_layer.weight.dtype))

    def _stash_original(self) -> None:
        if self._original is None:
            self._original = self.base_layer.weight.detach().to("cpu", copy=True)

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the shifts into the base weight; forward then costs what the base layer costs."""
        if self.merged:
            return
        self._stash_original()
        weight = self.rebuild_weight().to(self._original.dtype)
        self.base_layer.weight.data = weight.contiguous()
        self._built_key = None
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Restore the original base weight bit for bit (from the CPU copy)."""
        if self._original is not None:
            self.base_layer.weight.data = self._original.to(self.S.device)
            self._original = None
        self._built_key = None
        self.merged = False


def _fast_supported(layer: nn.Module) -> bool:
    """The fast backward handles Linear and zero-padded Conv2d with numeric padding."""
    if isinstance(layer, nn.Linear):
        return True
    return layer.padding_mode == "zeros" and not isinstance(layer.padding, str)


def _selected(name: str, include: Sequence[str] | None, exclude: Sequence[str] | None) -> bool:
    if include is not None and not any(re.search(p, name) for p in include):
        return False
    return not (exclude is not None and any(re.search(p, name) for p in exclude))


def spectral_layers(model: nn.Module) -> dict[str, SpectralShiftLayer]:
    """Every :class:`SpectralShiftLayer` of ``model`` by module name (in module order)."""
    return {n: m for n, m in model.named_modules() if isinstance(m, SpectralShiftLayer)}


def spectral_shift_layout(
    model: nn.Module, include: Sequence[str] | None = None, exclude: Sequence[str] | None = None
) -> dict[str, tuple[tuple[int, ...], int]]:
    """Which layers :func:`add_spectral_shifts` would wrap: ``{name: (weight shape, k)}``.

    Reads shapes only, so it works on a model built on the ``meta`` device. k = min(out, in')
    is the number of shifts of the layer.
    """
    layout = {}
    for name, module in model.named_modules():
        if isinstance(module, SpectralShiftLayer):
            module = module.base_layer
        elif not isinstance(module, (nn.Linear, nn.Conv2d)) or ".base_layer" in f".{name}":
            continue
        if _selected(name, include, exclude):
            shape = tuple(module.weight.shape)
            layout[name] = (shape, min(shape[0], module.weight[0].numel()))
    return layout


def add_spectral_shifts(
    model: nn.Module,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    *,
    config: SpectralShiftConfig | None = None,
    base_model: str | None = None,
) -> dict[str, SpectralShiftLayer]:
    """Wrap every selected ``nn.Linear``/``nn.Conv2d`` of ``model`` in a spectral-shift layer.

    Afterwards the δ vectors (initialised to zero, so the model's output is unchanged) are the
    only parameters of ``model`` that require gradients.

    Args:
        model (`nn.Module`): e.g. the UNet; modified in place.
        include (`Sequence[str]`, *optional*): regular expressions (``re.search``) over module
            names; only matching layers are wrapped. ``None``: every Linear and Conv2d.
        exclude (`Sequence[str]`, *optional*): regular expressions of layers to leave alone.
        config (`SpectralShiftConfig`, *optional*): paths, dtypes, SVD method, cache.
        base_model (`str`, *optional*): the base model's id (e.g. ``components.model_id``);
            recorded in shift files and the key of the SVD cache.

    Returns:
        `dict[str, SpectralShiftLayer]`: the new layers by module name.
    """
    from svdinst.spectral.svd import load_or_decompose

    cfg = config or SpectralShiftConfig()
    if spectral_layers(model):
        raise ValueError("This model already has spectral shifts; add them once per model.")
    layout = spectral_shift_layout(model, include, exclude)
    if not layout:
        raise ValueError(f"No nn.Linear/nn.Conv2d matched include={include} exclude={exclude}.")
    modules = dict(model.named_modules())
    factors = load_or_decompose(
        {n: modules[n].weight.detach() for n in layout}, base_model=base_model, config=cfg
    )
    model.requires_grad_(False)
    wrapped = {}
    for name in layout:
        base = modules[name]
        U, S, Vh = factors[name]
        precise = torch.float64 if base.weight.dtype == torch.float64 else torch.float32
        fdtype = (cfg.compute_dtype or base.weight.dtype) if cfg.fast else precise
        device = base.weight.device
        layer = SpectralShiftLayer(
            base,
            U.to(device, fdtype),
            S.to(device, precise),
            Vh.to(device, fdtype),
            fast=cfg.fast,
            rebuild=cfg.rebuild,
            factored=cfg.factored,
        )
        parent_name, _, child = name.rpartition(".")
        setattr(modules[parent_name] if parent_name else model, child, layer)
        wrapped[name] = layer
    from svdinst.spectral.fast import refresh_hook

    model._svdinst_base_model = base_model
    hook = functools.partial(refresh_hook, layers=list(wrapped.values()))
    model._svdinst_hook = model.register_forward_pre_hook(hook)
    return wrapped


def _require_layers(model: nn.Module) -> dict[str, SpectralShiftLayer]:
    layers = spectral_layers(model)
    if not layers:
        raise ValueError("The model has no spectral shifts; call add_spectral_shifts(model) first.")
    return layers


def set_shift_scale(model: nn.Module, scale: float) -> None:
    """Set the shift scale s of every layer (W = U·diag(relu(σ + s·δ))·Vᵀ); merged layers re-merge.

    Args:
        model (`nn.Module`): a model with spectral shifts.
        scale (`float`): 0 gives the base model, 1 the trained shifts, >1 exaggerates them.
    """
    scale = float(scale)
    if not torch.isfinite(torch.tensor(scale)):
        raise ValueError(f"The shift scale must be a finite number, got {scale}.")
    for layer in _require_layers(model).values():
        merged = layer.merged
        if merged:
            layer.unmerge()
        layer.scale = scale
        if merged:
            layer.merge()


def merge_spectral_shifts(model: nn.Module) -> None:
    """Fold the shifts into plain weights (inference then costs exactly what the base model costs)."""
    for layer in _require_layers(model).values():
        layer.merge()


def unmerge_spectral_shifts(model: nn.Module) -> None:
    """Undo :func:`merge_spectral_shifts`: the base weights come back bit for bit."""
    for layer in _require_layers(model).values():
        layer.unmerge()


def remove_spectral_shifts(model: nn.Module, merge: bool = True) -> nn.Module:
    """Replace each wrapper by its base layer (merged first if ``merge``), freeing U, σ, Vᵀ.

    Args:
        model (`nn.Module`): a model with spectral shifts; modified in place and returned.
        merge (`bool`, defaults to `True`): keep the shifted weights; `False` restores the base.
    """
    modules = dict(model.named_modules())
    for name, layer in _require_layers(model).items():
        layer.merge() if merge else layer.unmerge()
        layer._original = None
        parent_name, _, child = name.rpartition(".")
        setattr(modules[parent_name] if parent_name else model, child, layer.base_layer)
    handle = getattr(model, "_svdinst_hook", None)
    if handle is not None:
        handle.remove()
    return model


def refresh_spectral_weights(model: nn.Module) -> None:
    """Fast path: rebuild every layer's W from the current δ now (call after ``optimizer.step()``)."""
    from svdinst.spectral.fast import refresh_weights

    layers = _require_layers(model).values()
    refresh_weights([lay for lay in layers if lay.fast and not lay.merged], force=True)


def export_lora(model: nn.Module, rank: int) -> dict:
    """Exact rank-r LoRA of the shifts; see :func:`svdinst.spectral.lora.export_lora`."""
    from svdinst.spectral.lora import export_lora as _export

    return _export(model, rank)


# File I/O and the path switch live in their own modules; they are part of this public API.
from svdinst.spectral.fast import set_fast_path  # noqa: E402
from svdinst.spectral.io import (  # noqa: E402
    FILE_FORMAT,
    load_spectral_shifts,
    read_spectral_shift_file,
    save_spectral_shifts,
    spectral_shifts_state_dict,
)
