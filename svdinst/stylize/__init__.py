"""Stylize photos with a trained run (img2img or InST's stochastic inversion, many seeds) into an
outputs folder (:class:`svdinst.formats.outputs.OutputsFolder`).

:mod:`~svdinst.stylize.config` holds :class:`StylizeConfig` (no torch), :mod:`~svdinst.stylize.stylizer`
the :class:`Stylizer` and :func:`stylize_folder`, :mod:`~svdinst.stylize.cli` ``svdinst stylize``.
Names are imported from their sub-module on first use (:mod:`svdinst.lazy`).
"""

from svdinst.lazy import lazy_exports

_EXPORTS = {
    "StylizeConfig": "config",
    "INIT_MODES": "config",
    "Stylizer": "stylizer",
    "adain": "stylizer",
    "content_images": "stylizer",
    "stylize_folder": "stylizer",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
