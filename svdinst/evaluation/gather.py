"""Evaluation split over the processes of ``accelerate launch``: gather, order, pool.

Each process scores its shard of the photos (:func:`svdinst.parallel.shard`) into per-photo
:class:`~svdinst.evaluation.stream.PhotoPartial` s. Rank 0 collects them
(:func:`gather_partials`, through ``torch.distributed`` — the launcher's process group when one
exists, else a CPU ``gloo`` group on the launcher's ``MASTER_ADDR``/``MASTER_PORT``) and
:func:`combine` puts them back in the one-process photo order. :func:`pool` then reduces them
exactly as a one-process run does, so the metrics match it: the features are the same rows in the
same order, and every mean runs over the same values in the same order. Only a device's kernels
may differ in the last bits when a photo sits in a different batch (see ``reports/benchmarks.md``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from svdinst.errors import SvdinstError
from svdinst.evaluation.stream import PhotoPartial


def combine(parts: Iterable[Sequence[PhotoPartial]], order: Sequence[str]) -> list[PhotoPartial]:
    """The partials of every process as one list in ``order`` (the one-process photo order).

    Args:
        parts (`Iterable[Sequence[PhotoPartial]]`): each process's partials.
        order (`Sequence[str]`): every photo stem, in the order one process would score them.
    """
    by_stem: dict[str, PhotoPartial] = {}
    for partials in parts:
        for p in partials:
            if p.stem in by_stem:
                raise SvdinstError(f"Photo '{p.stem}' was scored by two processes.")
            by_stem[p.stem] = p
    missing = [s for s in order if s not in by_stem]
    extra = sorted(set(by_stem) - set(order))
    if missing or extra:
        raise SvdinstError(
            f"The processes' results do not cover the photos: missing {missing[:5]}, "
            f"unexpected {extra[:5]} (did every process read the same --generated folder?)."
        )
    return [by_stem[s] for s in order]


def _mean(parts: Sequence[PhotoPartial], name: str) -> float | None:
    values = [getattr(p, name) for p in parts]
    if not values or any(v is None for v in values):
        return None
    return float(torch.cat(values).double().numpy().mean())  # numpy's sum, as oracle.py's


def pool(parts: Sequence[PhotoPartial]) -> dict[str, Any]:
    """Reduce per-photo partials (in photo order) to the evaluation's numbers.

    Returns:
        `dict`: ``features`` (N×2048, photo then seed order), ``diversity`` and
        ``diversity_std`` (mean LPIPS over each photo's seed pairs, then mean and std over
        photos), ``content`` (mean over outputs), ``oracle`` (``psnr``, ``ssim``, ``lpips``
        means over outputs, ``n``); a term that was not computed is `None`.
    """
    per_photo = [
        float(p.diversity.double().numpy().mean()) for p in parts if p.diversity is not None
    ]
    n = sum(len(p.features) for p in parts)
    oracle = None
    if parts and all(p.psnr is not None for p in parts):
        oracle = {
            "psnr": _mean(parts, "psnr"),
            "ssim": _mean(parts, "ssim"),
            "lpips": _mean(parts, "oracle_lpips"),
            "n": n,
        }
    return {
        "features": torch.cat([p.features for p in parts]) if parts else torch.zeros(0, 2048),
        "diversity": float(np.mean(per_photo)) if per_photo else None,
        "diversity_std": float(np.std(per_photo)) if per_photo else None,
        "content": _mean(parts, "content"),
        "oracle": oracle,
    }


def gather_partials(
    partials: list[PhotoPartial], rank: int, world: int
) -> list[list[PhotoPartial]] | None:
    """Every process's partials on rank 0 (``None`` on the others).

    Uses the running ``torch.distributed`` process group, or makes a ``gloo`` one (CPU tensors:
    partials are on the host) from the launcher's environment and removes it afterwards.

    Args:
        partials (`list[PhotoPartial]`): this process's, on the CPU.
        rank (`int`): this process; world (`int`): the number of processes.
    """
    import torch.distributed as dist

    made = False
    if not dist.is_initialized():
        if "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
            raise SvdinstError(
                f"WORLD_SIZE={world} but no MASTER_ADDR/MASTER_PORT: start several processes "
                "with `accelerate launch --num_processes N -m svdinst.cli evaluate …`."
            )
        dist.init_process_group("gloo", rank=rank, world_size=world)
        made = True
    group = None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
    try:
        out: list | None = [None] * world if rank == 0 else None
        dist.gather_object(partials, out, dst=0, group=group)
    finally:
        if made:
            dist.destroy_process_group()
    return out
