"""Lazy re-exports for package ``__init__`` files, so ``svdinst --help`` stays quick.

A stage package names its public API in its ``__init__`` but imports the sub-module behind a
name only when that name is first used: ``import svdinst.data.cli`` (which runs
``svdinst/data/__init__.py``) must not import torch, diffusers or scipy.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of a package that re-exports names lazily.

    Args:
        package (`str`): the package's dotted name (``__name__`` in its ``__init__``).
        exports (`Mapping[str, str]`): public name → the sub-module (relative to ``package``)
            that defines it.

    Returns:
        `(__getattr__, __dir__)`: assign both at the package's module level (PEP 562).
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
