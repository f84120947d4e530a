"""What lets SD-1.4 train on a 16 GB T4: the run's precision and accelerator, gradient
checkpointing that really runs, and what to do when the loss diverges.

* Precision: ``mixed_precision="auto"`` follows :mod:`svdinst.device` (fp16 frozen weights on CUDA,
  fp32 on a CPU); the trainable tensors stay fp32 whatever the choice (accelerate's mixed
  precision). fp32 SD-1.4 with δ and its SVD factors does not fit a T4 at 512 px.
* Gradient checkpointing: on by default with CUDA. Both libraries skip it unless the checkpointed
  block is in training mode *or* (diffusers ≥ 0.32) gradients are enabled: transformers' CLIP
  layers check ``self.training``, so on the frozen text tower, which stays in eval mode, it was a
  silent no-op. :func:`enable_gradient_checkpointing` sets ``training = True`` on exactly the
  checkpointing blocks (not recursively): their dropout submodules stay in eval mode, so the
  forward is unchanged and only the recomputation switches on (tested by counting forwards).
"""

from __future__ import annotations

import warnings
from typing import Any

from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.state import AcceleratorState

from svdinst.device import bf16_supported, resolve_precision
from svdinst.formats.run_folder import RunFolder
from svdinst.training.config import TrainConfigError


def training_precision(requested: str, device: str) -> str:
    """The accelerate precision a run uses on ``device`` (``"auto"`` → fp16 on CUDA, else fp32).

    Half precision asked for on a CPU falls back to fp32 with a warning (CPU bf16 autocast gave
    sporadic NaN losses on the tiny model); bf16 on a card without it (a T4) is an error.

    Args:
        requested (`str`): ``TrainConfig.mixed_precision``: ``"auto"``, ``"no"``, ``"fp16"``, ``"bf16"``.
        device (`str`): ``"cuda"`` or ``"cpu"``.
    """
    if device != "cuda" and requested not in ("auto", "no"):
        warnings.warn(
            f"--mixed-precision {requested} needs a CUDA GPU; training in fp32 on the CPU "
            f"({RunFolder.CONFIG} records what was asked).",
            stacklevel=3,
        )
        return "no"
    try:
        return resolve_precision(requested, device)
    except ValueError as err:  # bf16 on a T4, or an unknown name: one line from the CLI
        raise TrainConfigError(f"--mixed-precision: {err}.") from err


CHECKPOINTING_BELOW_GIB = 24  # cards under this (T4, V100-16G, 4090 is 24) recompute by default


def use_gradient_checkpointing(
    requested: bool | None, device: str, memory_gib: float | None = None
) -> bool:
    """``TrainConfig.gradient_checkpointing``: ``None`` → on with CUDA below 24 GiB, off otherwise.

    Cards under 24 GiB (the Colab T4 the course targets) keep checkpointing on: the notebooks'
    memory budget was rehearsed with it, and larger batches need it there. It rules out the CUDA
    graph step (it saves and restores the CUDA RNG state, which a capture forbids) and costs
    about a third more compute, while a 40–80 GB card needs no recomputation (svd-inst at 512 px,
    batch 1, fp16 frozen weights peaks at ~4 GiB without it, reports/benchmarks.md), so there
    the graph step wins.

    Args:
        requested (`bool` or `None`): the setting; ``None`` decides by card.
        device (`str`): ``"cuda"`` or ``"cpu"``.
        memory_gib (`float`, *optional*): the card's total memory (unknown → treated as small).
    """
    if requested is not None:
        return requested
    if device != "cuda":
        return False
    return memory_gib is None or memory_gib < CHECKPOINTING_BELOW_GIB


def enable_gradient_checkpointing(*models: Any) -> None:
    """Turn on gradient checkpointing of diffusers/transformers models kept in eval mode.

    Each model's own switch is called (``enable_gradient_checkpointing`` for diffusers;
    transformers ≥ 5.24 renamed ``gradient_checkpointing_enable`` to
    ``activation_checkpointing_enable``, Colab may still ship 4.x). Then every block whose
    ``gradient_checkpointing`` flag is set gets ``training = True`` on itself only: transformers
    checkpoints only blocks in training mode, and the frozen towers stay in eval mode so that no
    dropout runs (their submodules keep ``training = False``).
    """
    for model in models:
        if hasattr(model, "enable_gradient_checkpointing"):
            model.enable_gradient_checkpointing()
        else:
            enable = getattr(model, "activation_checkpointing_enable", None)
            (enable or model.gradient_checkpointing_enable)()
        for block in model.modules():
            if getattr(block, "gradient_checkpointing", False) is True:
                block.training = True  # this block only: its submodules stay in eval mode


def divergence_advice(lr_token: float | None, lr_shifts: float | None, device: str) -> str:
    """What to try after a NaN/inf loss, for the card at hand (bf16 only where it exists).

    Args:
        lr_token (`float` or `None`), lr_shifts (`float` or `None`): the lrs of the trained parts.
        device (`str`): ``"cuda"`` or ``"cpu"``.
    """
    lrs = [f"--lr-token (now {lr_token:g})" if lr_token else "",
           f"--lr-shifts (now {lr_shifts:g})" if lr_shifts else ""]  # fmt: skip
    advice = f"lower {' or '.join(v for v in lrs if v)} (e.g. ÷10)"
    if device == "cuda":
        advice += (
            "; fp16 keeps the trained parts in fp32 already — if it still diverges, "
            "--mixed-precision no (fp32, needs more memory)"
        )
        if bf16_supported(device):
            advice += " or --mixed-precision bf16 (this GPU has it)"
    return advice + ", then --resume"


def make_accelerator(cuda: bool, precision: str) -> Accelerator:
    """The run's ``Accelerator``; with several processes, DDP never re-broadcasts buffers.

    The spectral layers keep their frozen SVD factors (U, σ, Vᵀ, and the rebuilt W) as buffers:
    gigabytes at SD-1.4 size. DDP's default ``broadcast_buffers=True`` copies every buffer from
    rank 0 before *each* forward pass. They are equal on all ranks after DDP's one broadcast at
    wrap time and change only through δ, which every rank updates identically from the reduced
    gradient, so the per-step copy is pure waste (reports/benchmarks.md: turning it off did not
    change the 2-GPU ratio, the step is launch-bound, but it is bandwidth nobody needs).
    """
    ddp = DistributedDataParallelKwargs(broadcast_buffers=False)
    return Accelerator(cpu=not cuda, mixed_precision=precision, kwargs_handlers=[ddp])


def _release_accelerator_state(precision: str) -> None:
    """Let a second ``train()`` in one process use another precision (a notebook, a test).

    accelerate keeps one global ``AcceleratorState`` and refuses a different ``mixed_precision``
    later; only that part is cleared — the process group (``PartialState``) stays as launched.
    """
    state = AcceleratorState._shared_state
    if state and str(state.get("_mixed_precision", precision)) != precision:
        AcceleratorState._reset_state(reset_partial_state=False)
