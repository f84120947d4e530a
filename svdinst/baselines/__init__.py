"""Baselines behind one interface (:class:`svdinst.baselines.base.Baseline`), looked up by name.

Each method lives in its own module and registers itself with :func:`register`. Asking this
package for :data:`REGISTRY`, :func:`get_baseline`, :class:`Baseline` or :func:`register` first
imports :mod:`svdinst.baselines.registry` (every method module), so the registry is always complete; until then
nothing heavy (torch) is imported, which keeps ``svdinst --help`` quick (the CLI imports
:mod:`svdinst.baselines.cli`, a sub-module of this package).
"""

from svdinst.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(
        ["METHOD_MODULES", "REGISTRY", "Baseline", "get_baseline", "register"], "registry"
    ),
    # Figures comparing the methods.
    **dict.fromkeys(["comparison_grid", "loss_curves", "read_log"], "compare"),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
