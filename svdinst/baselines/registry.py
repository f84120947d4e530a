"""Every baseline method, registered: importing this module imports each method module once.

A method registers itself with :func:`svdinst.baselines.base.register` when its module is
imported, so asking :func:`get_baseline` through this module always sees the complete registry.
"""

from __future__ import annotations

import svdinst.baselines.adain
import svdinst.baselines.balagan
import svdinst.baselines.cyclegan
import svdinst.baselines.fast_style
import svdinst.baselines.magenta
import svdinst.baselines.stargan
import svdinst.baselines.stytr2  # noqa: F401  (each import above registers its method)
from svdinst.baselines.base import REGISTRY, Baseline, get_baseline, register

# One entry per method module above (keep complete: a module missing here is missing everywhere).
METHOD_MODULES = ("adain", "balagan", "cyclegan", "fast_style", "magenta", "stargan", "stytr2")

__all__ = ["METHOD_MODULES", "REGISTRY", "Baseline", "get_baseline", "register"]
