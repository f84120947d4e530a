"""Image data: reading and validating image folders, transforms, the offline default data set.

:mod:`~svdinst.data.io` reads every image (:func:`load_image`, :func:`list_images`) and checks
folders; :mod:`~svdinst.data.transforms` turns images into tensors in [-1, 1] and back;
:mod:`~svdinst.data.default` builds the default data set (real photos shipped inside installed
packages, plus mural proxies from :mod:`~svdinst.data.mural`); :mod:`~svdinst.data.cli` is
``svdinst data``. Names are imported from their sub-module on first use (:mod:`svdinst.lazy`).
"""

from svdinst.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(
        [
            "IMAGE_EXTENSIONS",
            "SPLITS",
            "check_data_dir",
            "check_folder",
            "list_images",
            "load_image",
            "load_images",
            "scan_folder",
        ],
        "io",
    ),
    **dict.fromkeys(
        ["center_crop_resize", "images_to_batch", "random_crop_flip", "to_image", "to_tensor"],
        "transforms",
    ),
    **dict.fromkeys(["PHOTOS", "ensure_dataset", "prepare_default_dataset"], "default"),
    **dict.fromkeys(["MuralConfig", "mural_proxy", "mural_stages", "palette_family"], "mural"),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
