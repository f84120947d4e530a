"""File formats of the kit, each spelled in one module: atomic writes (:mod:`.atomic`), training
checkpoints (:mod:`.checkpoint`), run folders (:mod:`.run_folder`), outputs folders
(:mod:`.outputs`) and safe output folders that replace only the kit's files (:mod:`.folders`).

Layer 1: imports only :mod:`svdinst.errors`, the standard library, torch, NumPy and PIL, so every
stage (training, stylize, baselines, evaluation, course, pocket) reads and writes the same files
without importing another stage. A file name such as a run's settings file or an output image's
name appears only in its format module (``tests/formats/test_literals.py`` greps for strays).
Names load on first use, so a CLI that needs only the outputs format does not import torch.
"""

from svdinst.lazy import lazy_exports

_EXPORTS = {
    "atomic_path": "atomic",
    "save_image_atomic": "atomic",
    "write_bytes_atomic": "atomic",
    "write_json_atomic": "atomic",
    "write_text_atomic": "atomic",
    "latest_checkpoint": "checkpoint",
    "list_checkpoints": "checkpoint",
    "load_checkpoint": "checkpoint",
    "load_latest_checkpoint": "checkpoint",
    "rng_state": "checkpoint",
    "save_checkpoint": "checkpoint",
    "set_rng_state": "checkpoint",
    "MANIFEST": "folders",
    "OutputFolderError": "folders",
    "check_writable": "folders",
    "prepare_output_folder": "folders",
    "publish_folder": "folders",
    "remove_ours": "folders",
    "write_manifest": "folders",
    "writing_into": "folders",
    "written_files": "folders",
    "OutputsFolder": "outputs",
    "method_folder_name": "outputs",
    "method_folders": "outputs",
    "parse_method_folder": "outputs",
    "LossLog": "run_folder",
    "RunFolder": "run_folder",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
