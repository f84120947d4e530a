"""torchvision's ImageNet backbones: LPIPS' AlexNet trunk and the VGG-16/19 of the baselines' losses.

Each caller looks in this order: an explicit file (``--lpips-backbone`` / ``--vgg-weights``), the
torch hub cache (``$TORCH_HOME/hub/checkpoints``), then — with network — a fetch through
torchvision's standard weights API (``AlexNet_Weights.IMAGENET1K_V1.get_state_dict``), which
stores the file into that same cache, exactly as ``lpips`` and ``torchvision.models.alexnet``
would. Offline (``HF_HUB_OFFLINE``, the kit's one offline switch) or when the fetch fails, the
caller says so in one line that names the file and how to supply it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from svdinst.errors import ModelNotFoundError
from svdinst.models.loading import hub_offline

# arch → (torchvision weights enum, its file name in the torch hub cache, download size).
TORCHVISION_WEIGHTS = {
    "alexnet": ("AlexNet_Weights", "alexnet-owt-7be5be79.pth", "233 MB"),
    "vgg16": ("VGG16_Weights", "vgg16-397923af.pth", "528 MB"),
    "vgg19": ("VGG19_Weights", "vgg19-dcbb9e9d.pth", "548 MB"),
}
DOWNLOAD_ROOT = "https://download.pytorch.org/models/"  # where torchvision's IMAGENET1K_V1 live
# What can go wrong in a fetch: no network or DNS (URLError, an OSError), HTTP errors, a full
# disk (OSError), a hash mismatch or truncated file (RuntimeError), a bad URL (ValueError).
FETCH_ERRORS = (OSError, RuntimeError, ValueError)


def cached_weights(arch: str) -> Path:
    """Where torchvision's file for ``arch`` sits in the torch hub cache (it may not exist)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_WEIGHTS[arch][1]


def find_weights(arch: str, explicit: str | os.PathLike | None, fix: str) -> Path | None:
    """An explicit weights file, else torchvision's file in the torch cache, else ``None``.

    Args:
        arch (`str`): a key of :data:`TORCHVISION_WEIGHTS` (``alexnet``, ``vgg16``, ``vgg19``).
        explicit (`str` or `os.PathLike`, *optional*): a file the user named; it must exist.
        fix (`str`): what to do when ``explicit`` does not exist (the end of the error line).
    """
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ModelNotFoundError(f"{arch} weights file '{path}' does not exist; {fix}")
        return path
    cached = cached_weights(arch)
    return cached if cached.is_file() else None


def download_weights(arch: str) -> dict[str, torch.Tensor]:
    """Fetch ``arch``'s ImageNet weights with torchvision's weights API (into the torch hub cache).

    Tests patch this function: they have no network.
    """
    from torchvision import models  # seconds to import: only when a backbone is fetched

    enum, _, size = TORCHVISION_WEIGHTS[arch]
    print(
        f"Fetching torchvision's {arch} ImageNet weights ({size}) into {cached_weights(arch).parent}"
    )
    return getattr(models, enum).IMAGENET1K_V1.get_state_dict(progress=False)


def supply_hint(arch: str, option: str) -> str:
    """How to supply ``arch``'s weights by hand (the end of every "unavailable" line)."""
    file = TORCHVISION_WEIGHTS[arch][1]
    return (
        f"download {DOWNLOAD_ROOT}{file} on a machine with network and pass it as {option}, "
        f"or copy it into {cached_weights(arch).parent}/"
    )


def fetch_weights(arch: str) -> tuple[dict[str, torch.Tensor] | None, str]:
    """``arch``'s ImageNet state dict fetched through torchvision, or why not.

    Args:
        arch (`str`): ``"alexnet"``, ``"vgg16"`` or ``"vgg19"``.

    Returns:
        `tuple`: ``(state_dict, where it was stored)`` after a fetch, else ``(None, reason)`` —
        offline (``HF_HUB_OFFLINE``) or the fetch's error in one line.
    """
    if hub_offline():
        return None, "HF_HUB_OFFLINE is set, so it was not fetched"
    try:
        state = download_weights(arch)
    except FETCH_ERRORS as err:
        first = (str(err).strip().splitlines() or [""])[0]
        return None, f"fetching it failed ({type(err).__name__}: {first})"
    return state, str(cached_weights(arch))
