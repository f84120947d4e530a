"""One streaming pass over an outputs folder: every per-image metric, on the device, in batches.

:func:`stream_photos` reads the outputs photo by photo in DataLoader worker processes (PNG
decoding, cropping the content photo to the outputs' view, the mural-proxy oracle target — all
CPU work, in parallel), and on the device computes, batch after batch:

* the 2048-d Inception pool features (FID/KID) — torch-fidelity's TF-FID extractor on the same
  uint8 tensors :class:`~svdinst.evaluation.metrics.UInt8ImageDataset` gives it, so the same ops;
* LPIPS: each image's normalised AlexNet features are computed **once** and every pair is scored
  from them (the seeds' diversity pairs, output vs its photo, output vs its oracle target). That
  is the arithmetic of ``lpips.LPIPS.forward`` split at the point where the two inputs meet, so
  a photo with 10 seeds costs 12 AlexNet passes instead of 2 × (45 + 10 + 10);
* the oracle's PSNR and SSIM, in float64 (:mod:`svdinst.evaluation.oracle`'s numbers).

What is kept per photo is a :class:`PhotoPartial` (its features and per-pair distances, on the
device until the end): host memory is O(batch), the features N × 2048 floats. Partials of
different processes are merged by :func:`svdinst.evaluation.gather.combine` in photo order, so a
split run gives one run's numbers.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from tqdm.auto import tqdm

from svdinst.data import load_image
from svdinst.data.mural import mural_proxy
from svdinst.errors import DataError
from svdinst.evaluation.lpips import LpipsScorer
from svdinst.evaluation.oracle import native_crop
from svdinst.parallel import current_process

SSIM_WIN = 7  # skimage's default window (uniform filter), as oracle_distance uses it
SSIM_K1, SSIM_K2 = 0.01, 0.03  # skimage's (Wang et al. 2004) constants
SSIM_CHUNK = 16  # images per float64 PSNR/SSIM step (~0.5 GB of maps at 512 px)
PAIR_CHUNK = 32  # LPIPS pairs scored at once: each holds ~10 MB of AlexNet features at 512 px


def _uint8(img: Image.Image) -> torch.Tensor:
    """3×H×W uint8, exactly as UInt8ImageDataset converts an image."""
    return torch.from_numpy(np.array(img.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1)


class PhotoGroups(torch.utils.data.Dataset):
    """One item per content photo: its outputs and what they are compared with, as uint8 tensors.

    Decoding happens in ``__getitem__``, i.e. in the DataLoader's worker processes.

    Args:
        groups (`Sequence[tuple[str, Sequence[Path]]]`): (photo stem, its output files) in order.
        photos (`dict[str, Path]`, *optional*): stem → content photo (content LPIPS, oracle).
        oracle (`bool`, defaults to `False`): also build ``mural_proxy(photo)`` as the target.
    """

    def __init__(
        self,
        groups: Sequence[tuple[str, Sequence[Path]]],
        photos: dict[str, Path] | None = None,
        oracle: bool = False,
    ) -> None:
        self.groups, self.photos, self.oracle = list(groups), photos, oracle

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, index: int) -> dict:
        # A bad file is returned as its one-line message, not raised: a worker's exception would
        # reach the user wrapped in the worker's traceback.
        try:
            return self._read(index)
        except DataError as err:
            return {"error": str(err)}

    def _read(self, index: int) -> dict:
        stem, files = self.groups[index]
        images = [load_image(p) for p in files]
        sizes = {img.size for img in images}
        if len(sizes) != 1:
            raise DataError(
                f"The outputs of photo '{stem}' have several sizes {sorted(sizes)} "
                f"({files[0].parent}); stylize them again at one resolution."
            )
        size = images[0].size
        item = {"stem": stem, "outputs": torch.stack([_uint8(img) for img in images])}
        del images
        if self.photos is not None:
            photo = load_image(self.photos[stem])
            # LpipsScorer.distance's view of the photo: the output's aspect, at its size.
            fitted = photo if photo.size == size else ImageOps.fit(photo, size, Image.BICUBIC)
            item["photo"] = _uint8(fitted)
            if self.oracle:  # oracle_distance's target, built the way evaluate always built it
                target = mural_proxy(native_crop(photo, size)).convert("RGB")
                item["target"] = _uint8(ImageOps.fit(target, size, Image.BICUBIC))
        return item


@dataclass
class PhotoPartial:
    """What one photo's outputs contribute to the metrics (tensors stay where computed).

    Args:
        stem (`str`): the content photo.
        features (`torch.Tensor`): S×2048 Inception pool features of its S outputs.
        diversity (`torch.Tensor`, *optional*): LPIPS of every pair of seeds (S(S−1)/2).
        content (`torch.Tensor`, *optional*): LPIPS(output, photo) per output.
        psnr, ssim, oracle_lpips (`torch.Tensor`, *optional*): per output, to the oracle target.
    """

    stem: str
    features: torch.Tensor
    diversity: torch.Tensor | None = None
    content: torch.Tensor | None = None
    psnr: torch.Tensor | None = None
    ssim: torch.Tensor | None = None
    oracle_lpips: torch.Tensor | None = None

    def to_cpu(self) -> PhotoPartial:
        """A copy with every tensor on the CPU (features float32, distances float64)."""
        out = {}
        for name in ("diversity", "content", "psnr", "ssim", "oracle_lpips"):
            value = getattr(self, name)
            out[name] = None if value is None else value.detach().double().cpu()
        return PhotoPartial(self.stem, self.features.detach().float().cpu(), **out)


def lpips_features(scorer: LpipsScorer, x: torch.Tensor) -> list[torch.Tensor]:
    """Normalised per-layer AlexNet features of images ``x`` in [-1, 1] (``lpips.LPIPS``'s own
    first half: scaling layer, trunk, channel normalisation)."""
    import lpips  # torchvision: only when LPIPS runs

    model = scorer.model
    inp = model.scaling_layer(x) if model.version == "0.1" else x
    return [lpips.normalize_tensor(out) for out in model.net.forward(inp)]


def lpips_pairs(
    scorer: LpipsScorer, feats: list[torch.Tensor], i: torch.Tensor, j: torch.Tensor
) -> torch.Tensor:
    """LPIPS of the image pairs ``(i[k], j[k])`` of a feature bank (``lpips.LPIPS``'s second
    half: squared difference, calibrated 1×1 layer, spatial mean, sum over layers)."""
    model = scorer.model
    if not model.lpips or model.spatial:
        raise ValueError("Only the calibrated, non-spatial LPIPS (lpips.LPIPS defaults) is scored.")
    out = []
    for start in range(0, len(i), PAIR_CHUNK):
        a, b = i[start : start + PAIR_CHUNK], j[start : start + PAIR_CHUNK]
        val = 0
        for kk in range(model.L):  # summed in lpips' order
            diff = (feats[kk][a] - feats[kk][b]) ** 2
            val += model.lins[kk](diff).mean([2, 3], keepdim=True)
        out.append(val.flatten())
    return torch.cat(out) if out else feats[0].new_zeros(0)


def psnr_ssim(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """PSNR (dB) and SSIM of uint8 image pairs N×3×H×W, as skimage computes them for
    :func:`~svdinst.evaluation.oracle.oracle_distance` (data range 255, 7×7 uniform window,
    sample covariance, mean over the valid region then over channels), in float64."""
    x, y = a.double(), b.double()
    mse = (x - y).pow(2).mean([1, 2, 3])
    psnr = 10 * torch.log10(255.0**2 / mse)  # identical images: inf, as skimage
    np_ = SSIM_WIN**2
    cov_norm = np_ / (np_ - 1)

    def filt(t: torch.Tensor) -> torch.Tensor:  # only the window positions skimage keeps
        return F.avg_pool2d(t, SSIM_WIN, stride=1)

    ux, uy = filt(x), filt(y)
    vx = cov_norm * (filt(x * x) - ux * ux)
    vy = cov_norm * (filt(y * y) - uy * uy)
    vxy = cov_norm * (filt(x * y) - ux * uy)
    c1, c2 = (SSIM_K1 * 255) ** 2, (SSIM_K2 * 255) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return psnr, s.mean([2, 3]).mean(1)


def _one_thread_worker(worker_id: int) -> None:
    """A decoding worker computes with one thread. The oracle's mural filter does NumPy matrix
    products, and OpenBLAS/OpenMP start one thread per core in *every* worker: 15 workers on a
    16-core host ran 240 threads, and the filter took ~3 s per photo instead of ~0.4 s (issue 15,
    H100 host: 20.9 ms per image for decoding with the oracle against 1.3 without it). torch
    itself already runs one thread in a DataLoader worker."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def decoding_loader(
    dataset: torch.utils.data.Dataset, workers: int, pin_memory: bool
) -> torch.utils.data.DataLoader:
    """The loader of :func:`stream_photos`: one item (photo) at a time, decoded in ``workers``
    processes (0: in this one) that each compute with one thread.

    Args:
        dataset (`torch.utils.data.Dataset`): e.g. :class:`PhotoGroups`.
        workers (`int`): decoding processes.
        pin_memory (`bool`): page-locked items, for asynchronous copies to a GPU.
    """
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=None,  # one photo per item; photos are gathered into device batches later
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=4 if workers else None,
        worker_init_fn=_one_thread_worker if workers else None,
    )


def default_workers(device: str) -> int:
    """Decoding processes: none on a CPU (the cores run the networks); beside a GPU, this
    process's share of the cores (``LOCAL_WORLD_SIZE`` processes per host under a launcher) less
    one for the main process, at most 16. The oracle's mural filter (~0.4 s per photo) and PNG
    decoding (~5 ms per image) are the CPU work that must keep up with the device."""
    if not device.startswith("cuda"):
        return 0
    share = (os.cpu_count() or 2) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, min(16, share - 1))


@torch.no_grad()
def stream_photos(
    dataset: PhotoGroups,
    extractor: torch.nn.Module,
    scorer: LpipsScorer | None,
    *,
    device: str,
    batch_size: int = 64,
    num_workers: int | None = None,
    diversity: bool = True,
    verbose: bool = False,
) -> list[PhotoPartial]:
    """Run the streaming pass (module docstring) over ``dataset``; one partial per photo, in order.

    Args:
        dataset (`PhotoGroups`): the photos to score.
        extractor (`torch.nn.Module`): torch-fidelity's Inception (uint8 in, features out).
        scorer (`LpipsScorer`, *optional*): LPIPS; `None` skips every LPIPS term.
        device (`str`): where the networks run.
        batch_size (`int`, defaults to 64): output images per device step (photos are not split).
        num_workers (`int`, *optional*): decoding processes; :func:`default_workers` by default.
        diversity (`bool`, defaults to `True`): score the seed pairs (needs ≥ 2 seeds per photo).
        verbose (`bool`, defaults to `False`): a progress bar.
    """
    workers = default_workers(device) if num_workers is None else num_workers
    loader = decoding_loader(dataset, workers, pin_memory=device.startswith("cuda"))
    partials: list[PhotoPartial] = []
    pending: list[dict] = []
    rank, _ = current_process()  # one bar under a launcher, not one per process
    bar = tqdm(total=len(dataset), desc="evaluate", unit="photo", disable=not verbose or rank > 0)
    for item in loader:
        if "error" in item:
            raise DataError(item["error"])
        pending.append({k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v
                        for k, v in item.items()})  # fmt: skip
        if sum(len(p["outputs"]) for p in pending) >= batch_size:
            partials += _score(pending, extractor, scorer, diversity, batch_size)
            bar.update(len(pending))
            pending = []
    if pending:
        partials += _score(pending, extractor, scorer, diversity, batch_size)
        bar.update(len(pending))
    bar.close()
    return [p.to_cpu() for p in partials]  # one device→host copy at the end


def _score(
    items: list[dict],
    extractor: torch.nn.Module,
    scorer: LpipsScorer | None,
    diversity: bool,
    batch_size: int,
) -> list[PhotoPartial]:
    """One device step: the photos in ``items``, grouped by output size (batches need one)."""
    parts: dict[int, PhotoPartial] = {}
    by_size: dict[tuple[int, int], list[int]] = {}
    for k, item in enumerate(items):
        by_size.setdefault(tuple(item["outputs"].shape[-2:]), []).append(k)
    for members in by_size.values():
        outs = torch.cat([items[k]["outputs"] for k in members])
        feats = torch.cat([extractor(c)[0] for c in outs.split(batch_size)])
        counts = [len(items[k]["outputs"]) for k in members]
        starts = list(itertools.accumulate([0, *counts]))
        for k, s0, n in zip(members, starts, counts):
            parts[k] = PhotoPartial(items[k]["stem"], feats[s0 : s0 + n])
        has_photo, has_target = "photo" in items[members[0]], "target" in items[members[0]]
        if has_target:
            targets = torch.cat([items[k]["target"][None].expand(n, -1, -1, -1)
                                 for k, n in zip(members, counts)])  # fmt: skip
            # float64 maps are 8× the uint8 images: a few images at a time
            scores = [
                psnr_ssim(a, b) for a, b in zip(outs.split(SSIM_CHUNK), targets.split(SSIM_CHUNK))
            ]
            psnr, ssim = (torch.cat(t) for t in zip(*scores))
            for k, s0, n in zip(members, starts, counts):
                parts[k].psnr, parts[k].ssim = psnr[s0 : s0 + n], ssim[s0 : s0 + n]
        if scorer is None:
            continue
        # The bank: outputs, then each photo, then each target; pairs index into it.
        bank = [outs]
        photo_at = target_at = len(outs)
        if has_photo:
            bank.append(torch.stack([items[k]["photo"] for k in members]))
            target_at += len(members)
        if has_target:
            bank.append(torch.stack([items[k]["target"] for k in members]))
        images = torch.cat(bank)
        lp = [torch.cat(layer) for layer in zip(*(lpips_features(scorer, c.float() / 127.5 - 1.0)
                                                  for c in images.split(batch_size)))]  # fmt: skip
        for g, (k, s0, n) in enumerate(zip(members, starts, counts)):
            own = torch.arange(s0, s0 + n, device=outs.device)
            if diversity and n >= 2:
                # itertools.combinations' order, built on the device: a list copied from the
                # host would wait for the device's queue to drain (pageable copy) every photo.
                pairs = torch.combinations(own, 2)
                parts[k].diversity = lpips_pairs(scorer, lp, pairs[:, 0], pairs[:, 1])
            if has_photo:
                parts[k].content = lpips_pairs(scorer, lp, own, torch.full_like(own, photo_at + g))
            if has_target:
                other = torch.full_like(own, target_at + g)
                parts[k].oracle_lpips = lpips_pairs(scorer, lp, own, other)
    return [parts[k] for k in range(len(items))]
