"""LPIPS (Zhang et al. 2018) for the report: diversity between seeds and distance to the content.

LPIPS compares deep features of two images through linear layers calibrated on human judgments.
The ``lpips`` package ships those linear layers but takes its AlexNet trunk from torchvision's
model zoo, which needs a download. This module loads the trunk from a local torchvision
``alexnet`` state dict (``--lpips-backbone FILE``), else from the torch hub cache, else — with
network — fetches it through torchvision's weights API into that cache, as ``lpips`` itself would
(:mod:`svdinst.models.backbones`). Offline or when the fetch fails, LPIPS is *unavailable* and one
line says how to supply the file. Numbers from a random trunk are never published under the LPIPS
name; tests build one through the explicit ``random_backbone_for_tests`` hook.

* **diversity** (the report's LPIPS column): for each content photo, the mean LPIPS over all pairs
  of its seeds' outputs; then the mean over photos. A deterministic method (one output per photo,
  e.g. CycleGAN) has no diversity, which is said, not hidden.
* **content LPIPS**: mean LPIPS(output, its content photo); enters ArtFID (Wright & Ommer 2022).
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from svdinst.data.transforms import to_tensor
from svdinst.errors import DataError, ModelNotFoundError
from svdinst.models.backbones import TORCHVISION_WEIGHTS, fetch_weights, find_weights, supply_hint

UNAVAILABLE = "unavailable"
# torchvision's AlexNet_Weights.IMAGENET1K_V1 file name, as it sits in the torch hub cache.
ALEXNET_FILE = TORCHVISION_WEIGHTS["alexnet"][1]
LPIPS_OPTION = "--lpips-backbone FILE (LPIPS_BACKBONE in notebook 07)"


class LpipsUnavailableWarning(UserWarning):
    """No AlexNet trunk could be found or fetched: LPIPS and ArtFID read "unavailable"."""


ALEXNET_CONVS = (0, 3, 6, 8, 10)  # indices of the conv layers in torchvision's alexnet.features


def find_alexnet_weights(path: str | os.PathLike | None = None) -> Path | None:
    """The torchvision AlexNet weights to use: ``path`` if given, else the torch hub cache's copy.

    Args:
        path (`str` or `os.PathLike`, *optional*): a torchvision ``alexnet`` state dict
            (``alexnet-owt-7be5be79.pth``). A given path that does not exist is an error.

    Returns:
        `Path` or `None`: ``None`` when no weights are available (LPIPS is then unavailable).
    """
    return find_weights(
        "alexnet",
        path,
        f"pass torchvision's AlexNet weights ({ALEXNET_FILE}, copied from a machine with "
        "network) as the LPIPS backbone, or leave the option out.",
    )


@dataclass
class LpipsScorer:
    """A loaded LPIPS model and where its backbone came from.

    Args:
        model (`lpips.LPIPS`): the network (AlexNet trunk + calibrated linear layers).
        backbone (`str`): the weights file, or ``"random (tests only)"``.
        device (`str`): where ``model`` runs.
    """

    model: torch.nn.Module
    backbone: str
    device: str = "cpu"

    @torch.no_grad()
    def distance(
        self, a: Sequence[Image.Image], b: Sequence[Image.Image], batch_size: int = 16
    ) -> np.ndarray:
        """LPIPS between ``a[i]`` and ``b[i]`` for every i.

        ``b[i]`` is center-cropped to ``a[i]``'s aspect ratio and resized to its size — the same
        view the stylizers take of a photo (``svdinst.data.transforms.center_crop_resize``).
        """
        if len(a) != len(b):
            raise ValueError(f"LPIPS needs pairs: got {len(a)} and {len(b)} images.")
        b = [
            y if y.size == x.size else ImageOps.fit(y, x.size, Image.BICUBIC) for x, y in zip(a, b)
        ]
        out: list[float] = []
        for start in range(0, len(a), batch_size):
            xa = [to_tensor(img) for img in a[start : start + batch_size]]  # [-1, 1], LPIPS' range
            xb = [to_tensor(img) for img in b[start : start + batch_size]]
            if len({tuple(x.shape) for x in xa}) == 1:  # one pass for same-size pairs
                d = self.model(
                    torch.stack(xa).to(self.device),
                    torch.stack(xb).to(self.device),
                    normalize=False,
                )
            else:
                d = torch.cat(
                    [
                        self.model(
                            x[None].to(self.device), y[None].to(self.device), normalize=False
                        )
                        for x, y in zip(xa, xb)
                    ]
                )
            out.extend(d.flatten().cpu().tolist())
        return np.asarray(out, dtype=np.float64)


def _new_lpips(pnet_rand: bool) -> torch.nn.Module:
    import lpips  # imports torchvision (seconds): only when an LPIPS network is built

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's `pretrained=` deprecation notice
        return lpips.LPIPS(net="alex", pretrained=True, pnet_rand=pnet_rand, verbose=False)


def load_lpips(
    backbone: str | os.PathLike | None = None,
    *,
    device: str = "cpu",
    random_backbone_for_tests: bool = False,
) -> LpipsScorer | None:
    """Build LPIPS-Alex with a real AlexNet trunk, or return ``None`` when none is available.

    Args:
        backbone (`str` or `os.PathLike`, *optional*): torchvision ``alexnet`` weights; defaults
            to the torch hub cache's copy, fetched into it through torchvision when missing
            (never offline: then LPIPS is unavailable and a warning says how to supply the file).
        device (`str`, defaults to ``"cpu"``): where the network runs.
        random_backbone_for_tests (`bool`, defaults to `False`): testing hook — a random trunk
            (``pnet_rand=True``). Its numbers are not LPIPS and must never be reported as such.

    Returns:
        `LpipsScorer` or `None`.
    """
    if random_backbone_for_tests:
        torch.manual_seed(0)
        model = _new_lpips(pnet_rand=True)
        return LpipsScorer(model.to(device).eval(), "random (tests only)", device)
    file = find_alexnet_weights(backbone)
    if file is not None:
        try:
            state = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ModelNotFoundError(
                f"Could not read LPIPS backbone '{file}' ({type(err).__name__}); it must be "
                f"torchvision's AlexNet state dict ({ALEXNET_FILE})."
            ) from err
    else:
        state, file = fetch_weights("alexnet")
        if state is None:
            warnings.warn(
                f"LPIPS unavailable: no AlexNet backbone ({file}); "
                f"{supply_hint('alexnet', LPIPS_OPTION)}.",
                LpipsUnavailableWarning,
                stacklevel=2,
            )
            return None
    model = _new_lpips(pnet_rand=True)
    trunk = {}
    for module in model.net.children():  # lpips keeps torchvision's indices inside its slices
        trunk.update({int(name): layer for name, layer in module.named_children()})
    for idx in ALEXNET_CONVS:
        for part in ("weight", "bias"):
            key = f"features.{idx}.{part}"
            if key not in state or state[key].shape != getattr(trunk[idx], part).shape:
                raise ModelNotFoundError(
                    f"'{file}' is not torchvision's AlexNet state dict: '{key}' is missing or "
                    f"has the wrong shape. Use {ALEXNET_FILE}."
                )
            getattr(trunk[idx], part).data.copy_(state[key])
    return LpipsScorer(model.to(device).eval(), str(file), device)


def lpips_diversity(
    groups: Mapping[str, Sequence[Image.Image]], scorer: LpipsScorer
) -> dict[str, float | int]:
    """Mean pairwise LPIPS among the seeds of each content photo, averaged over photos.

    Args:
        groups (`Mapping[str, Sequence[PIL.Image]]`): content stem → its outputs (one per seed).
        scorer (`LpipsScorer`): from :func:`load_lpips`.

    Returns:
        `dict`: ``mean`` (over photos), ``std`` (between photos), ``n_photos``, ``n_pairs``.
    """
    per_photo, n_pairs = [], 0
    for stem, images in groups.items():
        if len(images) < 2:
            raise DataError(
                f"LPIPS diversity needs ≥ 2 seeds per photo; '{stem}' has {len(images)}. "
                "Stylize with --seeds 2 or more (deterministic methods have no diversity)."
            )
        pairs = list(itertools.combinations(range(len(images)), 2))
        d = scorer.distance([images[i] for i, _ in pairs], [images[j] for _, j in pairs])
        per_photo.append(float(d.mean()))
        n_pairs += len(pairs)
    if not per_photo:
        raise DataError("LPIPS diversity got no photos.")
    return {
        "mean": float(np.mean(per_photo)),
        "std": float(np.std(per_photo)),
        "n_photos": len(per_photo),
        "n_pairs": n_pairs,
    }


def content_lpips(
    groups: Mapping[str, Sequence[Image.Image]],
    contents: Mapping[str, Image.Image],
    scorer: LpipsScorer,
) -> dict[str, float | int]:
    """Mean LPIPS(output, content) over every output (ArtFID's content term).

    Args:
        groups (`Mapping[str, Sequence[PIL.Image]]`): content stem → its outputs.
        contents (`Mapping[str, PIL.Image]`): content stem → the photo it was made from.
        scorer (`LpipsScorer`): from :func:`load_lpips`.
    """
    missing = sorted(set(groups) - set(contents))
    if missing:
        raise DataError(
            f"No content photo for output folder(s) {missing[:5]}; the --content folder must "
            "hold a photo with the same stem as each output folder."
        )
    outputs = [img for stem in groups for img in groups[stem]]
    photos = [contents[stem] for stem in groups for _ in groups[stem]]
    d = scorer.distance(outputs, photos)
    return {"mean": float(d.mean()), "std": float(d.std()), "n": len(d)}
