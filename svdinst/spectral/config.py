"""How spectral shifts are computed: :class:`SpectralShiftConfig` (the exact path by default)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

SVD_METHODS = ("auto", "svd", "gram")
REBUILD_MODES = ("forward", "step")
FACTORED_MODES = ("auto", "always", "never")


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
            ``refresh_spectral_weights`` is called — call it after each ``optimizer.step()``
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
        if self.svd_method not in SVD_METHODS:
            raise ValueError(
                f"svd_method must be 'auto', 'svd' or 'gram', got {self.svd_method!r}."
            )
        if self.compute_dtype is not None and not self.compute_dtype.is_floating_point:
            raise ValueError(f"compute_dtype must be a float dtype, got {self.compute_dtype}.")
        if self.rebuild not in REBUILD_MODES:
            raise ValueError(f"rebuild must be 'forward' or 'step', got {self.rebuild!r}.")
        if self.factored not in FACTORED_MODES:
            raise ValueError(f"factored must be 'auto', 'always' or 'never', not {self.factored!r}")
