"""Baselines behind one interface (:class:`svdinst.baselines.base.Baseline`), looked up by name.

Each method lives in its own module and registers itself with :func:`register`. Asking this
package for :data:`REGISTRY`, :func:`get_baseline`, :class:`Baseline` or :func:`register` first
imports every module of :data:`METHOD_MODULES`, so the registry is always complete; until then
nothing heavy (torch) is imported, which keeps ``svdinst --help`` quick (the CLI imports
:mod:`svdinst.baselines.cli`, a sub-module of this package).
"""

from __future__ import annotations

import importlib
from typing import Any

# One entry per method module (keep complete: a module missing here is missing everywhere).
METHOD_MODULES = ("adain", "balagan", "cyclegan", "fast_style", "magenta", "stargan", "stytr2")

# Figures comparing the methods (svdinst.baselines.compare), also imported on first use.
COMPARE_NAMES = ("comparison_grid", "loss_curves", "read_log")

__all__ = ["METHOD_MODULES", "REGISTRY", "Baseline", "get_baseline", "register", *COMPARE_NAMES]


def __getattr__(name: str) -> Any:
    if name in ("REGISTRY", "Baseline", "get_baseline", "register"):
        for module in METHOD_MODULES:
            importlib.import_module(f"svdinst.baselines.{module}")
        return getattr(importlib.import_module("svdinst.baselines.base"), name)
    if name in COMPARE_NAMES:
        return getattr(importlib.import_module("svdinst.baselines.compare"), name)
    raise AttributeError(f"module 'svdinst.baselines' has no attribute {name!r}")
