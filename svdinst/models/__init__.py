"""Stable Diffusion models: loading components by name, and the SD layouts the kit builds itself.

:func:`load_components` reads any model the same way (a hub id, a local folder, or a built-in
name: ``tiny``, ``sd14-random``, ``pocket``; :func:`resolve_model` says where it lives);
:mod:`~svdinst.models.layouts` builds random-weight SD-layout models from an
:class:`SDLayoutConfig`; :mod:`~svdinst.models.clip_vocab` is the offline CLIP tokenizer;
:mod:`~svdinst.models.cli` is ``svdinst tiny-model``. Names are imported from their sub-module on
first use (:mod:`svdinst.lazy`), so importing this package loads neither torch nor diffusers.
"""

from svdinst.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(
        [
            "ALL_PARTS",
            "CLIP_VISION_ID",
            "POCKET",
            "SD14_ID",
            "SD14_RANDOM",
            "TINY",
            "Components",
            "built_in_model_path",
            "load_components",
            "pocket_model_path",
            "resolve_model",
            "sd14_random_path",
            "tiny_model_path",
        ],
        "loading",
    ),
    **dict.fromkeys(
        [
            "build_sd_layout_model",
            "build_tiny_model",
            "save_sd_layout_pipeline",
            "sd_layout_modules",
        ],
        "layouts",
    ),
    "SDLayoutConfig": "layout_config",
    **dict.fromkeys(["make_clip_tokenizer", "write_clip_vocabulary"], "clip_vocab"),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
