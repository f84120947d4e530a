"""Baselines behind one interface (:class:`svdinst.baselines.base.Baseline`), looked up by name.

Each method lives in its own module and registers itself with :func:`register`; importing this
package imports them all so :data:`REGISTRY` is complete.
"""

from svdinst.baselines.base import REGISTRY, Baseline, get_baseline, register

# Method modules register themselves on import (keep this list complete: one line per method).
from svdinst.baselines import balagan, cyclegan, magenta, stargan  # noqa: F401  isort: skip
from svdinst.baselines import adain, fast_style, stytr2  # noqa: F401  isort: skip

__all__ = ["REGISTRY", "Baseline", "get_baseline", "register"]
