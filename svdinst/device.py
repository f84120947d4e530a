"""One device and precision policy for every stage: fp16 on CUDA, fp32 on a CPU, bf16 only
where the card computes it natively.

Why fp16 on CUDA and not bf16: the kit's target card, a free Colab T4 (Turing), has fp16 tensor
cores and no bf16; bf16 is offered only where :func:`bf16_supported` says so (Ampere and newer).
Why fp32 on a CPU: half-precision matmuls there are slow or unsupported and the toy models are
small. Training keeps its trainable tensors in fp32 whatever the policy (accelerate's mixed
precision); this module only names the dtype of *frozen* weights and of inference.

torch is imported inside the functions: configs import :data:`PRECISIONS` to validate settings,
and the command line builds its parser from them without paying torch's ~2 s import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

PRECISIONS = ("no", "fp16", "bf16")  # accelerate's names; "no" = fp32
_DTYPE_NAMES = {"no": "float32", "fp16": "float16", "bf16": "bfloat16"}


def default_device() -> str:
    """``"cuda"`` when a CUDA GPU is visible, else ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def card_memory_gib(device: str | torch.device = "cuda:0") -> float | None:
    """Total memory of a CUDA ``device`` in GiB as the driver reports it.

    Returns `None` for a device that is not CUDA, or when the driver cannot say (CUDA reported
    available but no driver behind it); callers treat that as "unknown".

    Args:
        device (`str` or `torch.device`, defaults to ``"cuda:0"``): the card.
    """
    import torch  # only when asked: the CLI's configs import this module without torch

    if torch.device(device).type != "cuda":
        return None
    try:
        return torch.cuda.get_device_properties(torch.device(device)).total_memory / 2**30
    except (RuntimeError, AssertionError, AttributeError):  # no driver behind is_available()
        return None


def bf16_supported(device: str | torch.device | None = None) -> bool:
    """Whether ``device`` computes bf16 natively (CUDA compute capability ≥ 8.0; never on a T4)."""
    import torch

    device = torch.device(device or default_device())
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    major, _ = torch.cuda.get_device_capability(device)
    return major >= 8


def default_precision(device: str | torch.device | None = None) -> str:
    """The kit's precision for ``device``: ``"fp16"`` on CUDA, ``"no"`` (fp32) elsewhere."""
    import torch

    return "fp16" if torch.device(device or default_device()).type == "cuda" else "no"


def resolve_precision(precision: str, device: str | torch.device | None = None) -> str:
    """``precision`` as it can run on ``device``: ``"auto"`` → :func:`default_precision`.

    Raises:
        ValueError: an unknown name, half precision asked for on a CPU, or bf16 on a card
            without it (a T4: use fp16).
    """
    import torch

    device = torch.device(device or default_device())
    if precision == "auto":
        return default_precision(device)
    if precision not in PRECISIONS:
        raise ValueError(
            f"precision must be 'auto' or one of {list(PRECISIONS)}, got {precision!r}"
        )
    if precision != "no" and device.type != "cuda":
        raise ValueError(
            f"precision {precision!r} needs a CUDA GPU; on {device.type} use 'no' (fp32)"
        )
    if precision == "bf16" and not bf16_supported(device):
        raise ValueError("this GPU has no bf16 (e.g. a T4): use precision 'fp16'")
    return precision


def precision_dtype(precision: str) -> torch.dtype:
    """The torch dtype of an accelerate precision name (``"no"`` → float32)."""
    import torch

    if precision not in _DTYPE_NAMES:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    return getattr(torch, _DTYPE_NAMES[precision])


def inference_dtype(device: str | torch.device | None = None) -> torch.dtype:
    """The dtype to run a frozen model in on ``device``: float16 on CUDA, float32 elsewhere."""
    return precision_dtype(default_precision(device))
