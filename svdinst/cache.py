"""Where the kit keeps what it builds or converts once: built models, SVD factors, Inception.

The lowest layer (it imports nothing from the kit), so the spectral tuner, the model loaders and
the metrics can all share one cache root without importing each other.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The kit's cache root: ``$SVDINST_CACHE`` or ``~/.cache/svdinst``."""
    return Path(os.environ.get("SVDINST_CACHE", Path.home() / ".cache" / "svdinst"))
