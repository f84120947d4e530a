"""Stylize photos with a trained run (img2img or InST's stochastic inversion, many seeds) into an
outputs folder (:class:`svdinst.formats.outputs.OutputsFolder`). Names load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "StylizeConfig": "stylizer",
    "Stylizer": "stylizer",
    "content_images": "stylizer",
    "stylize_folder": "stylizer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"svdinst.stylize.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'svdinst.stylize' has no attribute {name!r}")
