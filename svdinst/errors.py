"""Exceptions with messages that teach: what went wrong, which file, and how to fix it.

The CLI prints any :class:`SvdinstError` as one line and exits non-zero; Python callers can
catch the subclasses, which also derive from the matching built-in (``ValueError``,
``FileNotFoundError``) so generic handlers keep working.
"""

from __future__ import annotations


class SvdinstError(Exception):
    """Base class of every error this package raises on purpose."""


class ModelNotFoundError(SvdinstError, OSError):
    """A base model (hub id or folder) could not be found or is not the expected layout."""


class DataError(SvdinstError, ValueError):
    """An input image or image folder is unusable (corrupt, wrong mode, empty, missing)."""


class ShiftFileError(SvdinstError, ValueError):
    """A spectral-shift or embedding file does not fit the model it is loaded into."""


class RunFolderError(SvdinstError, ValueError):
    """A training run folder is missing, incomplete, or from an incompatible setting."""
