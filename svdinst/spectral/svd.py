"""Thin SVD of every wrapped weight, batched by shape, with a cache keyed by the base model.

SVDiff needs W₀ = U·diag(σ)·Vᵀ once per base model (Han et al., 2023, Sec. 3.1). Decomposing
SD-1.4's 282 weights one call at a time with the default cuSOLVER driver takes ~13 s on an H100;
here same-shaped weights are stacked and decomposed together:

* ``"gram"`` (the default, ``"auto"``): in float64, G = A·Aᵀ for the short side of A, a batched
  ``eigh(G) = Q·diag(λ)·Qᵀ`` gives σ = √λ and U = Q, and Vᵀ = diag(1/σ)·Qᵀ·A. In float64 the
  squared condition number costs nothing visible at float32 (σ error ≈ 1e-16·σ₁²/σᵢ); matrices
  with σ_min < 1e-6·σ₁, or whose Vᵀ is not orthonormal to 1e-7 (float32's own rounding), are
  redone with ``"svd"``.
* ``"svd"``: ``torch.linalg.svd`` in float64 (LAPACK on CPU): the reference.

cuSOLVER solves a batched eigh one matrix at a time, so :func:`decompose_matrices` runs work
units on several CUDA streams at once (and optionally on CPU threads), see its docstring.

Factors are returned in float32 and cached in ``cache_dir()/spectral/`` under the base model's
id and a fingerprint of the weights (names, shapes and a sample of values rounded to float16, so
the key does not depend on the compute dtype), so a second run reloads them instead of
decomposing; only decompositions of float32/float64 weights are written.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

import svdinst
from svdinst.cache import cache_dir
from svdinst.spectral.config import SpectralShiftConfig
from svdinst.spectral.layer import SpectralShiftLayer

Factors = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
CACHE_FORMAT = "svdinst-svd-cache-v1"
CHUNK_BYTES = 2**30  # float64 working set per batched call (a group is split into chunks)
UNIT = 4  # matrices per work unit: small enough for the CPU and GPU lanes to balance
CPU_MAX_SIDE = 640  # CPU lanes take matrices up to this short side (a 1280² eigh: ~5× a GPU's)
GPU_LANES = 4  # concurrent eigh streams: 282 SD-1.4 layers in 2.5 s instead of 4.0 s on an H100
_STREAMS: dict[tuple, torch.cuda.Stream] = {}


def _svd(a: torch.Tensor) -> Factors:
    return torch.linalg.svd(a, full_matrices=False)


def _gram(a: torch.Tensor) -> tuple[Factors, torch.Tensor]:
    """Batched thin SVD of (B, m, n) float64 with m ≤ n via eigh of A·Aᵀ; returns factors and a
    per-matrix flag saying the result is trustworthy."""
    lam, q = torch.linalg.eigh(a @ a.mT)
    lam, q = lam.flip(-1).clamp_min(0), q.flip(-1)
    s = lam.sqrt()
    vh = (q.mT @ a) / s.clamp_min(torch.finfo(a.dtype).tiny)[..., None]
    eye = torch.eye(s.shape[-1], dtype=a.dtype, device=a.device)
    ortho = (vh @ vh.mT - eye).abs().amax(dim=(-2, -1))
    # Factors are stored in float32, whose own rounding leaves Vᵀ·V − I ≈ 1e-7: accept that.
    ok = (s[..., -1] > 1e-6 * s[..., 0]) & (ortho < 1e-7)
    return (q, s, vh), ok


def _decompose_unit(
    mats: dict[str, torch.Tensor], names: list[str], dev: torch.device, method: str
) -> dict[str, Factors]:
    """Factors of same-shaped matrices ``names``, computed on ``dev``, returned on their own
    device (float32, or float64 for float64 input)."""
    src_device, precise = mats[names[0]].device, mats[names[0]].dtype == torch.float64
    use = ("svd" if precise else "gram") if method == "auto" else method  # float64: LAPACK SVD
    a = torch.stack([mats[n].to(dev, torch.float64) for n in names])
    flip = a.shape[-2] > a.shape[-1]
    if flip:
        a = a.mT
    if use == "gram":
        (u, s, vh), ok = _gram(a)
        for j in (~ok).nonzero().flatten().tolist():  # ill-conditioned: exact SVD instead
            u[j], s[j], vh[j] = _svd(a[j])
    else:
        u, s, vh = _svd(a)
    if flip:
        u, vh = vh.mT, u.mT
    keep = torch.float64 if precise else torch.float32
    return {n: tuple(t[j].to(src_device, keep).contiguous() for t in (u, s, vh)) for j, n in
            enumerate(names)}  # fmt: skip


def _lane_stream(device: torch.device, i: int) -> torch.cuda.Stream:
    """The i-th lane's CUDA stream, made once per process: every new stream gets its own
    cuBLAS/cuSOLVER workspace, which lives as long as the process."""
    key = (device, i)
    if key not in _STREAMS:
        _STREAMS[key] = torch.cuda.Stream(device)
    return _STREAMS[key]


def _init_linalg(device: torch.device) -> None:
    """Run one tiny eigh and SVD on ``device`` in this thread first.

    torch loads its CUDA linear-algebra backend lazily on the first call, and that loader must not
    run from several threads at once: concurrent first calls from the GPU lanes fail with
    "lazy wrapper should be called at most once" (seen on an H100 in a fresh process).
    """
    eye = torch.eye(2, dtype=torch.float64, device=device)
    torch.linalg.eigh(eye)
    torch.linalg.svd(eye)


def decompose_matrices(
    mats: dict[str, torch.Tensor],
    method: str = "auto",
    device: str | torch.device | None = None,
    progress: bool = True,
    cpu_workers: int = 0,
    gpu_lanes: int = GPU_LANES,
) -> dict[str, Factors]:
    """Thin SVD (U, σ, Vᵀ on the input's device; float32, or float64 for float64 input).

    Same-shaped matrices are decomposed together in units of up to ``UNIT`` matrices, largest
    first. cuSOLVER's eigh solves a batch one matrix at a time (~15 ms each on an H100, bound by
    latency more than by size), so on a GPU ``gpu_lanes`` threads, each with its own CUDA stream,
    take units from the large end and overlap those calls; optionally ``cpu_workers`` threads
    take the smallest units from the other end and run LAPACK in float64 meanwhile. The queue
    balances itself. Each unit is computed exactly as on the serial path (with CPU lanes the
    factors agree to float64 rounding; eigenvector signs may differ, W = U·diag(σ)·Vᵀ does not).

    Args:
        mats (`dict[str, torch.Tensor]`): matrices by name (a conv weight as out × in·kh·kw).
        method (`str`, defaults to ``"auto"``): ``"gram"``, ``"svd"`` or ``"auto"`` (see module).
        device (`str` or `torch.device`, *optional*): where to compute; default: the input's.
        progress (`bool`, defaults to `True`): show a tqdm bar over layers.
        cpu_workers (`int`, defaults to 0): CPU threads beside the GPU lanes (on an H100 they
            helped only while there was a single GPU lane; see ``reports/benchmarks.md``).
        gpu_lanes (`int`, defaults to ``GPU_LANES``): GPU threads, each on its own CUDA stream
            (when all work is on one GPU; on a CPU there is one lane).
    """
    groups: dict[tuple, list[str]] = defaultdict(list)
    for name, m in mats.items():
        dev = torch.device(device) if device is not None else m.device
        groups[(tuple(m.shape), dev, m.dtype == torch.float64)].append(name)
    units: deque[tuple[int, torch.device, list[str]]] = deque()
    for (shape, dev, _), names in sorted(groups.items(), key=lambda kv: -kv[0][0][0]):
        step = max(1, min(UNIT, CHUNK_BYTES // (8 * shape[0] * shape[1])))
        units.extend((min(shape), dev, names[i : i + step]) for i in range(0, len(names), step))
    out: dict[str, Factors] = {}
    lock = threading.Lock()
    bar = tqdm(total=len(mats), desc="SVD of weights", unit="layer", disable=not progress)
    gpus = {u[1] for u in units}
    gpu = next(iter(gpus)) if len(gpus) == 1 and next(iter(gpus)).type == "cuda" else None
    main = torch.cuda.current_stream(gpu) if gpu is not None else None
    streams = [_lane_stream(gpu, i) for i in range(max(1, gpu_lanes))] if gpu else [None]
    for stream in streams[: len(streams) if gpu else 0]:
        stream.wait_stream(main)  # the weights may still be in flight on the main stream

    def lane(cpu: bool, stream: torch.cuda.Stream | None = None) -> None:
        """Take units (GPU lanes from the large end, CPU lanes from the small end)."""
        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            while True:
                with lock:
                    if not units or (cpu and units[-1][0] > CPU_MAX_SIDE):
                        return
                    _, dev, names = units.pop() if cpu else units.popleft()
                done = _decompose_unit(mats, names, torch.device("cpu") if cpu else dev, method)
                if main is not None:  # used on the main stream later: keep allocator-safe
                    for t in (t for f in done.values() for t in f if t.is_cuda):
                        t.record_stream(main)
                with lock:
                    out.update(done)
                    bar.update(len(names))

    if gpu is not None:
        _init_linalg(gpu)
    with ThreadPoolExecutor(max_workers=cpu_workers + len(streams)) as pool:
        lanes = [pool.submit(lane, True) for _ in range(cpu_workers)]
        lanes += [pool.submit(lane, False, stream) for stream in streams]
        for h in lanes:
            h.result()  # re-raises a lane's error
    for stream in streams[: len(streams) if gpu else 0]:
        main.wait_stream(stream)
    bar.close()
    return {n: out[n] for n in mats}


def weights_fingerprint(mats: dict[str, torch.Tensor]) -> str:
    """A short hash of layer names, shapes and 64 sampled values per weight, rounded to float16.

    The dtype is not part of the key: a float16 copy of a model (stylizing on a GPU) finds the
    factors of its float32 weights (training), so δ lands on the singular vectors it was trained
    on, and a T4 does not redo a float64 SVD and write a second ~4 GB file.
    """
    h = hashlib.sha256()
    for name in sorted(mats):
        m = mats[name]
        flat = m.reshape(-1)
        sample = flat[:: max(1, flat.numel() // 64)][:64].to("cpu", torch.float16)
        sample = sample.to(torch.float64)
        h.update(f"{name}:{tuple(m.shape)};".encode())
        h.update(sample.numpy().tobytes())
    return h.hexdigest()[:16]


def cache_path(base_model: str, fingerprint: str) -> Path:
    """``cache_dir()/spectral/<model slug>-<fingerprint>.safetensors``."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(base_model)).strip("_")[-80:] or "model"
    return cache_dir() / "spectral" / f"{slug}-{fingerprint}.safetensors"


def load_factors(
    path: Path, names: list[str], device: str | torch.device = "cpu"
) -> dict[str, Factors] | None:
    """Factors from a cache file (read straight onto ``device``), or ``None`` when it is
    missing, stale or unreadable."""
    if not path.is_file():
        return None
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as fh:
            if (fh.metadata() or {}).get("format") != CACHE_FORMAT:
                return None
            keys = set(fh.keys())
            if not all(f"{n}.S" in keys for n in names):
                return None
            return {n: tuple(fh.get_tensor(f"{n}.{p}") for p in ("U", "S", "Vh")) for n in names}
    except Exception:  # a corrupt cache is rebuilt, never trusted
        return None


def save_factors(path: Path, factors: dict[str, Factors], base_model: str) -> None:
    """Write factors atomically (temporary name, then rename) with the base model in metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {
        f"{n}.{p}": t.detach().to("cpu").contiguous()
        for n, f in factors.items()
        for p, t in zip(("U", "S", "Vh"), f)
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    meta = {"format": CACHE_FORMAT, "base_model": base_model, "svdinst": svdinst.__version__}
    save_file(tensors, tmp, meta)
    os.replace(tmp, path)


def load_or_decompose(
    weights: dict[str, torch.Tensor],
    base_model: str | None,
    config: SpectralShiftConfig,
    progress: bool = True,
) -> dict[str, Factors]:
    """Factors of each weight (reshaped to out × in'), from the cache when it has them.

    Args:
        weights (`dict[str, torch.Tensor]`): layer weights by name.
        base_model (`str`, *optional*): cache key; ``None`` disables the cache.
        config (`SpectralShiftConfig`): ``svd_method``, ``svd_device`` and ``cache``.
        progress (`bool`, defaults to `True`): tqdm bar while decomposing.
    """
    mats = {n: w.reshape(w.shape[0], -1) for n, w in weights.items()}
    path = None
    # Only factors of full-precision weights are written: the key ignores the dtype, so factors
    # of a float16 copy must never stand in for the float32 ones training uses.
    full = all(m.dtype in (torch.float32, torch.float64) for m in mats.values())
    if config.cache and base_model:
        path = cache_path(base_model, weights_fingerprint(mats))
        device = next(iter(mats.values())).device
        cached = load_factors(path, list(mats), device)
        if cached is not None:
            return cached
    factors = decompose_matrices(mats, config.svd_method, config.svd_device, progress)
    if path is not None and full:
        save_factors(path, factors, base_model)
    return factors


# Block types of a diffusers UNet, in the order notebook 02 plots them (first match wins).
LAYER_KINDS = (
    ("cross-attn k/v", r"attn2\.to_[kv]$"),
    ("attention q/k/v/out", r"attn[12]\.to_(q|k|v|out\.0)$"),
    ("feed-forward", r"\.ff\.net\."),
    ("attn proj in/out", r"\.proj_(in|out)$"),
    ("resnet conv", r"resnets\.\d+\.(conv1|conv2|conv_shortcut)$"),
    ("time embedding", r"(time_emb_proj|time_embedding\.linear_\d)$"),
    ("up/down sampler", r"(upsamplers|downsamplers)\.0\.conv$"),
    ("in/out conv", r"^conv_(in|out)$"),
)


def layer_kind(name: str) -> str:
    """The block type of a UNet layer name (see :data:`LAYER_KINDS`), else ``"other"``."""
    return next((kind for kind, pattern in LAYER_KINDS if re.search(pattern, name)), "other")


def reconstruction_errors(model: torch.nn.Module) -> dict[str, float]:
    """‖U·diag(σ)·Vᵀ − W₀‖_F / ‖W₀‖_F of every unmerged spectral-shift layer (float64)."""
    errors = {}
    for name, layer in model.named_modules():
        if not isinstance(layer, SpectralShiftLayer):
            continue
        if layer.merged or layer.original is not None:
            continue  # the base storage holds a rebuilt W: nothing to compare against
        w = layer.base_layer.weight.detach().double().reshape(layer.U.shape[0], -1)
        rebuilt = (layer.U.double() * layer.S.double()) @ layer.Vh.double()
        errors[name] = float((rebuilt - w).norm() / w.norm().clamp_min(1e-30))
    return errors
