"""Inject spectral shifts into a model and act on all its layers at once (peft's model level).

:func:`add_spectral_shifts` decomposes every selected ``nn.Linear``/``nn.Conv2d`` weight (through
the SVD cache of :mod:`svdinst.spectral.svd`) and wraps it in a
:class:`~svdinst.spectral.layer.SpectralShiftLayer`; the other functions switch, merge, rescale,
refresh or remove all of a model's layers.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import torch
from torch import nn

from svdinst.spectral.aside import ShiftGradsAside
from svdinst.spectral.config import SpectralShiftConfig
from svdinst.spectral.fast import refresh_hook, refresh_weights
from svdinst.spectral.layer import SpectralShiftLayer
from svdinst.spectral.svd import load_or_decompose

# Attributes set on a wrapped model: the base model id (recorded in shift files) and the handle
# of the forward pre-hook that rebuilds fast layers.
_BASE_MODEL_ATTR, _HOOK_ATTR = "_svdinst_base_model", "_svdinst_hook"


def _selected(name: str, include: Sequence[str] | None, exclude: Sequence[str] | None) -> bool:
    if include is not None and not any(re.search(p, name) for p in include):
        return False
    return not (exclude is not None and any(re.search(p, name) for p in exclude))


def spectral_layers(model: nn.Module) -> dict[str, SpectralShiftLayer]:
    """Every :class:`SpectralShiftLayer` of ``model`` by module name (in module order)."""
    return {n: m for n, m in model.named_modules() if isinstance(m, SpectralShiftLayer)}


def require_spectral_layers(model: nn.Module) -> dict[str, SpectralShiftLayer]:
    """:func:`spectral_layers`, or a ValueError saying to call :func:`add_spectral_shifts`."""
    layers = spectral_layers(model)
    if not layers:
        raise ValueError("The model has no spectral shifts; call add_spectral_shifts(model) first.")
    return layers


def spectral_base_model(model: nn.Module) -> str | None:
    """The ``base_model`` id given to :func:`add_spectral_shifts` for ``model`` (or ``None``)."""
    return getattr(model, _BASE_MODEL_ATTR, None)


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
    setattr(model, _BASE_MODEL_ATTR, base_model)
    hook = functools.partial(refresh_hook, layers=list(wrapped.values()))
    setattr(model, _HOOK_ATTR, model.register_forward_pre_hook(hook))
    return wrapped


def set_shift_scale(model: nn.Module, scale: float) -> None:
    """Set the shift scale s of every layer (W = U·diag(relu(σ + s·δ))·Vᵀ); merged layers re-merge.

    Args:
        model (`nn.Module`): a model with spectral shifts.
        scale (`float`): 0 gives the base model, 1 the trained shifts, >1 exaggerates them.
    """
    scale = float(scale)
    if not torch.isfinite(torch.tensor(scale)):
        raise ValueError(f"The shift scale must be a finite number, got {scale}.")
    for layer in require_spectral_layers(model).values():
        merged = layer.merged
        if merged:
            layer.unmerge()
        layer.scale = scale
        if merged:
            layer.merge()


def merge_spectral_shifts(model: nn.Module) -> None:
    """Fold the shifts into plain weights (inference then costs exactly what the base model costs)."""
    for layer in require_spectral_layers(model).values():
        layer.merge()


def unmerge_spectral_shifts(model: nn.Module) -> None:
    """Undo :func:`merge_spectral_shifts`: the base weights come back bit for bit."""
    for layer in require_spectral_layers(model).values():
        layer.unmerge()


def remove_spectral_shifts(model: nn.Module, merge: bool = True) -> nn.Module:
    """Replace each wrapper by its base layer (merged first if ``merge``), freeing U, σ, Vᵀ.

    Args:
        model (`nn.Module`): a model with spectral shifts; modified in place and returned.
        merge (`bool`, defaults to `True`): keep the shifted weights; `False` restores the base
            weights bit for bit (on the CPU, the very tensors the base layers had).
    """
    modules = dict(model.named_modules())
    for name, layer in require_spectral_layers(model).items():
        if merge and not layer.merged and layer.original is None:
            # The base storage holds the original: write the merged W over it directly, without
            # the CPU copy merge() keeps for unmerge() (3.4 GB of copies for SD-1.4's UNet).
            with torch.no_grad():
                weight = layer.rebuild_weight().to(layer.base_layer.weight.dtype)
                layer.base_layer.weight.data = weight.contiguous()
        else:
            layer.merge() if merge else layer.unmerge()
        parent_name, _, child = name.rpartition(".")
        setattr(modules[parent_name] if parent_name else model, child, layer.base_layer)
        # Drop every reference the wrapper held (factors, the CPU copy of the original, the fast
        # path's σ' and gate), so nothing keeps them alive if a caller still holds the wrapper.
        layer.original, layer.sv, layer.grad_gate, layer.built_key = None, None, None, None
        for buffer in ("U", "S", "Vh"):
            layer._buffers.pop(buffer, None)
    handle = getattr(model, _HOOK_ATTR, None)
    if handle is not None:
        handle.remove()
    for attr in (_HOOK_ATTR, _BASE_MODEL_ATTR):  # a plain model again
        if attr in model.__dict__:
            delattr(model, attr)
    return model


def refresh_spectral_weights(model: nn.Module) -> None:
    """Fast path: rebuild every layer's W from the current δ now (call after ``optimizer.step()``)."""
    refresh_weights(_fast_layers(model), force=True)


def shift_grads_aside(model: nn.Module) -> ShiftGradsAside:
    """For one forward + backward of a training step: every fast layer's δ gradient is computed
    off the backward's main chain — on a side stream on CUDA — and assigned on exit
    (:class:`~svdinst.spectral.aside.ShiftGradsAside`; the gradients must be ``None`` on entry)."""
    return ShiftGradsAside(_fast_layers(model))


def _fast_layers(model: nn.Module) -> list[SpectralShiftLayer]:
    """The layers a training step rebuilds and gates: on the fast path, not merged."""
    return [lay for lay in require_spectral_layers(model).values() if lay.fast and not lay.merged]


def set_fast_path(
    model: nn.Module,
    enabled: bool = True,
    compute_dtype: torch.dtype | None = None,
    factored: str | None = None,
) -> None:
    """Switch every layer between the exact and the fast path (unmerging first).

    Args:
        model (`nn.Module`): a model with spectral shifts.
        enabled (`bool`, defaults to `True`): fast path on or off.
        compute_dtype (`torch.dtype`, *optional*): new dtype of U and Vᵀ (casting to a lower
            precision is one-way: re-add the shifts to get float32 factors back).
        factored (`str`, *optional*): new ``factored`` mode (see ``SpectralShiftConfig``);
            every layer decides its path again at its next forward.
    """
    for layer in require_spectral_layers(model).values():
        layer.set_fast(enabled, factored)
        if compute_dtype is not None:
            layer.U = layer.U.to(compute_dtype)
            layer.Vh = layer.Vh.to(compute_dtype)
