"""Continuing an earlier pocket model (``PocketConfig.init_from``: pocket-v3's and v5's recipes).

The earlier folder is read with the kit's real loaders (:func:`svdinst.models.loading.load_components`),
so a folder that ``svdinst pocket verify`` accepts is one this accepts; its networks are copied
into the freshly built ones strictly (every tensor, every shape).
"""

from __future__ import annotations

from pathlib import Path

import torch

from svdinst.errors import ModelNotFoundError
from svdinst.models.layout_config import POCKET_LAYOUTS
from svdinst.models.loading import load_components, pocket_model_path


def init_folder(init_from: str) -> Path:
    """The pocket model folder that ``init_from`` names: a folder, or a shipped version's name."""
    path = Path(init_from)
    if not (path / "model_index.json").is_file() and init_from in POCKET_LAYOUTS:
        path = pocket_model_path(init_from)
    if not (path / "model_index.json").is_file():
        raise ModelNotFoundError(
            f"init_from '{init_from}' is neither a pocket model folder (no model_index.json) nor "
            f"a shipped pocket version ({', '.join(POCKET_LAYOUTS)}); pass --init-from with a "
            "folder written by `svdinst pocket pretrain`."
        )
    return path


def load_init_weights(
    modules: dict[str, torch.nn.Module], folder: Path, *, unet: bool = True
) -> float:
    """Copy an earlier pocket model's weights into ``modules``; returns its VAE's scaling factor.

    Args:
        modules (`dict[str, torch.nn.Module]`): the freshly built networks of this recipe.
        folder (`Path`): the earlier pocket model folder.
        unet (`bool`, defaults to `True`): copy its UNet too; `False` leaves this recipe's new
            UNet as built (``PocketConfig.init_unet``).

    Raises:
        ModelNotFoundError: the folder's networks have other shapes than ``modules``.
    """
    parts = ("vae", "text_encoder", "image_encoder") + (("unet",) if unet else ())
    earlier = load_components(folder, parts)  # the real loaders; fp16 files → fp32 modules
    for name in parts:
        try:
            modules[name].load_state_dict(getattr(earlier, name).state_dict())  # strict
        except RuntimeError as err:
            raise ModelNotFoundError(
                f"'{folder}' {name} does not fit this recipe's {name} ({err}); continue from a "
                "folder of the same pocket layout, or train from scratch without init_from."
            ) from err
    return float(earlier.vae.config.scaling_factor)
