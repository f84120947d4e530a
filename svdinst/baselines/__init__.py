"""Baselines behind one interface (:class:`svdinst.baselines.base.Baseline`), looked up by name.

Each method lives in its own module and registers itself with :func:`register`. Asking this
package for :data:`REGISTRY`, :func:`get_baseline`, :class:`Baseline` or :func:`register` first
imports :mod:`svdinst.baselines.registry` (every method module), so the registry is always complete; until then
nothing heavy (torch) is imported, which keeps ``svdinst --help`` quick (the CLI imports
:mod:`svdinst.baselines.cli`, a sub-module of this package).
"""

from __future__ import annotations

import importlib
from typing import Any

# Figures comparing the methods (svdinst.baselines.compare), also imported on first use.
COMPARE_NAMES = ("comparison_grid", "loss_curves", "read_log")

__all__ = ["METHOD_MODULES", "REGISTRY", "Baseline", "get_baseline", "register", *COMPARE_NAMES]


def __getattr__(name: str) -> Any:
    if name in ("METHOD_MODULES", "REGISTRY", "Baseline", "get_baseline", "register"):
        return getattr(importlib.import_module("svdinst.baselines.registry"), name)
    if name in COMPARE_NAMES:
        return getattr(importlib.import_module("svdinst.baselines.compare"), name)
    raise AttributeError(f"module 'svdinst.baselines' has no attribute {name!r}")
