"""Stylize photos with a trained run (img2img or InST's stochastic inversion, many seeds) into an
outputs folder (:class:`svdinst.formats.outputs.OutputsFolder`).

:mod:`~svdinst.stylize.config` holds :class:`StylizeConfig` (no torch), :mod:`~svdinst.stylize.stylizer`
the :class:`Stylizer`, :mod:`~svdinst.stylize.speed` its optional speed levers,
:mod:`~svdinst.stylize.folder` :func:`stylize_folder` (split over ``accelerate launch``
processes), :mod:`~svdinst.stylize.cli` ``svdinst stylize``.
Names are imported from their sub-module on first use (:mod:`svdinst.lazy`).
"""

from svdinst.lazy import lazy_exports

_EXPORTS = {
    "StylizeConfig": "config",
    "INIT_MODES": "config",
    "auto_batch_size": "config",
    "Stylizer": "stylizer",
    "adain": "stylizer",
    "SpeedOptions": "speed",
    "content_images": "folder",
    "stylize_folder": "folder",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
