"""SVDiff spectral shifts as a peft-style tuner (public API)."""

from svdinst.spectral.layer import *  # noqa: F403
from svdinst.spectral.layer import __all__  # noqa: F401
